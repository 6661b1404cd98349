package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// jsonOf parses want, failing the test if it is not JSON.
func jsonOf(t *testing.T, want string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(want), &v); err != nil {
		t.Fatalf("want: %v", err)
	}
	return v
}

func TestWebhookEndpointJSON(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, cet)
	links := `"links":{"self":"/api/v1/webhooks/e1","deliveries":"/api/v1/webhooks/e1/deliveries","events":"/api/v1/webhooks/e1/events","replay":"/api/v1/webhooks/e1/replay"}`
	pending := int64(2)
	until := at.Add(24 * time.Hour)
	tests := []struct {
		name    string
		e       webhooks.Endpoint
		pending *int64
		want    string
	}{{
		name: "every event type: [] and all_events, never null; failing_since null while it succeeds; times in UTC",
		e:    webhooks.Endpoint{ID: "e1", URL: "https://h.example/x", Enabled: true, Version: 1, CreatedAt: at, CreatedBy: "ann", UpdatedAt: at, Position: 7},
		want: `{"id":"e1","url":"https://h.example/x","description":"","event_types":[],"all_events":true,"enabled":true,"disabled_reason":"",
			"version":1,"created_at":"2026-12-05T09:00:00Z","created_by":"ann","updated_at":"2026-12-05T09:00:00Z","position":7,
			"failing_since":null,` + links + `}`,
	}, {
		name: "some types, disabled and failing, during a rotation, with its retries pending",
		e: webhooks.Endpoint{ID: "e1", URL: "https://h.example/x", Description: "billing", EventTypes: []string{"NotificationSent"},
			DisabledReason: "disabled by ann: moving", Version: 4, CreatedAt: at, CreatedBy: "ann", UpdatedAt: at,
			PreviousSecretUntil: &until, Position: 9, FailingSince: &at, LastSuccessAt: &at},
		pending: &pending,
		want: `{"id":"e1","url":"https://h.example/x","description":"billing","event_types":["NotificationSent"],"all_events":false,
			"enabled":false,"disabled_reason":"disabled by ann: moving","version":4,"created_at":"2026-12-05T09:00:00Z","created_by":"ann",
			"updated_at":"2026-12-05T09:00:00Z","previous_secret_valid_until":"2026-12-06T09:00:00Z","position":9,
			"failing_since":"2026-12-05T09:00:00Z","last_success_at":"2026-12-05T09:00:00Z","retries_pending":2,` + links + `}`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(jsonOf(t, tc.want), asJSON(t, webhooks.WireEndpoint(tc.e, tc.pending))); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

// The secret shows in the answers that make one, in full, and in no other shape.
func TestWebhookSecretOnlyWhereMade(t *testing.T) {
	secret, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	e := webhooks.Endpoint{ID: "e1", URL: "https://h.example/x", Enabled: true}
	b, _ := json.Marshal(webhooks.WireEndpointCreated(e, secret))
	if !strings.Contains(string(b), `"secret":"`+secret.Reveal()+`"`) || !strings.Contains(string(b), `"id":"e1"`) {
		t.Errorf("created: %s, want the endpoint and its secret", b)
	}
	for name, v := range map[string]any{
		"endpoint": webhooks.WireEndpoint(e, nil),
		"list":     webhooks.WireEndpointList([]webhooks.Endpoint{e}),
	} {
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), "secret") || strings.Contains(string(b), secret.Reveal()[6:]) {
			t.Errorf("%s shows a secret: %s", name, b)
		}
	}
	b, _ = json.Marshal(webhooks.WireEndpointList(nil))
	if string(b) != `{"endpoints":[]}` {
		t.Errorf("no endpoints: %s, want an empty list", b)
	}
}

func TestWebhookAttemptsJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	ok := webhooks.Attempt{ID: 12, EndpointID: "e1", EventID: "ev", EventPosition: 40, EventType: "NotificationSent", NotificationID: "n1",
		Attempt: 1, Trigger: webhooks.TriggerLive, At: at, Duration: 250 * time.Millisecond, StatusCode: 204, Succeeded: true}
	refused := webhooks.Attempt{ID: 11, EndpointID: "e1", EventID: "ev", EventPosition: 40, EventType: "NotificationSent", NotificationID: "n1",
		Attempt: 2, Trigger: webhooks.TriggerRetry, At: at, Duration: time.Second, Error: "connection refused"}
	want := `{"attempts":[
		{"id":12,"endpoint_id":"e1","event_id":"ev","event_position":40,"event_type":"NotificationSent","notification_id":"n1","attempt":1,
		 "trigger":"live","attempted_at":"2026-12-05T09:00:00Z","duration_seconds":0.25,"status_code":204,"succeeded":true,"error":"","response":""},
		{"id":11,"endpoint_id":"e1","event_id":"ev","event_position":40,"event_type":"NotificationSent","notification_id":"n1","attempt":2,
		 "trigger":"retry","attempted_at":"2026-12-05T09:00:00Z","duration_seconds":1,"status_code":null,"succeeded":false,"error":"connection refused","response":""}],
		"next_before":11}`
	if diff := cmp.Diff(jsonOf(t, want), asJSON(t, webhooks.WireAttempts([]webhooks.Attempt{ok, refused}, 11))); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(jsonOf(t, `{"attempts":[]}`), asJSON(t, webhooks.WireAttempts(nil, 0))); diff != "" {
		t.Errorf("the last, empty page (-want +got):\n%s", diff)
	}
}

func TestWebhookReplayJobJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	running := webhooks.ReplayJob{ID: "j1", EndpointID: "e1", State: webhooks.ReplayRunning, StartedAt: at,
		Request:  webhooks.ReplayRequest{FromPosition: 5, Since: at, DryRun: true},
		Progress: webhooks.ReplayProgress{Position: 10, ToPosition: 50, Matched: 3}}
	want := `{"id":"j1","endpoint_id":"e1","request":{"from_position":5,"since":"2026-12-05T09:00:00Z","types":[],"dry_run":true},
		"state":"running","started_at":"2026-12-05T09:00:00Z","progress":{"position":10,"to_position":50,"matched":3,"sent":0,"failed":0},
		"links":{"self":"/api/v1/webhooks/e1/replays/j1"}}`
	if diff := cmp.Diff(jsonOf(t, want), asJSON(t, webhooks.WireReplayJob(running))); diff != "" {
		t.Errorf("running (-want +got):\n%s", diff)
	}

	done := running
	done.State, done.EndedAt = webhooks.ReplaySucceeded, at.Add(time.Second)
	done.Request = webhooks.ReplayRequest{Until: at, Types: []string{"NotificationSent"}}
	done.Report = webhooks.ReplayReport{EndpointID: "e1", FromPosition: 1, ToPosition: 50, Matched: 3, Sent: 2, Failed: 1, Duration: 1500 * time.Millisecond}
	want = `{"id":"j1","endpoint_id":"e1","request":{"until":"2026-12-05T09:00:00Z","types":["NotificationSent"],"dry_run":false},
		"state":"succeeded","started_at":"2026-12-05T09:00:00Z","ended_at":"2026-12-05T09:00:01Z",
		"progress":{"position":10,"to_position":50,"matched":3,"sent":0,"failed":0},
		"report":{"endpoint_id":"e1","from_position":1,"to_position":50,"dry_run":false,"matched":3,"sent":2,"failed":1,"duration_seconds":1.5},
		"links":{"self":"/api/v1/webhooks/e1/replays/j1"}}`
	if diff := cmp.Diff(jsonOf(t, want), asJSON(t, webhooks.WireReplayJob(done))); diff != "" {
		t.Errorf("succeeded (-want +got):\n%s", diff)
	}

	failed := running
	failed.State, failed.EndedAt, failed.Error = webhooks.ReplayFailed, at, "no webhook endpoint e1"
	got := webhooks.WireReplayJob(failed)
	if got.Report != nil || got.Error != "no webhook endpoint e1" || got.EndedAt == nil {
		t.Errorf("failed: %+v, want its error and no report", got)
	}
}

func TestWebhookEndpointStreamLinksToTheEndpoint(t *testing.T) {
	recs := []events.Recorded{{ID: "ev1", StreamID: "e1", Version: 1, Position: 3, Type: events.TypeWebhookEndpointCreated,
		Data: json.RawMessage(`{"url":"https://h.example/x"}`), Metadata: events.Metadata{Actor: "ann"}}}
	want := `{"id":"e1","events":[{"id":"ev1","stream_id":"e1","version":1,"position":3,"type":"WebhookEndpointCreated",
		"time":"0001-01-01T00:00:00Z","data":{"url":"https://h.example/x"},"metadata":{"actor":"ann"}}],
		"links":{"status":"/api/v1/webhooks/e1","history":"/api/v1/webhooks/e1/events","events":"/api/v1/webhooks/e1/events"}}`
	if diff := cmp.Diff(jsonOf(t, want), asJSON(t, wire.NewWebhookEndpointStream("e1", recs))); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}
