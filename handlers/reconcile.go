package handlers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
)

// ReconcilerActor is who the reconciler's events say appended them.
const ReconcilerActor = "system:reconciler"

// Reasons the reconciler leaves a notification alone, besides ErrAlreadySent and
// ErrAlreadyFailed.
var (
	// ErrNotStalled: the notification had an event recently enough that its command may still
	// be on its way (queued behind others, held by a worker between retries).
	ErrNotStalled = errors.New("notification made progress recently")
	// ErrCommandWaiting: a command of the notification is in the outbox, not yet forwarded.
	ErrCommandWaiting = errors.New("a command of the notification waits in the outbox")
)

// maxRecoveryBackoff bounds how far consecutive recoveries of one notification spread out: the
// k-th recovery in a row waits After·2^(k-1), at most After·maxRecoveryBackoff.
const maxRecoveryBackoff = 16

// RecoveryWaits returns how long a notification must have had no event before the reconciler
// recovers it, by the recoveries in a row already made: waits[k] after k of them, the last one
// for that many and more. The read model's scan for candidates (Unfinished) and DecideRecover
// both follow it.
func RecoveryWaits(after time.Duration) []time.Duration {
	var waits []time.Duration
	for m := 1; m <= maxRecoveryBackoff; m *= 2 {
		waits = append(waits, after*time.Duration(m))
	}
	return waits
}

// Stall is what the reconciler knows of a notification beyond its state.
type Stall struct {
	// Idle is how long ago its last event was recorded, on the database's clock.
	Idle time.Duration
	// Recoveries counts the NotificationRecovered events at the end of its stream: recoveries in
	// a row, with no progress in between.
	Recoveries int
	// CommandWaiting is true when a command of it is in the outbox and the relay has not
	// forwarded it yet.
	CommandWaiting bool
}

// StallOf describes the stream recs (in version order) as of now, with waiting saying whether a
// command of it waits in the outbox.
func StallOf(recs []events.Recorded, now time.Time, waiting bool) Stall {
	s := Stall{CommandWaiting: waiting}
	if len(recs) == 0 {
		return s
	}
	s.Idle = now.Sub(recs[len(recs)-1].Time)
	for i := len(recs) - 1; i >= 0 && recs[i].Type == events.TypeNotificationRecovered; i-- {
		s.Recoveries++
	}
	return s
}

// DecideRecover returns the event that sends the command of a stalled notification again: one
// that is neither sent nor failed, has had no event for after (doubled for each recovery in a
// row already made, up to maxRecoveryBackoff times), and has no command waiting in the outbox.
// Its command was lost between the outbox and a worker — RabbitMQ dropped it, or it was purged
// or parked — and nothing else would ever send it again.
//
// It returns ErrNotQueued, ErrAlreadySent, ErrAlreadyFailed, ErrCancelled, ErrNotStalled or ErrCommandWaiting
// when the notification is to be left alone.
func DecideRecover(n herald.Notification, s Stall, after time.Duration) ([]events.Event, error) {
	switch {
	case n.Version == 0:
		return nil, ErrNotQueued
	case n.Status.WasSent():
		return nil, ErrAlreadySent
	case n.Status == herald.StatusFailed:
		return nil, ErrAlreadyFailed
	case n.Status == herald.StatusCancelled:
		return nil, ErrCancelled
	case n.Status != herald.StatusPending && n.Status != herald.StatusProcessing:
		// Only a notification waiting for a worker is owed a command.
		return nil, fmt.Errorf("%w: %s waits for no worker", ErrNotStalled, n.Status)
	}
	waits := RecoveryWaits(after)
	wait := waits[min(s.Recoveries, len(waits)-1)]
	if s.Idle < wait {
		return nil, fmt.Errorf("%w: %s, last event %s ago, recovered after %s", ErrNotStalled, n.Status, s.Idle.Round(time.Second), wait)
	}
	if s.CommandWaiting {
		return nil, ErrCommandWaiting
	}
	what := "no event"
	if n.AttemptOpen {
		what = fmt.Sprintf("attempt %d open and no event", n.Attempts)
	}
	reason := fmt.Sprintf("%s with %s for %s and no command waiting in the outbox: command sent again",
		n.Status, what, s.Idle.Round(time.Second))
	if s.Recoveries > 0 {
		reason += fmt.Sprintf(" (recovery %d in a row)", s.Recoveries+1)
	}
	return []events.Event{&events.NotificationRecovered{Actor: ReconcilerActor, Reason: reason, Status: n.Status}}, nil
}

// Unfinished finds the notifications the reconciler looks at (see projections.Reader).
type Unfinished interface {
	// Unfinished returns the ids of up to limit notifications that wait for a worker and have
	// not changed for at least waits[k], k being their recoveries in a row (the last wait for
	// that many and more), least recently changed first, with the database's time of the look.
	// Notifications still in their backoff are left out, so that they cannot fill the limit.
	Unfinished(ctx context.Context, waits []time.Duration, limit int) ([]string, time.Time, error)
}

// WaitingCommands tells which notifications have a command in the outbox that the relay has
// not forwarded yet (see router.Relay).
type WaitingCommands interface {
	Waiting(ctx context.Context, ids []string) (map[string]bool, error)
}

// ReconcilePolicy says when and how much the reconciler recovers.
type ReconcilePolicy struct {
	// After is how long a notification that is neither sent nor failed may go without an event
	// before its command is presumed lost. It must exceed the longest silence of a healthy
	// delivery: the attempt lease plus the longest retry delay, plus the time a command may
	// wait in a work queue behind others.
	After time.Duration
	// Interval is how often a scan runs.
	Interval time.Duration
	// Limit bounds the notifications one scan recovers.
	Limit int
}

// Reconciler sends again the commands of notifications that stalled: neither sent nor failed, no
// progress for longer than the policy allows, and no command waiting in the outbox. RabbitMQ can
// lose a command — a queue purged by hand, a quorum queue's at-most-once dead-lettering, a
// broker that loses a message — and nothing else in Herald would ever send it again.
//
// Each recovery is a NotificationRecovered event appended with the stream's expected version,
// in one transaction with the command put in the outbox, exactly as an accept or a requeue: a
// notification that moved meanwhile is left alone. Any number of processes may run a
// reconciler: an advisory lock lets one scan at a time, and the versions keep even two
// overlapping scans from recovering one notification twice.
type Reconciler struct {
	pool       *pgxpool.Pool
	log        *events.Log
	outbox     Outbox
	unfinished Unfinished
	waiting    WaitingCommands
	policy     ReconcilePolicy
	logger     *slog.Logger
	// writeTimeout bounds each recovery's transaction.
	writeTimeout time.Duration
}

// NewReconciler returns a reconciler finding candidates through unfinished, checking the outbox
// through waiting, and recording its recoveries in log and outbox through pool.
func NewReconciler(pool *pgxpool.Pool, log *events.Log, outbox Outbox, unfinished Unfinished, waiting WaitingCommands,
	policy ReconcilePolicy, logger *slog.Logger) *Reconciler {
	if policy.Limit < 1 {
		policy.Limit = 1
	}
	return &Reconciler{pool: pool, log: log, outbox: outbox, unfinished: unfinished, waiting: waiting,
		policy: policy, logger: logger, writeTimeout: 10 * time.Second}
}

// ReconcileReport is what one scan did.
type ReconcileReport struct {
	// Locked is false when another process was scanning: this scan did nothing.
	Locked bool
	// Candidates counts the notifications the read model showed unfinished and idle.
	Candidates int
	// Recovered are the notifications whose command was sent again.
	Recovered []string
}

// reconcileLockKey is the advisory lock one scan holds.
var reconcileLockKey = func() int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("herald reconciler"))
	return int64(h.Sum64() >> 1)
}()

// Reconcile runs one scan. The candidates come from the status read model, which may lag
// behind the log; each is loaded from the log and decided on that (DecideRecover), with the
// database's clock. A recovery that fails is logged and the scan goes on with the others.
func (r *Reconciler) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var report ReconcileReport
	// The lock is held by a session of its own, not a transaction: a scan is many short
	// transactions, and one long one would hold back every reader of the log. If its
	// connection drops mid-scan another process may start one; the versions keep that safe.
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return report, fmt.Errorf("reconcile: %w", err)
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, reconcileLockKey).Scan(&report.Locked); err != nil {
		return report, fmt.Errorf("reconcile: lock: %w", err)
	}
	if !report.Locked {
		return report, nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, reconcileLockKey); err != nil {
			// The session's lock would outlive the scan: drop the connection, and the lock with it.
			_ = conn.Hijack().Close(context.WithoutCancel(ctx))
		}
	}()

	ids, now, err := r.unfinished.Unfinished(ctx, RecoveryWaits(r.policy.After), r.policy.Limit)
	if err != nil {
		return report, fmt.Errorf("reconcile: %w", err)
	}
	report.Candidates = len(ids)
	if len(ids) == 0 {
		return report, nil
	}
	waiting, err := r.waiting.Waiting(ctx, ids)
	if err != nil {
		return report, fmt.Errorf("reconcile: %w", err)
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		ok, err := r.recoverOne(ctx, id, now, waiting[id])
		switch {
		case err != nil:
			r.logger.WarnContext(ctx, "recovering a stalled notification failed", "notification_id", id, "error", err)
		case ok:
			report.Recovered = append(report.Recovered, id)
		}
	}
	return report, nil
}

// recoverOne decides on notification id from the log and, if it stalled, records the recovery and
// queues its command again. It reports whether it did.
func (r *Reconciler) recoverOne(ctx context.Context, id string, now time.Time, waiting bool) (bool, error) {
	n, recs, err := r.log.Notification(ctx, id)
	if err != nil {
		return false, err
	}
	stall := StallOf(recs, now, waiting)
	evs, err := DecideRecover(n, stall, r.policy.After)
	switch {
	case errors.Is(err, ErrNotStalled), errors.Is(err, ErrCommandWaiting),
		errors.Is(err, ErrAlreadySent), errors.Is(err, ErrAlreadyFailed), errors.Is(err, ErrCancelled):
		// The read model lagged behind the log, or a command is on its way.
		return false, nil
	case err != nil:
		return false, err
	}
	md := events.Metadata{CorrelationID: recs[0].Metadata.CorrelationID, Actor: ReconcilerActor}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.writeTimeout)
	defer cancel()
	err = pgx.BeginFunc(wctx, r.pool, func(tx pgx.Tx) error {
		if _, err := r.log.In(tx).Append(wctx, id, n.Version, md, evs...); err != nil {
			return err
		}
		cmd := commands.Send(n)
		return r.outbox.Send(herald.WithCorrelationID(wctx, md.CorrelationID), tx, cmd)
	})
	if errors.Is(err, events.ErrConflict) {
		// It moved since it was loaded: it is not stalled.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recover %s: %w", id, err)
	}
	wakeRelay(r.outbox)
	r.logger.InfoContext(ctx, "stalled notification recovered: command sent again", "notification_id", id,
		"status", n.Status, "idle", stall.Idle.Round(time.Second).String(), "recoveries_in_a_row", stall.Recoveries+1)
	return true, nil
}

// Run scans every policy interval until ctx is done.
func (r *Reconciler) Run(ctx context.Context) error {
	tick := time.NewTicker(r.policy.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		report, err := r.Reconcile(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.logger.WarnContext(ctx, "reconciler scan failed", "error", err)
		case len(report.Recovered) > 0:
			r.logger.InfoContext(ctx, "reconciler scan done", "candidates", report.Candidates, "recovered", len(report.Recovered))
		}
	}
}
