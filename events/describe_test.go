package events_test

import (
	"testing"
	"time"

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
		{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "Hi", Body: "Hi",
			Template: &events.TemplateRef{Name: "otp", Version: 3}}, "sms to +14155550123 from template otp@3"},
		{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "Hi", Body: "Hi"},
			"sms to +14155550123"},
		{&events.NotificationProcessing{Attempt: 1, Worker: "host/1"}, "attempt 1 by host/1"},
		{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi",
			SendAt: ptr(time.Date(2026, 12, 24, 19, 0, 0, 0, time.FixedZone("CET", 3600)))},
			"sms to +14155550123, scheduled for 2026-12-24T18:00:00Z"},
		{&events.NotificationReleased{SendAt: time.Date(2026, 12, 24, 18, 0, 0, 500e6, time.UTC)},
			"released (scheduled for 2026-12-24T18:00:00.5Z)"},
		{&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"}, "attempt 1 failed via smtp: 421 try later"},
		{&events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@example.com>"},
			"attempt 2 sent via smtp, id <m@example.com>"},

		// A subject is quoted as Go quotes it, so that a control character in it shows.
		{&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com", RenderedSubject: "Hi \"Ada\"\n"},
			`email to a@example.com: "Hi \"Ada\"\n"`},
		{&events.NotificationProcessing{Attempt: 3}, "attempt 3"},
		{&events.NotificationSent{Attempt: 1, Provider: "log"}, "attempt 1 sent via log"},
		{&events.NotificationSent{Attempt: 1, Provider: "smtp-2", FailedOverFrom: []events.PassedOver{{Provider: "smtp", Error: "connection refused"}}},
			"attempt 1 sent via smtp-2 (failed over from smtp)"},
		{&events.DeliveryAttemptFailed{Attempt: 3, Provider: "c", Error: "421", FailedOverFrom: []events.PassedOver{{Provider: "a"}, {Provider: "b"}}},
			"attempt 3 failed via c (failed over from a, b): 421"},
		{&events.NotificationSent{Attempt: 1}, "attempt 1 sent"},
		{&events.DeliveryAttemptFailed{Attempt: 2, Error: "attempt abandoned"}, "attempt 2 failed: attempt abandoned"},
		{&events.NotificationFailed{Attempt: 3, Provider: "smtp", Error: "550 no such user", Reason: events.ReasonPermanentError},
			"attempt 3 failed for good (permanent_error) via smtp: 550 no such user"},
		{&events.NotificationFailed{Error: "recipient suppressed (opt_out: STOP) since 2026-12-05T10:00:00Z", Reason: events.ReasonSuppressed},
			"failed for good, not sent: recipient suppressed (opt_out: STOP) since 2026-12-05T10:00:00Z"},
		{&events.NotificationFailed{Attempt: 5, Error: "attempt abandoned", Reason: events.ReasonAttemptsExhausted},
			"attempt 5 failed for good (attempts_exhausted): attempt abandoned"},
		{&events.NotificationRequeued{Actor: "ops via apikey:oncall", Reason: "mailbox fixed", Attempts: 3},
			"requeued by ops via apikey:oncall after 3 attempts: mailbox fixed"},
		{&events.NotificationRequeued{Actor: "ops", Attempts: 1}, "requeued by ops after 1 attempts: no reason given"},
		{&events.NotificationDiscarded{Actor: "ops", Reason: "address gone"}, "discarded by ops: address gone"},
		{&events.NotificationRecovered{Actor: "system:reconciler", Reason: "pending with no event for 10m0s", Status: herald.StatusPending},
			"recovered by system:reconciler: pending with no event for 10m0s"},
		{&events.NotificationDelivered{Provider: "http-sms", ProviderMessageID: "SM1"}, "delivered via http-sms, id SM1"},
		{&events.NotificationUndelivered{Provider: "http-sms", ErrorCode: "30003", Error: "Unreachable"}, "undelivered via http-sms: 30003: Unreachable"},
		{&events.NotificationUndelivered{}, "undelivered"},
		{&events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.1", ReportingMTA: "mx.example.com", Diagnostic: "smtp; 550 user unknown"},
			"hard bounce 5.1.1 from mx.example.com: smtp; 550 user unknown"},
		{&events.NotificationBounced{Kind: events.BounceSoft}, "soft bounce"},
		{&events.NotificationComplained{FeedbackType: "abuse", ReportingMTA: "fbl.example.net"}, "complaint (abuse) from fbl.example.net"},
		{&events.WebhookEndpointCreated{URL: "https://hooks.example.com/h"}, "endpoint https://hooks.example.com/h for all events"},
		{&events.WebhookEndpointCreated{URL: "https://hooks.example.com/h", EventTypes: []string{"NotificationSent", "NotificationFailed"}},
			"endpoint https://hooks.example.com/h for NotificationSent,NotificationFailed"},
		{&events.WebhookEndpointUpdated{URL: ptr("https://b.example.com/"), EventTypes: ptr([]string{})},
			"changed url https://b.example.com/, events all events"},
		{&events.WebhookEndpointUpdated{Description: ptr("billing")}, `changed description "billing"`},
		{&events.NotificationCancelled{Actor: "apikey:shop", Reason: "order withdrawn"}, "cancelled by apikey:shop: order withdrawn"},
		{&events.NotificationCancelled{Actor: "ops"}, "cancelled by ops: no reason given"},
		{&events.WebhookEndpointDisabled{Cause: events.DisabledByOperator, Reason: "receiver moved"}, "disabled by operator: receiver moved"},
		{&events.WebhookEndpointDisabled{Cause: events.DisabledFailing, Reason: "no success for 120h0m0s",
			FailingSince: ptr(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))},
			"disabled: failing since 2026-12-01T08:00:00Z: no success for 120h0m0s"},
		{&events.WebhookEndpointEnabled{}, "enabled"},
		{&events.WebhookEndpointSecretRotated{PreviousValidUntil: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)},
			"secret rotated; the old one signs too until 2026-12-06T08:00:00Z"},
		{&events.WebhookEndpointDeleted{}, "deleted"},
		{&events.RecipientSuppressed{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Cause: events.SuppressedHardBounce,
			Reason: "5.1.1 user unknown", ExpiresAt: ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))},
			"email ada@example.com suppressed (hard_bounce: 5.1.1 user unknown) until 2027-01-01T00:00:00Z"},
		{&events.RecipientSuppressed{Channel: herald.ChannelSMS, Recipient: "+14155550123", Cause: events.SuppressedOptOut}, "sms +14155550123 suppressed (opt_out)"},
		{&events.RecipientUnsuppressed{Channel: herald.ChannelSMS, Recipient: "+14155550123", Reason: "START"}, "sms +14155550123 no longer suppressed: START"},
		{&events.TemplateVersionCreated{Name: "welcome", Version: 2, Channel: herald.ChannelEmail,
			Variables: []events.TemplateVariable{{Name: "name"}, {Name: "plan", Default: ptr("free")}}},
			"template welcome v2 (email; variables name, plan=free)"},
		{&events.TemplateVersionCreated{Name: "otp", Version: 1, Channel: herald.ChannelSMS}, "template otp v1 (sms)"},
		{&events.TemplateArchived{Name: "welcome", Reason: "replaced"}, "template welcome archived: replaced"},
		{&events.TemplateRestored{Name: "welcome"}, "template welcome restored"},
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
