// Package scheduler releases scheduled sends when they are due: for each row of
// scheduled_notifications whose due_at has passed on the database's clock, it appends
// NotificationReleased to the notification's stream, queues its SendNotification command in the
// outbox and deletes the row, in one short transaction per batch. Any number of processes may run
// one: they share the due rows with FOR UPDATE SKIP LOCKED, and the release carries the stream's
// expected version.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
)

// Defaults of a Scheduler's settings.
const (
	// DefaultInterval is how long the scheduler waits after a round that found nothing more due:
	// the most a release is late, beside the round's own time.
	DefaultInterval = 100 * time.Millisecond
	// DefaultBatch is the most notifications one transaction releases.
	DefaultBatch = 100
	// unreadableBackoff is how far ahead a row whose stream cannot be folded is put back: far
	// enough that such rows cannot fill every batch, near enough that a repaired one goes soon.
	unreadableBackoff = time.Minute
	// countEvery is how often the waiting rows are counted for the gauge.
	countEvery = 10 * time.Second
)

// Scheduler releases due scheduled notifications.
type Scheduler struct {
	pool     *pgxpool.Pool
	log      *events.Log
	outbox   Outbox
	logger   *slog.Logger
	interval time.Duration
	batch    int
	// writeTimeout bounds each round's transaction.
	writeTimeout time.Duration
	metrics      *Metrics
}

// Outbox queues the released notifications' commands in the round's batch (router.Outbox).
type Outbox interface {
	Queue(ctx context.Context, b *pgx.Batch, cmd commands.SendNotification) error
}

// wakeRelay tells the relay of this process, when outbox can (handlers.OutboxWaker), that
// released commands were committed; its poll finds them otherwise.
func wakeRelay(outbox Outbox) {
	if w, ok := outbox.(handlers.OutboxWaker); ok {
		w.Wake()
	}
}

// New returns a scheduler that reads and appends through pool and queues commands in outbox.
func New(pool *pgxpool.Pool, outbox Outbox, logger *slog.Logger) *Scheduler {
	return &Scheduler{pool: pool, log: events.NewLog(pool), outbox: outbox, logger: logger,
		interval: DefaultInterval, batch: DefaultBatch, writeTimeout: 10 * time.Second}
}

// WithInterval returns a copy of s that waits d between rounds that found nothing more due.
func (s *Scheduler) WithInterval(d time.Duration) *Scheduler {
	c := *s
	c.interval = d
	return &c
}

// WithBatch returns a copy of s that releases at most n notifications per transaction.
func (s *Scheduler) WithBatch(n int) *Scheduler {
	c := *s
	c.batch = max(n, 1)
	return &c
}

// WithMetrics returns a copy of s that records its figures in m.
func (s *Scheduler) WithMetrics(m *Metrics) *Scheduler {
	c := *s
	c.metrics = m
	return &c
}

// Released is one notification a round released.
type Released struct {
	ID string
	// SendAt is when it was scheduled for; At when NotificationReleased was recorded (the
	// database's clock).
	SendAt, At time.Time
}

// Report is what one round did.
type Report struct {
	// Due counts the rows found due; Full is true when the round handled (released, dropped or
	// put back) a whole batch of them: more may wait. Rows another process holds locked are
	// not handled, so that two schedulers do not spin on each other's rows.
	Due  int
	Full bool
	// Released are the notifications released; Dropped the rows deleted without a release
	// (the notification was no longer scheduled, or moved while the round decided).
	Released []Released
	Dropped  []string
	// PutBack are the rows whose stream could not be folded: they stay, due unreadableBackoff
	// later, so that they cannot fill every batch.
	PutBack []string
}

const dueSQL = `SELECT notification_id::text, now() FROM scheduled_notifications
	WHERE due_at <= now() ORDER BY due_at LIMIT $1`

// Release runs one round: one transaction that releases up to the batch of due notifications.
//
// The streams are read before any row is locked. Locking a row gives the transaction its id
// (PostgreSQL writes the lock in the row), and every event the release follows must belong to a
// transaction older than the one appending after it, or the projector, which reads the log in
// transaction order, would meet the release before the event it follows (see the projector's
// version guard). Read first, every event read was committed before the lock; one committed after
// the read makes the append conflict, and the row is dropped without a release.
func (s *Scheduler) Release(ctx context.Context) (Report, error) {
	var rep Report
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rep = Report{}
		var (
			ids []string
			id  string
			now time.Time
		)
		rows, err := tx.Query(ctx, dueSQL, s.batch)
		if err != nil {
			return fmt.Errorf("due notifications: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&id, &now}, func() error { ids = append(ids, id); return nil }); err != nil {
			return fmt.Errorf("due notifications: %w", err)
		}
		rep.Due = len(ids)
		if len(ids) == 0 {
			return nil
		}
		streams, err := s.log.In(tx).LoadStreams(ctx, ids)
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT notification_id::text FROM scheduled_notifications
			WHERE notification_id = ANY($1::uuid[]) FOR UPDATE SKIP LOCKED`, ids)
		if err != nil {
			return fmt.Errorf("lock due notifications: %w", err)
		}
		owned, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("lock due notifications: %w", err)
		}
		var (
			done    []string
			pending []release
		)
		for _, id := range owned {
			r, err := decide(id, streams[id], now)
			var unreadable *unreadableError
			switch {
			case errors.Is(err, handlers.ErrNotDue):
				continue
			case errors.As(err, &unreadable):
				// A stream that cannot be folded must not hold back the rows after it, even
				// when a batch's worth of them is due: it stays, put back by a while, and is
				// reported each time until someone looks.
				s.logger.WarnContext(ctx, "scheduled notification put back: its stream cannot be read",
					"notification_id", id, "retry_in", unreadableBackoff.String(), "error", err)
				rep.PutBack = append(rep.PutBack, id)
				continue
			case errors.Is(err, handlers.ErrNotScheduled), errors.Is(err, handlers.ErrNotQueued):
				s.drop(ctx, &rep, id, err)
			case err != nil:
				return err
			default:
				pending = append(pending, r)
			}
			done = append(done, id)
		}
		rep.Full = len(done)+len(rep.PutBack) == s.batch
		released, err := s.write(ctx, tx, pending, done, rep.PutBack)
		if errors.Is(err, events.ErrConflict) {
			// A stream moved since it was read — a cancel, committed before the round's
			// append or while it waited for it. The batch's savepoint is rolled back; each
			// release is written again alone, under a savepoint of its own, so that only
			// the streams that moved lose theirs.
			released = nil
			for _, r := range pending {
				one, err := s.write(ctx, tx, []release{r}, nil, nil)
				switch {
				case errors.Is(err, events.ErrConflict):
					s.drop(ctx, &rep, r.n.ID, err)
				case err != nil:
					return err
				default:
					released = append(released, one...)
				}
			}
			_, err = s.write(ctx, tx, nil, done, rep.PutBack)
		}
		if err != nil {
			return err
		}
		rep.Released = released
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("release scheduled notifications: %w", err)
	}
	if len(rep.Released) > 0 {
		wakeRelay(s.outbox)
	}
	s.metrics.observe(rep)
	return rep, nil
}

// drop notes a row deleted without a release.
func (s *Scheduler) drop(ctx context.Context, rep *Report, id string, why error) {
	s.logger.InfoContext(ctx, "scheduled notification dropped without a release", "notification_id", id, "reason", why.Error())
	rep.Dropped = append(rep.Dropped, id)
}

// release is a decided release: the notification as folded, and the event that releases it.
type release struct {
	n  herald.Notification
	ev events.Event
	md events.Metadata
}

// decide folds the stream recs of notification id and decides on its release at now.
func decide(id string, recs []events.Recorded, now time.Time) (release, error) {
	var n herald.Notification
	if events.IsNotificationStream(recs) {
		var err error
		if n, err = events.Fold(recs); err != nil {
			return release{}, &unreadableError{err}
		}
	}
	evs, err := handlers.DecideRelease(n, now)
	if err != nil {
		return release{}, err
	}
	n.ID = id
	return release{n: n, ev: evs[0], md: events.Metadata{CorrelationID: recs[0].Metadata.CorrelationID, Actor: handlers.SchedulerActor}}, nil
}

// write appends the releases rs with their commands, deletes the rows done and puts back the rows
// putBack, under a savepoint of tx and in one round trip (a pgx batch). Any failure rolls the
// savepoint back, so that tx goes on as before the call: also an append that waited for another
// writer of its stream and then failed on the stream's unique version, which would otherwise
// abort the whole transaction. An append to a stream that moved is ECONFLICT (events.ErrConflict).
func (s *Scheduler) write(ctx context.Context, tx pgx.Tx, rs []release, done, putBack []string) ([]Released, error) {
	b := &pgx.Batch{}
	log := s.log.In(tx)
	recs := make([]*events.Recorded, len(rs))
	for i, r := range rs {
		rec, err := log.QueueAppend(b, r.n.ID, r.n.Version, r.md, r.ev)
		if err != nil {
			return nil, err
		}
		recs[i] = rec
		cmd := commands.Send(events.Evolve(r.n, *rec, r.ev))
		if err := s.outbox.Queue(herald.WithCorrelationID(ctx, r.md.CorrelationID), b, cmd); err != nil {
			return nil, fmt.Errorf("release %s: %w", r.n.ID, err)
		}
	}
	if len(putBack) > 0 {
		b.Queue(`UPDATE scheduled_notifications SET due_at = now() + $2::interval
			WHERE notification_id = ANY($1::uuid[])`, putBack, unreadableBackoff.String())
	}
	if len(done) > 0 {
		b.Queue(`DELETE FROM scheduled_notifications WHERE notification_id = ANY($1::uuid[])`, done)
	}
	if b.Len() == 0 {
		return nil, nil
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	if err := sp.SendBatch(ctx, b).Close(); err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return nil, fmt.Errorf("roll back to the savepoint: %w (after %w)", rerr, err)
		}
		return nil, err
	}
	if err := sp.Commit(ctx); err != nil {
		return nil, fmt.Errorf("release the savepoint: %w", err)
	}
	out := make([]Released, len(rs))
	for i, r := range rs {
		out[i] = Released{ID: r.n.ID, SendAt: r.n.SendAt, At: recs[i].Time}
	}
	return out, nil
}

// unreadableError is a stream the scheduler could not fold.
type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return e.err.Error() }
func (e *unreadableError) Unwrap() error { return e.err }

// Run releases due notifications until ctx is done: round after round while each handles a
// whole batch, then every interval (also after a round whose due rows other processes held).
func (s *Scheduler) Run(ctx context.Context) error {
	var lastCount time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		if s.metrics != nil && time.Since(lastCount) >= countEvery {
			lastCount = time.Now()
			s.count(ctx)
		}
		rep, err := s.Release(ctx)
		if err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "releasing scheduled notifications failed", "error", err)
		}
		if err == nil && rep.Full {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.interval):
		}
	}
}

// count sets the gauge of waiting scheduled notifications.
func (s *Scheduler) count(ctx context.Context) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM scheduled_notifications`).Scan(&n); err != nil {
		if ctx.Err() == nil {
			s.logger.WarnContext(ctx, "counting scheduled notifications failed", "error", err)
		}
		return
	}
	s.metrics.waiting.Store(n)
}

// Metrics are the scheduler's figures on /metrics. A nil *Metrics records nothing.
type Metrics struct {
	releases *prometheus.CounterVec
	lateness prometheus.Histogram
	waiting  atomic.Int64
}

// NewMetrics registers the scheduler's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "scheduler", Name: "releases_total",
			Help: "Scheduled notifications the scheduler handled, by outcome: released (command queued) or dropped (no longer scheduled: no release).",
		}, []string{"outcome"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "scheduler", Name: "release_lateness_seconds",
			Help:    "How long after its send_at a scheduled notification was released (the database's clock).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "herald", Subsystem: "scheduler", Name: "waiting",
		Help: "Scheduled notifications waiting for their time, counted every 10 s: a figure of the database, the same from every process (take the max, not the sum).",
	}, func() float64 { return float64(m.waiting.Load()) })
	if reg != nil {
		reg.MustRegister(m.releases, m.lateness, waiting)
	}
	return m
}

// observe counts a round's releases and drops, and each release's lateness.
func (m *Metrics) observe(rep Report) {
	if m == nil {
		return
	}
	m.releases.WithLabelValues("released").Add(float64(len(rep.Released)))
	m.releases.WithLabelValues("dropped").Add(float64(len(rep.Dropped)))
	for _, r := range rep.Released {
		m.lateness.Observe(max(r.At.Sub(r.SendAt).Seconds(), 0))
	}
}
