package main

import (
	"cmp"
	"fmt"

	"github.com/herald-notify/herald/events"
)

// eventsDataSummary says in a few words what an event records.
func eventsDataSummary(r events.Recorded) string {
	e, err := r.Event()
	if err != nil {
		return "unreadable data: " + err.Error()
	}
	via := func(provider string) string {
		if provider == "" {
			return ""
		}
		return " via " + provider
	}
	switch e := e.(type) {
	case *events.NotificationQueued:
		s := fmt.Sprintf("%s to %s", e.Channel, e.Recipient)
		if e.RenderedSubject != "" {
			s += fmt.Sprintf(": %q", e.RenderedSubject)
		}
		return s
	case *events.NotificationProcessing:
		if e.Worker != "" {
			return fmt.Sprintf("attempt %d by %s", e.Attempt, e.Worker)
		}
		return fmt.Sprintf("attempt %d", e.Attempt)
	case *events.NotificationSent:
		s := fmt.Sprintf("attempt %d sent%s", e.Attempt, via(e.Provider))
		if e.ProviderMessageID != "" {
			s += ", id " + e.ProviderMessageID
		}
		return s
	case *events.DeliveryAttemptFailed:
		return fmt.Sprintf("attempt %d failed%s: %s", e.Attempt, via(e.Provider), e.Error)
	case *events.NotificationFailed:
		return fmt.Sprintf("attempt %d failed for good (%s)%s: %s", e.Attempt, e.Reason, via(e.Provider), e.Error)
	case *events.NotificationRequeued:
		return fmt.Sprintf("requeued by %s after %d attempts: %s", e.Actor, e.Attempts, cmp.Or(e.Reason, "no reason given"))
	case *events.NotificationDiscarded:
		return fmt.Sprintf("discarded by %s: %s", e.Actor, e.Reason)
	case *events.NotificationRecovered:
		return fmt.Sprintf("recovered by %s: %s", e.Actor, e.Reason)
	}
	return ""
}
