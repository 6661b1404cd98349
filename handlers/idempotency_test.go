package handlers_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// The acceptor's idempotency keys run against the real database: what makes them safe is the
// table's primary key and PostgreSQL's row locks.

type idempotencyEnv struct {
	pool     *pgxpool.Pool
	log      *events.Log
	acceptor *handlers.Acceptor
}

func newIdempotencyEnv(t *testing.T) *idempotencyEnv {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	return &idempotencyEnv{pool: db.Pool, log: log,
		acceptor: handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)}
}

// asKey returns a context acting for a new API key named name.
func asKey(t *testing.T, name string) (context.Context, herald.Principal) {
	t.Helper()
	p := herald.Principal{KeyID: uuid.NewString(), Name: name, Scopes: []herald.Scope{herald.ScopeSend}}
	return herald.WithPrincipal(t.Context(), p), p
}

func welcome(key string) handlers.SendRequest {
	return handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Subject: "Hi {{.name}}",
		Content: "Hello {{.name}}!", Variables: map[string]any{"name": "Ada"}, IdempotencyKey: key}
}

// written counts what accepting writes: events, streams, outbox rows, idempotency keys.
type written struct {
	Events, Streams, Outbox, Keys int
}

func (e *idempotencyEnv) written(t *testing.T) written {
	t.Helper()
	var w written
	err := e.pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM event_log), (SELECT count(DISTINCT stream_id) FROM event_log),
		(SELECT count(*) FROM outbox), (SELECT count(*) FROM idempotency_keys)`).Scan(&w.Events, &w.Streams, &w.Outbox, &w.Keys)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (e *idempotencyEnv) accept(t *testing.T, ctx context.Context, req handlers.SendRequest) handlers.Accepted {
	t.Helper()
	a, err := e.acceptor.Accept(ctx, req)
	if err != nil {
		t.Fatalf("accept %+v: %v", req, err)
	}
	return a
}

// wantIdempotencyKeyError fails the test unless err is EINVALID naming the Idempotency-Key.
func wantIdempotencyKeyError(t *testing.T, err error) {
	t.Helper()
	if herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("error %v, want %s", err, herald.EINVALID)
	}
	if _, ok := herald.ErrorFields(err)["Idempotency-Key"]; !ok {
		t.Errorf("fields %v, want Idempotency-Key named", herald.ErrorFields(err))
	}
}

func TestIdempotentRetryReplays(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, p := asKey(t, "shop")
	first := env.accept(t, ctx, welcome("order-1001"))
	if first.Replayed {
		t.Errorf("the first request with a key says it was replayed")
	}
	for i := range 3 {
		again := env.accept(t, ctx, welcome("order-1001"))
		if !again.Replayed {
			t.Errorf("retry %d: not marked replayed", i)
		}
		if diff := cmp.Diff(first.Notification, again.Notification); diff != "" {
			t.Errorf("retry %d answered another notification than the first request (-first +retry):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff(written{Events: 1, Streams: 1, Outbox: 1, Keys: 1}, env.written(t)); diff != "" {
		t.Errorf("written after a request and three retries (-want +got):\n%s", diff)
	}

	// The event names the key that sent it, as data and as the actor.
	recs, err := env.log.Load(t.Context(), first.ID)
	if err != nil {
		t.Fatal(err)
	}
	e, err := recs[0].Event()
	if err != nil {
		t.Fatal(err)
	}
	q, ok := e.(*events.NotificationQueued)
	if !ok {
		t.Fatalf("first event is %T, want NotificationQueued", e)
	}
	if diff := cmp.Diff(&events.APIKeyRef{ID: p.KeyID, Name: "shop"}, q.APIKey); diff != "" {
		t.Errorf("NotificationQueued.APIKey (-want +got):\n%s", diff)
	}
	if recs[0].Metadata.Actor != "apikey:shop" {
		t.Errorf("actor %q, want apikey:shop", recs[0].Metadata.Actor)
	}
}

// The replayed answer is the notification as it was accepted, even once delivery has moved it on.
func TestReplayAnswersTheAcceptedNotification(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	first := env.accept(t, ctx, welcome("k"))
	if _, err := env.log.Append(t.Context(), first.ID, 1, events.Metadata{Actor: "worker:w"},
		&events.NotificationProcessing{Attempt: 1}, &events.NotificationSent{Attempt: 1, Provider: "smtp"}); err != nil {
		t.Fatal(err)
	}
	again := env.accept(t, ctx, welcome("k"))
	if diff := cmp.Diff(first, handlers.Accepted{Notification: again.Notification}); diff != "" || !again.Replayed {
		t.Errorf("replay after delivery: replayed %v (-first +replay):\n%s", again.Replayed, diff)
	}
}

func TestIdempotencyKeyWithAnotherRequest(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	first := env.accept(t, ctx, welcome("k"))
	before := env.written(t)

	tests := []struct {
		name   string
		change func(*handlers.SendRequest)
	}{
		{"recipient", func(r *handlers.SendRequest) { r.Recipient = "grace@example.com" }},
		{"content", func(r *handlers.SendRequest) { r.Content = "Hello again {{.name}}!" }},
		{"subject", func(r *handlers.SendRequest) { r.Subject = "Hello {{.name}}" }},
		{"no subject", func(r *handlers.SendRequest) { r.Subject = "" }},
		{"html", func(r *handlers.SendRequest) { r.HTML = "<p>Hello {{.name}}!</p>" }},
		{"priority", func(r *handlers.SendRequest) { r.Priority = "high" }},
		{"a variable's value", func(r *handlers.SendRequest) { r.Variables = map[string]any{"name": "Grace"} }},
		{"a variable's type", func(r *handlers.SendRequest) { r.Variables = map[string]any{"name": []any{"Ada"}} }},
		{"one variable more", func(r *handlers.SendRequest) { r.Variables = map[string]any{"name": "Ada", "unused": "x"} }},
		{"type", func(r *handlers.SendRequest) {
			*r = handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "Hello {{.name}}!",
				Variables: r.Variables, IdempotencyKey: r.IdempotencyKey}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := welcome("k")
			tt.change(&req)
			a, err := env.acceptor.Accept(ctx, req)
			wantIdempotencyKeyError(t, err)
			if a.ID != "" {
				t.Errorf("a refused request answered notification %s", a.ID)
			}
			if diff := cmp.Diff(before, env.written(t)); diff != "" {
				t.Errorf("a refused request wrote (-before +after):\n%s", diff)
			}
		})
	}

	// The key still answers its own request.
	again := env.accept(t, ctx, welcome("k"))
	if again.ID != first.ID || !again.Replayed {
		t.Errorf("after the refusals the key answers %s (replayed %v), want %s replayed", again.ID, again.Replayed, first.ID)
	}
}

func TestIdempotencyKeysAreScopedPerAPIKey(t *testing.T) {
	env := newIdempotencyEnv(t)
	shop, _ := asKey(t, "shop")
	billing, _ := asKey(t, "billing")
	a := env.accept(t, shop, welcome("shared"))
	b := env.accept(t, billing, welcome("shared"))
	// Without an API key (a server without authentication) is a scope of its own.
	c := env.accept(t, t.Context(), welcome("shared"))
	if a.ID == b.ID || a.ID == c.ID || b.ID == c.ID || a.Replayed || b.Replayed || c.Replayed {
		t.Errorf("one idempotency key under three API keys gave %s %s %s (replayed %v %v %v), want three new notifications",
			a.ID, b.ID, c.ID, a.Replayed, b.Replayed, c.Replayed)
	}
	// Another API key may use it for another request, too.
	other := welcome("shared")
	other.Recipient = "grace@example.com"
	if _, err := env.acceptor.Accept(herald.WithPrincipal(t.Context(), herald.Principal{KeyID: uuid.NewString(), Name: "crm"}), other); err != nil {
		t.Errorf("a third API key reusing the key for another request: %v", err)
	}
	if diff := cmp.Diff(written{Events: 4, Streams: 4, Outbox: 4, Keys: 4}, env.written(t)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	// Each replays its own.
	for _, tt := range []struct {
		ctx  context.Context
		want string
	}{{shop, a.ID}, {billing, b.ID}, {t.Context(), c.ID}} {
		if got := env.accept(t, tt.ctx, welcome("shared")); got.ID != tt.want || !got.Replayed {
			t.Errorf("retry answered %s (replayed %v), want %s", got.ID, got.Replayed, tt.want)
		}
	}
}

// burst sends req n times at once and checks that the answers name one notification, all but
// one replayed; it returns that notification's id.
func (e *idempotencyEnv) burst(t *testing.T, ctx context.Context, n int, req handlers.SendRequest) string {
	t.Helper()
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		answers = make([]handlers.Accepted, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i], errs[i] = e.acceptor.Accept(ctx, req)
		})
	}
	close(start)
	wg.Wait()
	replayed := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if answers[i].ID != answers[0].ID {
			t.Errorf("request %d answered %s, request 0 %s", i, answers[i].ID, answers[0].ID)
		}
		if answers[i].Replayed {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Errorf("%d of %d answers replayed, want %d", replayed, n, n-1)
	}
	return answers[0].ID
}

func TestConcurrentRequestsWithOneKey(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	first := env.burst(t, ctx, 20, welcome("burst"))
	if diff := cmp.Diff(written{Events: 1, Streams: 1, Outbox: 1, Keys: 1}, env.written(t)); diff != "" {
		t.Errorf("written after 20 concurrent requests with one key (-want +got):\n%s", diff)
	}

	// Once the key has expired, a burst of retries re-uses it once.
	env.ageKeys(t, 48*time.Hour, "burst")
	second := env.burst(t, ctx, 10, welcome("burst"))
	if second == first {
		t.Errorf("a burst after the key expired answered the old notification %s", first)
	}
	if diff := cmp.Diff(written{Events: 2, Streams: 2, Outbox: 2, Keys: 1}, env.written(t)); diff != "" {
		t.Errorf("written after a burst with the expired key (-want +got):\n%s", diff)
	}
}

func TestInvalidRequestDoesNotClaimItsKey(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	bad := welcome("k")
	bad.Recipient = "not an address"
	if _, err := env.acceptor.Accept(ctx, bad); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("invalid request: %v, want %s", err, herald.EINVALID)
	}
	if diff := cmp.Diff(written{}, env.written(t)); diff != "" {
		t.Errorf("an invalid request wrote (-want +got):\n%s", diff)
	}
	a := env.accept(t, ctx, welcome("k"))
	if a.Replayed {
		t.Errorf("the first valid request with the key was replayed")
	}
	if diff := cmp.Diff(written{Events: 1, Streams: 1, Outbox: 1, Keys: 1}, env.written(t)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
}

// ageKeys sets the idempotency keys named back by age.
func (e *idempotencyEnv) ageKeys(t *testing.T, age time.Duration, keys ...string) {
	t.Helper()
	tag, err := e.pool.Exec(t.Context(), `UPDATE idempotency_keys SET created_at = now() - $1::interval WHERE key = ANY($2)`,
		age.String(), keys)
	if err != nil {
		t.Fatal(err)
	}
	if int(tag.RowsAffected()) != len(keys) {
		t.Fatalf("aged %d keys, want %d", tag.RowsAffected(), len(keys))
	}
}

func TestExpiredKeyCreatesAgain(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	first := env.accept(t, ctx, welcome("k"))
	env.ageKeys(t, 48*time.Hour, "k")

	second := env.accept(t, ctx, welcome("k"))
	if second.Replayed || second.ID == first.ID {
		t.Fatalf("after the key expired: %s (replayed %v), want a new notification", second.ID, second.Replayed)
	}
	// The key now stands for the new notification.
	third := env.accept(t, ctx, welcome("k"))
	if third.ID != second.ID || !third.Replayed {
		t.Errorf("retry after re-use: %s (replayed %v), want %s replayed", third.ID, third.Replayed, second.ID)
	}
	// An expired key may be used for another request: it is forgotten.
	env.ageKeys(t, 48*time.Hour, "k")
	other := welcome("k")
	other.Recipient = "grace@example.com"
	fourth := env.accept(t, ctx, other)
	if fourth.Replayed || fourth.ID == second.ID {
		t.Errorf("another request with an expired key: %s (replayed %v), want a new notification", fourth.ID, fourth.Replayed)
	}
	if diff := cmp.Diff(written{Events: 3, Streams: 3, Outbox: 3, Keys: 1}, env.written(t)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
}

// hookedBeginner begins transactions on a pool whose statements call after, with their SQL, once
// they have run: a test runs something else at an exact point between two of them.
type hookedBeginner struct {
	pool  *pgxpool.Pool
	after func(sql string)
}

func (b hookedBeginner) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := b.pool.Begin(ctx)
	return hookedTx{Tx: tx, after: b.after}, err
}

type hookedTx struct {
	pgx.Tx
	after func(sql string)
}

func (tx hookedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := tx.Tx.Exec(ctx, sql, args...)
	tx.after(sql)
	return tag, err
}

func (tx hookedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return hookedRow{Row: tx.Tx.QueryRow(ctx, sql, args...), after: func() { tx.after(sql) }}
}

type hookedRow struct {
	pgx.Row
	after func()
}

func (r hookedRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	r.after()
	return err
}

// A repeat request finds its key expired, and the purge deletes the key right after the
// request's first statement on it: the request is answered as a fresh one, never with an error
// (500). The purge runs at that exact point, and the test goes on once it has either finished or
// is waiting for the request's row lock.
func TestExpiredKeyPurgedDuringRepeat(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, p := asKey(t, "shop")
	first := env.accept(t, ctx, welcome("k"))
	env.ageKeys(t, 48*time.Hour, "k")

	purged := make(chan error, 1)
	var once sync.Once
	hooked := handlers.NewAcceptor(hookedBeginner{pool: env.pool, after: func(sql string) {
		if !strings.Contains(sql, "idempotency_keys") {
			return
		}
		once.Do(func() {
			go func() {
				_, err := env.acceptor.PurgeIdempotencyKeys(context.Background(), env.pool)
				purged <- err
			}()
			waitPurgeDoneOrBlocked(t, env.pool, purged)
		})
	}}, env.log, router.NewOutbox(nil), handlers.DefaultLimits)

	again, err := hooked.Accept(ctx, welcome("k"))
	if err != nil {
		t.Fatalf("repeat with an expired key purged meanwhile: %v; want a fresh notification", err)
	}
	if again.Replayed || again.ID == first.ID {
		t.Errorf("repeat with an expired key: %s (replayed %v), want a new notification", again.ID, again.Replayed)
	}
	select {
	case err := <-purged:
		if err != nil {
			t.Errorf("purge: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the purge never finished")
	}
	// The key stands for the new notification, and a retry replays it.
	var holder string
	if err := env.pool.QueryRow(t.Context(), `SELECT notification_id::text FROM idempotency_keys WHERE api_key_id = $1 AND key = 'k'`,
		p.KeyID).Scan(&holder); err != nil {
		t.Fatalf("the key after the repeat and the purge: %v", err)
	}
	if holder != again.ID {
		t.Errorf("the key names %s, want %s", holder, again.ID)
	}
	if retry := env.accept(t, ctx, welcome("k")); !retry.Replayed || retry.ID != again.ID {
		t.Errorf("retry: %s (replayed %v), want %s replayed", retry.ID, retry.Replayed, again.ID)
	}
}

// waitPurgeDoneOrBlocked waits until the purge has sent its result to purged (it is put back) or
// its statement waits for a lock.
func waitPurgeDoneOrBlocked(t *testing.T, pool *pgxpool.Pool, purged chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-purged:
			purged <- err
			return
		default:
		}
		var blocked bool
		err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM idempotency_keys%')`).Scan(&blocked)
		if err != nil {
			t.Errorf("look for the purge: %v", err)
			return
		}
		if blocked {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("the purge neither finished nor waited for a lock within 10s")
}

func TestIdempotencyTTL(t *testing.T) {
	env := newIdempotencyEnv(t)
	hourly := env.acceptor.WithIdempotencyTTL(time.Hour)
	ctx, _ := asKey(t, "shop")
	fresh, err := hourly.Accept(ctx, welcome("fresh"))
	if err != nil {
		t.Fatal(err)
	}
	stale, err := hourly.Accept(ctx, welcome("stale"))
	if err != nil {
		t.Fatal(err)
	}
	env.ageKeys(t, 30*time.Minute, "fresh")
	env.ageKeys(t, 90*time.Minute, "stale")

	for _, tt := range []struct {
		key          string
		first        string
		wantReplayed bool
	}{{"fresh", fresh.ID, true}, {"stale", stale.ID, false}} {
		a, err := hourly.Accept(ctx, welcome(tt.key))
		if err != nil {
			t.Fatal(err)
		}
		if a.Replayed != tt.wantReplayed || (a.ID == tt.first) != tt.wantReplayed {
			t.Errorf("key %s with a TTL of 1h: %s replayed %v; want replayed %v (first answer %s)", tt.key, a.ID, a.Replayed, tt.wantReplayed, tt.first)
		}
	}
	// WithIdempotencyTTL made a copy: the original still remembers for a day.
	env.ageKeys(t, 2*time.Hour, "fresh")
	if a := env.accept(t, ctx, welcome("fresh")); !a.Replayed || a.ID != fresh.ID {
		t.Errorf("the default TTL forgot a key of 2 hours: %s replayed %v", a.ID, a.Replayed)
	}
}

func TestPurgeIdempotencyKeys(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	for _, k := range []string{"new", "day-old", "week-old", "almost"} {
		env.accept(t, ctx, welcome(k))
	}
	env.ageKeys(t, 25*time.Hour, "day-old")
	env.ageKeys(t, 7*24*time.Hour, "week-old")
	env.ageKeys(t, 23*time.Hour, "almost")

	n, err := env.acceptor.PurgeIdempotencyKeys(t.Context(), env.pool)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("purged %d keys, want 2", n)
	}
	rows, err := env.pool.Query(t.Context(), `SELECT key FROM idempotency_keys ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"almost", "new"}, left); diff != "" {
		t.Errorf("keys left after the purge (-want +got):\n%s", diff)
	}
	// The notifications stay: only the keys are forgotten.
	if w := env.written(t); w.Streams != 4 {
		t.Errorf("%d notifications after the purge, want 4", w.Streams)
	}

	// A shorter TTL purges more.
	n, err = env.acceptor.WithIdempotencyTTL(12*time.Hour).PurgeIdempotencyKeys(t.Context(), env.pool)
	if err != nil || n != 1 {
		t.Errorf("purge with a TTL of 12h: %d, %v; want 1 (the key of 23 hours)", n, err)
	}
}

func TestMalformedIdempotencyKey(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	for name, key := range map[string]string{
		"newline":        "order\n1",
		"tab":            "order\t1",
		"NUL":            "order\x001",
		"DEL":            "order\x7f",
		"non-ASCII":      "bestellung-ü",
		"256 characters": strings.Repeat("k", 256),
		"300 characters": strings.Repeat("k", 300),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := env.acceptor.Accept(ctx, welcome(key))
			wantIdempotencyKeyError(t, err)
		})
	}
	if diff := cmp.Diff(written{}, env.written(t)); diff != "" {
		t.Errorf("malformed keys wrote (-want +got):\n%s", diff)
	}
	for _, key := range []string{strings.Repeat("k", 255), "with spaces and ~!@#$%^&*()", "x"} {
		if _, err := env.acceptor.Accept(ctx, welcome(key)); err != nil {
			t.Errorf("key %q: %v, want it accepted", key, err)
		}
	}
}
