//go:build faults || scale

package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// faultBounds says which duplicate deliveries a case may show. With neither flag set, a
// notification reaches its sink at most once (exactly once if it is sent): that is the case for
// every fault the README does not name as a source of duplicates.
type faultBounds struct {
	// AfterAbandoned allows one more delivery per attempt recorded as abandoned: a worker that
	// dies after the provider accepted a message and before NotificationSent was recorded leaves
	// an open attempt; after the lease another worker records it abandoned and sends again
	// (README, "Delivery is at least once").
	AfterAbandoned bool
	// AfterTimeout allows one more delivery per attempt that timed out: a provider slower than
	// the delivery timeout may still accept the message after Herald gave up on the attempt,
	// which Herald then retries.
	AfterTimeout bool
	// MaxTotal, if positive, also bounds the case's duplicates in total.
	MaxTotal int
}

// faultReport is what a case ended with: how the load was answered, how every notification
// ended, what reached the sinks, and every broken promise found on the way.
type faultReport struct {
	accepted, refused, unanswered int
	// unconfirmed counts notifications in the log whose request got no 202: accepted by
	// PostgreSQL, but the answer was lost (the client timed out or the connection was cut).
	unconfirmed        int
	sent, failed, lost int
	duplicates         int
	// failedAttempts counts attempts recorded as failed (DeliveryAttemptFailed or
	// NotificationFailed); abandoned and timedOut those among them that were abandoned or that
	// timed out.
	failedAttempts, abandoned, timedOut int
	// duplicated lists the notifications that reached their sink more than once.
	duplicated []string
	problems   []string
}

func (r *faultReport) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// wantAllSent notes a problem unless every notification accepted (or unconfirmed) ended sent; why
// says what the case's fault must not do.
func (r *faultReport) wantAllSent(why string) {
	if r.sent != r.accepted+r.unconfirmed {
		r.problem("%d of %d notifications sent; %s", r.sent, r.accepted+r.unconfirmed, why)
	}
}

// line is the case's summary, after its name: accepted=N sent=N failed=N lost=N duplicates=N,
// and refused=N when refusals are part of the case or happened.
func (r *faultReport) line(withRefused bool) string {
	s := fmt.Sprintf("accepted=%d sent=%d failed=%d lost=%d duplicates=%d", r.accepted, r.sent, r.failed, r.lost, r.duplicates)
	if withRefused || r.refused > 0 {
		s += fmt.Sprintf(" refused=%d", r.refused)
	}
	if r.unanswered > 0 {
		s += fmt.Sprintf(" unanswered=%d", r.unanswered)
	}
	return s
}

// check fails the test with every problem found.
func (r *faultReport) check(t *testing.T) {
	t.Helper()
	for _, p := range r.problems {
		t.Error(p)
	}
}

// abandonedPrefix starts the error Herald records for an attempt whose worker vanished
// (handlers.abandonedError).
const abandonedPrefix = "attempt abandoned"

// timedOut reports whether a recorded attempt error is the attempt's deadline running out.
func timedOut(errText string) bool {
	return strings.Contains(errText, "deadline exceeded") || strings.Contains(strings.ToLower(errText), "timeout")
}

// terminalEvents end a notification's story.
var terminalEvents = map[string]bool{events.TypeNotificationSent: true, events.TypeNotificationFailed: true, events.TypeNotificationDiscarded: true}

// streamSummary is a stream as the log holds it: its first and last event and its version.
type streamSummary struct {
	version     int64
	first, last string
}

// logStreams returns the notifications' streams of the log; the webhook endpoints' streams are
// left out, as the read models leave them out.
func logStreams(ctx context.Context, db events.Querier) (map[string]streamSummary, error) {
	rows, err := db.Query(ctx, `SELECT stream_id::text, stream_version, event_type FROM event_log
		WHERE event_type = ANY($1) ORDER BY stream_id, stream_version`, events.NotificationTypes)
	if err != nil {
		return nil, fmt.Errorf("read the log: %w", err)
	}
	out := map[string]streamSummary{}
	var (
		id, typ string
		version int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &version, &typ}, func() error {
		s, ok := out[id]
		if !ok {
			s.first = typ
		}
		s.version, s.last = version, typ
		out[id] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the log: %w", err)
	}
	return out, nil
}

// settle waits (up to deadline) until every notification the load got accepted is sent or
// failed, the sinks are quiet and the read models have caught up with the log; then it checks
// each promise of the README and counts what the case line prints.
func (c *faultCluster) settle(t *testing.T, l *load, deadline time.Duration, bounds faultBounds) *faultReport {
	t.Helper()
	r := reportOf(t, l)
	accepted := l.acceptances()
	streams := c.waitFinal(t, len(accepted), deadline)
	c.accountFor(t, r, accepted, streams, deadline)
	c.waitSinksQuiet()
	c.waitProjections(t, r)
	c.compareWithLog(context.Background(), t, r, streams, bounds)
	c.checkQueues(t, r)
	return r
}

// reportOf starts a case's report with how the load's requests were answered.
func reportOf(t *testing.T, l *load) *faultReport {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &faultReport{accepted: len(l.accepted), refused: l.refused, unanswered: l.unanswered}
	for _, u := range l.unexpected {
		r.problem("unexpected answer to a request: %s", u)
	}
	if len(l.firstNo) > 0 {
		t.Logf("requests not accepted (the first %d): %s", len(l.firstNo), strings.Join(l.firstNo, "; "))
	}
	return r
}

// waitFinal waits until the log holds at least accepted streams and every stream in it ends sent
// or failed, or deadline passes, and returns the streams.
func (c *faultCluster) waitFinal(t *testing.T, accepted int, deadline time.Duration) map[string]streamSummary {
	t.Helper()
	start := time.Now()
	for {
		streams, err := logStreams(context.Background(), c.DB.Pool)
		if err != nil {
			t.Fatal(err)
		}
		open := 0
		for _, s := range streams {
			if !terminalEvents[s.last] {
				open++
			}
		}
		if open == 0 && len(streams) >= accepted {
			t.Logf("every notification was final %s after the load ended", time.Since(start).Round(100*time.Millisecond))
			return streams
		}
		if time.Since(start) > deadline {
			t.Logf("%d notifications were still open %s after the load ended", open, deadline)
			return streams
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// accountFor checks that every accepted notification is in the log and final, and counts the
// lost ones and those in the log whose request got no 202 (unconfirmed), which must be final too.
func (c *faultCluster) accountFor(t *testing.T, r *faultReport, accepted []acceptance, streams map[string]streamSummary, deadline time.Duration) {
	t.Helper()
	ctx := context.Background()
	acceptedIDs := map[string]bool{}
	var lostIDs []string
	for _, a := range accepted {
		acceptedIDs[a.id] = true
		s, ok := streams[a.id]
		switch {
		case !ok:
			r.problem("%s (%s to %s) was answered 202 but has no events in the log", a.id, a.channel, a.recipient)
			lostIDs = append(lostIDs, a.id)
		case s.first != events.TypeNotificationQueued:
			r.problem("%s starts with %s, want NotificationQueued", a.id, s.first)
		case !terminalEvents[s.last]:
			lostIDs = append(lostIDs, a.id)
		}
	}
	r.lost = len(lostIDs)
	for i, id := range lostIDs {
		if i == 3 {
			r.problem("… and %d more notifications not final", len(lostIDs)-3)
			break
		}
		r.problem("%s is not final after %s; its story:\n%s", id, deadline, c.story(ctx, id))
	}
	for id, s := range streams {
		if !acceptedIDs[id] {
			r.unconfirmed++
			if !terminalEvents[s.last] {
				r.problem("%s (accepted without the client knowing) is not final: it ends with %s", id, s.last)
			}
		}
	}
	if r.unconfirmed > 0 {
		t.Logf("%d notifications are in the log although their request got no 202 (the answer was lost)", r.unconfirmed)
	}
}

// waitSinksQuiet waits, up to 10 s, until the sinks have received nothing for 1.5 s: a message
// may land at the SMTP sink a moment after Herald gave up on it.
func (c *faultCluster) waitSinksQuiet() {
	quietSince, last := time.Now(), -1
	for wait := time.Now(); time.Since(wait) < 10*time.Second; time.Sleep(100 * time.Millisecond) {
		if n := c.SMTP.Count() + c.SMS.Count(); n != last {
			quietSince, last = time.Now(), n
		}
		if time.Since(quietSince) >= 1500*time.Millisecond {
			return
		}
	}
}

// checkQueues checks that nothing is left to deliver: the work queues drain, and the poison
// queue holds the commands of the failed notifications (a command parked twice is allowed: a
// redelivered command of a failed notification is parked again) and nothing else.
func (c *faultCluster) checkQueues(t *testing.T, r *faultReport) {
	t.Helper()
	for _, q := range append(slices.Clone(workQueues), queuePoison) {
		var depth int
		for wait := time.Now(); ; time.Sleep(200 * time.Millisecond) {
			depth = heraldtest.QueueDepth(t, c.AMQPURL, q)
			ok := depth == 0
			if q == queuePoison {
				ok = depth >= r.failed && (r.failed > 0 || depth == 0)
			}
			if ok {
				break
			}
			if time.Since(wait) > 20*time.Second {
				r.problem("queue %s holds %d commands when %d notifications are failed and the rest sent", q, depth, r.failed)
				break
			}
		}
	}
}

// showDuplicate logs the story of one duplicated notification, as evidence of where its
// duplicate came from.
func (c *faultCluster) showDuplicate(t *testing.T, r *faultReport) {
	t.Helper()
	if len(r.duplicated) > 0 {
		t.Logf("for instance %s:\n%s", r.duplicated[0], c.story(context.Background(), r.duplicated[0]))
	}
}

// waitProjections waits until notification_status holds every stream at its last version and
// notification_history holds every event (of the notifications: the read models leave the
// webhook endpoints' streams out).
func (c *faultCluster) waitProjections(t *testing.T, r *faultReport) {
	t.Helper()
	const q = `
WITH n AS (SELECT stream_id, stream_version FROM event_log WHERE event_type = ANY($1))
SELECT (SELECT count(*) FROM n),
       (SELECT count(DISTINCT stream_id) FROM n),
       (SELECT count(*) FROM notification_history),
       (SELECT count(*) FROM notification_status s
          JOIN (SELECT stream_id, max(stream_version) AS v FROM n GROUP BY stream_id) l
            ON l.stream_id = s.notification_id AND l.v = s.version)`
	var evs, streams, history, current int
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if err := c.DB.Pool.QueryRow(context.Background(), q, events.NotificationTypes).Scan(&evs, &streams, &history, &current); err != nil {
			t.Fatalf("compare the read models with the log: %v", err)
		}
		if history == evs && current == streams {
			return
		}
		if time.Since(start) > 30*time.Second {
			r.problem("after 30s the read models trail the log: %d of %d events in notification_history, %d of %d notifications current in notification_status",
				history, evs, current, streams)
			return
		}
	}
}

// projectionTransaction returns a description of a projection transaction holding uncommitted
// writes (a batch in the middle of being applied), or "" if there is none right now.
func projectionTransaction(ctx context.Context, db events.Querier, database string) (string, error) {
	var pid int
	var state, query string
	err := db.QueryRow(ctx, `
SELECT pid, state, left(regexp_replace(query, '\s+', ' ', 'g'), 100)
FROM pg_stat_activity
WHERE datname = $1 AND application_name = 'herald' AND backend_xid IS NOT NULL
  AND (query ILIKE '%notification_status%' OR query ILIKE '%notification_history%' OR query ILIKE '%savepoint%')
LIMIT 1`, database).Scan(&pid, &state, &query)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("backend %d %s, last statement %q", pid, state, query), nil
}

// terminateHerald ends every PostgreSQL connection Herald's processes hold to the case's
// database, and only those: the suite's own pool is left alone, and so is every other database
// on the shared server.
func terminateHerald(ctx context.Context, t *testing.T, c *faultCluster) int {
	t.Helper()
	var n int
	err := c.DB.Pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE terminated) FROM (
	SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
	WHERE datname = $1 AND application_name = 'herald' AND pid <> pg_backend_pid()
) s`, c.DB.Name).Scan(&n)
	if err != nil {
		t.Fatalf("terminate Herald's connections: %v", err)
	}
	return n
}
