package bench

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// webhookRequest is a webhook as Herald sends it: the payload of an event that happened at
// eventTime, signed with Herald's own signing code by secret at signedAt.
type webhookRequest struct {
	id        string
	eventTime time.Time
	body      []byte
	header    http.Header
}

func newWebhookRequest(t *testing.T, secret webhooks.Secret, eventTime, signedAt time.Time) webhookRequest {
	t.Helper()
	id := uuid.NewString()
	p := wire.WebhookPayload{Type: events.TypeNotificationSent, Timestamp: eventTime,
		Data: wire.WebhookData{NotificationID: uuid.NewString(), Status: "sent",
			Event: wire.Event{ID: id, Type: events.TypeNotificationSent, Time: eventTime, Data: json.RawMessage(`{}`)}}}
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return webhookRequest{id: id, eventTime: eventTime, body: body, header: webhooks.Headers(id, signedAt, body, secret)}
}

// post sends req to the receiver over HTTP and returns the answer's status.
func (req webhookRequest) post(t *testing.T, w *webhookReceiver) int {
	t.Helper()
	hr, err := http.NewRequest(http.MethodPost, w.url(), bytes.NewReader(req.body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header = req.header.Clone()
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func newSecret(t *testing.T) webhooks.Secret {
	t.Helper()
	s, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startReceiver starts a receiver that verifies with secret and whose clock stands at now.
func startReceiver(t *testing.T, secret webhooks.Secret, failing bool, now time.Time) *webhookReceiver {
	t.Helper()
	w := newWebhookReceiver(failing)
	w.setSecret(secret)
	w.now = func() time.Time { return now }
	if err := w.serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	return w
}

func TestWebhookReceiverCountsArrivalsDuplicatesAndLatency(t *testing.T) {
	secret := newSecret(t)
	eventTime := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	w := startReceiver(t, secret, false, eventTime.Add(250*time.Millisecond))
	req := newWebhookRequest(t, secret, eventTime, eventTime.Add(100*time.Millisecond))

	for i := range 2 {
		if got := req.post(t, w); got != http.StatusNoContent {
			t.Fatalf("post %d: status %d, want 204", i+1, got)
		}
	}
	c := w.counts()
	if c.requests != 2 || c.distinct != 1 || c.duplicates != 1 || c.badSignatures != 0 || c.undecodable != 0 {
		t.Errorf("counts %+v, want 2 requests, 1 distinct, 1 duplicate, nothing refused", c)
	}
	if got := w.countSeen([]string{req.id, uuid.NewString()}); got != 1 {
		t.Errorf("countSeen = %d, want 1: the request's event and not another", got)
	}
	// The latency runs from the payload's event time, not the signing time, and the duplicate
	// does not count again.
	if s := w.latency.Summary(); s.Count != 1 || s.MaxMS != 250 {
		t.Errorf("latency %+v, want one value of 250ms", s)
	}
}

func TestWebhookReceiverRefusesBadSignatures(t *testing.T) {
	secret := newSecret(t)
	now := time.Now()
	w := startReceiver(t, secret, false, now)

	forged := newWebhookRequest(t, newSecret(t), now, now)
	stale := newWebhookRequest(t, secret, now.Add(-time.Hour), now.Add(-time.Hour))
	tampered := newWebhookRequest(t, secret, now, now)
	tampered.body = bytes.Replace(tampered.body, []byte(`"sent"`), []byte(`"failed"`), 1)
	unsigned := newWebhookRequest(t, secret, now, now)
	unsigned.header.Del(webhooks.HeaderSignature)

	for name, req := range map[string]webhookRequest{"other secret": forged, "stale": stale, "tampered body": tampered, "unsigned": unsigned} {
		if got := req.post(t, w); got != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, got)
		}
	}
	c := w.counts()
	if c.requests != 4 || c.badSignatures != 4 || c.distinct != 0 || w.latency.Count() != 0 {
		t.Errorf("counts %+v, latency n=%d; want 4 requests, all bad signatures, none arrived", c, w.latency.Count())
	}
}

func TestWebhookReceiverRefusesAPayloadOfAnotherEvent(t *testing.T) {
	secret := newSecret(t)
	now := time.Now()
	w := startReceiver(t, secret, false, now)
	req := newWebhookRequest(t, secret, now, now)
	// Signed correctly, but the header's id is not the payload's event.
	req.header = webhooks.Headers(uuid.NewString(), now, req.body, secret)
	if got := req.post(t, w); got != http.StatusBadRequest {
		t.Errorf("status %d, want 400", got)
	}
	if c := w.counts(); c.undecodable != 1 || c.distinct != 0 || c.badSignatures != 0 {
		t.Errorf("counts %+v, want 1 undecodable and nothing arrived", c)
	}
}

func TestFailingWebhookReceiverAnswers500AndCounts(t *testing.T) {
	secret := newSecret(t)
	now := time.Now()
	w := startReceiver(t, secret, true, now)
	good := newWebhookRequest(t, secret, now, now)
	forged := newWebhookRequest(t, newSecret(t), now, now)
	for _, req := range []webhookRequest{good, good, good, forged} {
		if got := req.post(t, w); got != http.StatusInternalServerError {
			t.Errorf("status %d, want 500", got)
		}
	}
	if c := w.counts(); c.requests != 4 || c.distinct != 1 || c.duplicates != 2 || c.badSignatures != 1 {
		t.Errorf("counts %+v, want 4 requests: 1 event tried 3 times, 1 bad signature", c)
	}
}

func TestWebhookFiguresCountEveryEndpointApart(t *testing.T) {
	start := time.Now()
	a, b := newWebhookReceiver(false), newWebhookReceiver(false)
	failing := newWebhookReceiver(true)
	ids := []string{"e1", "e2", "e3"}
	for _, id := range ids {
		a.arrived(id, start, start.Add(100*time.Millisecond))
	}
	a.arrived("e1", start, start.Add(time.Second)) // a retry after a lost answer
	b.arrived("e2", start, start.Add(300*time.Millisecond))
	b.arrived("stranger", start, start.Add(2*time.Second))
	failing.arrived("e1", start, start.Add(50*time.Millisecond))
	failing.arrived("e1", start, start.Add(time.Second))
	failing.requests.Store(2)

	ws := &webhookSet{healthy: []*webhookReceiver{a, b}, failing: failing}
	f := ws.figures(ids, start, 3*time.Second, true)
	if f.Expected != 6 || f.Arrived != 4 || f.Missing != 2 || f.Duplicates != 1 || f.Unexpected != 1 {
		t.Errorf("figures %+v: want 6 expected (3 events × 2 endpoints), 4 arrived, 2 missing, 1 duplicate, 1 unexpected", f)
	}
	if f.EventToArrival.Count != 5 || f.EventToArrival.MaxMS != 2000 {
		t.Errorf("event→arrival %+v, want the 5 first arrivals of both endpoints, max 2s", f.EventToArrival)
	}
	if f.Seconds != 2 || !f.WaitTimedOut || f.WaitSeconds != 3 {
		t.Errorf("seconds %g, wait %g (timed out %v); want 2 (the last first arrival), 3, true", f.Seconds, f.WaitSeconds, f.WaitTimedOut)
	}
	if f.Failing == nil || f.Failing.Requests != 2 || f.Failing.Events != 1 || f.Failing.Untried != 2 {
		t.Errorf("failing %+v, want 2 requests for 1 event, 2 events untried", f.Failing)
	}
}
