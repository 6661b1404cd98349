package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// hookReceiver is a client's webhook endpoint: it verifies every request's signature, keeps what
// arrived, and can be taken down and brought back on the same address.
type hookReceiver struct {
	t    *testing.T
	addr string

	mu      sync.Mutex
	srv     *http.Server
	secret  webhooks.Secret
	arrived []wire.WebhookPayload
	ids     map[string]int // arrivals per webhook-id
	badSigs int
	// checkpoints are the checkpoint.signed payloads that arrived, in arrival order.
	checkpoints []wire.WebhookCheckpointPayload
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{t: t, addr: l.Addr().String(), ids: map[string]int{}}
	r.serveOn(l)
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) url() string { return "http://" + r.addr + "/herald" }

func (r *hookReceiver) serveOn(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// down stops answering: connections are refused until up.
func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (r *hookReceiver) up() {
	r.t.Helper()
	var l net.Listener
	heraldtest.Eventually(r.t, 10*time.Second, "the receiver's address to be free again", func() (bool, error) {
		var err error
		l, err = net.Listen("tcp", r.addr)
		return err == nil, err
	})
	r.serveOn(l)
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := webhooks.Verify(req.Header, body, 5*time.Minute, time.Now(), r.secret); err != nil {
		r.badSigs++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var p wire.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("webhook body %s: %v", body, err)
	}
	if p.Type == wire.WebhookCheckpointSigned {
		var cp wire.WebhookCheckpointPayload
		if err := json.Unmarshal(body, &cp); err != nil {
			r.t.Errorf("checkpoint webhook body %s: %v", body, err)
		}
		if id := req.Header.Get("webhook-id"); id != cp.MessageID() {
			r.t.Errorf("webhook-id %s for checkpoint %s", id, cp.MessageID())
		}
		r.checkpoints = append(r.checkpoints, cp)
		r.ids[cp.MessageID()]++
		w.WriteHeader(http.StatusOK)
		return
	}
	if id := req.Header.Get("webhook-id"); id != p.MessageID() {
		r.t.Errorf("webhook-id %s for event %s", id, p.MessageID())
	}
	r.arrived = append(r.arrived, p)
	r.ids[p.MessageID()]++
	w.WriteHeader(http.StatusOK)
}

// arrivals returns what arrived, and how many webhook-ids arrived more than once.
func (r *hookReceiver) arrivals() ([]wire.WebhookPayload, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dup := 0
	for _, n := range r.ids {
		if n > 1 {
			dup++
		}
	}
	return append([]wire.WebhookPayload(nil), r.arrived...), dup, r.badSigs
}

// logEvents returns the notifications' events in db's log, by event id, and per notification in
// version order.
func logEvents(t *testing.T, d *deps) (map[string]bool, map[string][]string) {
	t.Helper()
	byID, byNotification := map[string]bool{}, map[string][]string{}
	err := events.NewLog(d.DB.Pool).Scan(context.Background(), events.Filter{Types: events.NotificationTypes}, func(r events.Recorded) error {
		byID[r.ID] = true
		byNotification[r.StreamID] = append(byNotification[r.StreamID], r.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return byID, byNotification
}

// waitAllArrived waits until every notification event of the log has arrived at r.
func waitAllArrived(t *testing.T, d *deps, r *hookReceiver, timeout time.Duration) {
	t.Helper()
	heraldtest.Eventually(t, timeout, "every event of the log at the receiver", func() (bool, error) {
		want, _ := logEvents(t, d)
		got, _, _ := r.arrivals()
		have := map[string]bool{}
		for _, p := range got {
			have[p.MessageID()] = true
		}
		missing := 0
		for id := range want {
			if !have[id] {
				missing++
			}
		}
		return missing == 0, fmt.Errorf("%d of %d events missing", missing, len(want))
	})
}

// TestWebhooksEndToEnd runs Herald as a client would: an endpoint registered, notifications
// sent through the API, a receiver that verifies every signature. First all is well: every event
// of every notification arrives once, in order per notification. Then the receiver goes down,
// more notifications are sent, the process holding the endpoint is killed and another takes over,
// the receiver comes back: every event arrives, through retries, and the duplicates the kill may
// cause are counted and printed.
func TestWebhooksEndToEnd(t *testing.T) {
	d := newDeps(t)
	rcv := newHookReceiver(t)
	policy := webhooks.Policy{AllowPrivate: true, AllowHTTP: true}
	ep, secret, err := webhooks.NewEndpoints(d.DB.Pool, policy).Create(context.Background(), webhooks.NewEndpoint{URL: rcv.url()}, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	rcv.secret = secret
	rcv.mu.Unlock()
	env := map[string]string{
		"HERALD_WEBHOOK_ALLOW_PRIVATE":  "true",
		"HERALD_WEBHOOK_ALLOW_HTTP":     "true",
		"HERALD_WEBHOOK_POLL_INTERVAL":  "50ms",
		"HERALD_WEBHOOK_LEASE":          "2s",
		"HERALD_WEBHOOK_RETRY_SCHEDULE": "200ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
	}
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}, Env: env})

	// All is well.
	var first []string
	for i := range 6 {
		first = append(first, send(t, c.API, emailCase(i).req), send(t, c.API, smsCase(i).req))
	}
	for _, id := range first {
		waitStatus(t, c.API, id, "sent", deliveryTimeout)
	}
	waitAllArrived(t, d, rcv, 30*time.Second)
	got, dup, bad := rcv.arrivals()
	_, want := logEvents(t, d)
	if dup != 0 || bad != 0 {
		t.Errorf("without faults: %d events arrived twice, %d bad signatures", dup, bad)
	}
	perNotification := map[string][]string{}
	for _, p := range got {
		perNotification[p.Data.NotificationID] = append(perNotification[p.Data.NotificationID], p.MessageID())
		if p.Data.Status == "" || p.Type != p.Data.Event.Type {
			t.Errorf("payload %+v: want a status and the event's type", p)
		}
	}
	for id, evs := range want {
		if !slices.Equal(perNotification[id], evs) {
			t.Errorf("notification %s: events arrived as %v, want %v (log order)", id, perNotification[id], evs)
		}
	}

	// The receiver has a batch's requests before the dispatcher has recorded them: the figures
	// follow within moments.
	heraldtest.Eventually(t, 15*time.Second, "the metrics to count every live delivery", func() (bool, error) {
		n := metric(t, c.API+"/metrics", "herald_webhook_deliveries_total",
			map[string]string{"endpoint": ep.ID, "trigger": "live", "outcome": "succeeded"})
		lag := metric(t, c.API+"/metrics", "herald_webhook_lag_events", map[string]string{"endpoint": ep.ID})
		return n == float64(len(got)) && lag == 0, fmt.Errorf("herald_webhook_deliveries_total says %v live deliveries succeeded, the receiver got %d; lag %v events", n, len(got), lag)
	})

	// Faults: the receiver down, the process delivering to it killed, another taking over.
	standby := startHerald(t, heraldOpts{Deps: d, Commands: []string{"webhooks serve"}, Env: env})
	rcv.down()
	var second []string
	for i := 6; i < 12; i++ {
		second = append(second, send(t, c.API, emailCase(i).req), send(t, c.API, smsCase(i).req))
	}
	for _, id := range second {
		waitStatus(t, c.API, id, "sent", deliveryTimeout)
	}
	all := c.proc(t, "all")
	if err := all.Kill(stopTimeout); err != nil {
		t.Fatal(err)
	}
	all.judged = true
	rcv.up()
	waitAllArrived(t, d, rcv, 60*time.Second)
	got, dup, bad = rcv.arrivals()
	byID, _ := logEvents(t, d)
	t.Logf("webhooks: %d events in the log, %d requests verified, %d events arrived more than once (at least once across a SIGKILL), %d bad signatures",
		len(byID), len(got), dup, bad)
	if bad != 0 {
		t.Errorf("%d requests failed verification", bad)
	}
	if !standby.proc(t, "webhooks serve").Exited() {
		var attempts []webhooks.Attempt
		attempts, _, err = webhooks.NewEndpoints(d.DB.Pool, policy).Attempts(context.Background(), ep.ID, webhooks.AttemptFilter{Failed: true, Limit: 1000})
		if err != nil || len(attempts) == 0 {
			t.Errorf("failed attempts while the receiver was down: %d (%v), want some", len(attempts), err)
		}
	} else {
		t.Error("herald webhooks serve exited")
	}
	var owner string
	if err := d.DB.Pool.QueryRow(context.Background(), `SELECT coalesce(lease_owner, '') FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner == "" {
		t.Error("no process holds the endpoint after the kill")
	}
}
