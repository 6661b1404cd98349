//go:build faults

package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// faultSlowProvider makes some recipients' servers slower than the delivery timeout (2 s): some
// for their first attempt only, some for every attempt. The first are sent on their second
// attempt, the second fail when their attempts run out; everyone else is sent at once.
//
// Duplicates: the SMTP sink, like a real relay that already has the whole message, accepts a
// delayed email after Herald hung up, and Herald, having seen a timeout, tries again. So each
// email attempt that timed out can arrive once more (an always-slow email arrives once per
// attempt although it is failed). The SMS sink drops a request whose client hung up, so SMS are
// not duplicated. This source of duplicates is not among those the README lists (see the report).
func faultSlowProvider(t *testing.T, rabbit *rabbitNode, name string) {
	const (
		n           = 150
		maxAttempts = 4
		slow        = 3 * time.Second // beyond HERALD_DELIVERY_TIMEOUT
	)
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: maxAttempts, Concurrency: 8})
	slowOnce := func(i int) bool { return i%20 == 3 || i%20 == 4 }
	slowAlways := func(i int) bool { return i%50 == 7 || i%50 == 8 }
	var wantOnce, wantAlways int
	for i := range n {
		switch {
		case slowOnce(i) && i%2 == 0:
			c.SMTP.DelayTimes(faultEmail(i), 1, slow)
		case slowOnce(i):
			c.SMS.DelayTimes(faultPhone(i), 1, slow)
		case slowAlways(i) && i%2 == 0:
			c.SMTP.Delay(faultEmail(i), slow)
		case slowAlways(i):
			c.SMS.Delay(faultPhone(i), slow)
		}
		if slowOnce(i) {
			wantOnce++
		}
		if slowAlways(i) {
			wantAlways++
		}
	}
	c.start(t, "worker", "projector", "serve")

	l := startLoad(c.api, n, 20*time.Millisecond)
	l.wait(t)
	r := c.settle(t, l, 120*time.Second, faultBounds{AfterTimeout: true})
	t.Logf("%s: %s", name, r.line(false))
	t.Logf("%s: %d notifications slow once and %d slow always; %d attempts timed out; %d duplicates, each an email the SMTP sink accepted after Herald had given up on its attempt",
		name, wantOnce, wantAlways, r.timedOut, r.duplicates)
	c.showDuplicate(t, r)
	if want := wantOnce + wantAlways*maxAttempts; r.timedOut < want {
		r.problem("%d attempts timed out, want at least %d: the slow recipients were not slow", r.timedOut, want)
	}

	// Each notification ended as its recipient's server made it.
	if r.refused+r.unanswered > 0 || r.unconfirmed > 0 {
		r.problem("%d refused, %d unanswered, %d unconfirmed: a slow provider must not touch the API", r.refused, r.unanswered, r.unconfirmed)
	}
	for _, a := range l.acceptances() {
		var st notificationJSON
		if err := tryGetJSON(c.api+"/api/v1/notifications/"+a.id+"/status", &st); err != nil {
			r.problem("status of %s: %v", a.id, err)
			continue
		}
		want := notificationJSON{Status: "sent", Attempts: 1}
		switch {
		case slowOnce(a.index):
			want.Attempts = 2
		case slowAlways(a.index):
			want = notificationJSON{Status: "failed", Attempts: maxAttempts}
		}
		if st.Status != want.Status || st.Attempts != want.Attempts {
			r.problem("%s (#%d, %s): %s after %d attempts, want %s after %d; its story:\n%s",
				a.id, a.index, a.channel, st.Status, st.Attempts, want.Status, want.Attempts, c.story(context.Background(), a.id))
		}
	}
	if want := n - wantAlways; r.sent != want || r.failed != wantAlways {
		r.problem("%d sent and %d failed, want %d and %d", r.sent, r.failed, want, wantAlways)
	}
	r.check(t)
	c.shutdownAll(t)
}

// faultFlappingProvider makes both providers refuse everything with a temporary error (SMTP 451,
// HTTP 503) for a second, then work for a second, alternately, for as long as the load lasts.
// Every notification ends sent, after as many attempts as its luck needed; a clean refusal
// delivers nothing, so there are no duplicates.
func faultFlappingProvider(t *testing.T, rabbit *rabbitNode, name string) {
	const (
		n           = 300
		maxAttempts = 8
	)
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: maxAttempts, Concurrency: 8})
	c.start(t, "worker", "projector", "serve")

	l := startLoad(c.api, n, 20*time.Millisecond)
	flaps := 0
	for !l.finished() {
		c.SMTP.FailAll(451)
		c.SMS.FailAll(503)
		flaps++
		time.Sleep(time.Second)
		c.SMTP.FailAll(0)
		c.SMS.FailAll(0)
		time.Sleep(time.Second)
	}
	l.wait(t)

	r := c.settle(t, l, 90*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(false))
	t.Logf("%s: the providers were down %d times for 1s; %d attempts failed on it and were retried", name, flaps, r.failedAttempts)
	r.wantAllSent(fmt.Sprintf("with %d attempts each, a flapping provider must not fail any", maxAttempts))
	if r.failedAttempts == 0 {
		r.problem("no attempt failed: the flapping missed the load, so the case proved nothing")
	}
	if r.refused+r.unanswered > 0 {
		r.problem("%d refused, %d unanswered: a flapping provider must not touch the API", r.refused, r.unanswered)
	}
	r.check(t)
	c.shutdownAll(t)
}
