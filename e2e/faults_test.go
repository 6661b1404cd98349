//go:build faults

package e2e_test

import (
	"context"
	"testing"
	"time"
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
// (the webhook case adds what reached its endpoint: events=E webhook_lost=0 webhook_duplicates=W)
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
		{"webhook_dispatcher_sigkill", faultWebhookDispatcherSIGKILL},
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
