package events

import (
	"strings"

	"github.com/herald-notify/herald"
)

// NotificationDelivered: the provider says it arrived.
func (v *evolver) NotificationDelivered(*NotificationDelivered) {
	v.n.Status = herald.StatusDelivered
	v.n.LastError = ""
}

// NotificationUndelivered: the provider says it could not deliver; why is the last error.
func (v *evolver) NotificationUndelivered(e *NotificationUndelivered) {
	v.n.Status = herald.StatusUndelivered
	v.n.LastError = joinNonEmpty(e.ErrorCode, e.Error)
}

// NotificationBounced: a hard bounce ends it bounced, with the server's words as the last error;
// a soft bounce leaves it as it was (the server may still deliver), and is in the history.
func (v *evolver) NotificationBounced(e *NotificationBounced) {
	if e.Kind != BounceHard {
		return
	}
	v.n.Status = herald.StatusBounced
	v.n.LastError = joinNonEmpty(e.Status, e.Diagnostic)
}

// NotificationComplained: the recipient reported it as abuse.
func (v *evolver) NotificationComplained(*NotificationComplained) {
	v.n.Status = herald.StatusComplained
}

func (v *statusAfter) NotificationDelivered(*NotificationDelivered) {
	v.status = herald.StatusDelivered
}

func (v *statusAfter) NotificationUndelivered(*NotificationUndelivered) {
	v.status = herald.StatusUndelivered
}

// NotificationBounced: bounced for a hard bounce; a soft one leaves the notification sent.
func (v *statusAfter) NotificationBounced(e *NotificationBounced) {
	v.status = herald.StatusSent
	if e.Kind == BounceHard {
		v.status = herald.StatusBounced
	}
}

func (v *statusAfter) NotificationComplained(*NotificationComplained) {
	v.status = herald.StatusComplained
}

// NotificationDelivered: the provider and its id for the message.
func (v *historyEntry) NotificationDelivered(e *NotificationDelivered) {
	v.h.Provider = e.Provider
	v.h.ProviderMessageID = e.ProviderMessageID
}

// NotificationUndelivered: the provider, its id for the message, and its error.
func (v *historyEntry) NotificationUndelivered(e *NotificationUndelivered) {
	v.h.Provider = e.Provider
	v.h.ProviderMessageID = e.ProviderMessageID
	v.h.Error = joinNonEmpty(e.ErrorCode, e.Error)
}

// NotificationBounced: the kind of bounce as the reason, the status and diagnostic as the error.
func (v *historyEntry) NotificationBounced(e *NotificationBounced) {
	v.h.Reason = e.Kind + "_bounce"
	v.h.Error = joinNonEmpty(e.Status, e.Diagnostic)
}

// NotificationComplained: the feedback type as the reason.
func (v *historyEntry) NotificationComplained(e *NotificationComplained) {
	v.h.Reason = e.FeedbackType
}

// joinNonEmpty joins the parts that are not empty with ": ".
func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ": ")
}
