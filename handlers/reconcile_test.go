package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// recorded records evs a second apart from t0, as given does.
func recorded(evs ...events.Event) []events.Recorded {
	var out []events.Recorded
	for i, e := range evs {
		out = append(out, events.Recorded{StreamID: "n1", Version: int64(i + 1), Position: int64(10 + i), Type: e.EventType(),
			Time: t0.Add(time.Duration(i) * time.Second)})
	}
	return out
}

func recovered(s herald.Status, reason string) events.Event {
	return &events.NotificationRecovered{Actor: handlers.ReconcilerActor, Reason: reason, Status: s}
}

func TestDecideRecover(t *testing.T) {
	const after = 10 * time.Minute
	sent := &events.NotificationSent{Attempt: 1, Provider: "p"}
	failed := &events.NotificationFailed{Attempt: 1, Error: "550", Reason: events.ReasonPermanentError}
	requeued := &events.NotificationRequeued{Actor: "ada", Attempts: 1}
	rec := recovered(herald.StatusPending, "earlier")
	tests := []struct {
		name    string
		given   []events.Event
		since   time.Duration // from the last event to now
		waiting bool
		then    []events.Event
		wantErr error
	}{
		{name: "pending and idle past the age", given: []events.Event{queued}, since: 11 * time.Minute,
			then: []events.Event{recovered(herald.StatusPending, "pending with no event for 11m0s and no command waiting in the outbox: command sent again")}},
		{name: "exactly at the age", given: []events.Event{queued}, since: after,
			then: []events.Event{recovered(herald.StatusPending, "pending with no event for 10m0s and no command waiting in the outbox: command sent again")}},
		{name: "pending, recent", given: []events.Event{queued}, since: 9 * time.Minute, wantErr: handlers.ErrNotStalled},
		{name: "pending with its command in the outbox", given: []events.Event{queued}, since: time.Hour, waiting: true,
			wantErr: handlers.ErrCommandWaiting},
		{name: "retrying, idle", given: []events.Event{queued, processing(1), failedOnce(1)}, since: 11 * time.Minute,
			then: []events.Event{recovered(herald.StatusProcessing, "processing with no event for 11m0s and no command waiting in the outbox: command sent again")}},
		{name: "attempt open, idle", given: []events.Event{queued, processing(1)}, since: 12 * time.Minute,
			then: []events.Event{recovered(herald.StatusProcessing, "processing with attempt 1 open and no event for 12m0s and no command waiting in the outbox: command sent again")}},
		{name: "requeued, idle", given: []events.Event{queued, processing(1), failed, requeued}, since: 11 * time.Minute,
			then: []events.Event{recovered(herald.StatusPending, "pending with no event for 11m0s and no command waiting in the outbox: command sent again")}},
		{name: "sent", given: []events.Event{queued, processing(1), sent}, since: time.Hour, wantErr: handlers.ErrAlreadySent},
		{name: "delivered", given: []events.Event{queued, processing(1), sent, &events.NotificationDelivered{Provider: "http-sms"}},
			since: time.Hour, wantErr: handlers.ErrAlreadySent},
		{name: "failed", given: []events.Event{queued, processing(1), failed}, since: time.Hour, wantErr: handlers.ErrAlreadyFailed},
		{name: "never queued", since: time.Hour, wantErr: handlers.ErrNotQueued},
		{name: "recovered once: waits twice the age", given: []events.Event{queued, rec}, since: 19 * time.Minute,
			wantErr: handlers.ErrNotStalled},
		{name: "recovered once, idle twice the age", given: []events.Event{queued, rec}, since: 20 * time.Minute,
			then: []events.Event{recovered(herald.StatusPending, "pending with no event for 20m0s and no command waiting in the outbox: command sent again (recovery 2 in a row)")}},
		{name: "recovered twice: waits four times the age", given: []events.Event{queued, rec, rec}, since: 39 * time.Minute,
			wantErr: handlers.ErrNotStalled},
		{name: "recovered many times: the wait stops growing", given: []events.Event{queued, rec, rec, rec, rec, rec, rec, rec, rec}, since: 160 * time.Minute,
			then: []events.Event{recovered(herald.StatusPending, "pending with no event for 2h40m0s and no command waiting in the outbox: command sent again (recovery 9 in a row)")}},
		{name: "progress after a recovery resets the wait", given: []events.Event{queued, rec, processing(1), failedOnce(1)}, since: 10 * time.Minute,
			then: []events.Event{recovered(herald.StatusProcessing, "processing with no event for 10m0s and no command waiting in the outbox: command sent again")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := recorded(tt.given...)
			now := t0.Add(tt.since)
			if len(recs) > 0 {
				now = recs[len(recs)-1].Time.Add(tt.since)
			}
			got, err := handlers.DecideRecover(given(tt.given...), handlers.StallOf(recs, now, tt.waiting), after)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.then, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// A recovery changes nothing but the version: an open attempt stays open, and the worker that
// takes the command again declares it abandoned once its lease is over and starts the next.
func TestRecoveryKeepsTheState(t *testing.T) {
	before := given(queued, processing(1))
	n := given(queued, processing(1), recovered(herald.StatusProcessing, "r"))
	if n.Status != herald.StatusProcessing || !n.AttemptOpen || n.Attempts != 1 || !n.AttemptStartedAt.Equal(before.AttemptStartedAt) {
		t.Fatalf("after the recovery: %+v; want processing with attempt 1 still open since %s", n, before.AttemptStartedAt)
	}
	start, err := handlers.DecideStart(n, policy, t0.Add(time.Hour), "w")
	if err != nil {
		t.Fatal(err)
	}
	want := []events.Event{
		&events.DeliveryAttemptFailed{Attempt: 1, Error: "attempt abandoned: no outcome was recorded within the lease (worker stopped or lost its connection)"},
		processing(2),
	}
	if diff := cmp.Diff(want, start); diff != "" {
		t.Errorf("the worker's decision on the recovered command (-want +got):\n%s", diff)
	}

	r := recorded(queued, processing(1), recovered(herald.StatusProcessing, "r"))[2]
	r.Metadata.Actor = handlers.ReconcilerActor
	h := events.HistoryEntry(r, recovered(herald.StatusProcessing, "stalled"))
	if h.Status != herald.StatusProcessing || h.Actor != handlers.ReconcilerActor || h.Reason != "stalled" || h.Event != events.TypeNotificationRecovered {
		t.Errorf("history entry %+v; want NotificationRecovered by %s, processing, with its reason", h, handlers.ReconcilerActor)
	}
}

// reconcileEnv is a reconciler over a fresh database, its candidates read from the real status
// read model, its outbox check done by the real relay query.
type reconcileEnv struct {
	db    *heraldtest.Database
	log   *events.Log
	relay *router.Relay
	rec   *handlers.Reconciler
}

const reconcileAfter = 1500 * time.Millisecond

func newReconcileEnv(t *testing.T) *reconcileEnv {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	logger := slog.New(slog.DiscardHandler)
	relay := router.NewRelay(db.Pool, router.AMQPConfig{}, router.RelayConfig{Partitions: 2}, nil, logger)
	rec := handlers.NewReconciler(db.Pool, log, router.NewOutbox(nil), projections.NewReader(db.Pool, log), relay,
		handlers.ReconcilePolicy{After: reconcileAfter, Interval: time.Hour, Limit: 100}, logger)
	return &reconcileEnv{db: db, log: log, relay: relay, rec: rec}
}

// accept records a notification on channel c and its command in one transaction, as the API
// does, followed by story.
func (e *reconcileEnv) accept(t *testing.T, c herald.Channel, story ...events.Event) string {
	t.Helper()
	ctx := context.Background()
	id := queue(t, e.log, queuedOn(c))
	err := pgx.BeginFunc(ctx, e.db.Pool, func(tx pgx.Tx) error {
		return router.NewOutbox(nil).Send(ctx, tx, commands.SendNotification{NotificationID: id, Channel: c})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(story) > 0 {
		if _, err := e.log.Append(ctx, id, 1, cmdMD(1), story...); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// forwardAll marks every command now in the outbox as forwarded by the relay's partitions.
func (e *reconcileEnv) forwardAll(t *testing.T) {
	t.Helper()
	_, err := e.db.Pool.Exec(context.Background(), `
INSERT INTO outbox_offsets (consumer_group, offset_acked, last_processed_transaction_id)
SELECT 'relay-' || k || '-of-2', (SELECT max("offset") FROM outbox), (SELECT max(transaction_id) FROM outbox)
FROM generate_series(0, 1) k
ON CONFLICT (consumer_group) DO UPDATE SET offset_acked = excluded.offset_acked,
	last_processed_transaction_id = excluded.last_processed_transaction_id`)
	if err != nil {
		t.Fatal(err)
	}
}

// project applies to the status read model the first upTo events of each of ids (all with 0),
// as the projector would.
func (e *reconcileEnv) project(t *testing.T, upTo int, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		recs, err := e.log.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if upTo > 0 {
			recs = recs[:upTo]
		}
		if err := pgx.BeginFunc(ctx, e.db.Pool, func(tx pgx.Tx) error {
			return projections.Status{}.ApplyBatch(ctx, tx, recs)
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *reconcileEnv) types(t *testing.T, id string) []string {
	t.Helper()
	recs, err := e.log.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Type)
	}
	return out
}

// The reconciler sends again the command of each notification that stalled — pending or with an
// attempt left open, idle, nothing in the outbox — and leaves alone the ones whose command is
// still in the outbox, the final ones, and those the read model shows idle but the log does not.
func TestReconcilerRecoversStalledNotifications(t *testing.T) {
	t.Parallel()
	env := newReconcileEnv(t)
	ctx := context.Background()

	pending := env.accept(t, herald.ChannelEmail)
	open := env.accept(t, herald.ChannelSMS, &events.NotificationProcessing{Attempt: 1, Worker: "w1"})
	sent := env.accept(t, herald.ChannelEmail, &events.NotificationProcessing{Attempt: 1, Worker: "w1"},
		&events.NotificationSent{Attempt: 1, Provider: "p"})
	lagging := env.accept(t, herald.ChannelSMS, &events.NotificationProcessing{Attempt: 1, Worker: "w1"},
		&events.NotificationSent{Attempt: 1, Provider: "p"})
	env.forwardAll(t)
	waiting := env.accept(t, herald.ChannelEmail) // its command is still in the outbox
	env.project(t, 0, pending, open, sent, waiting)
	env.project(t, 1, lagging) // the read model says pending; the log says sent

	// Nothing is old enough yet.
	report, err := env.rec.Reconcile(ctx)
	if err != nil || !report.Locked || len(report.Recovered) != 0 {
		t.Fatalf("Reconcile at once = %+v, %v; want nothing recovered", report, err)
	}

	var got []string
	heraldtest.Eventually(t, 10*time.Second, "the stalled notifications to be recovered", func() (bool, error) {
		report, err := env.rec.Reconcile(ctx)
		got = append(got, report.Recovered...)
		return len(got) >= 2, fmt.Errorf("recovered %v (%d candidates), error %v", got, report.Candidates, err)
	})
	slices.Sort(got)
	want := []string{pending, open}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("recovered (-want +got):\n%s", diff)
	}

	for id, status := range map[string]herald.Status{pending: herald.StatusPending, open: herald.StatusProcessing} {
		recs, err := env.log.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		last := recs[len(recs)-1]
		e, err := last.Event()
		if err != nil {
			t.Fatal(err)
		}
		r, ok := e.(*events.NotificationRecovered)
		if !ok || r.Actor != handlers.ReconcilerActor || r.Status != status || r.Reason == "" {
			t.Errorf("%s: last event %T %+v; want NotificationRecovered by %s, %s, with a reason", id, e, e, handlers.ReconcilerActor, status)
		}
		if last.Metadata.Actor != handlers.ReconcilerActor || last.Metadata.CorrelationID != apiMD.CorrelationID {
			t.Errorf("%s: metadata %+v; want actor %s and the notification's correlation id %s", id, last.Metadata, handlers.ReconcilerActor, apiMD.CorrelationID)
		}
	}
	for _, id := range []string{sent, lagging, waiting} {
		if types := env.types(t, id); slices.Contains(types, events.TypeNotificationRecovered) {
			t.Errorf("%s was recovered: %v", id, types)
		}
	}

	// Each recovered command is in the outbox, waiting for the relay, beside the first ones.
	var cmds []commands.SendNotification
	for _, c := range outboxCommands(t, env.db.Pool) {
		cmds = append(cmds, c.Command)
	}
	for _, id := range []string{pending, open} {
		n := 0
		for _, c := range cmds {
			if c.NotificationID == id {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%s has %d commands in the outbox, want 2 (accepted, recovered)", id, n)
		}
	}
	w, err := env.relay.Waiting(ctx, []string{pending, open})
	if err != nil || !w[pending] || !w[open] {
		t.Errorf("Waiting after the recovery = %v, %v; want both", w, err)
	}

	// Once the relay has forwarded every command, the read model still shows the recovered two
	// idle, but the log says they were just recovered: a second scan leaves them alone, and
	// recovers only the one whose command has left the outbox since.
	env.forwardAll(t)
	// waiting was accepted after the others: on a loaded machine the two recoveries can come
	// before it has been idle long enough to be a candidate.
	heraldtest.Eventually(t, 10*time.Second, waiting+" to be idle", func() (bool, error) {
		var idle bool
		err := env.db.Pool.QueryRow(ctx, `SELECT updated_at < now() - $2::double precision * interval '1 second'
			FROM notification_status WHERE notification_id = $1`, waiting, reconcileAfter.Seconds()+0.1).Scan(&idle)
		return idle, err
	})
	report, err = env.rec.Reconcile(ctx)
	if err != nil || !cmp.Equal(report.Recovered, []string{waiting}) || report.Candidates != 4 {
		t.Errorf("second Reconcile = %+v, %v; want 4 candidates and only %s recovered", report, err, waiting)
	}
}

// Scans that overlap — several processes run a reconciler — recover each notification once.
func TestReconcilersRecoverOnce(t *testing.T) {
	t.Parallel()
	env := newReconcileEnv(t)
	ctx := context.Background()
	var ids []string
	for range 20 {
		ids = append(ids, env.accept(t, herald.ChannelEmail))
	}
	env.forwardAll(t)
	env.project(t, 0, ids...)
	// Every notification is idle before the scans start.
	heraldtest.Eventually(t, 10*time.Second, "the notifications to be idle", func() (bool, error) {
		var idle int
		err := env.db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status
			WHERE updated_at < now() - $1::double precision * interval '1 second'`, reconcileAfter.Seconds()+0.1).Scan(&idle)
		return idle == len(ids), fmt.Errorf("%d idle, error %v", idle, err)
	})

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		total  int
		locked int
	)
	for range 4 {
		wg.Go(func() {
			report, err := env.rec.Reconcile(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			total += len(report.Recovered)
			if report.Locked {
				locked++
			}
		})
	}
	wg.Wait()
	if total != len(ids) || locked < 1 {
		t.Errorf("%d scans held the lock and recovered %d notifications; want %d recovered", locked, total, len(ids))
	}
	for _, id := range ids {
		if n := slices.Index(env.types(t, id), events.TypeNotificationRecovered); n != 1 || len(env.types(t, id)) != 2 {
			t.Errorf("%s: %v; want one recovery after NotificationQueued", id, env.types(t, id))
		}
	}
}

// While one scan runs, another one in any process skips its turn rather than scan beside it.
func TestOneReconcileScanAtATime(t *testing.T) {
	t.Parallel()
	env := newReconcileEnv(t)
	ctx := context.Background()
	id := env.accept(t, herald.ChannelSMS)
	env.forwardAll(t)
	env.project(t, 0, id)
	heraldtest.Eventually(t, 10*time.Second, id+" to be idle", func() (bool, error) {
		recs, err := env.log.Load(ctx, id)
		if err != nil || len(recs) == 0 {
			return false, err
		}
		var now time.Time
		err = env.db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now)
		return now.Sub(recs[0].Time) > reconcileAfter+100*time.Millisecond, err
	})

	// A transaction appending version 2 and not ending makes the scan's own append of version 2
	// wait for it, with the scan's lock held.
	blocker, err := env.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := env.log.In(blocker).Append(ctx, id, 1, cmdMD(1), &events.NotificationProcessing{Attempt: 1, Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		report handlers.ReconcileReport
		err    error
	}
	first := make(chan result, 1)
	go func() {
		r, err := env.rec.Reconcile(ctx)
		first <- result{r, err}
	}()
	heraldtest.Eventually(t, 10*time.Second, "the first scan to wait on its append", func() (bool, error) {
		var waiting int
		err := env.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO event_log%'`).Scan(&waiting)
		return waiting == 1, err
	})

	second, err := env.rec.Reconcile(ctx)
	if err != nil || second.Locked || second.Candidates != 0 || len(second.Recovered) != 0 {
		t.Errorf("a scan beside a running one = %+v, %v; want it to skip its turn", second, err)
	}

	// The blocker gives up; the first scan's append goes through.
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-first:
		if r.err != nil || !r.report.Locked || !cmp.Equal(r.report.Recovered, []string{id}) {
			t.Errorf("the first scan = %+v, %v; want %s recovered", r.report, r.err, id)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the first scan did not end after the blocker rolled back")
	}
	if report, err := env.rec.Reconcile(ctx); err != nil || !report.Locked {
		t.Errorf("a scan after the first ended = %+v, %v; want it to take the lock", report, err)
	}
}

// Notifications stuck for good — recovered again and again, their channel with no worker — wait
// out their backoff outside the scan: more of them than a scan's limit do not hide a notification
// that stalled since, which is recovered in the first scan after it is due.
func TestReconcilerReachesAFreshStallPastStuckOnes(t *testing.T) {
	t.Parallel()
	env := newReconcileEnv(t)
	ctx := context.Background()
	const after, limit = time.Second, 10
	rec := handlers.NewReconciler(env.db.Pool, env.log, router.NewOutbox(nil), projections.NewReader(env.db.Pool, env.log),
		env.relay, handlers.ReconcilePolicy{After: after, Interval: time.Hour, Limit: limit}, slog.New(slog.DiscardHandler))

	// Recovered four times in a row: each waits 16 s for its next recovery, and each changed
	// before the fresh one, so a scan in order of change meets them first.
	again := recovered(herald.StatusPending, "stalled")
	var stuck []string
	for range limit + 5 {
		stuck = append(stuck, env.accept(t, herald.ChannelSMS, again, again, again, again))
	}
	fresh := env.accept(t, herald.ChannelEmail)
	env.forwardAll(t)
	env.project(t, 0, append(stuck, fresh)...)

	heraldtest.Eventually(t, 10*time.Second, fresh+" to be due", func() (bool, error) {
		var due bool
		err := env.db.Pool.QueryRow(ctx, `SELECT updated_at <= now() - $2::double precision * interval '1 second'
			FROM notification_status WHERE notification_id = $1`, fresh, after.Seconds()+0.05).Scan(&due)
		return due, err
	})
	report, err := rec.Reconcile(ctx)
	if err != nil || !cmp.Equal(report.Recovered, []string{fresh}) || report.Candidates != 1 {
		t.Errorf("Reconcile = %+v, %v; want %s alone a candidate and recovered", report, err, fresh)
	}
	for _, id := range stuck {
		if types := env.types(t, id); len(types) != 5 {
			t.Errorf("%s, still in its backoff, was recovered: %v", id, types)
		}
	}
}

// The status read model counts the recoveries in a row that the scan's backoff follows, and
// the schedule doubles up to sixteen times the age.
func TestRecoveriesInARow(t *testing.T) {
	rec := recovered(herald.StatusPending, "r")
	tests := []struct {
		given []events.Event
		want  int
	}{
		{given: []events.Event{queued}, want: 0},
		{given: []events.Event{queued, rec}, want: 1},
		{given: []events.Event{queued, rec, rec, rec}, want: 3},
		{given: []events.Event{queued, rec, processing(1)}, want: 0},
		{given: []events.Event{queued, rec, processing(1), failedOnce(1), rec}, want: 1},
	}
	for _, tt := range tests {
		var types []string
		for _, e := range tt.given {
			types = append(types, e.EventType())
		}
		if got := given(tt.given...).Recoveries; got != tt.want {
			t.Errorf("after %v: %d recoveries in a row, want %d", types, got, tt.want)
		}
		if got := handlers.StallOf(recorded(tt.given...), t0, false).Recoveries; got != tt.want {
			t.Errorf("StallOf after %v: %d recoveries in a row, want %d", types, got, tt.want)
		}
	}
	m := time.Minute
	if diff := cmp.Diff([]time.Duration{m, 2 * m, 4 * m, 8 * m, 16 * m}, handlers.RecoveryWaits(m)); diff != "" {
		t.Errorf("RecoveryWaits (-want +got):\n%s", diff)
	}
}
