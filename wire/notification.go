package wire

import (
	"encoding/json"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Notification is a notification's state: the status read model's row, or the fold of its stream
// (as of an instant, when AsOf is set).
type Notification struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Recipient string `json:"recipient"`
	Status    string `json:"status"`
	// SendAt is when the client asked for it to be sent, when it asked for a time.
	SendAt *time.Time `json:"send_at,omitempty"`
	// Priority is high or low; absent for normal.
	Priority          string `json:"priority,omitempty"`
	Attempts          int    `json:"attempts"`
	LastError         string `json:"last_error,omitempty"`
	Provider          string `json:"provider,omitempty"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	// Version is the stream version the state reflects; Position is that event's position in the
	// whole log (omitted only by a caller that does not know it).
	Version   int64     `json:"version"`
	Position  int64     `json:"position,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// AsOf is the instant the state was asked for, when it was asked for one.
	AsOf  *time.Time `json:"as_of,omitempty"`
	Links Links      `json:"links"`
}

// NewNotification returns n as users see it.
func NewNotification(n herald.Notification) Notification {
	return Notification{
		ID:                n.ID,
		Type:              string(n.Channel),
		Recipient:         n.Recipient,
		Status:            string(n.Status),
		SendAt:            utc(n.SendAt),
		Priority:          shownPriority(n.Priority),
		Attempts:          n.Attempts,
		LastError:         n.LastError,
		Provider:          n.Provider,
		ProviderMessageID: n.ProviderMessageID,
		Version:           n.Version,
		Position:          n.Position,
		CreatedAt:         n.CreatedAt.UTC(),
		UpdatedAt:         n.UpdatedAt.UTC(),
		Links:             LinksFor(n.ID),
	}
}

// NewNotificationAsOf returns n as it was at the instant at.
func NewNotificationAsOf(n herald.Notification, at time.Time) Notification {
	out := NewNotification(n)
	out.AsOf = utc(at)
	return out
}

// Links are the API paths of what is known about one notification.
type Links struct {
	Status  string `json:"status"`
	History string `json:"history"`
	Events  string `json:"events"`
}

// LinksFor returns the links of notification id.
func LinksFor(id string) Links {
	base := "/api/v1/notifications/" + id
	return Links{Status: base + "/status", History: base + "/history", Events: base + "/events"}
}

// NotificationList is a page of notifications.
type NotificationList struct {
	Notifications []Notification `json:"notifications"`
	// NextCursor continues the listing after this page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Next is the API path of the next page.
	Next string `json:"next,omitempty"`
}

// NewNotificationList returns a page of list, continued by cursor next (empty when it is the last).
func NewNotificationList(list []herald.Notification, next string) NotificationList {
	return NotificationList{Notifications: all(list, NewNotification), NextCursor: next}
}

// HistoryEntry is one event of a notification's story, as the history read model keeps it.
type HistoryEntry struct {
	Version           int64  `json:"version"`
	Position          int64  `json:"position"`
	Event             string `json:"event"`
	Status            string `json:"status"`
	Attempt           int    `json:"attempt,omitempty"`
	Provider          string `json:"provider,omitempty"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	Error             string `json:"error,omitempty"`
	Reason            string `json:"reason,omitempty"`
	Actor             string `json:"actor,omitempty"`
	// Template is the stored template version a NotificationQueued was rendered from.
	Template string    `json:"template,omitempty"`
	At       time.Time `json:"at"`
}

// NewHistoryEntry returns h as users see it.
func NewHistoryEntry(h herald.HistoryEntry) HistoryEntry {
	return HistoryEntry{
		Version: h.Version, Position: h.Position, Event: h.Event, Status: string(h.Status),
		Attempt: h.Attempt, Provider: h.Provider, ProviderMessageID: h.ProviderMessageID,
		Error: h.Error, Reason: h.Reason, Actor: h.Actor, Template: h.Template, At: h.At.UTC(),
	}
}

// NewHistoryEntries returns entries as users see them, never nil.
func NewHistoryEntries(entries []herald.HistoryEntry) []HistoryEntry {
	return all(entries, NewHistoryEntry)
}

// History is a notification's whole story.
type History struct {
	ID      string         `json:"id"`
	History []HistoryEntry `json:"history"`
	Links   Links          `json:"links"`
}

// NewHistory returns notification id's history.
func NewHistory(id string, entries []herald.HistoryEntry) History {
	return History{ID: id, History: NewHistoryEntries(entries), Links: LinksFor(id)}
}

// Event is an event as the log holds it, for auditors.
type Event struct {
	ID       string          `json:"id"`
	StreamID string          `json:"stream_id"`
	Version  int64           `json:"version"`
	Position int64           `json:"position"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata events.Metadata `json:"metadata"`
}

// NewEvent returns r as users see it.
func NewEvent(r events.Recorded) Event {
	return Event{ID: r.ID, StreamID: r.StreamID, Version: r.Version, Position: r.Position, Type: r.Type,
		Time: r.Time.UTC(), Data: r.Data, Metadata: r.Metadata}
}

// Stream is a notification's events, oldest first.
type Stream struct {
	ID     string  `json:"id"`
	Events []Event `json:"events"`
	Links  Links   `json:"links"`
}

// NewStream returns the stream of notification id.
func NewStream(id string, recs []events.Recorded) Stream {
	return Stream{ID: id, Events: all(recs, NewEvent), Links: LinksFor(id)}
}

// shownPriority is a notification's priority as users see it: high or low, and nothing for
// normal, as in its NotificationQueued.
func shownPriority(p herald.Priority) string {
	if p.OrNormal() == herald.PriorityNormal {
		return ""
	}
	return string(p)
}
