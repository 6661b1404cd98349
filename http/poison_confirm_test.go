package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// TestPoisonDryRunAndExpect: a dry run answers the plan, as the console previews it, and does
// nothing; an action given that plan as "expect" is done only while the plan still holds, and is
// refused whole (409, naming what differs) once the queue or the stream moved.
func TestPoisonDryRunAndExpect(t *testing.T) {
	api := newPoisonAPI(t)
	id := api.notification(t, herald.ChannelEmail, "ada@example.com", true, failedTwice...)
	v := api.version(t, id)
	requeue := "/api/v1/poison/" + id + "/requeue"

	preview := func(path, body string) wire.Planned {
		t.Helper()
		r := doRequest(t, api.url, http.MethodPost, path, body, jsonHeader())
		if r.status != http.StatusOK {
			t.Fatalf("dry run %s: %d %s", body, r.status, r.body)
		}
		var plan wire.Plan
		if err := json.Unmarshal(r.body, &plan); err != nil || len(plan.Plan) != 1 {
			t.Fatalf("dry run: %s (%v), want a plan of one", r.body, err)
		}
		return plan.Plan[0]
	}
	expect := func(p wire.Planned) string {
		var version int64 // 0: a notification the log does not know
		if p.Notification != nil {
			version = p.Notification.Version
		}
		e, err := json.Marshal(map[string]wire.Expected{p.ID: {Version: version, Action: p.Action, MessageIDs: p.MessageIDs}})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`{"actor":"ada","expect":%s}`, e)
	}

	p := preview(requeue, `{"actor":"ada","dry_run":true}`)
	if p.ID != id || p.Action != "requeued" || p.Notification == nil || p.Notification.Version != v || p.Notification.Status != "failed" ||
		p.Parked != 1 || strings.Join(p.MessageIDs, ",") != "m-"+id {
		t.Errorf("dry run plan: %+v, want requeued at v%d with message m-%s", p, v, id)
	}
	if got := api.version(t, id); got != v || api.parked.count() != 1 {
		t.Fatalf("after the dry run: v%d and %d parked, want v%d and 1: a dry run does nothing", got, api.parked.count(), v)
	}
	// The same checks as the action: a discard needs a reason, dry or not.
	if r := doRequest(t, api.url, http.MethodPost, "/api/v1/poison/"+id+"/discard", `{"dry_run":true}`, jsonHeader()); r.status != http.StatusUnprocessableEntity {
		t.Errorf("dry run of a discard without a reason: %d %s, want 422", r.status, r.body)
	}

	// Another message of it is parked after the preview: the confirmation is refused, whole.
	api.parked.mu.Lock()
	api.parked.msgs = append(api.parked.msgs, handlers.ParkedMessage{NotificationID: id, Channel: herald.ChannelEmail, MessageID: "m2-" + id})
	api.parked.mu.Unlock()
	r := doRequest(t, api.url, http.MethodPost, requeue, expect(p), jsonHeader())
	e := errorOf(t, r)
	if r.status != http.StatusConflict || e.Code != herald.ECONFLICT || !strings.Contains(e.Fields[id], "parked messages changed") {
		t.Errorf("requeue expecting a stale preview: %d %s, want 409 naming the changed messages", r.status, r.body)
	}
	if got := api.version(t, id); got != v || api.parked.count() != 2 {
		t.Fatalf("after the refused requeue: v%d and %d parked, want v%d and 2", got, api.parked.count(), v)
	}

	// A preview at another version (another operator acted meanwhile) is refused too.
	p = preview(requeue, `{"dry_run":true}`)
	stale, n := p, *p.Notification
	n.Version--
	stale.Notification = &n
	r = doRequest(t, api.url, http.MethodPost, requeue, expect(stale), jsonHeader())
	if e := errorOf(t, r); r.status != http.StatusConflict || !strings.Contains(e.Fields[id], fmt.Sprintf("is at v%d now, not v%d", v, v-1)) {
		t.Errorf("requeue expecting another version: %d %s, want 409 naming the versions", r.status, r.body)
	}

	// The fresh preview, confirmed while it holds, is done.
	if len(p.MessageIDs) != 2 {
		t.Fatalf("second preview: messages %v, want both", p.MessageIDs)
	}
	r = doRequest(t, api.url, http.MethodPost, requeue, expect(p), jsonHeader())
	var res actionResponse
	if err := json.Unmarshal(r.body, &res); r.status != http.StatusOK || err != nil || res.Action != "requeued" || res.Removed != 2 {
		t.Fatalf("requeue confirming the preview: %d %s, want 200 requeued, 2 removed", r.status, r.body)
	}
	if got := api.version(t, id); got != v+1 {
		t.Errorf("after the requeue: v%d, want v%d", got, v+1)
	}

	// A message naming a notification the log does not know: the plan says so (null) and only
	// removes it, and confirming that is done.
	orphan := uuid.NewString()
	api.parked.mu.Lock()
	api.parked.msgs = append(api.parked.msgs, handlers.ParkedMessage{NotificationID: orphan, Channel: herald.ChannelSMS, MessageID: "m-" + orphan})
	api.parked.mu.Unlock()
	discard := "/api/v1/poison/" + orphan + "/discard"
	p = preview(discard, `{"dry_run":true,"reason":"no such notification"}`)
	if p.Action != "removed" || p.Notification != nil || p.Parked != 1 {
		t.Errorf("dry run of a discard of an orphaned message: %+v, want removed, notification null", p)
	}
	r = doRequest(t, api.url, http.MethodPost, discard, strings.Replace(expect(p), `"actor":"ada"`, `"reason":"no such notification"`, 1), jsonHeader())
	if err := json.Unmarshal(r.body, &res); r.status != http.StatusOK || err != nil || res.Action != "removed" || res.Removed != 1 {
		t.Errorf("discard confirming the orphan's preview: %d %s, want 200 removed 1", r.status, r.body)
	}
}

// TestPoisonExpectIsChecked: an "expect" the API cannot read is 422, naming the entry.
func TestPoisonExpectIsChecked(t *testing.T) {
	api := newPoisonAPI(t)
	id := api.notification(t, herald.ChannelEmail, "ada@example.com", true, failedTwice...)
	other := uuid.NewString()
	for _, tt := range []struct{ body, field, want string }{
		{`{"expect":[]}`, "expect", "must be an object"},
		{`{"expect":{"x":{"version":1,"action":"requeued","message_ids":[]}}}`, "expect.x", "not a notification id"},
		{`{"expect":{"` + other + `":{"version":1}}}`, "expect." + other, "needs action, message_ids"},
		{`{"expect":{"` + other + `":{"version":"1","action":"requeued","message_ids":[]}}}`, "expect." + other, "integer version"},
		{`{"expect":{"` + other + `":{"version":1,"action":"requeued","message_ids":[],"x":1}}}`, "expect." + other, "nothing else"},
		{`{"dry_run":"yes"}`, "dry_run", "true or false"},
	} {
		r := doRequest(t, api.url, http.MethodPost, "/api/v1/poison/"+id+"/requeue", tt.body, jsonHeader())
		if e := errorOf(t, r); r.status != http.StatusUnprocessableEntity || !strings.Contains(e.Fields[tt.field], tt.want) {
			t.Errorf("%s: %d %s, want 422 with %s %q", tt.body, r.status, r.body, tt.field, tt.want)
		}
	}
	if api.parked.count() != 1 {
		t.Errorf("%d parked after refused requests, want 1", api.parked.count())
	}
}

type apiError struct {
	Code   string            `json:"code"`
	Fields map[string]string `json:"fields"`
}

func errorOf(t *testing.T, r response) apiError {
	t.Helper()
	var body struct {
		Error apiError `json:"error"`
	}
	_ = json.Unmarshal(r.body, &body)
	return body.Error
}
