package http_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A scheduled send through the API: answered scheduled with its send_at, shown so by its status
// before and after the projector reaches it, listed by status=scheduled and not by pending; a
// send_at in the past is a 422 naming send_at, with nothing written.
func TestScheduledSend(t *testing.T) {
	api := newTestAPI(t)
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	scheduled, r := api.send(t, fmt.Sprintf(`{"type":"sms","recipient":"+14155550123","content":"later","send_at":%q}`,
		at.Format(time.RFC3339Nano)), nil)
	answer := asMap(t, r)
	if scheduled.Status != "scheduled" || answer["send_at"] != at.Format(time.RFC3339Nano) {
		t.Errorf("send answered status %s, send_at %v; want scheduled for %s", scheduled.Status, answer["send_at"], at.Format(time.RFC3339Nano))
	}
	now, _ := api.send(t, `{"type":"sms","recipient":"+14155550123","content":"now"}`, nil)
	if _, ok := asMap(t, api.do(t, http.MethodGet, "/api/v1/notifications/"+now.ID+"/status", "", nil))["send_at"]; ok {
		t.Error("an unscheduled notification's status shows a send_at")
	}

	// From the log, before the projector has reached it, then from the read model.
	for _, when := range []string{"before projecting", "after projecting"} {
		status := asMap(t, api.do(t, http.MethodGet, "/api/v1/notifications/"+scheduled.ID+"/status", "", nil))
		if status["status"] != "scheduled" || status["send_at"] != at.Format(time.RFC3339Nano) {
			t.Errorf("%s: status %v, send_at %v; want scheduled for %s", when, status["status"], status["send_at"], at.Format(time.RFC3339Nano))
		}
		project(t, api.pool, scheduled.ID, now.ID)
	}
	if got, _ := api.listAll(t, url.Values{"status": {"scheduled"}}); !cmp.Equal(got, []string{scheduled.ID}) {
		t.Errorf("status=scheduled lists %v, want only %s", got, scheduled.ID)
	}
	if got, _ := api.listAll(t, url.Values{"status": {"pending"}}); !cmp.Equal(got, []string{now.ID}) {
		t.Errorf("status=pending lists %v, want only %s", got, now.ID)
	}

	before := countRows(t, api.pool, "event_log")
	past := time.Now().Add(-time.Minute).Format(time.RFC3339)
	r = api.do(t, http.MethodPost, "/api/v1/notifications/send",
		fmt.Sprintf(`{"type":"sms","recipient":"+14155550123","content":"late","send_at":%q}`, past), jsonHeader())
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("send_at in the past: status %d, want 422: %s", r.status, r.body)
	}
	errBody := decodeJSON[struct {
		Error struct {
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}](t, r)
	if _, ok := errBody.Error.Fields["send_at"]; !ok || len(errBody.Error.Fields) != 1 {
		t.Errorf("fields %v, want send_at alone", errBody.Error.Fields)
	}
	if after := countRows(t, api.pool, "event_log"); after != before || countRows(t, api.pool, "scheduled_notifications") != 1 {
		t.Errorf("a refused send wrote: %d events, was %d", after, before)
	}
}
