package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/ratelimit"
)

// Two worker processes share HERALD_SMTP_RATE: 30 emails at 10/s reach the SMTP server no
// faster than the rate allows (the bucket starts with its burst, one token, so the 30th cannot
// arrive before 2.9 s), and no slower than they should either. The workers' metrics count the
// tokens they took.
func TestProviderRateLimitAcrossWorkers(t *testing.T) {
	t.Parallel()
	d := newDeps(t)
	limited := map[string]string{"HERALD_SMTP_RATE": "10/s"}
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"serve", "worker", "worker"},
		EnvFor: map[string]map[string]string{"worker": limited}})

	const n = 30
	started := time.Now()
	for i := range n {
		send(t, c.API, sendRequest{Type: "email", Recipient: fmt.Sprintf("paced-%d@example.com", i), Content: "hi"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		if _, err := d.SMTP.Wait(ctx, fmt.Sprintf("paced-%d@example.com", i), 1); err != nil {
			t.Fatalf("email %d not delivered: %v", i, err)
		}
	}
	took := time.Since(started)
	if min := 2900 * time.Millisecond; took < min {
		t.Errorf("%d emails at 10/s arrived in %s; the limit allows no less than %s", n, took, min)
	}
	if took > 20*time.Second {
		t.Errorf("%d emails at 10/s took %s: the limit held them far longer than it should", n, took)
	}
	granted := 0.0
	for _, p := range c.procs {
		if p.Command == "worker" {
			granted += metric(t, p.URL+"/metrics", "herald_rate_limit_tokens_granted_total", map[string]string{"provider": "smtp"})
		}
	}
	if granted < n {
		t.Errorf("the workers' metrics count %v tokens taken for %d emails", granted, n)
	}
	t.Logf("%d emails through two workers at 10/s in %s; %v tokens taken", n, took.Round(time.Millisecond), granted)
}

// Three serve processes hold one API key to HERALD_RATE_LIMIT together: clients hammering all
// three with the key for a few seconds get no more 202s than ratelimit.KeyLimit.MostAllowed
// allows (a window's burst, the rate over the run and a lease per process), where three limits of
// their own would have let about three times the rate through. The rest are 429 with Retry-After.
func TestAPIKeyRateLimitAcrossServeProcesses(t *testing.T) {
	t.Parallel()
	limit := ratelimit.KeyLimit{Requests: 20, Window: time.Second}
	c := startHerald(t, heraldOpts{Commands: []string{"serve", "serve", "serve"},
		Env: map[string]string{"HERALD_RATE_LIMIT": strconv.Itoa(limit.Requests), "HERALD_RATE_LIMIT_WINDOW": limit.Window.String()}})
	var apis []string
	for _, p := range c.procs {
		apis = append(apis, p.URL)
	}

	const clientsPerProcess, run = 2, 3 * time.Second
	var (
		mu               sync.Mutex
		accepted, denied int
		perProcess       = make([]int, len(apis))
		wg               sync.WaitGroup
	)
	started := time.Now()
	for i, api := range apis {
		for range clientsPerProcess {
			wg.Go(func() {
				// A request every 5 ms per client: 1,200 a second in all, 60 times the limit.
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for time.Since(started) < run {
					a, err := tryRequest(http.MethodPost, api+"/api/v1/notifications/send", accessEmail, nil)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					switch a.status {
					case http.StatusAccepted:
						accepted++
						perProcess[i]++
					case http.StatusTooManyRequests:
						denied++
						if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
							t.Errorf("429 with Retry-After %q, want a number of seconds", a.header.Get("Retry-After"))
						}
					default:
						t.Errorf("send: %d %s", a.status, a.body)
					}
					mu.Unlock()
					<-tick.C
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(started)
	most := limit.MostAllowed(elapsed, len(apis))
	if accepted > most {
		t.Errorf("%d sends accepted in %s through %d serve processes with a limit of %d per %s: the bound is %d",
			accepted, elapsed, len(apis), limit.Requests, limit.Window, most)
	}
	if floor := int(0.8 * limit.PerSecond() * elapsed.Seconds()); accepted < floor {
		t.Errorf("%d sends accepted in %s: fewer than %d, the limit starves the key", accepted, elapsed, floor)
	}
	if denied == 0 {
		t.Errorf("no 429 among %d sends", accepted)
	}
	// The processes leased their tokens from the shared bucket.
	takes := 0.0
	for _, api := range apis {
		takes += metric(t, api+"/metrics", "herald_api_rate_limit_takes_total", map[string]string{"result": "granted"})
	}
	if min := float64(accepted / limit.Lease()); takes < min {
		t.Errorf("the processes leased %v times for %d accepted sends, want at least %v", takes, accepted, min)
	}
	t.Logf("%s: %d accepted (per process %v), %d limited; bound %d; three limits of %d per %s of their own would allow about %d; %v leases",
		elapsed.Round(time.Millisecond), accepted, perProcess, denied, most, limit.Requests, limit.Window,
		len(apis)*(limit.Requests+int(limit.PerSecond()*elapsed.Seconds())), takes)
}
