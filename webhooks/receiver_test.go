package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// arrival is one request a receiver accepted: a verified payload.
type arrival struct {
	id       string // webhook-id
	payload  wire.WebhookPayload
	sigCount int // signatures in webhook-signature
}

// receiver is an endpoint for the tests: it verifies every request's signature with the secrets
// it is given, and keeps what arrived. fail decides, per webhook-id and the how-manieth request
// for it (from 1), whether to answer 500 instead.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	// gate, when set, holds every request until it is closed.
	gate chan struct{}

	mu       sync.Mutex
	secrets  []webhooks.Secret
	fail     func(id string, n int) bool
	tries    map[string]int
	arrived  []arrival
	badSigs  int
	requests int
	times    []time.Time // of every request, answered or not
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{t: t, tries: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hook" }

// trust sets the secrets signatures are checked against.
func (r *receiver) trust(secrets ...webhooks.Secret) {
	r.mu.Lock()
	r.secrets = secrets
	r.mu.Unlock()
}

func (r *receiver) failing(f func(id string, n int) bool) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.gate != nil {
		<-r.gate
	}
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.times = append(r.times, time.Now())
	id := req.Header.Get("webhook-id")
	r.tries[id]++
	if err := webhooks.Verify(req.Header, body, 5*time.Minute, time.Now(), r.secrets...); err != nil {
		r.badSigs++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.fail != nil && r.fail(id, r.tries[id]) {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	var p wire.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("payload %s: %v", body, err)
	}
	r.arrived = append(r.arrived, arrival{id: id, payload: p, sigCount: len(splitSigs(req.Header.Get("webhook-signature")))})
	w.WriteHeader(http.StatusNoContent)
}

func splitSigs(h string) []string {
	var out []string
	for _, s := range splitSpace(h) {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func splitSpace(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// requestTimes returns when each request came.
func (r *receiver) requestTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times...)
}

// got returns a copy of what arrived.
func (r *receiver) got() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.arrived...)
}

func (r *receiver) stats() (requests, badSigs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.badSigs
}

// local is the policy of tests, whose receivers listen on loopback over plain http.
var testPolicy = webhooks.Policy{AllowPrivate: true, AllowHTTP: true}

// setup is a scratch database with a pool as Herald's runtime role.
type setup struct {
	db   *heraldtest.Database
	pool *pgxpool.Pool
	log  *events.Log
	eps  *webhooks.Endpoints
}

func newSetup(t *testing.T) setup {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return setup{db: db, pool: pool, log: events.NewLog(pool), eps: webhooks.NewEndpoints(pool, testPolicy)}
}

// sendStory appends a notification's story: queued, an attempt that fails, one that succeeds.
func (s setup) sendStory(t *testing.T) (string, []string) {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	evs := []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi", Body: "Hi"},
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421"},
		&events.NotificationProcessing{Attempt: 2, Worker: "w"},
		&events.NotificationSent{Attempt: 2, Provider: "smtp"},
	}
	var types []string
	for v, e := range evs {
		if _, err := s.log.Append(context.Background(), id, int64(v), events.Metadata{Actor: "test"}, e); err != nil {
			t.Fatal(err)
		}
		types = append(types, e.EventType())
	}
	return id, types
}

// dispatcher starts a dispatcher named owner with a fast rhythm and cfg's sender settings; it
// stops when the test ends.
func (s setup) dispatcher(t *testing.T, owner string, sc webhooks.SenderConfig) *webhooks.Sender {
	t.Helper()
	return s.dispatcherWith(t, webhooks.DispatcherConfig{Owner: owner, Poll: 20 * time.Millisecond, Lease: 2 * time.Second, Lanes: 4}, sc)
}

// dispatcherWith is dispatcher with the dispatcher's settings dc.
func (s setup) dispatcherWith(t *testing.T, dc webhooks.DispatcherConfig, sc webhooks.SenderConfig) *webhooks.Sender {
	t.Helper()
	owner := dc.Owner
	if sc.Client == nil {
		sc.Client = webhooks.NewClient(testPolicy, webhooks.ClientOptions{Timeout: 5 * time.Second})
	}
	sender := webhooks.NewSender(s.pool, s.eps, sc)
	d := webhooks.NewDispatcher(s.pool, sender, dc)
	heraldtest.RunInBackground(t, "dispatcher "+owner, d.Run)
	return sender
}
