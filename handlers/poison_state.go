package handlers

import (
	"fmt"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// notificationState is a notification folded from the log, with what operators need beyond it.
type notificationState struct {
	n    herald.Notification
	recs []events.Recorded
	// failedAt, failReason and failError are from the latest NotificationFailed.
	failedAt   time.Time
	failReason string
	failError  string
	// discarded: a NotificationDiscarded follows the latest NotificationFailed.
	discarded     bool
	correlationID string
}

// parked joins m to the state of its notification; a message the log has no notification for
// stays as it is, an orphan.
func (st notificationState) parked(m ParkedMessage) Parked {
	p := Parked{Message: m}
	if m.NotificationID == "" || st.n.Version == 0 {
		return p
	}
	p.Notification = st.n
	p.FailedAt, p.FailReason, p.FailError = st.failedAt, st.failReason, st.failError
	p.Discarded = st.discarded
	p.Stale = st.n.Status != herald.StatusFailed || st.discarded
	return p
}

// foldState adds to n, folded from recs, what operators need beyond it.
func foldState(n herald.Notification, recs []events.Recorded) (notificationState, error) {
	st := notificationState{n: n, recs: recs}
	if len(recs) > 0 {
		st.correlationID = recs[0].Metadata.CorrelationID
	}
	for _, r := range recs {
		e, err := r.Event()
		if err != nil {
			return notificationState{}, fmt.Errorf("load %s v%d: %w", r.StreamID, r.Version, err)
		}
		e.Accept(lastFailure{st: &st, at: r.Time})
	}
	return st, nil
}

// lastFailure is foldState's Visitor: it keeps the latest NotificationFailed, recorded at at,
// and whether an operator discarded the notification since.
type lastFailure struct {
	st *notificationState
	at time.Time
}

// NotificationFailed is the failure operators act on; a new one stands until an operator does.
func (v lastFailure) NotificationFailed(e *events.NotificationFailed) {
	v.st.failedAt, v.st.failReason, v.st.failError, v.st.discarded = v.at, e.Reason, e.Error, false
}

// NotificationDiscarded: an operator gave up on the failure.
func (v lastFailure) NotificationDiscarded(*events.NotificationDiscarded) { v.st.discarded = true }

// NotificationRequeued: an operator sent it back, so a discard before it no longer stands.
func (v lastFailure) NotificationRequeued(*events.NotificationRequeued) { v.st.discarded = false }

// NotificationQueued changes neither: nothing has failed yet.
func (lastFailure) NotificationQueued(*events.NotificationQueued) {}

// NotificationProcessing changes neither: an attempt after a requeue has not failed yet.
func (lastFailure) NotificationProcessing(*events.NotificationProcessing) {}

// NotificationSent changes neither: Parked reads a sent notification's leftovers as stale.
func (lastFailure) NotificationSent(*events.NotificationSent) {}

// DeliveryAttemptFailed changes neither: an attempt that will be retried is no failure.
func (lastFailure) DeliveryAttemptFailed(*events.DeliveryAttemptFailed) {}

// NotificationRecovered changes neither: a recovery resends the command of a notification
// under way, never of a failed one.
func (lastFailure) NotificationRecovered(*events.NotificationRecovered) {}

// WebhookEndpoint: an endpoint's change is in no notification's stream.
func (lastFailure) WebhookEndpoint(events.EndpointEvent) {}

// Suppression: a suppression's change is in no notification's stream.
func (lastFailure) Suppression(events.SuppressionEvent) {}

// Template: a stored template's change is in no notification's stream.
func (lastFailure) Template(events.TemplateEvent) {}

// NotificationDelivered: a report after sending; no failure to act on.
func (lastFailure) NotificationDelivered(*events.NotificationDelivered) {}

// NotificationUndelivered: a report after sending; the poison queue has nothing to do with it.
func (lastFailure) NotificationUndelivered(*events.NotificationUndelivered) {}

// NotificationBounced: a report after sending; the poison queue has nothing to do with it.
func (lastFailure) NotificationBounced(*events.NotificationBounced) {}

// NotificationComplained: a report after sending; no failure to act on.
func (lastFailure) NotificationComplained(*events.NotificationComplained) {}

// NotificationReleased changes neither: a scheduled notification came due, nothing has failed.
func (lastFailure) NotificationReleased(*events.NotificationReleased) {}
