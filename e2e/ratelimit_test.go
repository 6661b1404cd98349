package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"
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
