package events_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// TestEvolve folds a story with every kind of event and checks the notification after each.
func TestEvolve(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	queued := &events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi",
		RenderedSubject: "Welcome", Body: "Hi Ada", HTML: "<p>Hi {{.name}}</p>", RenderedHTML: "<p>Hi Ada</p>",
		Attachments: []events.AttachmentRef{{Filename: "a.pdf", ContentType: "application/pdf", Size: 3, SHA256: "ba78"}},
		Priority:    herald.PriorityHigh}
	base := herald.Notification{ID: "s", Channel: herald.ChannelEmail, Recipient: "ada@example.com", Subject: "Welcome",
		Body: "Hi Ada", HTML: "<p>Hi Ada</p>", CreatedAt: t0, Priority: herald.PriorityHigh,
		Attachments: []herald.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", Size: 3, SHA256: "ba78"}}}
	// after returns base as it stands after event i (from 0), changed by change.
	after := func(i int, change func(*herald.Notification)) herald.Notification {
		n := base
		n.Version, n.Position, n.UpdatedAt = int64(i+1), int64(10+i), at(i)
		change(&n)
		return n
	}
	steps := []struct {
		e    events.Event
		want herald.Notification
	}{
		{queued, after(0, func(n *herald.Notification) { n.Status = herald.StatusPending })},
		{&events.NotificationProcessing{Attempt: 1, Worker: "w"}, after(1, func(n *herald.Notification) {
			n.Status, n.Attempts, n.AttemptOpen, n.AttemptStartedAt = herald.StatusProcessing, 1, true, at(1)
		})},
		{&events.NotificationRecovered{Actor: "system:reconciler", Reason: "stalled", Status: herald.StatusProcessing}, after(2, func(n *herald.Notification) {
			n.Status, n.Attempts, n.AttemptOpen, n.AttemptStartedAt, n.Recoveries = herald.StatusProcessing, 1, true, at(1), 1
		})},
		{&events.NotificationRecovered{Actor: "system:reconciler", Reason: "stalled", Status: herald.StatusProcessing}, after(3, func(n *herald.Notification) {
			n.Status, n.Attempts, n.AttemptOpen, n.AttemptStartedAt, n.Recoveries = herald.StatusProcessing, 1, true, at(1), 2
		})},
		{&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421"}, after(4, func(n *herald.Notification) {
			n.Status, n.Attempts, n.AttemptStartedAt, n.Provider, n.LastError = herald.StatusProcessing, 1, at(1), "smtp", "421"
		})},
		{&events.NotificationProcessing{Attempt: 2, Worker: "w"}, after(5, func(n *herald.Notification) {
			n.Status, n.Attempts, n.AttemptOpen, n.AttemptStartedAt, n.Provider, n.LastError = herald.StatusProcessing, 2, true, at(5), "smtp", "421"
		})},
		{&events.NotificationFailed{Attempt: 2, Error: "550", Reason: events.ReasonPermanentError}, after(6, func(n *herald.Notification) {
			n.Status, n.Attempts, n.AttemptStartedAt, n.Provider, n.LastError = herald.StatusFailed, 2, at(5), "smtp", "550"
		})},
		{&events.NotificationDiscarded{Actor: "ops", Reason: "gone"}, after(7, func(n *herald.Notification) {
			n.Status, n.Attempts, n.AttemptStartedAt, n.Provider, n.LastError = herald.StatusFailed, 2, at(5), "smtp", "550"
		})},
		{&events.NotificationRequeued{Actor: "ops", Attempts: 2}, after(8, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptStartedAt, n.Provider, n.LastError = herald.StatusPending, 2, 2, at(5), "smtp", "550"
		})},
		{&events.NotificationProcessing{Attempt: 3, Worker: "w"}, after(9, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptOpen, n.AttemptStartedAt, n.Provider, n.LastError = herald.StatusProcessing, 3, 2, true, at(9), "smtp", "550"
		})},
		{&events.NotificationSent{Attempt: 3, Provider: "log", ProviderMessageID: "m1"}, after(10, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptStartedAt, n.Provider, n.ProviderMessageID = herald.StatusSent, 3, 2, at(9), "log", "m1"
		})},
		// Reports after sending: a soft bounce leaves it sent, the rest set the status.
		{&events.NotificationBounced{Kind: events.BounceSoft, Status: "4.2.2", Diagnostic: "mailbox full"}, after(11, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptStartedAt, n.Provider, n.ProviderMessageID = herald.StatusSent, 3, 2, at(9), "log", "m1"
		})},
		{&events.NotificationDelivered{Provider: "log", ProviderMessageID: "m1"}, after(12, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptStartedAt, n.Provider, n.ProviderMessageID = herald.StatusDelivered, 3, 2, at(9), "log", "m1"
		})},
		{&events.NotificationComplained{FeedbackType: "abuse"}, after(13, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptStartedAt, n.Provider, n.ProviderMessageID = herald.StatusComplained, 3, 2, at(9), "log", "m1"
		})},
		{&events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.1", Diagnostic: "user unknown"}, after(14, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptStartedAt, n.Provider, n.ProviderMessageID = herald.StatusBounced, 3, 2, at(9), "log", "m1"
			n.LastError = "5.1.1: user unknown"
		})},
		{&events.NotificationUndelivered{Provider: "log", ErrorCode: "30003", Error: "unreachable"}, after(15, func(n *herald.Notification) {
			n.Status, n.Attempts, n.RoundStart, n.AttemptStartedAt, n.Provider, n.ProviderMessageID = herald.StatusUndelivered, 3, 2, at(9), "log", "m1"
			n.LastError = "30003: unreachable"
		})},
	}
	var n herald.Notification
	for i, s := range steps {
		r := events.Recorded{StreamID: "s", Version: int64(i + 1), Position: int64(10 + i), Type: s.e.EventType(), Time: at(i)}
		n = events.Evolve(n, r, s.e)
		if diff := cmp.Diff(s.want, n); diff != "" {
			t.Fatalf("after %s (v%d) (-want +got):\n%s", s.e.EventType(), i+1, diff)
		}
		if got := events.StatusAfter(s.e); got != n.Status {
			t.Errorf("StatusAfter(%s) = %s, want %s as Evolve says", s.e.EventType(), got, n.Status)
		}
	}
}

// TestStatusAfterRecoveredWithoutStatus: a NotificationRecovered that does not say the status it
// found was written for a notification under way.
func TestStatusAfterRecoveredWithoutStatus(t *testing.T) {
	if got := events.StatusAfter(&events.NotificationRecovered{Actor: "system:reconciler"}); got != herald.StatusProcessing {
		t.Errorf("StatusAfter = %s, want processing", got)
	}
}

func TestHistoryEntry(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	r := func(e events.Event) events.Recorded {
		return events.Recorded{StreamID: "s", Version: 4, Position: 40, Type: e.EventType(), Time: at,
			Metadata: events.Metadata{Actor: "worker:host/1"}}
	}
	entry := func(typ string, status herald.Status, change func(*herald.HistoryEntry)) herald.HistoryEntry {
		h := herald.HistoryEntry{Version: 4, Position: 40, Event: typ, Status: status, Actor: "worker:host/1", At: at}
		change(&h)
		return h
	}
	for _, tt := range []struct {
		e    events.Event
		want herald.HistoryEntry
	}{
		{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi"},
			entry("NotificationQueued", herald.StatusPending, func(*herald.HistoryEntry) {})},
		{&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com", Body: "Hi",
			Template: &events.TemplateRef{Name: "welcome", Version: 3}},
			entry("NotificationQueued", herald.StatusPending, func(h *herald.HistoryEntry) { h.Template = "welcome@3" })},
		{&events.NotificationProcessing{Attempt: 2, Worker: "host/1"},
			entry("NotificationProcessing", herald.StatusProcessing, func(h *herald.HistoryEntry) { h.Attempt = 2 })},
		{&events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "m1"},
			entry("NotificationSent", herald.StatusSent, func(h *herald.HistoryEntry) { h.Attempt, h.Provider, h.ProviderMessageID = 2, "smtp", "m1" })},
		{&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421"},
			entry("DeliveryAttemptFailed", herald.StatusProcessing, func(h *herald.HistoryEntry) { h.Attempt, h.Provider, h.Error = 1, "smtp", "421" })},
		{&events.NotificationFailed{Attempt: 3, Provider: "smtp", Error: "550", Reason: events.ReasonPermanentError},
			entry("NotificationFailed", herald.StatusFailed, func(h *herald.HistoryEntry) {
				h.Attempt, h.Provider, h.Error, h.Reason = 3, "smtp", "550", events.ReasonPermanentError
			})},
		{&events.NotificationRequeued{Actor: "ops", Reason: "fixed", Attempts: 3},
			entry("NotificationRequeued", herald.StatusPending, func(h *herald.HistoryEntry) { h.Actor, h.Reason = "ops", "fixed" })},
		{&events.NotificationDiscarded{Actor: "ops", Reason: "gone"},
			entry("NotificationDiscarded", herald.StatusFailed, func(h *herald.HistoryEntry) { h.Actor, h.Reason = "ops", "gone" })},
		{&events.NotificationRecovered{Actor: "system:reconciler", Reason: "stalled", Status: herald.StatusPending},
			entry("NotificationRecovered", herald.StatusPending, func(h *herald.HistoryEntry) { h.Actor, h.Reason = "system:reconciler", "stalled" })},
		{&events.NotificationCancelled{Actor: "apikey:shop", Reason: "order withdrawn"},
			entry("NotificationCancelled", herald.StatusCancelled, func(h *herald.HistoryEntry) { h.Actor, h.Reason = "apikey:shop", "order withdrawn" })},
	} {
		if diff := cmp.Diff(tt.want, events.HistoryEntry(r(tt.e), tt.e)); diff != "" {
			t.Errorf("HistoryEntry(%s) (-want +got):\n%s", tt.e.EventType(), diff)
		}
	}
}

// Every key the projector leaves out is a field of NotificationQueued, so a renamed field cannot
// slip back into what the projector reads.
func TestQueuedContentKeysAreFields(t *testing.T) {
	tags := map[string]bool{}
	typ := reflect.TypeFor[events.NotificationQueued]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		tags[name] = true
	}
	for _, key := range events.QueuedContentKeys {
		if !tags[key] {
			t.Errorf("QueuedContentKeys names %q, which is no field of NotificationQueued", key)
		}
	}
}
