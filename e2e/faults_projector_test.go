//go:build faults || scale

package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/projections"
)

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
