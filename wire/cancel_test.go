package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/wire"
)

func TestCancelResultJSON(t *testing.T) {
	sent := herald.Notification{ID: "n1", Status: herald.StatusSent, Version: 3}
	refusal := &herald.Error{Code: herald.ECONFLICT, Message: "notification n1 is sent: too late", Fields: map[string]string{"status": "sent"}}
	for _, tc := range []struct {
		name string
		got  wire.CancelResult
		want string
	}{{
		name: "cancelled",
		got:  wire.NewCancelResult("n2", herald.Notification{ID: "n2", Status: herald.StatusCancelled, Version: 2}, nil),
		want: `{"id":"n2","cancelled":true,"status":"cancelled","version":2,
			"links":{"status":"/api/v1/notifications/n2/status","history":"/api/v1/notifications/n2/history","events":"/api/v1/notifications/n2/events"}}`,
	}, {
		name: "refused: the API's error for it",
		got:  wire.NewCancelResult("n1", sent, refusal),
		want: `{"id":"n1","cancelled":false,"status":"sent","version":3,
			"error":{"code":"conflict","message":"notification n1 is sent: too late","fields":{"status":"sent"}},
			"links":{"status":"/api/v1/notifications/n1/status","history":"/api/v1/notifications/n1/history","events":"/api/v1/notifications/n1/events"}}`,
	}} {
		var want any
		if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, asJSON(t, tc.got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestCancelledWebhookPayload: a webhook announces a cancel by its event type, with the status
// the event leaves the notification in, as the dispatcher computes it.
func TestCancelledWebhookPayload(t *testing.T) {
	data := json.RawMessage(`{"actor":"apikey:shop","reason":"withdrawn"}`)
	e, err := events.Decode(events.TypeNotificationCancelled, data)
	if err != nil {
		t.Fatal(err)
	}
	rec := events.Recorded{ID: "e2", StreamID: "n1", Version: 2, Position: 9, Type: events.TypeNotificationCancelled,
		Time: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Data: data}
	p := wire.NewWebhookPayload(rec, events.StatusAfter(e))
	if p.Type != "NotificationCancelled" || p.Data.Status != "cancelled" || p.Data.NotificationID != "n1" {
		t.Errorf("payload %+v, want type NotificationCancelled, status cancelled", p)
	}
}
