package wire

import (
	"time"

	"github.com/herald-notify/herald/handlers"
)

// Parked is a command parked in the poison queue, with the state of its notification.
type Parked struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	Recipient string     `json:"recipient"`
	Status    string     `json:"status"`
	Reason    string     `json:"reason"`
	Error     string     `json:"error"`
	Attempts  int        `json:"attempts"`
	FailedAt  *time.Time `json:"failed_at"`
	Stale     bool       `json:"stale"`
	MessageID string     `json:"message_id"`
	// Unreadable says why a parked message is not a command Herald can read.
	Unreadable string `json:"unreadable,omitempty"`
}

// NewParked returns p as users see it.
func NewParked(p handlers.Parked) Parked {
	return Parked{
		ID:         p.Message.NotificationID,
		Type:       string(p.Channel()),
		Recipient:  p.Notification.Recipient,
		Status:     string(p.Notification.Status),
		Reason:     p.FailReason,
		Error:      p.FailError,
		Attempts:   p.Notification.Attempts,
		FailedAt:   utc(p.FailedAt),
		Stale:      p.Stale,
		MessageID:  p.Message.MessageID,
		Unreadable: p.Message.Unreadable,
	}
}

// ParkedPage is a page of the poison queue, in queue order.
type ParkedPage struct {
	Parked []Parked `json:"parked"`
	// NextCursor continues the listing after this page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Next is the API path of the next page (the API sets it; the CLI has none).
	Next string `json:"next,omitempty"`
}

// NewParkedPage returns page as users see it, without the API path of the next page.
func NewParkedPage(page handlers.ParkedPage) ParkedPage {
	return ParkedPage{Parked: all(page.Parked, NewParked), NextCursor: page.Next}
}

// ParkedMessage is a parked message as RabbitMQ holds it, for an operator who looks into one.
type ParkedMessage struct {
	MessageID     string     `json:"message_id"`
	CorrelationID string     `json:"correlation_id"`
	ParkedBecause string     `json:"parked_because"`
	Queue         string     `json:"queue"`
	Handler       string     `json:"handler"`
	Deliveries    int        `json:"deliveries"`
	Timestamp     *time.Time `json:"timestamp"`
	Stale         bool       `json:"stale"`
	Unreadable    string     `json:"unreadable,omitempty"`
	// Headers are every header of the message, as text; Body is the message body as it is.
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// NewParkedMessage returns p's message as users see it.
func NewParkedMessage(p handlers.Parked) ParkedMessage {
	m := p.Message
	headers := m.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return ParkedMessage{
		MessageID: m.MessageID, CorrelationID: m.CorrelationID, ParkedBecause: m.Reason, Queue: m.Queue,
		Handler: m.Handler, Deliveries: m.Deliveries, Timestamp: utc(m.Timestamp), Stale: p.Stale,
		Unreadable: m.Unreadable, Headers: headers, Body: string(m.Body),
	}
}

// ParkedDetail is everything known about one notification's parked commands: its state (null
// when the log does not know it), each parked message, and its history.
type ParkedDetail struct {
	ID           string          `json:"id"`
	Notification *Notification   `json:"notification"`
	Parked       []ParkedMessage `json:"parked"`
	History      []HistoryEntry  `json:"history"`
}

// NewParkedDetail returns d, about notification id, as users see it.
func NewParkedDetail(id string, d handlers.ParkedDetail) ParkedDetail {
	out := ParkedDetail{ID: id, Parked: all(d.Messages, NewParkedMessage), History: NewHistoryEntries(d.History)}
	if d.Notification.Version > 0 {
		n := NewNotification(d.Notification)
		out.Notification = &n
	}
	return out
}

// Result is what an operator's requeue or discard did to one notification.
type Result struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	// Status is the notification's status afterwards; empty for an orphaned message.
	Status  string `json:"status"`
	Version int64  `json:"version"`
	// Removed counts the parked messages removed.
	Removed int   `json:"removed"`
	Links   Links `json:"links"`
}

// NewResult returns r as users see it.
func NewResult(r handlers.Result) Result {
	return Result{ID: r.ID, Action: string(r.Action), Status: string(r.Status), Version: r.Version,
		Removed: r.Removed, Links: LinksFor(r.ID)}
}

// Results are what an operator's action did, one result per notification.
type Results struct {
	Results []Result `json:"results"`
}

// NewResults returns results as users see them.
func NewResults(results []handlers.Result) Results {
	return Results{Results: all(results, NewResult)}
}

// Planned is what an operator's requeue or discard would do to one notification, shown before
// it is done: the action, the notification as it is now, and its parked messages.
type Planned struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	// Notification is null when the log does not know it: its parked messages are only removed.
	Notification *Notification `json:"notification"`
	Parked       int           `json:"parked"`
	// MessageIDs are the distinct ids of its parked messages, sorted: with the version of the
	// notification and the action, what a confirmation passes back as Expected.
	MessageIDs []string `json:"message_ids"`
}

// NewPlanned returns p as users see it.
func NewPlanned(p handlers.Planned) Planned {
	ids := p.MessageIDs
	if ids == nil {
		ids = []string{}
	}
	out := Planned{ID: p.ID, Action: string(p.Action), Parked: p.Parked, MessageIDs: ids}
	if p.Notification.Version > 0 {
		n := NewNotification(p.Notification)
		out.Notification = &n
	}
	return out
}

// NewPlan returns plan as users see it, never nil.
func NewPlan(plan []handlers.Planned) []Planned { return all(plan, NewPlanned) }

// Plan is the answer to a dry run of a requeue or discard: what it would do, nothing done.
type Plan struct {
	Plan []Planned `json:"plan"`
}

// Expected is what a client saw in a dry run for one notification and confirms with the action:
// if the plan differs when the action runs, nothing is done (409 conflict).
type Expected struct {
	Version    int64    `json:"version"`
	Action     string   `json:"action"`
	MessageIDs []string `json:"message_ids"`
}

// Handlers returns e as the operator checks it.
func (e Expected) Handlers() handlers.Expected {
	return handlers.Expected{Version: e.Version, Action: handlers.Action(e.Action), MessageIDs: e.MessageIDs}
}
