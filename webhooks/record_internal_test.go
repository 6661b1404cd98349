package webhooks

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// recordSetup is a scratch database with one endpoint and a sender for it.
func recordSetup(t *testing.T) (*pgxpool.Pool, *Sender, Endpoint) {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	eps := NewEndpoints(pool, Policy{AllowPrivate: true, AllowHTTP: true})
	ep, _, err := eps.Create(context.Background(), NewEndpoint{URL: "http://127.0.0.1:1/hook"}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	return pool, NewSender(pool, eps, SenderConfig{}), ep
}

// posted is an outcome of posting the event at pos, at at: 200 when ok, else 500.
func posted(pos int64, at time.Time, ok bool, trigger string) outcome {
	o := outcome{rec: events.Recorded{ID: uuid.NewString(), Position: pos, Type: events.TypeNotificationSent, StreamID: uuid.NewString()},
		attempt: 1, trigger: trigger, posted: true, at: at}
	o.answer.Status = 500
	if ok {
		o.answer.Status = 200
	}
	return o
}

// TestFailingSinceIgnoresFailuresBeforeTheLastSuccess: records arrive out of order (the live
// delivery, the retries and a replay record apart); a failure older than the last success does
// not make the endpoint failing.
func TestFailingSinceIgnoresFailuresBeforeTheLastSuccess(t *testing.T) {
	pool, s, ep := recordSetup(t)
	ctx := context.Background()
	now := time.Now()
	if _, err := s.recordIn(ctx, ep.ID, []outcome{posted(1, now, true, TriggerLive)}); err != nil {
		t.Fatal(err)
	}
	h, err := s.recordIn(ctx, ep.ID, []outcome{posted(2, now.Add(-time.Hour), false, TriggerReplay)})
	if err != nil {
		t.Fatal(err)
	}
	if h.failingSince != nil {
		t.Errorf("failing since %v, an hour before the last success", h.failingSince)
	}
	// A failure after the success counts; a success older than it does not clear it.
	if h, err = s.recordIn(ctx, ep.ID, []outcome{posted(3, now.Add(time.Minute), false, TriggerLive)}); err != nil || h.failingSince == nil {
		t.Fatalf("after a newer failure: failing since %v (%v)", h.failingSince, err)
	}
	if h, err = s.recordIn(ctx, ep.ID, []outcome{posted(4, now.Add(30*time.Second), true, TriggerReplay)}); err != nil || h.failingSince == nil {
		t.Errorf("a success older than the failure cleared it: failing since %v (%v)", h.failingSince, err)
	}
	var last time.Time
	if err := pool.QueryRow(ctx, `SELECT last_success_at FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&last); err != nil ||
		!last.Equal(now.Add(30*time.Second).Truncate(time.Microsecond)) {
		t.Errorf("last success %v (%v)", last, err)
	}
}

// TestRecordsDoNotDeadlock: the live delivery, the retries and a replay may record the same
// endpoint's events at once, in any order; they wait for each other and never deadlock.
func TestRecordsDoNotDeadlock(t *testing.T) {
	_, s, ep := recordSetup(t)
	now := time.Now()
	for round := 0; round < 40; round++ {
		var forward, backward []outcome
		for p := int64(1); p <= 50; p++ {
			forward = append(forward, posted(p, now, false, TriggerReplay))
			backward = append([]outcome{posted(p, now, false, TriggerRetry)}, backward...)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, outs := range [][]outcome{forward, backward} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.recordIn(context.Background(), ep.ID, outs)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
				t.Fatalf("round %d: %v", round, err)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestClaimTakesHalfOfTheFreeEndpoints: a dispatcher asking takes half of the endpoints nobody
// holds (at least one), so that one alone holds them all within a few rounds and several asking
// together share them out.
func TestClaimTakesHalfOfTheFreeEndpoints(t *testing.T) {
	pool, s, _ := recordSetup(t)
	ctx := context.Background()
	for i := range 7 {
		if _, _, err := s.endpoints.Create(ctx, NewEndpoint{URL: "http://127.0.0.1:1/e" + string(rune('a'+i))}, "tester"); err != nil {
			t.Fatal(err)
		}
	}
	d1 := NewDispatcher(pool, s, DispatcherConfig{Owner: "d1"})
	d2 := NewDispatcher(pool, s, DispatcherConfig{Owner: "d2"})
	var got []int
	for _, d := range []*Dispatcher{d1, d2, d1, d1} {
		held, err := d.claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, len(held))
	}
	// 8 free: d1 takes 4; 4 free: d2 takes 2; 2 free: d1 holds 5; 1 free: d1 holds 6.
	if want := []int{4, 2, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("endpoints held after each ask: %v, want %v", got, want)
	}
}
