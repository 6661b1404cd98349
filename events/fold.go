package events

import (
	"fmt"
	"time"

	"github.com/herald-notify/herald"
)

// Evolve returns n after event e, recorded as r. It is the one definition of what each event does
// to a notification; the worker's decisions, the status projection and the as-read-from-the-log
// answers all use it, so they cannot disagree.
func Evolve(n herald.Notification, r Recorded, e Event) herald.Notification {
	n.Version = r.Version
	n.Position = r.Position
	n.UpdatedAt = r.Time
	v := evolvers.get()
	v.n, v.stream, v.at = n, r.StreamID, r.Time
	// Recoveries counts the NotificationRecovered events at the end of the stream: every other
	// event ends the run, and NotificationRecovered counts itself in.
	v.n.Recoveries = 0
	v.recoveriesBefore = n.Recoveries
	e.Accept(v)
	n = v.n
	evolvers.put(v)
	return n
}

var evolvers visitors[evolver]

// evolver is Evolve's Visitor: what each event does to the notification n. The event is of
// stream, recorded at at.
type evolver struct {
	n                herald.Notification
	stream           string
	at               time.Time
	recoveriesBefore int
}

// NotificationQueued opens the notification: what it is, to whom, and that it is pending.
func (v *evolver) NotificationQueued(e *NotificationQueued) {
	v.n.ID = v.stream
	v.n.Channel = e.Channel
	v.n.Recipient = e.Recipient
	v.n.Subject = e.RenderedSubject
	v.n.Body = e.Body
	v.n.HTML = e.RenderedHTML
	v.n.Attachments = nil
	for _, a := range e.Attachments {
		v.n.Attachments = append(v.n.Attachments, herald.Attachment{Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256})
	}
	v.n.Priority = e.Priority.OrNormal()
	v.n.Status = herald.StatusPending
	v.n.SendAt = time.Time{}
	if e.SendAt != nil {
		v.n.Status = herald.StatusScheduled
		v.n.SendAt = *e.SendAt
	}
	v.n.CreatedAt = v.at
}

// NotificationProcessing opens an attempt, whose lease runs from the event's time.
func (v *evolver) NotificationProcessing(e *NotificationProcessing) {
	v.n.Status = herald.StatusProcessing
	v.n.Attempts = e.Attempt
	v.n.AttemptOpen = true
	v.n.AttemptStartedAt = v.at
}

// NotificationSent closes the attempt and the story: the provider took the message.
func (v *evolver) NotificationSent(e *NotificationSent) {
	v.n.Status = herald.StatusSent
	v.n.AttemptOpen = false
	v.n.Provider = e.Provider
	v.n.ProviderMessageID = e.ProviderMessageID
	v.n.LastError = ""
}

// DeliveryAttemptFailed closes the attempt with its error; the notification stays processing,
// as a retry follows.
func (v *evolver) DeliveryAttemptFailed(e *DeliveryAttemptFailed) {
	v.n.AttemptOpen = false
	v.n.Provider = e.Provider
	v.n.LastError = e.Error
}

// NotificationFailed closes the attempt and fails the notification for good, unless an operator
// requeues it. An abandoned attempt names no provider: the one before stands.
func (v *evolver) NotificationFailed(e *NotificationFailed) {
	v.n.Status = herald.StatusFailed
	v.n.AttemptOpen = false
	if e.Provider != "" {
		v.n.Provider = e.Provider
	}
	v.n.LastError = e.Error
}

// NotificationRequeued makes the notification pending again, for a new round of attempts
// counted from here.
func (v *evolver) NotificationRequeued(*NotificationRequeued) {
	v.n.Status = herald.StatusPending
	v.n.AttemptOpen = false
	v.n.RoundStart = v.n.Attempts
}

// NotificationDiscarded changes nothing of the notification: it stays failed, and the history
// says an operator gave up on it.
func (v *evolver) NotificationDiscarded(*NotificationDiscarded) {}

// NotificationRecovered counts one more recovery in a row and changes nothing else: the command
// was queued again and the state it was in goes on. An attempt left open stays open, so that the
// worker that takes the command judges its lease and records it.
func (v *evolver) NotificationRecovered(*NotificationRecovered) {
	v.n.Recoveries = v.recoveriesBefore + 1
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
	v := statusAfters.get()
	e.Accept(v)
	s := v.status
	statusAfters.put(v)
	return s
}

var statusAfters visitors[statusAfter]

// statusAfter is StatusAfter's Visitor: the status each event leaves a notification in.
type statusAfter struct{ status herald.Status }

// NotificationQueued: scheduled when it names a time to send at, pending otherwise.
func (v *statusAfter) NotificationQueued(e *NotificationQueued) {
	v.status = herald.StatusPending
	if e.SendAt != nil {
		v.status = herald.StatusScheduled
	}
}

func (v *statusAfter) NotificationProcessing(*NotificationProcessing) {
	v.status = herald.StatusProcessing
}

func (v *statusAfter) NotificationSent(*NotificationSent) { v.status = herald.StatusSent }

// DeliveryAttemptFailed leaves it processing: a retry follows.
func (v *statusAfter) DeliveryAttemptFailed(*DeliveryAttemptFailed) {
	v.status = herald.StatusProcessing
}

func (v *statusAfter) NotificationFailed(*NotificationFailed) { v.status = herald.StatusFailed }

func (v *statusAfter) NotificationRequeued(*NotificationRequeued) { v.status = herald.StatusPending }

// NotificationDiscarded: still failed.
func (v *statusAfter) NotificationDiscarded(*NotificationDiscarded) { v.status = herald.StatusFailed }

// NotificationRecovered keeps the status the notification was found in; one that does not say
// is taken for processing.
func (v *statusAfter) NotificationRecovered(e *NotificationRecovered) {
	v.status = e.Status
	if v.status == "" {
		v.status = herald.StatusProcessing
	}
}

// HistoryEntry describes r (decoded as e) for the history read model: the status after it and
// the attempt it concerns.
func HistoryEntry(r Recorded, e Event) herald.HistoryEntry {
	v := historyEntries.get()
	// StatusAfter's visitor, inside this pooled one, costs no allocation of its own.
	e.Accept(&v.after)
	v.h = herald.HistoryEntry{
		Version:  r.Version,
		Position: r.Position,
		Event:    r.Type,
		Status:   v.after.status,
		Actor:    r.Metadata.Actor,
		At:       r.Time,
	}
	e.Accept(v)
	h := v.h
	historyEntries.put(v)
	return h
}

var historyEntries visitors[historyEntry]

// historyEntry is HistoryEntry's Visitor: what of each event the history shows beside its status.
// An operator's event names the operator as its actor, rather than the request's metadata.
type historyEntry struct {
	h     herald.HistoryEntry
	after statusAfter
}

// NotificationQueued: the stored template version it was rendered from, if any; what was sent
// is in the event itself.
func (v *historyEntry) NotificationQueued(e *NotificationQueued) {
	if e.Template != nil {
		v.h.Template = e.Template.String()
	}
}

// NotificationProcessing: the attempt it starts.
func (v *historyEntry) NotificationProcessing(e *NotificationProcessing) {
	v.h.Attempt = e.Attempt
}

// NotificationSent: the attempt, and the provider that took the message, with its id for it.
func (v *historyEntry) NotificationSent(e *NotificationSent) {
	v.h.Attempt = e.Attempt
	v.h.Provider = e.Provider
	v.h.ProviderMessageID = e.ProviderMessageID
}

// DeliveryAttemptFailed: the attempt, its provider and its error.
func (v *historyEntry) DeliveryAttemptFailed(e *DeliveryAttemptFailed) {
	v.h.Attempt = e.Attempt
	v.h.Provider = e.Provider
	v.h.Error = e.Error
}

// NotificationFailed: the last attempt, its provider and error, and why Herald gave up.
func (v *historyEntry) NotificationFailed(e *NotificationFailed) {
	v.h.Attempt = e.Attempt
	v.h.Provider = e.Provider
	v.h.Error = e.Error
	v.h.Reason = e.Reason
}

// NotificationRequeued: the operator and their reason.
func (v *historyEntry) NotificationRequeued(e *NotificationRequeued) {
	v.h.Reason = e.Reason
	v.h.Actor = e.Actor
}

// NotificationDiscarded: the operator and their reason.
func (v *historyEntry) NotificationDiscarded(e *NotificationDiscarded) {
	v.h.Reason = e.Reason
	v.h.Actor = e.Actor
}

// NotificationRecovered: the reconciler and what it found.
func (v *historyEntry) NotificationRecovered(e *NotificationRecovered) {
	v.h.Reason = e.Reason
	v.h.Actor = e.Actor
}

// WebhookEndpoint: an endpoint's change is no part of any notification's story.
func (v *evolver) WebhookEndpoint(EndpointEvent) {}

// WebhookEndpoint: an endpoint's change leaves no notification in any status.
func (v *statusAfter) WebhookEndpoint(EndpointEvent) { v.status = "" }

// WebhookEndpoint: an endpoint's change is in no notification's history.
func (v *historyEntry) WebhookEndpoint(EndpointEvent) {}

// Suppression: the suppression list is no part of any notification's story.
func (v *evolver) Suppression(SuppressionEvent) {}

// Suppression: a suppression's change leaves no notification in any status.
func (v *statusAfter) Suppression(SuppressionEvent) { v.status = "" }

// Suppression: a suppression's change is in no notification's history.
func (v *historyEntry) Suppression(SuppressionEvent) {}

// Template: a stored template is no part of any notification's story.
func (v *evolver) Template(TemplateEvent) {}

// Template: a template's change leaves no notification in any status.
func (v *statusAfter) Template(TemplateEvent) { v.status = "" }

// Template: a template's change is in no notification's history.
func (v *historyEntry) Template(TemplateEvent) {}
