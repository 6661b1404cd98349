package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
)

// Limiter holds sends to each provider's rate.
type Limiter interface {
	// Wait returns once a send to provider may start, or with ctx's error when ctx ends first,
	// or with an error wrapping ErrWaitTooLong when the limiter's longest wait passes first.
	// Among a process's waiters for one provider, higher priorities are served first, and equal
	// ones in the order they came, except that every LowerShare-th token goes to the one waiting
	// longest among the lower priorities, so that none starves. A provider with no limit
	// returns at once.
	Wait(ctx context.Context, provider string, p herald.Priority) error
}

// ErrWaitTooLong is wrapped by the error of a wait that lasted the limiter's longest wait without
// a token: the provider's rate is too low for the sends that wait for it, or the shared bucket
// could not be reached (the error then says why). The send may be tried again later.
var ErrWaitTooLong = errors.New("waited the longest wait for the rate limit")

// LowerShare says how the tokens are shared between priorities while sends of several wait: of
// every LowerShare tokens, one goes to the send waiting longest among those of lower priority
// than the most urgent waiting, the rest in priority order. A backlog of normal sends slows the
// low ones down but does not stop them.
const LowerShare = 5

// DB is what the limiter needs of PostgreSQL: a *pgxpool.Pool.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Buckets limits providers through token buckets kept in PostgreSQL (table rate_limits), one row
// per provider, shared by every process that limits the same provider. A process takes tokens
// only for the waiters it has at that moment, never more than the bucket holds, so tokens are
// not hoarded: a send starts right after its token is taken, and the bucket's bound (Burst +
// T × rate over any window T) holds for the sends of all processes together.
type Buckets struct {
	db      DB
	logger  *slog.Logger
	metrics *Metrics
	maxWait time.Duration
	buckets map[string]*bucket
}

var _ Limiter = (*Buckets)(nil)

// New returns a limiter holding each provider named in rates to its rate, sharing the buckets
// through db; providers not named (or with an unlimited rate) are not limited. A wait lasts at
// most maxWait (0: no bound), and then ends with ErrWaitTooLong. metrics may be nil.
func New(db DB, rates map[string]Rate, maxWait time.Duration, metrics *Metrics, logger *slog.Logger) *Buckets {
	b := &Buckets{db: db, logger: logger, metrics: metrics, maxWait: maxWait, buckets: map[string]*bucket{}}
	for provider, r := range rates {
		if r.Unlimited() {
			continue
		}
		b.buckets[provider] = &bucket{provider: provider, rate: r, owner: b}
	}
	return b
}

// Wait returns once a send to provider may start (see Limiter).
func (b *Buckets) Wait(ctx context.Context, provider string, p herald.Priority) error {
	bk, ok := b.buckets[provider]
	if !ok {
		return nil
	}
	started := time.Now()
	err := bk.wait(ctx, p, b.maxWait)
	if b.metrics != nil && err == nil {
		b.metrics.waited.WithLabelValues(provider).Observe(time.Since(started).Seconds())
	}
	return err
}

// Waiting returns how many of this process's sends wait for provider's rate now.
func (b *Buckets) Waiting(provider string) int {
	bk, ok := b.buckets[provider]
	if !ok {
		return 0
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return bk.waiting()
}

// bucket is one provider's limit in this process: its waiters, by priority, and whether one
// goroutine is taking tokens for them.
type bucket struct {
	provider string
	rate     Rate
	owner    *Buckets

	mu      sync.Mutex
	waiters [3][]*waiter // by herald.Priority.Rank, each in arrival order
	taking  bool
	arrived uint64 // waiters so far: each one's number orders them across priorities
	passed  int    // tokens handed in priority order since one last went to a lower priority
	failing error  // why the last take of tokens failed, nil once one succeeds
}

type waiter struct {
	ready chan struct{} // closed when the waiter has its token
	seq   uint64
}

func (bk *bucket) wait(ctx context.Context, p herald.Priority, maxWait time.Duration) error {
	rank := p.Rank()
	bk.mu.Lock()
	bk.arrived++
	w := &waiter{ready: make(chan struct{}), seq: bk.arrived}
	bk.waiters[rank] = append(bk.waiters[rank], w)
	if !bk.taking {
		bk.taking = true
		go bk.take()
	}
	bk.mu.Unlock()
	var expired <-chan time.Time
	if maxWait > 0 {
		t := time.NewTimer(maxWait)
		defer t.Stop()
		expired = t.C
	}
	var cause error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-expired:
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	select {
	case <-w.ready:
		if cause == nil {
			return nil // granted as the longest wait passed: the send goes
		}
		// Granted as ctx ended: the token is spent unused, which only keeps the provider
		// further under its rate.
		return cause
	default:
	}
	q := bk.waiters[rank]
	for i, x := range q {
		if x == w {
			bk.waiters[rank] = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if cause != nil {
		return cause
	}
	if bk.failing != nil {
		return fmt.Errorf("%w (%s) of %s: taking tokens fails: %w", ErrWaitTooLong, maxWait, bk.provider, bk.failing)
	}
	return fmt.Errorf("%w (%s) of %s: %s sends at most %s", ErrWaitTooLong, maxWait, bk.provider, bk.provider, bk.rate)
}

// next removes the waiter the next token goes to and returns it: the first of the most urgent
// priority that waits, except every LowerShare-th token while lower priorities wait too, which
// goes to the one of them that came first.
func (bk *bucket) next() *waiter {
	top := -1
	for rank, q := range bk.waiters {
		if len(q) > 0 {
			top = rank
			break
		}
	}
	if top < 0 {
		return nil
	}
	lower := -1
	for rank := top + 1; rank < len(bk.waiters); rank++ {
		if q := bk.waiters[rank]; len(q) > 0 && (lower < 0 || q[0].seq < bk.waiters[lower][0].seq) {
			lower = rank
		}
	}
	rank := top
	switch {
	case lower < 0:
		bk.passed = 0
	case bk.passed >= LowerShare-1:
		rank, bk.passed = lower, 0
	default:
		bk.passed++
	}
	w := bk.waiters[rank][0]
	bk.waiters[rank] = bk.waiters[rank][1:]
	return w
}

// waiting counts the waiters.
func (bk *bucket) waiting() int {
	n := 0
	for _, q := range bk.waiters {
		n += len(q)
	}
	return n
}

// take takes tokens from the shared bucket for the waiters there are, hands them out most urgent
// first, and sleeps until the next token is due when there were too few, until no one waits.
func (bk *bucket) take() {
	retry := 50 * time.Millisecond
	for {
		bk.mu.Lock()
		want := bk.waiting()
		if want == 0 {
			bk.taking = false
			bk.mu.Unlock()
			return
		}
		bk.mu.Unlock()

		granted, next, err := bk.owner.takeTokens(bk.provider, bk.rate, want)
		if err != nil {
			// Retried while anyone waits; the waiters themselves give up after the longest
			// wait, with this error, and then the retries stop.
			bk.owner.logger.Warn("taking rate limit tokens failed, retrying", "provider", bk.provider, "error", err, "retry_in", retry)
			bk.mu.Lock()
			bk.failing = err
			bk.mu.Unlock()
			time.Sleep(retry)
			retry = min(2*retry, 2*time.Second)
			continue
		}
		retry = 50 * time.Millisecond
		if granted > 0 && bk.owner.metrics != nil {
			bk.owner.metrics.granted.WithLabelValues(bk.provider).Add(float64(granted))
		}
		bk.mu.Lock()
		bk.failing = nil
		for ; granted > 0; granted-- {
			w := bk.next()
			if w == nil {
				break
			}
			close(w.ready)
		}
		// Tokens left over belong to waiters that gave up meanwhile: they are spent, which only
		// keeps the provider further under its rate.
		short := bk.waiting() > 0
		bk.mu.Unlock()
		if short {
			time.Sleep(next)
		}
	}
}

// takeTokens takes up to want tokens from provider's shared bucket and returns how many it got
// and, when it got fewer than want, how long until the next token is due.
func (b *Buckets) takeTokens(provider string, r Rate, want int) (granted int, next time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rate := r.PerSecond()
	granted, left, err := takeTokens(ctx, b.db, provider, rate, r.Burst(), want)
	if err != nil {
		return 0, 0, fmt.Errorf("rate limit of %s: %w", provider, err)
	}
	if granted < want {
		next = time.Duration((1 - left) / rate * float64(time.Second))
		next = max(next, time.Millisecond)
	}
	return granted, next, nil
}

// takeTokens takes up to want whole tokens from the bucket called name, which earns rate tokens
// a second up to burst, in one statement, and returns how many it got and what the bucket holds
// after. A bucket not there yet is created full first.
func takeTokens(ctx context.Context, db DB, name string, rate float64, burst, want int) (granted int, left float64, err error) {
	for range 2 {
		// The row is locked (FOR UPDATE); the tokens it has now are what it had, plus what the
		// rate added since, up to the burst. Whole tokens only are handed out. The clock is
		// read before the lock is granted: a take that waited for another's lock may hold an
		// instant older than the row's updated_at. It then adds nothing, and updated_at never
		// goes back, or the time in between would be counted twice.
		err = db.QueryRow(ctx, `
WITH now AS (SELECT clock_timestamp() AS t),
cur AS (
	SELECT provider, LEAST($2::float8, tokens + $3::float8 * GREATEST(0, EXTRACT(EPOCH FROM (SELECT t FROM now) - updated_at))) AS avail
	FROM rate_limits WHERE provider = $1 FOR UPDATE
), took AS (
	SELECT provider, avail, LEAST($4::int, floor(avail)::int) AS n FROM cur
)
UPDATE rate_limits r SET tokens = took.avail - took.n, updated_at = GREATEST(r.updated_at, (SELECT t FROM now))
FROM took WHERE r.provider = took.provider
RETURNING took.n, took.avail - took.n`, name, float64(burst), rate, want).Scan(&granted, &left)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
		// The first take from this bucket: a full one. Two processes may race here; the
		// loser's insert does nothing, and both take again.
		if _, err := db.Exec(ctx, `INSERT INTO rate_limits (provider, tokens) VALUES ($1, $2) ON CONFLICT (provider) DO NOTHING`,
			name, float64(burst)); err != nil {
			return 0, 0, fmt.Errorf("create bucket: %w", err)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("take tokens: %w", err)
	}
	return granted, left, nil
}

// Metrics are the limiter's: how long sends waited for their provider's rate, and how many
// tokens were taken.
type Metrics struct {
	waited  *prometheus.HistogramVec
	granted *prometheus.CounterVec
}

// NewMetrics returns the limiter's metrics, registered with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		waited: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_rate_limit_wait_seconds",
			Help:    "Time a send waited for its provider's rate limit before its attempt started.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60},
		}, []string{"provider"}),
		granted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rate_limit_tokens_granted_total",
			Help: "Tokens this process took from the providers' shared rate limit buckets.",
		}, []string{"provider"}),
	}
	reg.MustRegister(m.waited, m.granted)
	return m
}
