package bench

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/wire"
)

// poller watches sampled notifications on the status API until it shows them sent or failed,
// each every interval at most, and all of them within a request budget (rate a second, status
// and events requests together), so that watching never adds more than that to the load.
//
// When the bench has its own sinks a notification is watched only once a sink has received it:
// Herald records NotificationSent after the provider accepted the message, so status cannot say
// sent before then, and polling earlier would only spend the budget.
type poller struct {
	r        *runner
	interval time.Duration
	rate     float64
	// foldCheck, when set, asks the read model directly whether the notification's row says
	// sent; the status API folds the log for notifications the projector has not reached.
	foldCheck func(ctx context.Context, id string) (projected bool, err error)

	mu      sync.Mutex
	queue   pollQueue
	added   int
	settled int
	wake    chan struct{}

	statusGETs, eventsGETs, getErrors atomic.Int64
	seenSent, seenFailed, viaLogFold  atomic.Int64
	gapSum, gaps                      atomic.Int64 // time between two polls of one notification

	acceptToSent  *Histogram
	projectionLag *Histogram
	negativeLag   atomic.Int64
}

// pollItem is a watched notification waiting for its next poll.
type pollItem struct {
	due   time.Time
	i     int
	last  time.Time // previous poll; zero before the first
	polls int
}

// pollQueue is the watched notifications, a heap ordered by when each is next due
// (container/heap's interface).
type pollQueue []pollItem

func (q pollQueue) Len() int           { return len(q) }
func (q pollQueue) Less(a, b int) bool { return q[a].due.Before(q[b].due) }
func (q pollQueue) Swap(a, b int)      { q[a], q[b] = q[b], q[a] }
func (q *pollQueue) Push(x any)        { *q = append(*q, x.(pollItem)) }
func (q *pollQueue) Pop() any          { old := *q; it := old[len(old)-1]; *q = old[:len(old)-1]; return it }

// newPoller makes a poller for r's notifications that asks about each every interval at most,
// and makes rate requests a second at most in all.
func newPoller(r *runner, interval time.Duration, rate float64) *poller {
	return &poller{r: r, interval: interval, rate: rate, wake: make(chan struct{}, 1),
		acceptToSent: NewHistogram(), projectionLag: NewHistogram()}
}

// add starts watching notification i, an interval from now: nothing can have changed yet.
func (p *poller) add(i int) {
	p.mu.Lock()
	heap.Push(&p.queue, pollItem{due: time.Now().Add(p.interval), i: i})
	p.added++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// outstanding returns how many watched notifications are not settled yet.
func (p *poller) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.added - p.settled
}

// run polls until ctx is done, with a few workers sharing the request budget: one request per
// tick of a ticker at rate.
func (p *poller) run(ctx context.Context) {
	budget := time.NewTicker(time.Duration(float64(time.Second) / p.rate))
	defer budget.Stop()
	// Enough workers that a slow answer does not hold the others' polls back; the budget, not
	// their number, bounds the requests.
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.work(ctx, budget.C)
		}()
	}
	wg.Wait()
}

// work polls notifications as they fall due, one request per tick of the shared budget, and
// puts each back in the queue until it settles.
func (p *poller) work(ctx context.Context, budget <-chan time.Time) {
	for {
		// Wait for a notification that is due, then for the budget.
		it, wait := p.next()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-p.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-budget:
		}
		started := time.Now()
		if p.poll(ctx, it, budget) {
			p.mu.Lock()
			p.settled++
			p.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// The next poll is an interval after this one started, not after its answer: a slow
		// API would otherwise stretch the resolution by its latency.
		p.mu.Lock()
		heap.Push(&p.queue, pollItem{due: started.Add(p.interval), i: it.i, last: started, polls: it.polls + 1})
		p.mu.Unlock()
	}
}

// next takes the earliest notification off the queue if it is due; otherwise it returns how
// long until it is (an interval when the queue is empty: add wakes the worker sooner).
func (p *poller) next() (pollItem, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return pollItem{}, p.interval
	}
	if wait := time.Until(p.queue[0].due); wait > 0 {
		return pollItem{}, wait
	}
	return heap.Pop(&p.queue).(pollItem), 0
}

// poll asks the status of it once; it reports whether the notification is settled (terminal,
// or no longer worth asking about). A notification seen sent costs a second request, from the
// same budget, for its projection lag.
func (p *poller) poll(ctx context.Context, it pollItem, budget <-chan time.Time) bool {
	if !it.last.IsZero() {
		p.gapSum.Add(int64(time.Since(it.last)))
		p.gaps.Add(1)
	}
	id := p.r.t.id(it.i)
	status, seen, ok := p.status(ctx, id)
	if !ok {
		return false
	}
	switch status {
	case herald.StatusFailed:
		p.r.t.flags[it.i].Or(flagFailed)
		p.seenFailed.Add(1)
		return true
	case herald.StatusSent:
	default:
		return false
	}
	p.recordSent(ctx, it.i, id, seen)
	select {
	case <-ctx.Done():
		return true
	case <-budget:
	}
	p.recordProjectionLag(ctx, id, seen)
	return true
}

// status asks the status API for notification id's status, and returns it with the time the
// answer came; ok is false when there was no answer to read (counted as an error unless the
// run is ending).
func (p *poller) status(ctx context.Context, id string) (status herald.Status, seen time.Time, ok bool) {
	var st wire.Notification
	p.statusGETs.Add(1)
	code, err := p.r.getJSON(ctx, "/api/v1/notifications/"+id+"/status", &st)
	seen = time.Now()
	if err != nil || code != http.StatusOK {
		if ctx.Err() == nil {
			p.getErrors.Add(1)
		}
		return "", seen, false
	}
	return herald.Status(st.Status), seen, true
}

// recordSent counts notification i, id, as seen sent at seen: the time since its 202, and
// whether the status API said so before the read model did (it folds the log for
// notifications the projector has not reached).
func (p *poller) recordSent(ctx context.Context, i int, id string, seen time.Time) {
	p.r.t.flags[i].Or(flagSent)
	p.seenSent.Add(1)
	accepted := p.r.t.at(p.r.t.acceptedAt[i].Load())
	p.acceptToSent.Record(seen.Sub(accepted))
	if p.foldCheck != nil {
		if projected, err := p.foldCheck(ctx, id); err == nil && !projected {
			p.viaLogFold.Add(1)
		}
	}
}

// recordProjectionLag records, for notification id first seen sent at seen, the time from its
// NotificationSent event's time (PostgreSQL's clock, on this machine) to seen.
func (p *poller) recordProjectionLag(ctx context.Context, id string, seen time.Time) {
	var evs wire.Stream
	p.eventsGETs.Add(1)
	code, err := p.r.getJSON(ctx, "/api/v1/notifications/"+id+"/events", &evs)
	if err != nil || code != http.StatusOK {
		if ctx.Err() == nil {
			p.getErrors.Add(1)
		}
		return
	}
	for k := len(evs.Events) - 1; k >= 0; k-- {
		if evs.Events[k].Type == events.TypeNotificationSent {
			lag := seen.Sub(evs.Events[k].Time)
			if lag < 0 {
				p.negativeLag.Add(1)
			}
			p.projectionLag.Record(lag)
			return
		}
	}
}

// getJSON GETs path from the API and decodes a 200 answer into out.
func (r *runner) getJSON(ctx context.Context, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %w", path, err)
	}
	return resp.StatusCode, nil
}
