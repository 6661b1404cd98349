package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// runner is one run's load: it sends the POSTs (post.go), hears the sinks' arrivals, has the
// poller watch a sample, waits for the rest to settle (drain.go) and turns what it recorded into
// the report's figures (figures.go). The HTTP clients, the sinks and the poller write its
// counters at once, hence the atomics.
type runner struct {
	cfg    Config
	t      *tracker
	client *http.Client
	base   string // the API's base URL
	// sinks is set when the bench's sinks receive Herald's deliveries.
	sinks  bool
	poller *poller
	// terminal counts the accepted notifications by where they ended, as far as known.
	terminal func(ctx context.Context) (terminalCounts, error)

	apiLatency *Histogram
	errs       errorCounter
	posted     atomic.Int64
	accepted   atomic.Int64
	// acceptedDelivered counts notifications both answered 202 and received by a sink.
	acceptedDelivered atomic.Int64
	firstPost         atomic.Int64 // tracker time of the first POST's start
	lastAnswer        atomic.Int64 // tracker time of the last POST's answer
	maxStartDelay     atomic.Int64
	lateStarts        atomic.Int64
	sweepGETs         atomic.Int64
	// benchQueries counts the bench's own queries on the scratch database, to leave their
	// commits out of Herald's.
	benchQueries atomic.Int64
	// cpuBusy is the machine's CPU busy share while the POSTs ran, and otherCPU the CPU time of
	// processes that are neither Herald's, the bench's nor the services' (spawn mode only);
	// benchCPU is the bench's own CPU time from the first POST to the end of the drain.
	cpuBusy  float64
	otherCPU time.Duration
	benchCPU time.Duration
	// pids are Herald's processes and dbName the database, when the bench started them.
	pids   []int
	dbName string

	drained       time.Duration
	drainTimedOut bool
	final         terminalCounts
	// interrupted says why the run stopped before the outcome was settled ("" if it did not).
	interrupted string
}

// terminalCounts is the accepted notifications by state.
type terminalCounts struct {
	sent, failed, nonTerminal int64
	// known is how many notifications the source knows of, terminal or not.
	known int64
}

// newRunner prepares a run of cfg whose times count from start, with an HTTP client that keeps
// a connection for every request that may be in flight, so that none pays for a new one.
func newRunner(cfg Config, start time.Time) *runner {
	conns := max(cfg.Concurrency, cfg.MaxInFlight) + 16
	r := &runner{
		cfg: cfg,
		t:   newTracker(cfg.N, start),
		client: &http.Client{
			Timeout: cfg.RequestTimeout,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        conns,
				MaxIdleConnsPerHost: conns,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
			},
		},
		apiLatency: NewHistogram(),
		errs:       errorCounter{byKind: map[string]int64{}},
	}
	r.poller = newPoller(r, cfg.PollInterval, cfg.PollRate)
	return r
}

// sampled says whether notification i is watched on the status API in this run.
func (r *runner) sampled(i int) bool { return sampled(i, r.cfg.Sample) }

// sampled says whether notification i is watched on the status API: one in every, chosen by a
// hash of i rather than i itself, since the channels alternate with i and every 10th
// notification would be an email.
func sampled(i, every int) bool {
	if every <= 0 {
		return false
	}
	// splitmix64's finaliser: consecutive numbers land far apart.
	z := uint64(i) + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return z%uint64(every) == 0
}

// arrived is the sinks' report of a delivery: a first arrival of an accepted notification counts
// it as delivered and, if it is sampled, starts watching it.
func (r *runner) arrived(i int, id string) {
	first, accepted := r.t.deliver(i, id, time.Now())
	if first && accepted {
		r.acceptedDelivered.Add(1)
		if r.sampled(i) {
			r.poller.add(i)
		}
	}
}

// run sends the load, then waits for it to settle, and fills nothing in yet: finish does. While
// it runs, the poller watches the sample and progress is printed.
func (r *runner) run(ctx context.Context, rep *Report, say func(string, ...any)) error {
	pollCtx, stopPolling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.poller.run(pollCtx) }()
	go func() { defer wg.Done(); r.printProgress(pollCtx, say) }()
	defer func() { stopPolling(); wg.Wait() }()

	mode := fmt.Sprintf("closed loop, %d clients", r.cfg.Concurrency)
	if r.cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop at %g/s", r.cfg.Rate)
	}
	say("sending %d notifications to %s, %s", r.cfg.N, r.base, mode)
	cpu0 := benchCPU()
	defer func() { r.benchCPU = benchCPU() - cpu0 }()
	watch := startCPUWatch(r.pids, r.dbName)
	if r.cfg.Rate > 0 {
		r.openLoop(ctx)
	} else {
		r.closedLoop(ctx)
	}
	r.cpuBusy, r.otherCPU = watch.stop()
	if !r.sinks {
		r.otherCPU = 0 // Herald's processes are unknown: they would count as others
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	say("load sent: %d accepted of %d; waiting up to %s for the rest to arrive", r.accepted.Load(), r.cfg.N, r.cfg.Drain)
	return r.drain(ctx)
}

// printProgress says every five seconds how far the load has gone, so that a long run shows
// whether it is moving.
func (r *runner) printProgress(ctx context.Context, say func(string, ...any)) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var lastAccepted int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		acc := r.accepted.Load()
		line := fmt.Sprintf("%s: posted %d, accepted %d (%.0f/s)", time.Since(r.t.start).Truncate(time.Second), r.posted.Load(), acc, float64(acc-lastAccepted)/5)
		if r.sinks {
			line += fmt.Sprintf(", delivered %d", r.acceptedDelivered.Load())
		}
		line += fmt.Sprintf(", errors %d, watching %d", r.errs.total.Load(), r.poller.outstanding())
		say("%s", line)
		lastAccepted = acc
	}
}

// openLoop starts the POSTs on schedule, whatever the answers, but never more than MaxInFlight
// at once; a POST that waits for a free slot starts late, and is counted.
func (r *runner) openLoop(ctx context.Context) {
	sem := make(chan struct{}, r.cfg.MaxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < r.cfg.N; i++ {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / r.cfg.Rate))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		select {
		case <-ctx.Done():
		case sem <- struct{}{}:
		}
		if ctx.Err() != nil {
			break
		}
		r.recordStartDelay(time.Since(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.post(ctx, i)
		}()
	}
	wg.Wait()
}

// recordStartDelay counts how late a POST of the open loop started against its schedule.
func (r *runner) recordStartDelay(late time.Duration) {
	storeMax(&r.maxStartDelay, int64(late))
	if late > 10*time.Millisecond {
		r.lateStarts.Add(1)
	}
}

// storeMax raises v to x if x is larger, against concurrent writers.
func storeMax(v *atomic.Int64, x int64) {
	for {
		m := v.Load()
		if x <= m || v.CompareAndSwap(m, x) {
			return
		}
	}
}

// closedLoop runs Concurrency clients, each sending its next POST when the last is answered.
func (r *runner) closedLoop(ctx context.Context) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= r.cfg.N {
					return
				}
				r.post(ctx, i)
			}
		}()
	}
	wg.Wait()
}
