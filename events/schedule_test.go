package events_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// TestEvolveScheduled folds a scheduled notification: scheduled with its send_at after
// NotificationQueued, pending after NotificationReleased (send_at kept), and on as usual.
func TestEvolveScheduled(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	sendAt := t0.Add(time.Hour)
	base := herald.Notification{ID: "s", Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi",
		Priority: herald.PriorityNormal, SendAt: sendAt, CreatedAt: t0}
	steps := []struct {
		e      events.Event
		status herald.Status
	}{
		{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi", SendAt: &sendAt}, herald.StatusScheduled},
		{&events.NotificationReleased{SendAt: sendAt}, herald.StatusPending},
		{&events.NotificationProcessing{Attempt: 1}, herald.StatusProcessing},
	}
	var n herald.Notification
	for i, s := range steps {
		at := t0.Add(time.Duration(i) * time.Hour)
		r := events.Recorded{StreamID: "s", Version: int64(i + 1), Position: int64(i + 1), Type: s.e.EventType(), Time: at}
		n = events.Evolve(n, r, s.e)
		want := base
		want.Status, want.Version, want.Position, want.UpdatedAt = s.status, int64(i+1), int64(i+1), at
		if i == 2 {
			want.Attempts, want.AttemptOpen, want.AttemptStartedAt = 1, true, at
		}
		if diff := cmp.Diff(want, n); diff != "" {
			t.Fatalf("after %s (-want +got):\n%s", s.e.EventType(), diff)
		}
		if got := events.StatusAfter(s.e); got != s.status {
			t.Errorf("StatusAfter(%s) = %s, want %s", s.e.EventType(), got, s.status)
		}
		h := events.HistoryEntry(r, s.e)
		if h.Status != s.status || h.Event != s.e.EventType() {
			t.Errorf("HistoryEntry(%s) = %s %s, want %s %s", s.e.EventType(), h.Event, h.Status, s.e.EventType(), s.status)
		}
	}
}

// TestQueuedWithoutSendAt: an unscheduled notification is pending at once, has no send_at, and
// its event is written without the field (as every event before scheduling was).
func TestQueuedWithoutSendAt(t *testing.T) {
	e := &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi"}
	n := events.Evolve(herald.Notification{}, events.Recorded{StreamID: "s", Version: 1}, e)
	if n.Status != herald.StatusPending || !n.SendAt.IsZero() {
		t.Errorf("fold = %s, send_at %v; want pending without send_at", n.Status, n.SendAt)
	}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "send_at") {
		t.Errorf("NotificationQueued without send_at is written as %s", data)
	}
}
