package events_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// TestEvolveCancelled: a cancel between attempts ends the notification cancelled, keeps what the
// attempts left (their count, the last error), and leaves no attempt open.
func TestEvolveCancelled(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	story := []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "Hi", Body: "Hi"},
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "http-sms", Error: "503"},
		&events.NotificationCancelled{Actor: "apikey:shop", Reason: "order withdrawn"},
	}
	var n herald.Notification
	for i, e := range story {
		r := events.Recorded{StreamID: "s", Version: int64(i + 1), Position: int64(10 + i), Type: e.EventType(), Time: t0.Add(time.Duration(i) * time.Second)}
		n = events.Evolve(n, r, e)
		if got, want := events.StatusAfter(e), n.Status; got != want {
			t.Errorf("StatusAfter(%s) = %s, but Evolve leaves it %s", e.EventType(), got, want)
		}
	}
	want := herald.Notification{ID: "s", Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi", Priority: herald.PriorityNormal,
		Status: herald.StatusCancelled, Attempts: 1, AttemptStartedAt: t0.Add(time.Second), LastError: "503", Provider: "http-sms",
		Version: 4, Position: 13, CreatedAt: t0, UpdatedAt: t0.Add(3 * time.Second)}
	if diff := cmp.Diff(want, n); diff != "" {
		t.Errorf("after the cancel (-want +got):\n%s", diff)
	}
}

// TestStatusCancelled: cancelled is a status clients can name (list filters), final (nothing is
// attempted after it: the reconciler and the poison queue leave it alone), and not sent.
func TestStatusCancelled(t *testing.T) {
	st, err := herald.ParseStatus("cancelled")
	if err != nil || st != herald.StatusCancelled {
		t.Fatalf(`ParseStatus("cancelled") = %q, %v`, st, err)
	}
	if !st.Terminal() {
		t.Error("cancelled is not terminal")
	}
	if st.WasSent() {
		t.Error("cancelled counts as sent")
	}
}
