package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
)

var (
	priorityBacklog = flag.Int("priority-backlog", 0, "TestPriorityLatencyBehindBacklog: low-priority emails queued before the workers start; 0 skips the measurement (docs/benchmarks.md uses 50000)")
	prioritySamples = flag.Int("priority-samples", 200, "TestPriorityLatencyBehindBacklog: high-priority emails timed in each phase")
)

// postNotification sends body to the API and returns an error unless it is accepted; for
// goroutines, where a test cannot fail at once.
func postNotification(ctx context.Context, baseURL string, body sendRequest) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/notifications/send", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s: %s", resp.Status, raw)
	}
	return nil
}

// quantile is the q-quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// The measurement behind docs/benchmarks.md "Priority lanes": how long a high-priority email
// takes from its request to the SMTP server while the workers are busy with a backlog of
// low-priority ones, against the same on an idle system. It runs only when asked:
//
//	go test ./e2e -run TestPriorityLatencyBehindBacklog -priority-backlog 50000 -v
//
// The high-priority emails are sent one at a time, each timed from just before its request to
// its arrival at the sink. The measurement under load counts only if the backlog is still
// waiting when the last one arrives.
func TestPriorityLatencyBehindBacklog(t *testing.T) {
	if *priorityBacklog == 0 {
		t.Skip("a measurement: run with -priority-backlog N")
	}
	backlog, samples := *priorityBacklog, *prioritySamples
	d := newDeps(t)
	// The API's own request limits would refuse the backlog's load.
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"serve"},
		Env: map[string]string{"HERALD_RATE_LIMIT": "0", "HERALD_ADDRESS_RATE_LIMIT": "0"}})

	// The backlog, queued before any worker runs.
	started := time.Now()
	ctx := context.Background()
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
		first  error
		once   sync.Once
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(backlog); i = next.Add(1) {
				err := postNotification(ctx, c.API, sendRequest{Type: "email", Recipient: fmt.Sprintf("low-%d@bench.test", i%100),
					Subject: "Newsletter", Content: "Hello {{.n}}", Variables: map[string]any{"n": i}, Priority: "low"})
				if err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d low-priority sends refused; the first: %v", failed.Load(), backlog, first)
	}
	t.Logf("%d low-priority emails accepted in %s", backlog, time.Since(started).Round(time.Millisecond))
	waitQueueDepth(t, d.AMQPURL, queueEmail+"_low", backlog, 5*time.Minute)

	timeHigh := func(phase string) []time.Duration {
		var lat []time.Duration
		for i := range samples {
			rcpt := fmt.Sprintf("high-%s-%d@bench.test", phase, i)
			t0 := time.Now()
			send(t, c.API, sendRequest{Type: "email", Recipient: rcpt, Subject: "Your code", Content: "123456", Priority: "high"})
			wctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
			_, err := d.SMTP.Wait(wctx, rcpt, 1)
			cancel()
			if err != nil {
				t.Fatalf("%s: high-priority email %d not delivered: %v", phase, i, err)
			}
			lat = append(lat, time.Since(t0))
			time.Sleep(10 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat
	}

	startHerald(t, heraldOpts{Deps: d, Commands: []string{"worker"}})
	heraldtest.Eventually(t, time.Minute, "the workers to start on the backlog", func() (bool, error) {
		return d.SMTP.Count() > 0, nil
	})
	busyStart, sentBefore := time.Now(), d.SMTP.Count()
	busy := timeHigh("busy")
	waiting := heraldtest.QueueDepth(t, d.AMQPURL, queueEmail+"_low")
	lowRate := float64(d.SMTP.Count()-sentBefore-samples) / time.Since(busyStart).Seconds()
	if waiting == 0 {
		t.Fatalf("the backlog drained before the last high-priority email arrived: the figure is not one under load; use a larger -priority-backlog")
	}

	heraldtest.Eventually(t, 30*time.Minute, "the backlog to drain", func() (bool, error) {
		n := d.SMTP.Count()
		return n >= backlog+samples, fmt.Errorf("%d of %d delivered", n, backlog+samples)
	})
	idle := timeHigh("idle")

	report := func(name string, l []time.Duration) {
		t.Logf("%-28s n=%d p50=%s p90=%s p99=%s max=%s", name, len(l), quantile(l, 0.5).Round(100*time.Microsecond),
			quantile(l, 0.9).Round(100*time.Microsecond), quantile(l, 0.99).Round(100*time.Microsecond), l[len(l)-1].Round(100*time.Microsecond))
	}
	report("high, behind the backlog:", busy)
	report("high, idle:", idle)
	t.Logf("backlog still waiting after the last busy sample: %d of %d; low lane drained at %.0f/s meanwhile", waiting, backlog, lowRate)
}
