package http_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/suppressions"
	"github.com/herald-notify/herald/wire"
)

type poolProofs struct{ pool *pgxpool.Pool }

func (p poolProofs) ProveNotification(ctx context.Context, id string) ([]*ledger.Proof, int, error) {
	return ledger.ProveNotification(ctx, p.pool, id)
}

// GET …/proof answers a bundle for each event a checkpoint covers, each checking out with the
// sealer's public key alone, and counts the events after the checkpoint; an unknown
// notification is 404.
func TestProofOfANotification(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t)).WithProofs(poolProofs{db.Pool})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	api := &testAPI{url: ts.URL, pool: db.Pool}

	n, _ := api.send(t, `{"type":"sms","recipient":"+14155550123","content":"Hi"}`, nil)
	if _, err := log.Append(t.Context(), n.ID, 1, events.Metadata{}, &events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, db, 2)
	_, key, _ := ed25519.GenerateKey(nil)
	if cp, _, err := ledger.NewSealer(db.Pool, key).Seal(t.Context()); err != nil || cp == nil {
		t.Fatalf("seal: %v, %v", cp, err)
	}
	if _, err := log.Append(t.Context(), n.ID, 2, events.Metadata{}, &events.NotificationSent{Attempt: 1, Provider: "sms"}); err != nil {
		t.Fatal(err)
	}

	r := api.do(t, http.MethodGet, "/api/v1/notifications/"+n.ID+"/proof", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := decodeJSON[wire.NotificationProof](t, r)
	if got.NotificationID != n.ID || len(got.Proofs) != 2 || got.Unsealed != 1 {
		t.Fatalf("answer %+v: want 2 proofs and 1 unsealed event of %s", got, n.ID)
	}
	for i, b := range got.Proofs {
		p, err := b.Proof()
		if err != nil {
			t.Fatal(err)
		}
		if b.Event.Version != int64(i+1) || b.Event.StreamID != n.ID {
			t.Errorf("proof %d is of %s version %d", i, b.Event.StreamID, b.Event.Version)
		}
		if err := p.Verify(ledger.NewKeys(key.Public().(ed25519.PublicKey))); err != nil {
			t.Errorf("proof of version %d: %v", i+1, err)
		}
	}

	r = api.do(t, http.MethodGet, "/api/v1/notifications/"+uuid.NewString()+"/proof", "", nil)
	if e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body); r.status != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Errorf("unknown notification: %d %s", r.status, r.body)
	}
}

// A suppression's stream (whose id anyone can compute from a channel and an address) is not a
// notification: its proof is 404, as its status is, even once sealed.
func TestProofOfASuppressionStreamIsNotFound(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t)).WithProofs(poolProofs{db.Pool})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	api := &testAPI{url: ts.URL, pool: db.Pool}

	stream := suppressions.Stream(herald.ChannelEmail, "ada@example.com")
	if _, err := log.Append(t.Context(), stream, 0, events.Metadata{}, &events.RecipientSuppressed{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Cause: "manual"}); err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, db, 1)
	_, key, _ := ed25519.GenerateKey(nil)
	if cp, _, err := ledger.NewSealer(db.Pool, key).Seal(t.Context()); err != nil || cp == nil {
		t.Fatalf("seal: %v, %v", cp, err)
	}
	r := api.do(t, http.MethodGet, "/api/v1/notifications/"+stream+"/proof", "", nil)
	if e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body); r.status != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Errorf("proof of a suppression stream: %d %s, want 404", r.status, r.body)
	}
}

// blockingProofs holds each proof until release is closed, or until its context ends.
type blockingProofs struct {
	started chan struct{}
	release chan struct{}
}

func (b blockingProofs) ProveNotification(ctx context.Context, id string) ([]*ledger.Proof, int, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		return nil, 0, nil
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// Proofs are computed ProofConcurrency at a time: one more is answered 429 with Retry-After,
// and one that outlasts ProofTimeout is abandoned and answered 503.
func TestProofsAreBoundedInNumberAndTime(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	fake := blockingProofs{started: make(chan struct{}, 4), release: make(chan struct{})}
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody, ProofConcurrency: 2, ProofTimeout: 30 * time.Second},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t)).WithProofs(fake)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	api := &testAPI{url: ts.URL, pool: db.Pool}
	path := "/api/v1/notifications/" + uuid.NewString() + "/proof"

	done := make(chan response, 2)
	for range 2 {
		go func() { done <- api.do(t, http.MethodGet, path, "", nil) }()
	}
	for range 2 {
		<-fake.started
	}
	r := api.do(t, http.MethodGet, path, "", nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("a third proof while two run: %d (Retry-After %q) %s, want 429 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	close(fake.release)
	for range 2 {
		if r := <-done; r.status != http.StatusOK {
			t.Errorf("a proof within the limit: %d %s", r.status, r.body)
		}
	}

	slow := blockingProofs{started: make(chan struct{}, 1), release: make(chan struct{})}
	srv = heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody, ProofTimeout: 100 * time.Millisecond},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t)).WithProofs(slow)
	ts2 := httptest.NewServer(srv.Handler())
	t.Cleanup(ts2.Close)
	r = doRequest(t, ts2.URL, http.MethodGet, path, "", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "longer than") {
		t.Errorf("a proof outlasting its timeout: %d %s, want 503", r.status, r.body)
	}
}
