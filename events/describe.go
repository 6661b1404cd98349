package events

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Describe says in a few words, on one line, what e records: what an auditor reads beside the
// event's type in a listing of the log. It says the event's meaning, not how it fits a table:
// a caller that prints it in a column cuts and cleans it there.
func Describe(e Event) string {
	v := describers.get()
	e.Accept(v)
	s := v.text
	describers.put(v)
	return s
}

var describers visitors[describer]

// describer is Describe's Visitor: each event in words.
type describer struct{ text string }

// via names the provider an attempt went through, if the event says.
func via(provider string) string {
	if provider == "" {
		return ""
	}
	return " via " + provider
}

// NotificationQueued: the channel and recipient, and the subject quoted when there is one:
// email to ada@example.com: "Welcome".
func (v *describer) NotificationQueued(e *NotificationQueued) {
	v.text = fmt.Sprintf("%s to %s", e.Channel, e.Recipient)
	if e.RenderedSubject != "" {
		v.text += fmt.Sprintf(": %q", e.RenderedSubject)
	}
	if e.Template != nil {
		v.text += " from template " + e.Template.String()
	}
	if e.SendAt != nil {
		v.text += ", scheduled for " + e.SendAt.UTC().Format(time.RFC3339Nano)
	}
}

// NotificationProcessing: the attempt and the worker making it: attempt 1 by host/1.
func (v *describer) NotificationProcessing(e *NotificationProcessing) {
	v.text = fmt.Sprintf("attempt %d", e.Attempt)
	if e.Worker != "" {
		v.text += " by " + e.Worker
	}
}

// NotificationSent: the attempt, the provider and its message id: attempt 2 sent via smtp, id <m@example.com>.
func (v *describer) NotificationSent(e *NotificationSent) {
	v.text = fmt.Sprintf("attempt %d sent%s%s", e.Attempt, via(e.Provider), failedOver(e.FailedOverFrom))
	if e.ProviderMessageID != "" {
		v.text += ", id " + e.ProviderMessageID
	}
}

// failedOver names the providers an attempt failed over from: " (failed over from smtp)".
func failedOver(from []PassedOver) string {
	if len(from) == 0 {
		return ""
	}
	names := make([]string, len(from))
	for i, p := range from {
		names[i] = p.Provider
	}
	return " (failed over from " + strings.Join(names, ", ") + ")"
}

// DeliveryAttemptFailed: the attempt, the provider and the error: attempt 1 failed via smtp: 421 try later.
func (v *describer) DeliveryAttemptFailed(e *DeliveryAttemptFailed) {
	v.text = fmt.Sprintf("attempt %d failed%s%s: %s", e.Attempt, via(e.Provider), failedOver(e.FailedOverFrom), e.Error)
}

// NotificationFailed: as a failed attempt, with why Herald gave up.
func (v *describer) NotificationFailed(e *NotificationFailed) {
	if e.Reason == ReasonSuppressed {
		// No attempt was made: the recipient is on the suppression list.
		v.text = "failed for good, not sent: " + e.Error
		return
	}
	v.text = fmt.Sprintf("attempt %d failed for good (%s)%s%s: %s", e.Attempt, e.Reason, via(e.Provider), failedOver(e.FailedOverFrom), e.Error)
}

// NotificationRequeued: who requeued it, after how many attempts, and why.
func (v *describer) NotificationRequeued(e *NotificationRequeued) {
	v.text = fmt.Sprintf("requeued by %s after %d attempts: %s", e.Actor, e.Attempts, cmp.Or(e.Reason, "no reason given"))
}

// NotificationDiscarded: who gave up on it, and why.
func (v *describer) NotificationDiscarded(e *NotificationDiscarded) {
	v.text = fmt.Sprintf("discarded by %s: %s", e.Actor, e.Reason)
}

// NotificationRecovered: who recovered it (the reconciler), and what it found.
func (v *describer) NotificationRecovered(e *NotificationRecovered) {
	v.text = fmt.Sprintf("recovered by %s: %s", e.Actor, e.Reason)
}

// NotificationDelivered: delivered, per the provider: delivered via twilio, id SM….
func (v *describer) NotificationDelivered(e *NotificationDelivered) {
	v.text = "delivered" + via(e.Provider)
	if e.ProviderMessageID != "" {
		v.text += ", id " + e.ProviderMessageID
	}
}

// NotificationUndelivered: undelivered, per the provider, and why: undelivered via twilio: 30003.
func (v *describer) NotificationUndelivered(e *NotificationUndelivered) {
	v.text = "undelivered" + via(e.Provider)
	if why := joinNonEmpty(e.ErrorCode, e.Error); why != "" {
		v.text += ": " + why
	}
}

// NotificationBounced: the kind, the status and the server's words: hard bounce 5.1.1 from mx.example.com: user unknown.
func (v *describer) NotificationBounced(e *NotificationBounced) {
	v.text = e.Kind + " bounce"
	if e.Status != "" {
		v.text += " " + e.Status
	}
	if e.ReportingMTA != "" {
		v.text += " from " + e.ReportingMTA
	}
	if e.Diagnostic != "" {
		v.text += ": " + e.Diagnostic
	}
}

// NotificationComplained: the feedback type and who reported it: complaint (abuse) from mx.example.com.
func (v *describer) NotificationComplained(e *NotificationComplained) {
	v.text = "complaint"
	if e.FeedbackType != "" {
		v.text += " (" + e.FeedbackType + ")"
	}
	if e.ReportingMTA != "" {
		v.text += " from " + e.ReportingMTA
	}
}
