//go:build faults

package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/projections"
)

// TestFaults is Herald's fault suite. Each case runs real Herald processes against real
// PostgreSQL and RabbitMQ on loopback, drives a steady load of emails and SMS through the API,
// breaks something in the middle of it, and then holds Herald to the README's promises: every
// accepted notification ends sent or failed and none is lost, the status read model equals a fold
// of the log, and a message reaches its recipient twice only where the README says it can (or,
// for the slow provider, where the case explains why). Each case prints
//
//	<case>: accepted=N sent=N failed=N lost=0 duplicates=D
//
// and finally stops every process with SIGTERM, which must end it with status 0.
//
// RabbitMQ is a node of the suite's own (see rabbitNode), since the suite stops it. The cases run
// one after another: the machine has two cores, and faults that overlap prove nothing. Run it
// with
//
//	go test -tags faults -count=1 -v -run '^TestFaults$' ./e2e/
func TestFaults(t *testing.T) {
	rabbit := startRabbitNode(t)
	cases := []struct {
		name string
		run  func(t *testing.T, rabbit *rabbitNode, name string)
	}{
		{"worker_sigkill", faultWorkerSIGKILL},
		{"rabbitmq_connections_dropped", faultRabbitConnectionsDropped},
		{"rabbitmq_restarted", faultRabbitRestarted},
		{"postgres_connections_terminated", faultPostgresTerminated},
		{"projector_sigkill", faultProjectorSIGKILL},
		{"projector_takeover", faultProjectorTakeover},
		{"slow_provider", faultSlowProvider},
		{"flapping_provider", faultFlappingProvider},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tc.run(t, rabbit, tc.name)
			t.Logf("%s took %s", tc.name, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// faultWorkerSIGKILL kills the only worker while sends are in flight at a slow provider, then
// starts a new one. Everything ends sent. The attempts the dead worker left open are recorded as
// abandoned once their lease (5 s) has passed, and sent again: a message whose provider call had
// succeeded arrives twice. That is the duplicate the README documents ("a worker dies after the
// provider accepted the message and before NotificationSent is recorded"), so duplicates are
// bounded by the abandoned attempts, which are bounded by what one worker holds in flight:
// concurrency × channels.
func faultWorkerSIGKILL(t *testing.T, rabbit *rabbitNode, name string) {
	const (
		n           = 300
		concurrency = 4
		sendDelay   = 200 * time.Millisecond
	)
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: 6, Concurrency: concurrency})
	// Slow enough that a worker always has sends under way.
	c.delayAll(n, sendDelay)
	worker := c.start(t, "worker", "projector", "serve")[0]

	l := startLoad(c.api, n, 20*time.Millisecond)
	l.waitIssued(n / 3)
	var emails, sms int
	for wait := time.Now(); time.Since(wait) < 5*time.Second; time.Sleep(2 * time.Millisecond) {
		if emails, sms = inFlight(c, n); emails > 0 && sms > 0 {
			break
		}
	}
	sigkill(t, worker)
	t.Logf("worker (pid %d) killed with SIGKILL while the sinks had %d emails and %d SMS in flight", worker.PID(), emails, sms)
	time.Sleep(500 * time.Millisecond)
	c.start(t, "worker")
	l.wait(t)

	r := c.settle(t, l, 90*time.Second, faultBounds{AfterAbandoned: true, MaxTotal: concurrency * 2})
	t.Logf("%s: %s", name, r.line(false))
	t.Logf("%s: %d attempts recorded as abandoned after the kill; each may have reached the provider before the worker died, so up to %d duplicates are explained (at most concurrency %d × 2 channels = %d)",
		name, r.abandoned, r.abandoned, concurrency, concurrency*2)
	c.showDuplicate(t, r)
	r.wantAllSent("a killed worker must not fail any")
	if r.abandoned == 0 {
		r.problem("no attempt was recorded as abandoned: the worker was not killed mid-send, so the case proved nothing")
	}
	if r.abandoned > concurrency*2 {
		r.problem("%d attempts were abandoned, more than the %d one worker can have under way", r.abandoned, concurrency*2)
	}
	r.check(t)
	c.shutdownAll(t)
}

// inFlight counts the messages the sinks are in the middle of receiving, of the first n
// notifications: attempts begun and not yet answered.
func inFlight(c *faultCluster, n int) (emails, sms int) {
	for i := range n {
		if i%2 == 0 {
			emails += c.SMTP.Attempts(faultEmail(i))
		} else {
			sms += c.SMS.Attempts(faultPhone(i))
		}
	}
	return emails - c.SMTP.Count(), sms - c.SMS.Count()
}

// faultRabbitConnectionsDropped closes every connection to RabbitMQ twice during the load: the
// relay's, the workers' and the topology's. Commands unacknowledged at the drop are redelivered
// and commands unconfirmed are published again, but a redelivered command whose notification is
// sent is acknowledged without sending: no duplicates.
func faultRabbitConnectionsDropped(t *testing.T, rabbit *rabbitNode, name string) {
	const n = 300
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: 6, Concurrency: 4})
	// Sends take a moment, so that some are under way when the fault strikes.
	c.delayAll(n, 100*time.Millisecond)
	procs := c.start(t, "worker", "projector", "serve")

	l := startLoad(c.api, n, 15*time.Millisecond)
	for _, at := range []int{n / 4, n / 2} {
		l.waitIssued(at)
		closed := rabbit.closeAllConnections(t)
		t.Logf("closed all %d RabbitMQ connections after %d requests", closed, l.issued.Load())
	}
	l.wait(t)

	r := c.settle(t, l, 90*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(false))
	for _, p := range []*process{procs[0], procs[2]} {
		// The connection that declares the queues is one of each process's; the others drop with it.
		if lost := logged(p, "RabbitMQ connection lost"); lost < 2 {
			r.problem("herald %s logged %d lost RabbitMQ connections, want 2: the drops did not reach it", p.Command, lost)
		}
	}
	if r.sent != r.accepted+r.unconfirmed || r.refused+r.unanswered > 0 {
		r.problem("%d sent, %d refused, %d unanswered of %d requests: dropped RabbitMQ connections must neither fail nor refuse anything", r.sent, r.refused, r.unanswered, n)
	}
	r.check(t)
	c.shutdownAll(t)
}

// faultRabbitRestarted stops RabbitMQ altogether during the load, leaves it down, and starts it
// again. The API keeps answering 202 meanwhile: commands wait in the outbox and go out once the
// broker is back; the queues and their persistent messages survive the restart.
func faultRabbitRestarted(t *testing.T, rabbit *rabbitNode, name string) {
	const n = 360
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: 6, Concurrency: 4})
	// Sends take a moment, so that some are under way when the fault strikes.
	c.delayAll(n, 100*time.Millisecond)
	procs := c.start(t, "worker", "projector", "serve")

	l := startLoad(c.api, n, 40*time.Millisecond)
	l.waitIssued(n / 5)
	wentDown, cameBack := rabbit.restart(t, 3*time.Second)
	t.Logf("RabbitMQ stopped at request %d and answered again %s later", n/5, cameBack.Sub(wentDown).Round(100*time.Millisecond))
	l.wait(t)

	var during int
	var slowest time.Duration
	for _, a := range l.acceptances() {
		if a.answered.After(wentDown) && a.answered.Before(cameBack) {
			during++
			slowest = max(slowest, a.took)
		}
	}
	r := c.settle(t, l, 120*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(false))
	t.Logf("%s: %d notifications accepted while RabbitMQ was down, the slowest in %s", name, during, slowest.Round(time.Millisecond))
	if during == 0 {
		r.problem("no notification was accepted while RabbitMQ was down: the outage missed the load")
	}
	for _, p := range []*process{procs[0], procs[2]} {
		if logged(p, "RabbitMQ connection lost") == 0 {
			r.problem("herald %s never logged that it lost RabbitMQ: the restart did not reach it", p.Command)
		}
	}
	if r.refused+r.unanswered > 0 {
		r.problem("%d requests refused and %d unanswered: with RabbitMQ down the API must keep answering 202", r.refused, r.unanswered)
	}
	if slowest > 5*time.Second {
		r.problem("accepting took up to %s while RabbitMQ was down; the API must answer at once", slowest)
	}
	r.wantAllSent("a broker restart must not fail any")
	r.check(t)
	c.shutdownAll(t)
}

// faultPostgresTerminated terminates every PostgreSQL connection of every Herald process four
// times during the load: the API's accepts, the relay's outbox transaction, the workers' appends
// and the projector's batches. Requests caught by a termination may be refused (5xx: not
// accepted, and the client knows); nothing accepted is lost, nothing is applied to the read models
// twice or skipped, and a worker whose append failed retries it, so no message is sent twice.
func faultPostgresTerminated(t *testing.T, rabbit *rabbitNode, name string) {
	const n = 300
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: 6, Concurrency: 4})
	// Sends take a moment, so that some are under way when the fault strikes.
	c.delayAll(n, 100*time.Millisecond)
	procs := c.start(t, "worker", "projector", "serve")

	ctx := context.Background()
	l := startLoad(c.api, n, 20*time.Millisecond)
	var terminated []int
	for i := 1; i <= 4; i++ {
		l.waitIssued(i * n / 5)
		terminated = append(terminated, terminateHerald(ctx, t, c))
	}
	t.Logf("terminated Herald's PostgreSQL connections 4 times during the load: %v backends", terminated)
	l.wait(t)

	r := c.settle(t, l, 90*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(true))
	t.Logf("%s: where the terminations struck: the worker retried recording %d outcomes, the projector read %d batches again, the API failed %d requests",
		name, logged(procs[0], "recording delivery outcome failed, retrying"),
		logged(procs[1], "projection transaction lost; the batch will be read again"), logged(procs[2], "request failed"))
	r.wantAllSent("terminated connections must not fail any")
	r.check(t)
	c.shutdownAll(t)
}

// faultProjectorSIGKILL kills the projector twice while it has a batch half applied — a
// projection transaction with uncommitted writes, seen in pg_stat_activity — and restarts it. The
// second kill comes while it catches up on a backlog, in batches of 100. The read models must
// still be exactly the log, folded: nothing applied twice, nothing skipped.
func faultProjectorSIGKILL(t *testing.T, rabbit *rabbitNode, name string) {
	const n = 300
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: 6, Concurrency: 4})
	projector := c.start(t, "worker", "projector", "serve")[1]

	ctx := context.Background()
	l := startLoad(c.api, n, 20*time.Millisecond)
	killMidBatch := func(when string) {
		t.Helper()
		var seen string
		for wait := time.Now(); time.Since(wait) < 5*time.Second && seen == ""; {
			var err error
			if seen, err = projectionTransaction(ctx, c.DB.Pool, c.DB.Name); err != nil {
				t.Fatalf("look for a projection transaction: %v", err)
			}
		}
		sigkill(t, projector)
		if seen == "" {
			t.Logf("projector killed %s; no projection transaction with uncommitted writes was caught open within 5s", when)
		} else {
			t.Logf("projector killed %s, mid-batch: %s", when, seen)
		}
	}
	l.waitIssued(n / 3)
	killMidBatch("during the load")
	killed := time.Now()
	// A backlog builds up while no projector runs. Meanwhile what was accepted since is read
	// from the log: status and history never say 404 for an accepted notification.
	time.Sleep(time.Second)
	unread := checkReadableWithoutProjector(c, l, killed)
	projector = c.start(t, "projector")[0]
	killMidBatch("while catching up")
	time.Sleep(300 * time.Millisecond)
	c.start(t, "projector")
	l.wait(t)

	r := c.settle(t, l, 90*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(false))
	r.wantAllSent("a projector crash must not fail any")
	r.problems = append(r.problems, unread...)
	r.check(t)
	c.shutdownAll(t)
}

// faultProjectorTakeover runs two projectors under load: the first holds both projections'
// consumer groups, the second stands by without a warning. The active one is killed with SIGKILL;
// the standby must take over within 5 s, and every event is still applied exactly once (status
// and history equal a fold of the log). Neither process may log a serialization failure: the
// standby never runs a batch while the other holds its group. The case prints the take-over time.
func faultProjectorTakeover(t *testing.T, rabbit *rabbitNode, name string) {
	const (
		n        = 300
		takeOver = 5 * time.Second
	)
	c := newFaultCluster(t, rabbit, faultSettings{MaxAttempts: 6, Concurrency: 4})
	active := c.start(t, "worker", "projector", "serve")[1]
	groups := len(projections.All())
	var early []string
	if !waitLogged(active, "consumer group active", groups) {
		early = append(early, fmt.Sprintf("the first projector did not say it runs all %d consumer groups", groups))
	}
	standby := c.start(t, "projector")[0]
	if !waitLogged(standby, "standing by: another process runs this consumer group", groups) {
		early = append(early, "the second projector did not stand by")
	}

	ctx := context.Background()
	offsets := func() map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		rows, err := c.DB.Pool.Query(ctx, `SELECT consumer_group, offset_acked FROM event_log_offsets WHERE consumer_group = ANY($1)`, projectionNames())
		if err != nil {
			t.Fatalf("read the projections' offsets: %v", err)
		}
		defer rows.Close()
		for rows.Next() {
			var g string
			var at int64
			if err := rows.Scan(&g, &at); err != nil {
				t.Fatalf("read the projections' offsets: %v", err)
			}
			out[g] = at
		}
		return out
	}

	l := startLoad(c.api, n, 20*time.Millisecond)
	l.waitIssued(n / 3)
	before := offsets()
	sigkill(t, active)
	killed := time.Now()
	t.Logf("active projector (pid %d) killed with SIGKILL at offsets %v", active.PID(), before)

	var held, advancing time.Duration
	for time.Since(killed) < 3*takeOver && advancing == 0 {
		time.Sleep(10 * time.Millisecond)
		if held == 0 && logged(standby, "consumer group active") == groups {
			held = time.Since(killed)
		}
		now, moved := offsets(), 0
		for g, at := range before {
			if now[g] > at {
				moved++
			}
		}
		if moved == len(before) && held != 0 {
			advancing = time.Since(killed)
		}
	}
	t.Logf("%s: take-over: the standby held every consumer group %s after the SIGKILL, and every projection was advancing again after %s",
		name, held.Round(time.Millisecond), advancing.Round(time.Millisecond))
	l.wait(t)

	r := c.settle(t, l, 90*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(false))
	r.problems = append(r.problems, early...)
	switch {
	case advancing == 0:
		r.problem("the standby did not take over within %s", 3*takeOver)
	case advancing > takeOver:
		r.problem("the standby took %s to take over, more than %s", advancing.Round(time.Millisecond), takeOver)
	}
	r.wantAllSent("a projector crash must not fail any")
	for _, p := range []*process{active, standby} {
		if n := strings.Count(p.Output(), "could not serialize"); n > 0 {
			r.problem("herald %s (pid %d) logged %d serialization failures", p.Command, p.PID(), n)
		}
	}
	for _, line := range strings.Split(standby.Output(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			r.problem("the standby logged: %s", line)
		}
	}
	r.check(t)
	c.shutdownAll(t)
}

// waitLogged waits up to 10 s until p's log has n lines with message msg, and says whether it
// did.
func waitLogged(p *process, msg string, n int) bool {
	for start := time.Now(); logged(p, msg) < n; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			return false
		}
	}
	return true
}

func projectionNames() []string {
	var names []string
	for _, p := range projections.All() {
		names = append(names, p.Name())
	}
	return names
}

// checkReadableWithoutProjector reads the status and history of up to 10 notifications accepted
// since the projector died, which only the log knows of, and returns what was wrong.
func checkReadableWithoutProjector(c *faultCluster, l *load, since time.Time) []string {
	var problems []string
	checked := 0
	for _, a := range l.acceptances() {
		if a.answered.Before(since) || checked == 10 {
			continue
		}
		checked++
		var st notificationJSON
		var h historyJSON
		if err := tryGetJSON(c.api+"/api/v1/notifications/"+a.id+"/status", &st); err != nil {
			problems = append(problems, fmt.Sprintf("with the projector down: %v", err))
		} else if st.ID != a.id || st.Status == "" {
			problems = append(problems, fmt.Sprintf("with the projector down, %s reads as %+v", a.id, st))
		}
		if err := tryGetJSON(c.api+"/api/v1/notifications/"+a.id+"/history", &h); err != nil {
			problems = append(problems, fmt.Sprintf("with the projector down: %v", err))
		} else if len(h.History) == 0 || h.History[0].Event != "NotificationQueued" {
			problems = append(problems, fmt.Sprintf("with the projector down, the history of %s is %+v", a.id, h.History))
		}
	}
	if checked == 0 {
		problems = append(problems, "nothing was accepted while the projector was down: the case proved less than it says")
	}
	return problems
}

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
