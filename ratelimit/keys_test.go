package ratelimit_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ratelimit"
)

func TestKeyLimitArithmetic(t *testing.T) {
	for _, c := range []struct {
		limit             ratelimit.KeyLimit
		span              time.Duration
		processes         int
		lease, mostInSpan int
	}{
		// The default: 500/s, leases of 50; 3 processes over 1 s: 500 held + 500 earned + 3 × 50.
		{ratelimit.KeyLimit{Requests: 500, Window: time.Second}, time.Second, 3, 50, 1150},
		// Over a minute the leases and the burst are small beside the rate.
		{ratelimit.KeyLimit{Requests: 500, Window: time.Second}, time.Minute, 3, 50, 500 + 30000 + 150},
		// A small limit leases one token at a time: the bound is then the bucket's own.
		{ratelimit.KeyLimit{Requests: 5, Window: time.Second}, 2 * time.Second, 3, 1, 5 + 10 + 3},
		{ratelimit.KeyLimit{Requests: 60, Window: time.Minute}, 30 * time.Second, 2, 6, 60 + 30 + 12},
		// One process, no time: what it holds and one burst.
		{ratelimit.KeyLimit{Requests: 100, Window: time.Second}, 0, 1, 10, 110},
	} {
		if got := c.limit.Lease(); got != c.lease {
			t.Errorf("%+v: lease %d, want %d", c.limit, got, c.lease)
		}
		if got := c.limit.MostAllowed(c.span, c.processes); got != c.mostInSpan {
			t.Errorf("%+v over %s with %d processes: at most %d, want %d", c.limit, c.span, c.processes, got, c.mostInSpan)
		}
	}
}

// Three limiters, each with its own connection pool as three API processes have, and several
// clients each, hammer one key: together they let through no more than KeyLimit.MostAllowed over
// the run, and no fewer than the rate would (the limit does not starve the key); and they ask the
// database far less than once a request.
func TestKeyLimitHoldsAcrossInstances(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	limit := ratelimit.KeyLimit{Requests: 100, Window: time.Second}
	const instances, clients = 3, 4

	var (
		mu      sync.Mutex
		allowed []time.Time
		per     [instances]int
		asked   int
		wg      sync.WaitGroup
		queries []*heraldtest.QueryCounter
	)
	ctx, cancel := context.WithTimeout(context.Background(), *window)
	defer cancel()
	started := time.Now()
	for i := range instances {
		pool, err := pgxpool.New(context.Background(), db.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		q := heraldtest.CountQueries(pool)
		queries = append(queries, q)
		l := ratelimit.NewKeys(q, limit, nil, quietLogger())
		for range clients {
			wg.Go(func() {
				// A client asks about every millisecond: several times the rate, without
				// spinning the machine's cores.
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for ctx.Err() == nil {
					ok := l.Allow(ctx, "k1")
					mu.Lock()
					asked++
					if ok {
						allowed = append(allowed, time.Now())
						per[i]++
					}
					mu.Unlock()
					<-tick.C
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(started)
	slices.SortFunc(allowed, func(a, b time.Time) int { return a.Compare(b) })

	total := len(allowed)
	if most := limit.MostAllowed(elapsed, instances); total > most {
		t.Errorf("%d requests allowed in %s by %d limiters; the bound is %d", total, elapsed, instances, most)
	}
	if floor := 0.8 * limit.PerSecond() * elapsed.Seconds(); float64(total) < floor {
		t.Errorf("%d requests allowed in %s: fewer than %.0f, the limit starves the key", total, elapsed, floor)
	}
	if total >= asked {
		t.Errorf("all %d requests allowed: the clients never went over the limit, the test proves nothing", asked)
	}
	// Any one second: the bound over a second, with a lease of room for the time a client takes
	// to note what it was allowed.
	worst := 0
	for i, a := range allowed {
		j, _ := slices.BinarySearchFunc(allowed, a.Add(time.Second), func(a, b time.Time) int { return a.Compare(b) })
		worst = max(worst, j-i)
	}
	if most := limit.MostAllowed(time.Second, instances) + limit.Lease(); worst > most {
		t.Errorf("%d requests allowed within one second; want at most %d", worst, most)
	}
	var n int64
	for _, q := range queries {
		n += q.Count()
	}
	// Each limiter asks once per lease it gets, and, over the limit, once per lease's worth of
	// time: a few hundred questions, against thousands of requests.
	if most := int64(total/limit.Lease()) + int64(instances)*int64(elapsed.Seconds()*limit.PerSecond()/float64(limit.Lease())+2) + 3; n > most {
		t.Errorf("%d queries for %d requests (%d allowed): want at most %d", n, asked, total, most)
	}
	for i, n := range per {
		if n == 0 {
			t.Errorf("limiter %d let no request through", i)
		}
	}
	t.Logf("%s: %d of %d requests allowed (%.1f/s, %.1f%% of %d per %s), bound %d, most in any second %d, per limiter %v, %d queries",
		elapsed.Round(time.Millisecond), total, asked, float64(total)/elapsed.Seconds(),
		100*float64(total)/(limit.PerSecond()*elapsed.Seconds()), limit.Requests, limit.Window,
		limit.MostAllowed(elapsed, instances), worst, per, n)
}

// One key over its limit does not limit another, in the same process or in another one.
func TestKeysDoNotShare(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	limit := ratelimit.KeyLimit{Requests: 20, Window: time.Minute}
	a := ratelimit.NewKeys(db.Pool, limit, nil, quietLogger())
	other, err := pgxpool.New(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	b := ratelimit.NewKeys(other, limit, nil, quietLogger())

	count := func(l *ratelimit.Keys, key string, n int) int {
		ok := 0
		for range n {
			if l.Allow(t.Context(), key) {
				ok++
			}
		}
		return ok
	}
	// Over a minute's window nothing is earned back during the test: the burst is all there is.
	if got := count(a, "busy", 3*limit.Requests); got != limit.Requests {
		t.Errorf("busy key in one process: %d of %d allowed, want %d", got, 3*limit.Requests, limit.Requests)
	}
	if got := count(b, "busy", limit.Requests); got != 0 {
		t.Errorf("busy key in another process, its bucket empty: %d allowed, want 0", got)
	}
	if got := count(a, "calm", limit.Requests/2) + count(b, "calm", limit.Requests); got != limit.Requests {
		t.Errorf("calm key across both processes: %d allowed, want its own %d", got, limit.Requests)
	}
}

// A limiter that cannot reach the database lets the key through, counts it, logs a warning, and
// does not ask again for every request.
func TestKeysFailOpen(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close() // Every statement now fails at once.
	q := heraldtest.CountQueries(pool)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	l := ratelimit.NewKeys(q, ratelimit.KeyLimit{Requests: 1, Window: time.Minute}, ratelimit.NewKeyMetrics(reg),
		slog.New(slog.NewTextHandler(&logs, nil)))
	const n = 10
	for i := range n {
		if !l.Allow(t.Context(), "k") {
			t.Fatalf("request %d refused with the database unreachable, want let through", i)
		}
	}
	if got := q.Count(); got < 1 || got > 2 {
		t.Errorf("%d queries for %d requests within a second of the failure, want 1 (2 if the second turned)", got, n)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "unchecked") {
		t.Errorf("no warning logged: %q", logs.String())
	}
	if got := counterValue(t, reg, "herald_api_rate_limit_unchecked_total"); got != n {
		t.Errorf("herald_api_rate_limit_unchecked_total = %v, want %d", got, n)
	}
}

// counterValue is the value of the counter called name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			sum := 0.0
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// A lease is good for one window: tokens a process still holds after it are not handed out, and
// the next request asks the shared bucket again.
func TestKeyLeaseLapsesAfterAWindow(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	q := heraldtest.CountQueries(db.Pool)
	limit := ratelimit.KeyLimit{Requests: 50, Window: 300 * time.Millisecond} // leases of 5
	l := ratelimit.NewKeys(q, limit, nil, quietLogger())
	if !l.Allow(t.Context(), "k") {
		t.Fatal("the first request of a key refused")
	}
	leased := q.Count()
	for i := range limit.Lease() - 1 {
		if !l.Allow(t.Context(), "k") {
			t.Fatalf("request %d of the lease refused", i+2)
		}
	}
	if n := q.Count(); n != leased {
		t.Fatalf("%d queries for one lease's requests, want %d", n, leased)
	}
	// One token used of the next lease, then the rest left to lapse: once a window has passed
	// since it was taken, the very next request asks the bucket again.
	l.Allow(t.Context(), "k")
	taken := time.Now() // the lease lapses a window after it was taken, at the latest this
	asked := q.Count()
	time.Sleep(time.Until(taken.Add(limit.Window + 10*time.Millisecond)))
	l.Allow(t.Context(), "k")
	if n := q.Count() - asked; n != 1 {
		t.Errorf("%d queries for the first request after the lease's window, want 1: the %d tokens left of it lapsed", n, limit.Lease()-1)
	}
}
