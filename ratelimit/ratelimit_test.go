package ratelimit_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ratelimit"
)

var window = flag.Duration("window", 5*time.Second, "how long TestSharedLimitHoldsAcrossInstances sends; docs/benchmarks.md shows a run of 1m")

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Three limiters, each with its own connection pool as a worker process has, and eight senders
// each, share one provider's rate: together they never get more than the burst plus the rate
// over the whole run, nor, in any one second, more than a second's worth plus the burst; and
// they get close to the rate, so the limit does not starve them either.
func TestSharedLimitHoldsAcrossInstances(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	rate := ratelimit.Rate{N: 100, Per: time.Second}
	const instances, senders = 3, 8

	var (
		mu     sync.Mutex
		grants []time.Time
		per    [instances]int
		wg     sync.WaitGroup
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
		l := ratelimit.New(pool, map[string]ratelimit.Rate{"smtp": rate}, 0, nil, quietLogger())
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for l.Wait(ctx, "smtp", herald.PriorityNormal) == nil {
					mu.Lock()
					grants = append(grants, time.Now())
					per[i]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(started)
	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })

	total := len(grants)
	bound := float64(rate.Burst()) + rate.PerSecond()*elapsed.Seconds()
	if float64(total) > bound {
		t.Errorf("%d sends in %s from %d limiters; the limit allows at most %.0f (burst %d + %s)", total, elapsed, instances, bound, rate.Burst(), rate)
	}
	if floor := 0.8 * rate.PerSecond() * elapsed.Seconds(); float64(total) < floor {
		t.Errorf("%d sends in %s: fewer than %.0f, the limit starves its senders", total, elapsed, floor)
	}
	// Any one second: a second's worth and the burst, with another burst of room for the time a
	// sender takes to note its grant (on a busy machine, grants made apart are noted together).
	worst := 0
	for i, g := range grants {
		j, _ := slices.BinarySearchFunc(grants, g.Add(time.Second), func(a, b time.Time) int { return a.Compare(b) })
		worst = max(worst, j-i)
	}
	if limit := rate.N + 2*rate.Burst(); worst > limit {
		t.Errorf("%d sends within one second; want at most %d", worst, limit)
	}
	for i, n := range per {
		if n == 0 {
			t.Errorf("limiter %d got no token at all", i)
		}
	}
	t.Logf("%s: %d sends (%.1f/s, %.2f%% of the limit %s), most in any second %d, per limiter %v",
		elapsed.Round(time.Millisecond), total, float64(total)/elapsed.Seconds(),
		100*float64(total)/(rate.PerSecond()*elapsed.Seconds()), rate, worst, per)
}

// Within a process, the senders of high priority get the provider's next tokens before those of
// low priority that came earlier.
func TestHighPriorityWaitsLess(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	rate := ratelimit.Rate{N: 4, Per: time.Second} // a token every 250 ms, burst 1
	l := ratelimit.New(db.Pool, map[string]ratelimit.Rate{"sms": rate}, 0, nil, quietLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The bucket starts full: take its burst, so that everyone below waits.
	for range rate.Burst() {
		if err := l.Wait(ctx, "sms", herald.PriorityNormal); err != nil {
			t.Fatal(err)
		}
	}

	const each = 3
	var (
		mu    sync.Mutex
		order []herald.Priority
		wg    sync.WaitGroup
	)
	start := func(p herald.Priority) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Wait(ctx, "sms", p); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, p)
			mu.Unlock()
		}()
	}
	for range each {
		start(herald.PriorityLow)
	}
	heraldtest.Eventually(t, 5*time.Second, "the low ones to wait", func() (bool, error) {
		return l.Waiting("sms") == each, nil
	})
	for range each {
		start(herald.PriorityHigh)
	}
	heraldtest.Eventually(t, 5*time.Second, "every one to wait", func() (bool, error) {
		return l.Waiting("sms") == 2*each, nil
	})
	wg.Wait()
	want := []herald.Priority{"high", "high", "high", "low", "low", "low"}
	if !slices.Equal(order, want) {
		t.Errorf("tokens went to %v; want %v", order, want)
	}

	// A provider with no limit does not wait, nor touch the database.
	if err := l.Wait(ctx, "smtp", herald.PriorityLow); err != nil {
		t.Errorf("unlimited provider: %v", err)
	}
}

// A sender that gives up (its context ends: shutdown) leaves the queue; the others still get
// their tokens.
func TestWaitEndsWithItsContext(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	rate := ratelimit.Rate{N: 1, Per: time.Minute}
	l := ratelimit.New(db.Pool, map[string]ratelimit.Rate{"smtp": rate}, 0, nil, quietLogger())
	if err := l.Wait(context.Background(), "smtp", herald.PriorityNormal); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, "smtp", herald.PriorityHigh); err != context.DeadlineExceeded {
		t.Errorf("a wait past its context: %v, want %v", err, context.DeadlineExceeded)
	}
	if n := l.Waiting("smtp"); n != 0 {
		t.Errorf("%d waiting after the only waiter gave up", n)
	}
}

// A backlog of normal sends does not starve a low one: at 20/s, with eight senders of normal
// priority asking again as soon as they are served, a low one still gets a token within a
// LowerShare-th of the rate's tokens, not never.
func TestLowPriorityProgressesUnderANormalBacklog(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	rate := ratelimit.Rate{N: 20, Per: time.Second}
	l := ratelimit.New(db.Pool, map[string]ratelimit.Rate{"sms": rate}, 0, nil, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l.Wait(ctx, "sms", herald.PriorityNormal) == nil {
			}
		}()
	}
	heraldtest.Eventually(t, 5*time.Second, "the normal backlog", func() (bool, error) {
		return l.Waiting("sms") >= 7, nil
	})
	// Tokens come every 50 ms; the low send is owed one of every LowerShare, so a second is
	// four times what it needs.
	lowCtx, lowCancel := context.WithTimeout(ctx, 4*time.Second)
	defer lowCancel()
	started := time.Now()
	if err := l.Wait(lowCtx, "sms", herald.PriorityLow); err != nil {
		t.Fatalf("the low send under a normal backlog: %v after %s", err, time.Since(started).Round(time.Millisecond))
	}
	t.Logf("the low send waited %s", time.Since(started).Round(time.Millisecond))
}

// A wait lasts at most the limiter's longest wait: then it ends with ErrWaitTooLong and leaves
// the queue.
func TestWaitEndsAfterTheLongestWait(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	const maxWait = 300 * time.Millisecond
	l := ratelimit.New(db.Pool, map[string]ratelimit.Rate{"smtp": {N: 1, Per: time.Hour}}, maxWait, nil, quietLogger())
	if err := l.Wait(context.Background(), "smtp", herald.PriorityHigh); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	err := l.Wait(context.Background(), "smtp", herald.PriorityHigh)
	took := time.Since(started)
	if !errors.Is(err, ratelimit.ErrWaitTooLong) {
		t.Fatalf("a wait for a token an hour away: %v, want ErrWaitTooLong", err)
	}
	if took < maxWait || took > maxWait+5*time.Second {
		t.Errorf("the wait ended after %s; the longest wait is %s", took, maxWait)
	}
	if n := l.Waiting("smtp"); n != 0 {
		t.Errorf("%d waiting after the only waiter gave up", n)
	}
}

// When the shared bucket cannot be reached, a wait does not last for ever: it ends after the
// longest wait, saying why it got no token.
func TestWaitEndsWhenTheBucketIsUnreachable(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close() // every take of tokens fails
	const maxWait = 300 * time.Millisecond
	l := ratelimit.New(pool, map[string]ratelimit.Rate{"smtp": {N: 100, Per: time.Second}}, maxWait, nil, quietLogger())
	err = l.Wait(context.Background(), "smtp", herald.PriorityNormal)
	if !errors.Is(err, ratelimit.ErrWaitTooLong) || !strings.Contains(err.Error(), "taking tokens fails") {
		t.Fatalf("a wait on an unreachable bucket: %v, want ErrWaitTooLong saying taking tokens fails", err)
	}
	if n := l.Waiting("smtp"); n != 0 {
		t.Errorf("%d waiting after the only waiter gave up", n)
	}
}
