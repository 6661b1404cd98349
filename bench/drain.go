package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/wire"
)

// drain waits until every accepted notification arrived (with sinks), is terminal and, if
// sampled, was seen so by the poller; or until the drain deadline. It leaves the last counts
// in r.final.
func (r *runner) drain(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(r.cfg.Drain)
	defer func() { r.drained = time.Since(start) }()
	// Counting is a query with sinks, but a request per notification without: less often then.
	every := 250 * time.Millisecond
	if !r.sinks {
		every = time.Second
	}
	var lastCheck time.Time
	for {
		if time.Since(lastCheck) >= every {
			lastCheck = time.Now()
			c, err := r.terminal(ctx)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("count terminal notifications: %w", err)
			}
			r.final = c
			if r.settled(c) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			r.drainTimedOut = true
			c, err := r.terminal(ctx)
			if err == nil {
				r.final = c
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// settled says whether nothing more is to come: every accepted notification is terminal, has
// arrived at a sink unless it failed (with sinks), and the poller watches none.
func (r *runner) settled(c terminalCounts) bool {
	accepted := r.accepted.Load()
	// A notification that failed never arrives.
	arrived := !r.sinks || r.acceptedDelivered.Load() >= accepted-c.failed
	return arrived && c.sent+c.failed >= accepted && c.nonTerminal == 0 && r.poller.outstanding() == 0
}

// readModelCounts counts the notifications in the read model by status.
func readModelCounts(ctx context.Context, s *scratch) (terminalCounts, error) {
	var c terminalCounts
	err := s.Pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE status = 'sent'),
		count(*) FILTER (WHERE status = 'failed'),
		count(*) FILTER (WHERE status NOT IN ('sent', 'failed')),
		count(*)
		FROM notification_status`).Scan(&c.sent, &c.failed, &c.nonTerminal, &c.known)
	return c, err
}

// sweep asks the status API about every accepted notification not yet known to be terminal, a
// few at a time, and counts them all: without sinks or a database, the API is the only source.
func (r *runner) sweep(ctx context.Context) (terminalCounts, error) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r.askStatus(ctx, i)
			}
		}()
	}
	for i := 0; i < r.t.n && ctx.Err() == nil; i++ {
		if r.t.accepted(i) && !r.t.terminal(i) {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	return r.trackedCounts(), ctx.Err()
}

// askStatus asks the status API about notification i and marks it in the tracker if it is
// terminal; an error leaves it as it was, to be asked again.
func (r *runner) askStatus(ctx context.Context, i int) {
	var st wire.Notification
	r.sweepGETs.Add(1)
	code, err := r.getJSON(ctx, "/api/v1/notifications/"+r.t.id(i)+"/status", &st)
	if err != nil || code != http.StatusOK {
		return
	}
	switch herald.Status(st.Status) {
	case herald.StatusSent:
		r.t.flags[i].Or(flagSent)
	case herald.StatusFailed:
		r.t.flags[i].Or(flagFailed)
	}
}

// trackedCounts counts the accepted notifications by the state the tracker knows them in.
func (r *runner) trackedCounts() terminalCounts {
	var c terminalCounts
	for i := 0; i < r.t.n; i++ {
		if !r.t.accepted(i) {
			continue
		}
		c.known++
		switch f := r.t.flags[i].Load(); {
		case f&flagSent != 0:
			c.sent++
		case f&flagFailed != 0:
			c.failed++
		default:
			c.nonTerminal++
		}
	}
	return c
}
