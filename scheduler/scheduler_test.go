package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/scheduler"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// schedule accepts n SMS due from start, spread step apart, and returns their ids.
func schedule(t *testing.T, a *handlers.Acceptor, n int, start time.Time, step time.Duration) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		at := start.Add(time.Duration(i) * step)
		acc, err := a.Accept(t.Context(), handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi", SendAt: &at})
		if err != nil {
			t.Fatal(err)
		}
		if acc.Status != herald.StatusScheduled {
			t.Fatalf("accepted %s, want scheduled", acc.Status)
		}
		ids[i] = acc.ID
	}
	return ids
}

// count runs a query returning one number.
func count(t *testing.T, db *heraldtest.Database, query string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(t.Context(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Two schedulers release the same notifications side by side, and one of them is stopped and
// replaced by a new one on the way: each notification is released exactly once, never before
// its send_at, and its command is queued with its release.
func TestSchedulersReleaseEachOnceAndOnTime(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	// The acceptor's clock stands still at the start, so that however long the 300 accepts take
	// none of the send_at values has passed for it; they come due from 5 s after it, by when
	// the accepts are done and the schedulers run even on a loaded machine.
	now := time.Now()
	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits).
		WithClock(func() time.Time { return now })
	const n = 300
	start := now.Add(5 * time.Second)
	ids := schedule(t, acc, n, start, 5*time.Millisecond) // due over 1.5 s
	if late := time.Since(start); late > 0 {
		t.Logf("the accepts ended %s after the first send_at: the schedulers start late", late)
	}
	if got := count(t, db, `SELECT count(*) FROM outbox`); got != 0 {
		t.Fatalf("%d commands before any release, want none", got)
	}

	newScheduler := func() *scheduler.Scheduler {
		return scheduler.New(db.Pool, router.NewOutbox(nil), quiet).WithInterval(20 * time.Millisecond).WithBatch(50)
	}
	heraldtest.RunInBackground(t, "scheduler b", newScheduler().Run)
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- newScheduler().Run(ctxA) }()

	// Stop the first once some are released, with more still to come, and start another.
	heraldtest.Eventually(t, 20*time.Second, "some releases", func() (bool, error) {
		return count(t, db, `SELECT count(*) FROM event_log WHERE event_type = 'NotificationReleased'`) >= n/4, nil
	})
	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("stopped scheduler: %v", err)
	}
	if left := count(t, db, `SELECT count(*) FROM scheduled_notifications`); left == 0 {
		t.Fatal("every notification released before the first scheduler stopped: the restart proves nothing")
	}
	heraldtest.RunInBackground(t, "scheduler c", newScheduler().Run)

	heraldtest.Eventually(t, 15*time.Second, "every schedule row gone", func() (bool, error) {
		return count(t, db, `SELECT count(*) FROM scheduled_notifications`) == 0, nil
	})
	if got := count(t, db, `SELECT count(*) FROM outbox`); got != n {
		t.Errorf("%d commands in the outbox, want one per notification: %d", got, n)
	}
	for _, id := range ids {
		recs, err := log.Load(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, r := range recs {
			types = append(types, r.Type)
		}
		if len(recs) != 2 || recs[1].Type != events.TypeNotificationReleased {
			t.Errorf("%s: stream %v, want NotificationQueued, NotificationReleased", id, types)
			continue
		}
		if recs[1].Metadata.Actor != handlers.SchedulerActor {
			t.Errorf("%s: released by %q, want %q", id, recs[1].Metadata.Actor, handlers.SchedulerActor)
		}
		n, err := events.Fold(recs)
		if err != nil {
			t.Fatal(err)
		}
		if recs[1].Time.Before(n.SendAt) {
			t.Errorf("%s released at %s, before its send_at %s", id, recs[1].Time.Format(time.RFC3339Nano), n.SendAt.Format(time.RFC3339Nano))
		}
		if n.Status != herald.StatusPending {
			t.Errorf("%s: %s after its release, want pending", id, n.Status)
		}
	}
	var outboxed int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(DISTINCT convert_from(decode(payload->>'payload', 'base64'), 'UTF8')::jsonb->>'notification_id') FROM outbox`).Scan(&outboxed); err != nil {
		t.Fatalf("read the outbox's commands: %v", err)
	} else if outboxed != n {
		t.Errorf("the outbox's commands name %d notifications, want %d", outboxed, n)
	}
}

// A schedule row whose notification is no longer scheduled — another event took it elsewhere —
// is dropped, with no release and no command; one not due yet stays.
func TestReleaseDropsWhatIsNoLongerScheduled(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	log := events.NewLog(db.Pool)
	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	ids := schedule(t, acc, 3, time.Now().Add(time.Hour), time.Second)
	moved, notDue := ids[0], ids[1]
	if _, err := log.Append(ctx, moved, 1, events.Metadata{Actor: "ops"},
		&events.NotificationFailed{Error: "withdrawn", Reason: events.ReasonPermanentError}); err != nil {
		t.Fatal(err)
	}
	// Both rows come due on the database's clock; only the moved one is no longer scheduled,
	// and the other's send_at is still an hour away.
	if _, err := db.Pool.Exec(ctx, `UPDATE scheduled_notifications SET due_at = now() - interval '1 second' WHERE notification_id = ANY($1::uuid[])`,
		[]string{moved, notDue}); err != nil {
		t.Fatal(err)
	}
	rep, err := scheduler.New(db.Pool, router.NewOutbox(nil), quiet).Release(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Released) != 0 || len(rep.Dropped) != 1 || rep.Dropped[0] != moved {
		t.Errorf("report %+v: want %s dropped and nothing released", rep, moved)
	}
	if got := count(t, db, `SELECT count(*) FROM scheduled_notifications`); got != 2 {
		t.Errorf("%d schedule rows left, want 2 (the one not due, and the one not yet due on either clock)", got)
	}
	if got := count(t, db, `SELECT count(*) FROM outbox`); got != 0 {
		t.Errorf("%d commands queued, want none", got)
	}
	if got := count(t, db, `SELECT count(*) FROM event_log WHERE event_type = 'NotificationReleased'`); got != 0 {
		t.Errorf("%d releases appended, want none", got)
	}
}

// A stream that cannot be read holds back none of the rows due after it: the round releases
// them, and leaves it for someone to look at.
func TestReleaseGoesPastAnUnreadableStream(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	bad := "0193a4f2-7c1e-7000-8000-0000000000ba"
	if _, err := db.Pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
		VALUES (gen_random_uuid(), $1, 1, 'NotificationQueued', '{"channel": 5}', '{}')`, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO scheduled_notifications VALUES ($1, now() - interval '1 minute')`, bad); err != nil {
		t.Fatal(err)
	}
	due(t, db, 3) // due a second ago: after the unreadable one
	rep, err := scheduler.New(db.Pool, router.NewOutbox(nil), quiet).Release(ctx)
	if err != nil {
		t.Fatalf("a round with an unreadable stream failed: %v", err)
	}
	if len(rep.Released) != 3 || len(rep.Dropped) != 0 {
		t.Errorf("report %+v: want the three readable ones released, the unreadable one left", rep)
	}
	if got := count(t, db, `SELECT count(*) FROM scheduled_notifications WHERE notification_id = '`+bad+`'`); got != 1 {
		t.Errorf("the unreadable one's row is gone")
	}
}

// A cancel still uncommitted when the round appends to its stream holds back only its own row:
// the round's append waits for it, and then either drops that row (the cancel committed: the
// stream moved) or releases it (the cancel rolled back); every other row of the batch is
// released in that round either way.
func TestReleaseBesideAnUncommittedAppend(t *testing.T) {
	for _, commit := range []bool{true, false} {
		name := map[bool]string{true: "committed", false: "rolled back"}[commit]
		t.Run(name, func(t *testing.T) {
			db := heraldtest.NewDatabase(t)
			ctx := t.Context()
			due(t, db, 5)
			var ids []string
			rows, err := db.Pool.Query(ctx, `SELECT notification_id::text FROM scheduled_notifications ORDER BY notification_id`)
			if err != nil {
				t.Fatal(err)
			}
			if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				t.Fatal(err)
			}
			cancelled := ids[2]
			tx, err := db.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if _, err := events.NewLog(db.Pool).In(tx).Append(ctx, cancelled, 1, events.Metadata{Actor: "apikey:shop"},
				&events.NotificationCancelled{Actor: "apikey:shop"}); err != nil {
				t.Fatal(err)
			}

			type result struct {
				rep scheduler.Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := scheduler.New(db.Pool, router.NewOutbox(nil), quiet).Release(context.Background())
				done <- result{rep, err}
			}()
			heraldtest.Eventually(t, 10*time.Second, "the round waiting for the cancel", func() (bool, error) {
				return count(t, db, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%event_log%'`) > 0, nil
			})
			if commit {
				err = tx.Commit(ctx)
			} else {
				err = tx.Rollback(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res.err != nil {
				t.Fatalf("the round failed: %v", res.err)
			}
			released := len(ids) - 1
			if !commit {
				released = len(ids)
			}
			if len(res.rep.Released) != released {
				t.Errorf("released %d of %d in the round, want %d: %+v", len(res.rep.Released), len(ids), released, res.rep)
			}
			if commit && (len(res.rep.Dropped) != 1 || res.rep.Dropped[0] != cancelled) {
				t.Errorf("dropped %v, want the cancelled %s", res.rep.Dropped, cancelled)
			}
			if got := count(t, db, `SELECT count(*) FROM scheduled_notifications`); got != 0 {
				t.Errorf("%d schedule rows left, want none", got)
			}
			if got := count(t, db, `SELECT count(*) FROM outbox`); got != released {
				t.Errorf("%d commands queued, want %d", got, released)
			}
		})
	}
}

// unreadable writes a stream whose NotificationQueued does not decode, with its schedule row
// due age ago, and returns its id.
func unreadable(t *testing.T, db *heraldtest.Database, age time.Duration) string {
	t.Helper()
	id := uuid.NewString()
	if _, err := db.Pool.Exec(t.Context(), `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
		VALUES (gen_random_uuid(), $1, 1, 'NotificationQueued', '{"channel": 5}', '{}')`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(t.Context(), `INSERT INTO scheduled_notifications VALUES ($1, now() - $2::interval)`, id, age.String()); err != nil {
		t.Fatal(err)
	}
	return id
}

// Unreadable rows that fill a whole batch do not stall the rows due after them: each is put
// back by a while, so the next round reaches the others.
func TestUnreadableRowsDoNotFillEveryBatch(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	bad := []string{unreadable(t, db, 2*time.Minute), unreadable(t, db, time.Minute)}
	due(t, db, 2) // due a second ago: after both unreadable ones
	s := scheduler.New(db.Pool, router.NewOutbox(nil), quiet).WithBatch(len(bad))
	released := 0
	for round := 0; round < 3 && released < 2; round++ {
		rep, err := s.Release(ctx)
		if err != nil {
			t.Fatal(err)
		}
		released += len(rep.Released)
	}
	if released != 2 {
		t.Fatalf("released %d of the 2 readable rows in three rounds of %d, want both: the unreadable rows fill every batch", released, len(bad))
	}
	if got := count(t, db, `SELECT count(*) FROM scheduled_notifications WHERE due_at > now()`); got != len(bad) {
		t.Errorf("%d rows put back ahead, want the %d unreadable ones, kept", got, len(bad))
	}
}

// A round whose due rows another process holds locked handled none of them, and does not say
// its batch was full: the scheduler waits instead of going round again at once.
func TestRoundOfRowsLockedElsewhereIsNotFull(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	due(t, db, 3)
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM scheduled_notifications FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	rep, err := scheduler.New(db.Pool, router.NewOutbox(nil), quiet).WithBatch(3).Release(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Due != 3 || rep.Full || len(rep.Released) != 0 {
		t.Errorf("report %+v: want 3 due, none released, not full", rep)
	}
}
