package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// webhookTolerance is how far a request's webhook-timestamp may be from the receiver's clock:
// the five minutes the Standard Webhooks specification suggests. Herald signs when it sends,
// so on one machine anything beyond seconds would be a bug, and is counted as a bad signature.
const webhookTolerance = 5 * time.Minute

// webhookReceiver is one webhook endpoint of the run: a loopback HTTP server that checks every
// request as a careful receiver would (signature, then payload) and counts what arrived. It keeps
// only the message ids it has seen, to tell duplicates and, at the end, what is missing.
//
// A healthy receiver answers 204 to every good request; a failing one answers 500 to every
// request, so that Herald retries it on its schedule, and only counts them.
type webhookReceiver struct {
	secret   webhooks.Secret
	failing  bool
	listener net.Listener
	server   *http.Server
	done     chan struct{}
	// now is the arrival clock; tests replace it.
	now func() time.Time

	requests      atomic.Int64 // every request, good or not
	badSignatures atomic.Int64 // refused: missing headers, stale timestamp or no matching signature
	undecodable   atomic.Int64 // signed correctly, but not a webhook payload, or its id not the header's

	mu sync.Mutex
	// seen counts the good requests by webhook-id: the event's id, the same on every retry.
	seen       map[string]int
	duplicates int64
	// latency is, for every first arrival, the time from the event in the log to its arrival.
	latency     *Histogram
	lastArrival time.Time
}

// startWebhookReceiver starts a receiver on 127.0.0.1 with an ephemeral port; failing makes it
// answer 500 to everything. It refuses every request until setSecret gives it the secret its
// endpoint was registered with.
func startWebhookReceiver(failing bool) (*webhookReceiver, error) {
	w := newWebhookReceiver(failing)
	if err := w.serve(); err != nil {
		return nil, err
	}
	return w, nil
}

// newWebhookReceiver returns a receiver that is not listening yet: serve starts it.
func newWebhookReceiver(failing bool) *webhookReceiver {
	return &webhookReceiver{failing: failing, done: make(chan struct{}), now: time.Now,
		seen: map[string]int{}, latency: NewHistogram()}
}

// serve starts listening on 127.0.0.1 with an ephemeral port.
func (w *webhookReceiver) serve() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("webhook receiver: listen: %w", err)
	}
	w.listener = l
	w.server = &http.Server{Handler: w, ReadHeaderTimeout: time.Minute, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = w.server.Serve(l); close(w.done) }()
	return nil
}

// url is where Herald posts to the receiver. The path names its kind, for whoever reads the
// endpoints of a kept database.
func (w *webhookReceiver) url() string {
	if w.failing {
		return "http://" + w.listener.Addr().String() + "/failing"
	}
	return "http://" + w.listener.Addr().String() + "/healthy"
}

// setSecret sets the secret requests are verified with. The endpoint is registered with the
// receiver's URL, and the secret comes back from that registration: before any request, since
// Herald starts after the endpoints exist.
func (w *webhookReceiver) setSecret(s webhooks.Secret) {
	w.mu.Lock()
	w.secret = s
	w.mu.Unlock()
}

// close stops the receiver.
func (w *webhookReceiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.server.Shutdown(ctx)
	select {
	case <-w.done:
	case <-ctx.Done():
	}
}

// ServeHTTP takes one webhook: it refuses (401) what is not signed by the endpoint's secret and
// (400) what is not a payload whose id is the header's, then counts the arrival. A failing
// receiver counts the same way, but answers 500 to every request, good or bad: its duplicates
// are Herald's retries.
func (w *webhookReceiver) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	status, msg := w.take(r)
	if w.failing {
		status, msg = http.StatusInternalServerError, "failing on purpose"
	}
	if status == http.StatusNoContent {
		rw.WriteHeader(status)
		return
	}
	http.Error(rw, msg, status)
}

// take checks and counts one request, and returns the answer a healthy receiver gives it.
func (w *webhookReceiver) take(r *http.Request) (int, string) {
	at := w.now()
	w.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.undecodable.Add(1)
		return http.StatusBadRequest, "cannot read the body"
	}
	w.mu.Lock()
	secret := w.secret
	w.mu.Unlock()
	if err := webhooks.Verify(r.Header, body, webhookTolerance, at, secret); err != nil {
		w.badSignatures.Add(1)
		return http.StatusUnauthorized, err.Error()
	}
	var p wire.WebhookPayload
	id := r.Header.Get(webhooks.HeaderID)
	if err := json.Unmarshal(body, &p); err != nil || p.MessageID() != id || p.Timestamp.IsZero() {
		w.undecodable.Add(1)
		return http.StatusBadRequest, "not a webhook payload, or its event id is not the webhook-id"
	}
	w.arrived(id, p.Timestamp, at)
	return http.StatusNoContent, ""
}

// arrived counts a good request for message id, about an event that happened at eventTime.
func (w *webhookReceiver) arrived(id string, eventTime, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[id]++
	if w.seen[id] > 1 {
		w.duplicates++
		return
	}
	w.latency.Record(at.Sub(eventTime))
	if at.After(w.lastArrival) {
		w.lastArrival = at
	}
}

// countSeen returns how many of ids arrived at least once.
func (w *webhookReceiver) countSeen(ids []string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, id := range ids {
		if w.seen[id] > 0 {
			n++
		}
	}
	return n
}

// webhookCounts is what a receiver counted, read at once.
type webhookCounts struct {
	requests, badSignatures, undecodable int64
	// distinct is the messages that arrived at least once, duplicates the arrivals beyond.
	distinct, duplicates int64
	lastArrival          time.Time
}

// counts returns what the receiver has counted so far.
func (w *webhookReceiver) counts() webhookCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return webhookCounts{
		requests: w.requests.Load(), badSignatures: w.badSignatures.Load(), undecodable: w.undecodable.Load(),
		distinct: int64(len(w.seen)), duplicates: w.duplicates, lastArrival: w.lastArrival,
	}
}
