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

func TestWebhookPayloadJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 123_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name   string
		rec    events.Recorded
		status herald.Status
		want   string
	}{{
		name: "a sent notification: the event in full, its time in UTC",
		rec: events.Recorded{ID: "e3", StreamID: "n1", Version: 3, Position: 42, Type: "NotificationSent", Time: at,
			Data:     json.RawMessage(`{"attempt":1,"provider":"smtp","provider_message_id":"<m@x>"}`),
			Metadata: events.Metadata{CorrelationID: "c1", CausationID: "m1", Actor: "worker:h/1"}},
		status: herald.StatusSent,
		want: `{"type":"NotificationSent","timestamp":"2026-12-05T09:00:00.123Z","data":{"notification_id":"n1","status":"sent",
			"event":{"id":"e3","stream_id":"n1","version":3,"position":42,"type":"NotificationSent","time":"2026-12-05T09:00:00.123Z",
			"data":{"attempt":1,"provider":"smtp","provider_message_id":"<m@x>"},
			"metadata":{"correlation_id":"c1","causation_id":"m1","actor":"worker:h/1"}}}}`,
	}, {
		name: "a failed attempt that will be retried: the status stays processing, empty metadata is {}",
		rec: events.Recorded{ID: "e2", StreamID: "n2", Version: 2, Position: 7, Type: "DeliveryAttemptFailed", Time: at.UTC(),
			Data: json.RawMessage(`{"attempt":1,"error":"timeout"}`)},
		status: herald.StatusProcessing,
		want: `{"type":"DeliveryAttemptFailed","timestamp":"2026-12-05T09:00:00.123Z","data":{"notification_id":"n2","status":"processing",
			"event":{"id":"e2","stream_id":"n2","version":2,"position":7,"type":"DeliveryAttemptFailed","time":"2026-12-05T09:00:00.123Z",
			"data":{"attempt":1,"error":"timeout"},"metadata":{}}}}`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want any
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatalf("want: %v", err)
			}
			p := wire.NewWebhookPayload(tc.rec, tc.status)
			if diff := cmp.Diff(want, asJSON(t, p)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
			if p.MessageID() != tc.rec.ID {
				t.Errorf("MessageID = %q, want the event's id %q", p.MessageID(), tc.rec.ID)
			}
		})
	}
}
