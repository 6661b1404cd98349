//go:build faults

package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/webhooks"
)

// faultWebhookDispatcherSIGKILL runs two webhook dispatchers (herald webhooks serve) beside the
// API, a worker and the projector, with one endpoint, registered before the load, at a receiver
// that verifies every signature. Midway through the load the receiver keeps one request
// unanswered, so that the dispatcher holding the endpoint is between its posts and the
// transaction recording them, and that dispatcher is killed with SIGKILL. The other must take the
// endpoint over once the lease has run out, and every notification event of the log must reach
// the receiver.
//
// The duplicates are bounded by what docs/architecture.md allows ("At least once"): a dispatcher
// that dies between the endpoint's answers and the transaction recording its batch leaves the
// endpoint's offset where it was, so the next holder posts that batch again — at most one batch
// per death. A batch is at most the next webhookBatch events of the log after the offset, in the
// order the live delivery reads it, so every duplicate must be one of the first webhookBatch
// events after the offset the endpoint had when its holder died, none may arrive more than
// twice, and every arrival but those of the dead holder's last batch is recorded as an attempt.
func faultWebhookDispatcherSIGKILL(t *testing.T, rabbit *rabbitNode, name string) {
	const (
		n     = 300
		lease = 2 * time.Second
		poll  = 50 * time.Millisecond
		// A dispatcher renews its leases and looks for endpoints to take every 10 polls
		// (webhooks.Dispatcher.Run): the holder's lease runs out at most lease after its death, and
		// the survivor sees that on its next round; a second for a busy machine.
		takeOver = lease + 10*poll + time.Second
		// webhookBatch is how many events of the log a live delivery reads at a time
		// (webhooks.DispatcherConfig.Batch, whose default of 500 herald does not change).
		webhookBatch = 500
	)
	ctx := context.Background()
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: 6, Concurrency: 4})
	maps.Copy(c.env, map[string]string{
		"HERALD_WEBHOOK_ALLOW_PRIVATE": "true",
		"HERALD_WEBHOOK_ALLOW_HTTP":    "true",
		"HERALD_WEBHOOK_LEASE":         lease.String(),
		"HERALD_WEBHOOK_POLL_INTERVAL": poll.String(),
		// Thirty retries, none given up while the case runs: a failed delivery is not a lost one.
		"HERALD_WEBHOOK_RETRY_SCHEDULE": "200ms,500ms" + strings.Repeat(",1s", 28),
	})
	rcv := newHeldHookReceiver(t)
	ep, secret, err := webhooks.NewEndpoints(c.DB.Pool, webhooks.Policy{AllowPrivate: true, AllowHTTP: true}).
		Create(ctx, webhooks.NewEndpoint{URL: rcv.url()}, "faults")
	if err != nil {
		t.Fatalf("register the endpoint: %v", err)
	}
	rcv.mu.Lock()
	rcv.secret = secret
	rcv.mu.Unlock()

	c.start(t, "worker", "projector", "serve")
	dispatchers := c.start(t, "webhooks serve", "webhooks serve")
	var holder, survivor *process
	var owner string
	for start := time.Now(); holder == nil; time.Sleep(20 * time.Millisecond) {
		owner = endpointAt(ctx, t, c, ep.ID).owner
		for i, p := range dispatchers {
			if ownerPID(owner) == p.PID() {
				holder, survivor = p, dispatchers[1-i]
			}
		}
		if holder == nil && time.Since(start) > 10*time.Second {
			t.Fatalf("no dispatcher took the endpoint within 10s (lease_owner %q, dispatchers pids %d and %d)",
				owner, dispatchers[0].PID(), dispatchers[1].PID())
		}
	}
	t.Logf("endpoint %s held by herald webhooks serve pid %d (%s); pid %d stands by", ep.ID, holder.PID(), owner, survivor.PID())

	l := startLoad(c.api, n, 20*time.Millisecond)
	l.waitIssued(n / 2)
	var early []string
	var held string
	select {
	case held = <-rcv.holdNext():
	case <-time.After(10 * time.Second):
		early = append(early, "no webhook arrived within 10s of the middle of the load")
	}
	sigkill(t, holder)
	killed := time.Now()
	// The dead holder can no longer move the offset, and the survivor cannot until the lease has
	// run out: the dead holder's last batch was read after this offset.
	atKill := endpointAt(ctx, t, c, ep.ID)
	rcv.answerHeld()
	t.Logf("holder (pid %d) killed with SIGKILL at offset %s while the receiver kept event %s unanswered", holder.PID(), atKill, held)
	if ownerPID(atKill.owner) != holder.PID() {
		early = append(early, fmt.Sprintf("the endpoint was no longer the killed holder's at the kill: lease_owner %q", atKill.owner))
	}

	var tookOver, advancing time.Duration
	for time.Since(killed) < 3*takeOver && advancing == 0 {
		time.Sleep(10 * time.Millisecond)
		now := endpointAt(ctx, t, c, ep.ID)
		if ownerPID(now.owner) != survivor.PID() {
			continue
		}
		if tookOver == 0 {
			tookOver = time.Since(killed)
		}
		if now.moved(atKill) {
			advancing = time.Since(killed)
		}
	}
	t.Logf("%s: take-over: the survivor held the endpoint %s after the SIGKILL, and moved its offset %s after it",
		name, tookOver.Round(time.Millisecond), advancing.Round(time.Millisecond))
	l.wait(t)

	r := c.settle(t, l, 90*time.Second, faultBounds{})
	r.problems = append(r.problems, early...)
	switch {
	case tookOver == 0:
		r.problem("the survivor (pid %d) did not take the endpoint over within %s", survivor.PID(), 3*takeOver)
	case tookOver > takeOver:
		r.problem("the survivor took %s to take the endpoint over, more than the lease (%s), a round (%s) and a second", tookOver.Round(time.Millisecond), lease, 10*poll)
	case advancing == 0:
		r.problem("the survivor holds the endpoint but did not move its offset past %s within %s", atKill, 3*takeOver)
	}

	if logged(survivor, "webhook delivery started") != 1 {
		r.problem("the survivor logged %d starts of the endpoint's delivery, want 1", logged(survivor, "webhook delivery started"))
	}
	for _, line := range strings.Split(survivor.Output(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			r.problem("the survivor logged: %s", line)
		}
	}

	h := c.checkWebhooks(t, rcv, ep.ID, atKill, webhookBatch, held, 60*time.Second)
	t.Logf("%s: %s events=%d webhook_lost=%d webhook_duplicates=%d", name, r.line(false), h.events, h.lost, h.duplicates)
	t.Logf("%s: %d posts were never recorded as attempts (the killed holder's last batch), all among the %d events of the log after the offset at the kill; %d events arrived twice (at most %d, one batch)",
		name, h.unrecorded, h.window, h.duplicates, webhookBatch)
	r.problems = append(r.problems, h.problems...)
	r.wantAllSent("a webhook dispatcher's death must not fail any")
	r.check(t)
	c.shutdownAll(t)
}

// webhookReport is what reached the receiver, against the log and the recorded attempts.
type webhookReport struct {
	// events counts the notification events of the log; lost those that never arrived;
	// duplicates the webhook-ids that arrived more than once.
	events, lost, duplicates int
	// unrecorded counts the arrivals without a successful attempt recorded for them.
	unrecorded int
	// window counts the events of the log after the endpoint's offset at the kill, up to a batch:
	// the only ones that may arrive twice.
	window   int
	problems []string
}

func (w *webhookReport) problem(format string, args ...any) {
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// checkWebhooks waits (up to deadline) until endpoint id's offset has caught up with the log —
// every post made and recorded — and checks that every notification event of the log arrived at
// rcv, no signature failed, and the duplicates are the one batch the killed holder may have
// posted without recording it: events among the first batch after the offset atKill, each
// arrived at most twice, held (the request kept unanswered at the kill) among them.
func (c *faultCluster) checkWebhooks(t *testing.T, rcv *heldHookReceiver, id string, atKill endpointState, batch int, held string, deadline time.Duration) *webhookReport {
	t.Helper()
	ctx := context.Background()
	w := &webhookReport{}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		left, err := c.eventsAfter(ctx, endpointAt(ctx, t, c, id), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Since(start) > deadline {
			w.problem("the endpoint's offset did not reach the end of the log within %s", deadline)
			break
		}
	}
	want, _ := logEvents(t, c.deps)
	counts, bad := rcv.counts()
	w.events = len(want)
	for ev := range want {
		if counts[ev] == 0 {
			w.lost++
		}
	}
	if w.lost > 0 {
		w.problem("%d of %d notification events never reached the receiver", w.lost, w.events)
	}
	if bad > 0 {
		w.problem("%d webhook requests failed signature verification", bad)
	}
	recorded, err := c.succeededAttempts(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	window, err := c.eventsAfter(ctx, atKill, batch)
	if err != nil {
		t.Fatal(err)
	}
	w.window = len(window)
	for ev, n := range counts {
		if !want[ev] {
			w.problem("webhook-id %s arrived but is no notification event of the log", ev)
		}
		switch extra := n - recorded[ev]; {
		case extra < 0:
			w.problem("event %s is recorded as delivered %d times but arrived %d times", ev, recorded[ev], n)
		case extra > 1:
			w.problem("event %s arrived %d times without being recorded: one death leaves one post unrecorded", ev, extra)
		case extra == 1:
			w.unrecorded++
			if !window[ev] {
				w.problem("event %s arrived without being recorded but is not among the %d events after the offset at the kill (%s): only the dead holder's batch may be", ev, batch, atKill)
			}
		}
		if n < 2 {
			continue
		}
		w.duplicates++
		if n > 2 {
			w.problem("event %s arrived %d times; one death allows one repeat", ev, n)
		}
		if !window[ev] {
			w.problem("event %s arrived twice but is not among the %d events after the offset at the kill (%s): only the dead holder's batch may be posted again", ev, batch, atKill)
		}
	}
	if held != "" && counts[held] != 2 {
		w.problem("event %s was kept unanswered until its holder died, so never recorded, and arrived %d time(s), want 2", held, counts[held])
	}
	if w.duplicates > batch || w.unrecorded > batch {
		w.problem("%d events arrived twice and %d arrivals are unrecorded, more than one batch (%d)", w.duplicates, w.unrecorded, batch)
	}
	return w
}

// succeededAttempts counts the successful attempts recorded for endpoint id, per event id.
func (c *faultCluster) succeededAttempts(ctx context.Context, id string) (map[string]int, error) {
	rows, err := c.DB.Pool.Query(ctx, `SELECT event_id::text, count(*) FROM webhook_attempts
		WHERE endpoint_id = $1 AND succeeded GROUP BY event_id`, id)
	if err != nil {
		return nil, fmt.Errorf("attempts of endpoint %s: %w", id, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var ev string
		var n int
		if err := rows.Scan(&ev, &n); err != nil {
			return nil, fmt.Errorf("attempts of endpoint %s: %w", id, err)
		}
		out[ev] = n
	}
	return out, rows.Err()
}

// eventsAfter returns the ids of the first limit events of the log after the endpoint offset s,
// in the order a live delivery reads them.
func (c *faultCluster) eventsAfter(ctx context.Context, s endpointState, limit int) (map[string]bool, error) {
	rows, err := c.DB.Pool.Query(ctx, `SELECT event_id::text FROM event_log
		WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
		ORDER BY transaction_id, global_position LIMIT $3`, s.transactionID, s.position, limit)
	if err != nil {
		return nil, fmt.Errorf("events after the offset %s: %w", s, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("events after the offset %s: %w", s, err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// endpointState is an endpoint's lease holder and live offset, as webhook_endpoints has them.
type endpointState struct {
	owner         string
	transactionID string
	position      int64
}

func (s endpointState) String() string {
	return s.transactionID + "/" + strconv.FormatInt(s.position, 10)
}

func (s endpointState) moved(from endpointState) bool {
	return s.transactionID != from.transactionID || s.position != from.position
}

// endpointAt reads endpoint id's lease holder and offset.
func endpointAt(ctx context.Context, t *testing.T, c *faultCluster, id string) endpointState {
	t.Helper()
	var s endpointState
	err := c.DB.Pool.QueryRow(ctx, `SELECT coalesce(lease_owner, ''), cursor_transaction_id::text, cursor_position
		FROM webhook_endpoints WHERE id = $1`, id).Scan(&s.owner, &s.transactionID, &s.position)
	if err != nil {
		t.Fatalf("read endpoint %s: %v", id, err)
	}
	return s
}

// ownerPID is the process id in a dispatcher's lease owner, "<host>/<pid>/<random>"; 0 if none.
func ownerPID(owner string) int {
	parts := strings.Split(owner, "/")
	if len(parts) != 3 {
		return 0
	}
	pid, _ := strconv.Atoi(parts[1])
	return pid
}

// heldHookReceiver is a hookReceiver that can keep one request unanswered on demand: the
// dispatcher that posted it is then, for certain, between its posts and the transaction
// recording them.
type heldHookReceiver struct {
	*hookReceiver

	holdMu      sync.Mutex
	armed       bool
	held        chan string   // the webhook-id of the request kept
	release     chan struct{} // closed to answer it
	releaseOnce sync.Once
}

func newHeldHookReceiver(t *testing.T) *heldHookReceiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &heldHookReceiver{
		hookReceiver: &hookReceiver{t: t, addr: l.Addr().String(), ids: map[string]int{}},
		held:         make(chan string, 1),
		release:      make(chan struct{}),
	}
	srv := &http.Server{Handler: http.HandlerFunc(r.serveHeld), ReadHeaderTimeout: 5 * time.Second}
	r.srv = srv
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(r.down)
	t.Cleanup(r.answerHeld)
	return r
}

func (r *heldHookReceiver) serveHeld(w http.ResponseWriter, req *http.Request) {
	r.holdMu.Lock()
	hold := r.armed
	r.armed = false
	r.holdMu.Unlock()
	if hold {
		r.held <- req.Header.Get("webhook-id")
		<-r.release
	}
	r.serve(w, req)
}

// holdNext keeps the next request unanswered until answerHeld; the channel tells its webhook-id
// once it has arrived.
func (r *heldHookReceiver) holdNext() <-chan string {
	r.holdMu.Lock()
	r.armed = true
	r.holdMu.Unlock()
	return r.held
}

// answerHeld lets the request kept by holdNext be taken and answered.
func (r *heldHookReceiver) answerHeld() { r.releaseOnce.Do(func() { close(r.release) }) }

// counts returns the verified arrivals per webhook-id, and how many requests failed
// verification.
func (r *heldHookReceiver) counts() (map[string]int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.ids), r.badSigs
}
