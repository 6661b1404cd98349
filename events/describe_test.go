package events_test

import (
	"testing"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

func TestDescribe(t *testing.T) {
	tests := []struct {
		e    events.Event
		want string
	}{
		// The events of the CLI's listing test, as its table shows them.
		{&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi",
			Body: "Hi", RenderedSubject: "Welcome"}, `email to ada@example.com: "Welcome"`},
		{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "Hi", Body: "Hi"},
			"sms to +14155550123"},
		{&events.NotificationProcessing{Attempt: 1, Worker: "host/1"}, "attempt 1 by host/1"},
		{&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"}, "attempt 1 failed via smtp: 421 try later"},
		{&events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@example.com>"},
			"attempt 2 sent via smtp, id <m@example.com>"},

		// A subject is quoted as Go quotes it, so that a control character in it shows.
		{&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com", RenderedSubject: "Hi \"Ada\"\n"},
			`email to a@example.com: "Hi \"Ada\"\n"`},
		{&events.NotificationProcessing{Attempt: 3}, "attempt 3"},
		{&events.NotificationSent{Attempt: 1, Provider: "log"}, "attempt 1 sent via log"},
		{&events.NotificationSent{Attempt: 1}, "attempt 1 sent"},
		{&events.DeliveryAttemptFailed{Attempt: 2, Error: "attempt abandoned"}, "attempt 2 failed: attempt abandoned"},
		{&events.NotificationFailed{Attempt: 3, Provider: "smtp", Error: "550 no such user", Reason: events.ReasonPermanentError},
			"attempt 3 failed for good (permanent_error) via smtp: 550 no such user"},
		{&events.NotificationFailed{Attempt: 5, Error: "attempt abandoned", Reason: events.ReasonAttemptsExhausted},
			"attempt 5 failed for good (attempts_exhausted): attempt abandoned"},
		{&events.NotificationRequeued{Actor: "ops via apikey:oncall", Reason: "mailbox fixed", Attempts: 3},
			"requeued by ops via apikey:oncall after 3 attempts: mailbox fixed"},
		{&events.NotificationRequeued{Actor: "ops", Attempts: 1}, "requeued by ops after 1 attempts: no reason given"},
		{&events.NotificationDiscarded{Actor: "ops", Reason: "address gone"}, "discarded by ops: address gone"},
		{&events.NotificationRecovered{Actor: "system:reconciler", Reason: "pending with no event for 10m0s", Status: herald.StatusPending},
			"recovered by system:reconciler: pending with no event for 10m0s"},
	}
	described := map[string]bool{}
	for _, tt := range tests {
		described[tt.e.EventType()] = true
		if got := events.Describe(tt.e); got != tt.want {
			t.Errorf("Describe(%#v) = %q, want %q", tt.e, got, tt.want)
		}
	}
	for _, typ := range events.Types {
		if !described[typ] {
			t.Errorf("no case describes a %s", typ)
		}
	}
}
