package events

import (
	"fmt"

	"github.com/herald-notify/herald"
)

// Evolve returns n after event e, recorded as r. It is the one definition of what each event does
// to a notification; the worker's decisions, the status projection and the as-read-from-the-log
// answers all use it, so they cannot disagree.
func Evolve(n herald.Notification, r Recorded, e Event) herald.Notification {
	n.Version = r.Version
	n.Position = r.Position
	n.UpdatedAt = r.Time
	if _, ok := e.(*NotificationRecovered); ok {
		n.Recoveries++
	} else {
		n.Recoveries = 0
	}
	switch e := e.(type) {
	case *NotificationQueued:
		n.ID = r.StreamID
		n.Channel = e.Channel
		n.Recipient = e.Recipient
		n.Subject = e.RenderedSubject
		n.Body = e.Body
		n.Status = herald.StatusPending
		n.CreatedAt = r.Time
	case *NotificationProcessing:
		n.Status = herald.StatusProcessing
		n.Attempts = e.Attempt
		n.AttemptOpen = true
		n.AttemptStartedAt = r.Time
	case *NotificationSent:
		n.Status = herald.StatusSent
		n.AttemptOpen = false
		n.Provider = e.Provider
		n.ProviderMessageID = e.ProviderMessageID
		n.LastError = ""
	case *DeliveryAttemptFailed:
		// Still processing: a retry follows.
		n.AttemptOpen = false
		n.Provider = e.Provider
		n.LastError = e.Error
	case *NotificationFailed:
		n.Status = herald.StatusFailed
		n.AttemptOpen = false
		if e.Provider != "" {
			n.Provider = e.Provider
		}
		n.LastError = e.Error
	case *NotificationRequeued:
		n.Status = herald.StatusPending
		n.AttemptOpen = false
		n.RoundStart = n.Attempts
	case *NotificationDiscarded:
		// Still failed; the history says an operator gave up on it.
	case *NotificationRecovered:
		// Its command was queued again; the state it was in goes on. An attempt left open stays
		// open, so that the worker that takes the command judges its lease and records it.
	}
	return n
}

// Fold replays a stream, in version order, into the notification it describes.
func Fold(stream []Recorded) (herald.Notification, error) {
	var n herald.Notification
	for i, r := range stream {
		if want := int64(i + 1); r.Version != want {
			return n, fmt.Errorf("fold stream %s: version %d where %d was expected", r.StreamID, r.Version, want)
		}
		e, err := r.Event()
		if err != nil {
			return n, fmt.Errorf("fold stream %s v%d: %w", r.StreamID, r.Version, err)
		}
		n = Evolve(n, r, e)
	}
	return n, nil
}

// StatusAfter returns the status a notification has right after e.
func StatusAfter(e Event) herald.Status {
	switch e := e.(type) {
	case *NotificationQueued:
		return herald.StatusPending
	case *NotificationSent:
		return herald.StatusSent
	case *NotificationFailed, *NotificationDiscarded:
		return herald.StatusFailed
	case *NotificationRequeued:
		return herald.StatusPending
	case *NotificationRecovered:
		if e.Status != "" {
			return e.Status
		}
	}
	return herald.StatusProcessing
}

// HistoryEntry describes r (decoded as e) for the history read model: the status after it and
// the attempt it concerns.
func HistoryEntry(r Recorded, e Event) herald.HistoryEntry {
	h := herald.HistoryEntry{
		Version:  r.Version,
		Position: r.Position,
		Event:    r.Type,
		Status:   StatusAfter(e),
		Actor:    r.Metadata.Actor,
		At:       r.Time,
	}
	switch e := e.(type) {
	case *NotificationProcessing:
		h.Attempt = e.Attempt
	case *NotificationSent:
		h.Attempt = e.Attempt
		h.Provider = e.Provider
		h.ProviderMessageID = e.ProviderMessageID
	case *DeliveryAttemptFailed:
		h.Attempt = e.Attempt
		h.Provider = e.Provider
		h.Error = e.Error
	case *NotificationFailed:
		h.Attempt = e.Attempt
		h.Provider = e.Provider
		h.Error = e.Error
		h.Reason = e.Reason
	case *NotificationRequeued:
		h.Reason = e.Reason
		h.Actor = e.Actor
	case *NotificationDiscarded:
		h.Reason = e.Reason
		h.Actor = e.Actor
	case *NotificationRecovered:
		h.Reason = e.Reason
		h.Actor = e.Actor
	}
	return h
}
