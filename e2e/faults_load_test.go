//go:build faults || scale

package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultSettings are the knobs a fault case turns; everything else is faultCluster's defaults.
type faultSettings struct {
	// MaxAttempts is HERALD_MAX_ATTEMPTS: enough that a transient fault does not fail anything.
	MaxAttempts int
	// Concurrency is HERALD_WORKER_CONCURRENCY: the attempts one worker runs at once per channel.
	Concurrency int
}

// faultCluster is one fault case's Herald: its own database, RabbitMQ vhost on the suite's node,
// sinks and API key, and every process started for it, killed ones included.
type faultCluster struct {
	*deps
	settings faultSettings
	env      map[string]string
	api      string
	procs    []*process
}

// newFaultCluster creates a case's services; start starts its processes.
func newFaultCluster(t *testing.T, rabbit *rabbitNode, s faultSettings) *faultCluster {
	t.Helper()
	d := newDepsOn(t, rabbit.newVHost(t), "faults")
	return &faultCluster{
		deps:     d,
		settings: s,
		// Short enough that a case takes seconds: an attempt is cut off after 2 s, an attempt
		// without an outcome is presumed abandoned after 5 s, retries back off from 50 ms to 1 s.
		env: map[string]string{
			"HERALD_DELIVERY_TIMEOUT":       "2s",
			"HERALD_ATTEMPT_LEASE":          "5s",
			"HERALD_RETRY_INITIAL_INTERVAL": "50ms",
			"HERALD_RETRY_MAX_INTERVAL":     "1s",
			"HERALD_WORKER_CONCURRENCY":     strconv.Itoa(s.Concurrency),
			"HERALD_PROJECTOR_BATCH_SIZE":   "100",
			"HERALD_RATE_LIMIT":             "0",
		},
	}
}

// start starts one process per name, in order, and waits until each is ready.
func (c *faultCluster) start(t *testing.T, names ...string) []*process {
	t.Helper()
	var started []*process
	for _, name := range names {
		h := startHerald(t, heraldOpts{Deps: c.deps, Commands: []string{name}, MaxAttempts: c.settings.MaxAttempts, Env: c.env})
		if h.API != "" {
			c.api = h.API
		}
		started = append(started, h.procs...)
	}
	c.procs = append(c.procs, started...)
	return started
}

// sigkill kills p at once, as a crash or the OOM killer would: no shutdown, nothing flushed.
func sigkill(t *testing.T, p *process) {
	t.Helper()
	if err := p.Kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Killed on purpose: the harness must not count its exit as a failure.
	p.judged = true
}

// shutdownAll stops every process still running with SIGTERM, newest first, and fails the test
// unless each exits with status 0.
func (c *faultCluster) shutdownAll(t *testing.T) {
	t.Helper()
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		if p.judged {
			continue
		}
		took := p.shutdown(t)
		t.Logf("herald %s (pid %d) stopped on SIGTERM in %s", p.Command, p.PID(), took.Round(time.Millisecond))
	}
	// E2E_KEEP_LOGS=dir keeps every process's log, failed or not: a fault case is read in them.
	for _, p := range c.procs {
		keepLog(p, strings.ReplaceAll(t.Name(), "/", "_")+"-"+filepath.Base(p.Log))
	}
}

// logged counts the lines of p's log with message msg: evidence that a fault reached it.
func logged(p *process, msg string) int {
	return strings.Count(p.Output(), `"msg":"`+msg+`"`)
}

// delayAll makes every recipient of the first n notifications wait d at its sink, so that some
// sends are always under way when a fault strikes.
func (c *faultCluster) delayAll(n int, d time.Duration) {
	for i := range n {
		c.SMTP.Delay(faultEmail(i), d)
		c.SMS.Delay(faultPhone(i), d)
	}
}

// faultEmail and faultPhone are the recipients of the i-th notification of a case: each has its
// own, so sinks can be programmed per notification.
func faultEmail(i int) string { return fmt.Sprintf("fault%04d@faults.test", i) }
func faultPhone(i int) string { return fmt.Sprintf("+1415700%04d", i) }

// faultRequest is the i-th notification of a case's load: emails and SMS alternately.
func faultRequest(i int) sendRequest {
	if i%2 == 0 {
		return sendRequest{
			Type: "email", Recipient: faultEmail(i),
			Subject: "Fault drill {{.n}}", Content: "Hello {{.name}}, this is notification {{.n}}.",
			Variables: map[string]any{"name": "Tester", "n": i},
		}
	}
	return sendRequest{Type: "sms", Recipient: faultPhone(i), Content: "Drill {{.n}}: your code is {{.code}}", Variables: map[string]any{"n": i, "code": 5000 + i}}
}

// acceptance is a notification the API answered 202 for.
type acceptance struct {
	id, channel, recipient string
	index                  int
	answered               time.Time
	took                   time.Duration
}

// load posts a case's notifications at a steady rate from a goroutine, at most loadInFlight
// requests at once, and records how each was answered.
type load struct {
	total  int
	issued atomic.Int64
	done   chan struct{}

	mu         sync.Mutex
	accepted   []acceptance
	refused    int      // 5xx: not accepted, and the client knows it
	unanswered int      // no answer: the client cannot know
	unexpected []string // any other answer, which no fault should cause
	firstNo    []string // the first refusals and failures, for the log
}

const loadInFlight = 32

// loadClient is the test client with a connection pool sized for the load.
var loadClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: withAPIKey{&http.Transport{MaxIdleConns: 2 * loadInFlight, MaxIdleConnsPerHost: 2 * loadInFlight, IdleConnTimeout: 30 * time.Second}},
}

// startLoad posts n notifications (faultRequest 0..n-1) to api, one every interval.
func startLoad(api string, n int, every time.Duration) *load {
	return startLoadOn([]string{api}, n, every)
}

// startLoadOn is startLoad spread over several APIs in turn, as a load balancer would spread it.
func startLoadOn(apis []string, n int, every time.Duration) *load {
	l := &load{total: n, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		slots := make(chan struct{}, loadInFlight)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := range n {
			if i > 0 {
				<-tick.C
			}
			slots <- struct{}{}
			l.issued.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				l.post(apis[i%len(apis)], i)
			}()
		}
		wg.Wait()
	}()
	return l
}

func (l *load) post(api string, i int) {
	req := faultRequest(i)
	body, _ := json.Marshal(req)
	start := time.Now()
	r, err := http.NewRequest(http.MethodPost, api+"/api/v1/notifications/send", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := loadClient.Do(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.unanswered++
		l.note(fmt.Sprintf("#%d: no answer after %s: %v", i, time.Since(start).Round(time.Millisecond), err))
		return
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusAccepted:
		var n notificationJSON
		if err := json.Unmarshal(raw, &n); err != nil || n.ID == "" {
			l.unexpected = append(l.unexpected, fmt.Sprintf("#%d: 202 without an id: %s", i, raw))
			return
		}
		l.accepted = append(l.accepted, acceptance{id: n.ID, channel: req.Type, recipient: req.Recipient, index: i, answered: time.Now(), took: time.Since(start)})
	case resp.StatusCode >= 500:
		l.refused++
		l.note(fmt.Sprintf("#%d: %s %s", i, resp.Status, bytes.TrimSpace(raw)))
	default:
		l.unexpected = append(l.unexpected, fmt.Sprintf("#%d: %s %s", i, resp.Status, bytes.TrimSpace(raw)))
	}
}

func (l *load) note(s string) {
	if len(l.firstNo) < 5 {
		l.firstNo = append(l.firstNo, s)
	}
}

// waitIssued blocks until n requests have been sent (or all of them).
func (l *load) waitIssued(n int) {
	for l.issued.Load() < int64(n) {
		select {
		case <-l.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// finished reports whether every request has been answered or given up on.
func (l *load) finished() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// wait blocks until every request has been answered or given up on.
func (l *load) wait(t *testing.T) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the load of %d notifications did not finish within 2 minutes (%d issued)", l.total, l.issued.Load())
	}
	loadClient.CloseIdleConnections()
}

// acceptances returns a copy of what was accepted so far.
func (l *load) acceptances() []acceptance {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]acceptance(nil), l.accepted...)
}
