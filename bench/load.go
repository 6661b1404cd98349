package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// runner sends the load, watches it arrive and settles the outcome.
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

// arrived is the sinks' report of a delivery.
func (r *runner) arrived(i int, id string) {
	first, accepted := r.t.deliver(i, id, time.Now())
	if first && accepted {
		r.acceptedDelivered.Add(1)
		if r.sampled(i) {
			r.poller.add(i)
		}
	}
}

// run sends the load, then waits for it to settle, and fills nothing in yet: finish does.
func (r *runner) run(ctx context.Context, rep *Report, say func(string, ...any)) error {
	pollCtx, stopPolling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.poller.run(pollCtx) }()
	go func() { defer wg.Done(); r.report(pollCtx, say) }()
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

// report prints progress every five seconds.
func (r *runner) report(ctx context.Context, say func(string, ...any)) {
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
		late := time.Since(due)
		for {
			m := r.maxStartDelay.Load()
			if int64(late) <= m || r.maxStartDelay.CompareAndSwap(m, int64(late)) {
				break
			}
		}
		if late > 10*time.Millisecond {
			r.lateStarts.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.post(ctx, i)
		}()
	}
	wg.Wait()
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

// body is notification i's request: a small template with two variables.
func body(i int, smsRatio float64) []byte {
	b := make([]byte, 0, 256)
	if isSMS(i, smsRatio) {
		b = append(b, `{"type":"sms","recipient":"`...)
		b = append(b, smsRecipient(i)...)
		b = append(b, `","content":`...)
	} else {
		b = append(b, `{"type":"email","recipient":"`...)
		b = append(b, emailRecipient(i)...)
		b = append(b, `","subject":"Bench {{.n}}","content":`...)
	}
	b = append(b, `"Hello {{.name}}, this is notification {{.n}} of the bench.","variables":{"name":"Ada","n":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, "}}"...)
}

// post sends notification i and records the answer.
func (r *runner) post(ctx context.Context, i int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/api/v1/notifications/send", bytes.NewReader(body(i, r.cfg.SMSRatio)))
	if err != nil {
		r.errs.add("request: "+err.Error(), err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	r.firstPost.CompareAndSwap(0, r.t.since(sent))
	r.posted.Add(1)
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			// A request that timed out or lost its connection took this long too: leaving it out
			// would make the tail look best when requests are failing.
			r.apiLatency.Record(time.Since(sent))
			r.errs.add("transport: "+transportCause(err), err.Error())
		}
		return
	}
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	answered := time.Now()
	r.apiLatency.Record(answered.Sub(sent))
	for {
		last := r.lastAnswer.Load()
		v := r.t.since(answered)
		if v <= last || r.lastAnswer.CompareAndSwap(last, v) {
			break
		}
	}
	if resp.StatusCode != http.StatusAccepted {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(answer, &e)
		kind := strconv.Itoa(resp.StatusCode)
		if e.Error.Code != "" {
			kind += " " + e.Error.Code
		}
		r.errs.add(kind, fmt.Sprintf("%s: %s", resp.Status, e.Error.Message))
		return
	}
	var a struct {
		ID string `json:"id"`
	}
	if readErr != nil {
		r.errs.add("transport: read answer", readErr.Error())
		return
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		r.errs.add("202 without an id", string(answer))
		return
	}
	id, err := uuid.Parse(a.ID)
	if err != nil {
		r.errs.add("202 without an id", string(answer))
		return
	}
	r.accepted.Add(1)
	delivered := r.t.accept(i, id, answered)
	if delivered {
		r.acceptedDelivered.Add(1)
	}
	// With sinks, a notification is watched once it arrived (see poller).
	if r.sampled(i) && (delivered || !r.sinks) {
		r.poller.add(i)
	}
}

// transportCause names the cause of a failed request in a few words.
func transportCause(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	return "other"
}

// drain waits until every accepted notification arrived (with sinks), is terminal and, if
// sampled, was seen so by the poller; or until the drain deadline.
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
			accepted := r.accepted.Load()
			// A notification that failed never arrives.
			arrived := !r.sinks || r.acceptedDelivered.Load() >= accepted-c.failed
			if arrived && c.sent+c.failed >= accepted && c.nonTerminal == 0 && r.poller.outstanding() == 0 {
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
// few at a time, and counts them all.
func (r *runner) sweep(ctx context.Context) (terminalCounts, error) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var st struct {
					Status string `json:"status"`
				}
				r.sweepGETs.Add(1)
				code, err := r.getJSON(ctx, "/api/v1/notifications/"+r.t.id(i)+"/status", &st)
				if err != nil || code != http.StatusOK {
					continue
				}
				switch st.Status {
				case "sent":
					r.t.flags[i].Or(flagSent)
				case "failed":
					r.t.flags[i].Or(flagFailed)
				}
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
	return c, ctx.Err()
}

// errorCounter counts failed POSTs by kind and keeps a few messages.
type errorCounter struct {
	total   atomic.Int64
	mu      sync.Mutex
	byKind  map[string]int64
	samples []string
}

func (e *errorCounter) add(kind, message string) {
	e.total.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byKind[kind]++
	if len(e.samples) < 5 && e.byKind[kind] == 1 {
		if len(message) > 300 {
			message = message[:300] + "…"
		}
		e.samples = append(e.samples, message)
	}
}

// finish computes the report's figures from what the run recorded.
func (r *runner) finish(rep *Report, sinkRefusals int64) {
	defer func() { rep.Finished = time.Now().UTC() }()
	t := r.t
	first := t.at(r.firstPost.Load())
	l := &rep.Load
	l.Requested = r.cfg.N
	l.Posted = r.posted.Load()
	l.Accepted = r.accepted.Load()
	l.Errors = r.errs.total.Load()
	r.errs.mu.Lock()
	l.ErrorsByKind = r.errs.byKind
	l.ErrorSamples = r.errs.samples
	r.errs.mu.Unlock()
	if r.firstPost.Load() != 0 && r.lastAnswer.Load() != 0 {
		l.Seconds = t.at(r.lastAnswer.Load()).Sub(first).Seconds()
	}
	if l.Seconds > 0 {
		l.AcceptedPerSec = float64(l.Accepted) / l.Seconds
	}
	l.APILatency = r.apiLatency.Summary()
	l.MachineCPUBusy = r.cpuBusy
	l.OtherCPUSeconds = r.otherCPU.Seconds()
	if r.cfg.Rate > 0 {
		l.MaxStartDelayMS = float64(r.maxStartDelay.Load()) / float64(time.Millisecond)
		l.LateStarts = r.lateStarts.Load()
	}

	var sampled int64
	if r.sinks {
		d := &Delivery{Unexpected: t.unexpected.Load(), IDMismatches: t.hashMismatch.Load(), SinkRefusals: sinkRefusals}
		lat := NewHistogram()
		byChannel := map[string]*Histogram{"email": NewHistogram(), "sms": NewHistogram()}
		for i := 0; i < t.n; i++ {
			n := int64(t.deliveries[i].Load())
			if !t.accepted(i) {
				d.Unexpected += n
				continue
			}
			if r.sampled(i) {
				sampled++
			}
			if n == 0 {
				d.Undelivered++
				continue
			}
			d.Delivered++
			d.Duplicates += n - 1
			if t.deliveredHash[i].Load() != idHash(t.id(i)) {
				d.IDMismatches++
			}
			took := time.Duration(t.deliveredAt[i].Load() - t.acceptedAt[i].Load())
			lat.Record(took)
			if isSMS(i, r.cfg.SMSRatio) {
				byChannel["sms"].Record(took)
			} else {
				byChannel["email"].Record(took)
			}
		}
		if last := r.t.lastDelivery.Load(); last != 0 && r.firstPost.Load() != 0 {
			d.Seconds = t.at(last).Sub(first).Seconds()
		}
		if d.Seconds > 0 {
			d.DeliveredPerSec = float64(d.Delivered) / d.Seconds
		}
		d.AcceptToDelivery = lat.Summary()
		d.AcceptToDeliveryByChannel = map[string]Summary{}
		for ch, h := range byChannel {
			if h.Count() > 0 {
				d.AcceptToDeliveryByChannel[ch] = h.Summary()
			}
		}
		rep.Delivery = d
	} else {
		for i := 0; i < t.n; i++ {
			if t.accepted(i) && r.sampled(i) {
				sampled++
			}
		}
	}

	p := r.poller
	st := &rep.Status
	st.SampleEvery = r.cfg.Sample
	st.Sampled = sampled
	st.SeenSent, st.SeenFailed = p.seenSent.Load(), p.seenFailed.Load()
	st.NotSeen = sampled - st.SeenSent - st.SeenFailed
	st.StatusGETs, st.EventsGETs, st.GETErrors = p.statusGETs.Load(), p.eventsGETs.Load(), p.getErrors.Load()
	if n := p.gaps.Load(); n > 0 {
		st.MeanPollGapMS = float64(p.gapSum.Load()) / float64(n) / float64(time.Millisecond)
	}
	st.AcceptToSent = p.acceptToSent.Summary()
	st.ProjectionLag = p.projectionLag.Summary()
	st.SentViaLogFold = p.viaLogFold.Load()
	st.SweepGETs = r.sweepGETs.Load()

	o := &rep.Outcome
	o.Accepted = l.Accepted
	o.Sent, o.Failed = r.final.sent, r.final.failed
	o.Settled = r.interrupted == ""
	if o.Settled {
		o.Lost = r.final.nonTerminal + max(0, l.Accepted-r.final.known)
	}
	o.DrainSeconds = r.drained.Seconds()
	o.DrainTimedOut = r.drainTimedOut
	o.Source = "read model"
	if !r.sinks {
		o.Source = "status API"
	}

	if c := rep.Ceiling; c != nil && rep.Delivery != nil && rep.Delivery.DeliveredPerSec > 0 {
		v := rep.Delivery.DeliveredPerSec
		if c.AMQP != nil && c.AMQP.ConsumedPerSec > 0 {
			x := v / c.AMQP.ConsumedPerSec
			c.DeliveredOverAMQP = &x
		}
		if c.PostgresBest > 0 {
			x := v / (c.PostgresBest / 4)
			c.DeliveredOverPGCommits = &x
		}
	}
	r.verdict(rep)
}

// verdict fills in the problems (which fail the run) and the warnings.
func (r *runner) verdict(rep *Report) {
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { rep.Warnings = append(rep.Warnings, fmt.Sprintf(format, args...)) }
	l, o := rep.Load, rep.Outcome
	if r.interrupted != "" {
		// What did not arrive yet says nothing: it had no time to.
		problem("the run stopped after %d of %d POSTs, before the outcome was settled: %s", l.Posted, l.Requested, r.interrupted)
		rep.OK = false
		return
	}
	if l.Accepted == 0 {
		problem("no notification was accepted")
	}
	if o.Lost > 0 {
		problem("%d accepted notifications were neither sent nor failed after %s (lost)", o.Lost, secs(o.DrainSeconds))
	}
	if o.Failed > 0 {
		problem("%d notifications failed, though the sinks accept everything", o.Failed)
	}
	if d := rep.Delivery; d != nil {
		if d.Undelivered > 0 {
			problem("%d accepted notifications never reached a sink", d.Undelivered)
		}
		if d.IDMismatches > 0 {
			problem("%d deliveries carried another notification's id", d.IDMismatches)
		}
		if d.Duplicates > 0 {
			warn("duplicates: %d arrivals beyond a notification's first", d.Duplicates)
		}
		if d.Unexpected > 0 {
			warn("%d deliveries were for notifications whose POST was not answered 202, or for unknown recipients", d.Unexpected)
		}
		if d.SinkRefusals > 0 {
			problem("the SMS sink refused %d requests (credentials or form): Herald is misconfigured", d.SinkRefusals)
		}
	}
	if l.Errors > 0 {
		kinds := make([]string, 0, len(l.ErrorsByKind))
		for k, n := range l.ErrorsByKind {
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		}
		sort.Strings(kinds)
		warn("%d POSTs were not accepted: %v", l.Errors, kinds)
	}
	if st := rep.Status; st.NotSeen > 0 {
		warn("%d sampled notifications were never seen terminal on the status API", st.NotSeen)
	}
	if st := rep.Status; st.SentViaLogFold > 0 {
		warn("%d sampled notifications read sent before the read model did (the API folded the log): the projector was behind", st.SentViaLogFold)
	}
	if c := rep.Ceiling; c != nil && c.Error != "" {
		// The ceiling is context for Herald's figures, not one of them: the load still stands.
		warn("ceiling: %s", c.Error)
	}
	rep.OK = len(rep.Problems) == 0
}
