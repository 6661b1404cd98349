package router

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/tracing"
)

// ProjectorConfig tunes how the projector reads the log.
type ProjectorConfig struct {
	// PollInterval is how long a projection waits before looking again once it is caught up:
	// the floor of its lag.
	PollInterval time.Duration
	// BatchSize is how many events one transaction applies at most.
	BatchSize int
	// Metrics, if set, receives the projector's metrics.
	Metrics prometheus.Registerer
	// StoppedRetry is how often a projection stopped by a gap looks again (10 s by default): a
	// rebuild that repaired its read model lets it resume.
	StoppedRetry time.Duration
	// Tracing records, for each event applied that carries a trace context, a span continuing
	// that trace.
	Tracing tracing.Tracing
}

// Projector keeps the read models up to date. Each projection is a consumer group on the event
// log topic, read through the topic's watermill-sql schema and offsets adapters: a batch of
// events is read, applied with one ApplyBatch, and the group's offset advanced, all in one
// transaction — so each event is applied exactly once even if the projector dies mid-batch.
//
// Why not watermill's Subscriber: it hands a batch's events to the handler one at a time, each
// applied by its own statements, which caps a projection at about a thousand events a second on
// a small machine (three events a notification); and a nacked event comes back in the same
// transaction with the handler's earlier writes still in it. Applying a batch as a whole, under
// the same offsets, is many times faster and leaves no half-applied batch to reason about.
//
// Each projection runs in one process at a time, whichever holds its consumer group's advisory
// lock; in other projector processes it stands by and takes over when the holder goes. The
// projector runs whole or not at all: a projection that cannot start stops the others, and the
// projector starts again after a backoff, while Ready names the projection. A projection that
// meets a gap in a stream's versions stops on its own (see projections.GapError), and Ready says
// so until a rebuild repairs it.
type Projector struct {
	pool    *pgxpool.Pool
	cfg     ProjectorConfig
	projs   []projections.Rebuildable
	logger  *slog.Logger
	metrics *projectorMetrics
	health  *parts
	log     *events.Log
	// election is the application_name of its lock sessions.
	election string
}

// NewProjector returns a projector of projs over the log in pool.
func NewProjector(pool *pgxpool.Pool, cfg ProjectorConfig, logger *slog.Logger, projs ...projections.Rebuildable) *Projector {
	if cfg.BatchSize < 1 {
		cfg.BatchSize = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.StoppedRetry <= 0 {
		cfg.StoppedRetry = 10 * time.Second
	}
	p := &Projector{pool: pool, cfg: cfg, projs: projs, logger: logger, log: events.NewLog(pool), election: electionName("projector")}
	p.health = newParts(p.groups()...)
	if cfg.Metrics != nil {
		p.metrics = newProjectorMetrics(cfg.Metrics)
		// A second projector in the process reports the same figures: registering them again
		// fails harmlessly.
		_ = cfg.Metrics.Register(projectionLag{log: p.log, logger: logger})
	}
	return p
}

func (p *Projector) groups() []string {
	groups := make([]string, len(p.projs))
	for i, proj := range p.projs {
		groups[i] = proj.Name()
	}
	return groups
}

// Ready returns nil when every projection runs here or stands by for another process, and
// otherwise an error naming those that do not, and why.
func (p *Projector) Ready(context.Context) error { return p.health.ready() }

// Run projects until ctx is done; the batch in flight is finished or rolled back whole.
func (p *Projector) Run(ctx context.Context) error {
	wait := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		started := time.Now()
		err := runElected(ctx, p.pool, p.election, p.groups(), p.health, p.logger, func(ctx context.Context, i int, running func()) error {
			return p.project(ctx, p.projs[i], running)
		})
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			wait.reset()
		}
		p.logger.WarnContext(ctx, "projector stopped; it starts again whole", "error", err, "retry_in", wait.next())
		wait.sleep(ctx)
	}
}

// project runs one projection's consumer group until ctx is done. It returns an error only when
// the projection cannot start.
func (p *Projector) project(ctx context.Context, proj projections.Rebuildable, running func()) error {
	schema := eventLogSchema{batchSize: p.cfg.BatchSize}
	offsets := eventLogOffsets()
	if err := p.join(ctx, offsets, proj.Name()); err != nil {
		return err
	}
	// A stop recorded by an earlier run is cleared by the first batch that goes through.
	recorded, _, err := p.log.ConsumerStop(ctx, proj.Name())
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	running()
	wait := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	var stopped *projections.GapError
	for ctx.Err() == nil {
		// A batch runs to its commit even when ctx is done meanwhile: stopping never leaves
		// one half done, and it takes milliseconds.
		n, err := p.batch(context.WithoutCancel(ctx), proj, schema, offsets, stopped != nil || recorded != "")
		var gap *projections.GapError
		switch {
		case errors.As(err, &gap):
			// Applying past a gap would build a read model that is not a fold of the log. The
			// projection stops here; it looks again now and then, so a rebuild brings it back.
			if stopped == nil || stopped.Error() != gap.Error() {
				p.logger.ErrorContext(ctx, "projection stopped: a stream's versions have a gap; rebuild it",
					"projection", proj.Name(), "stream", gap.Stream, "applied_version", gap.Applied,
					"event_version", gap.Version, "position", gap.Position, "error", err)
				if err := p.log.StopConsumer(context.WithoutCancel(ctx), nil, proj.Name(), gap.Error()); err != nil {
					p.logger.WarnContext(ctx, "could not record the projection's stop", "projection", proj.Name(), "error", err)
				}
			}
			stopped = gap
			p.health.set(proj.Name(), "stopped: "+strings.TrimPrefix(gap.Error(), proj.Name()+": "))
			select {
			case <-ctx.Done():
			case <-time.After(p.cfg.StoppedRetry):
			}
			continue
		case err != nil:
			p.health.set(proj.Name(), "batch failed: "+err.Error())
			p.logger.WarnContext(ctx, "projection batch failed; it will be read again",
				"projection", proj.Name(), "error", err, "retry_in", wait.next())
			wait.sleep(ctx)
			continue
		}
		if stopped != nil || recorded != "" {
			p.logger.InfoContext(ctx, "projection resumed", "projection", proj.Name())
			stopped, recorded = nil, ""
		}
		p.health.set(proj.Name(), "")
		if n == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(p.cfg.PollInterval):
			}
		}
		wait.reset()
	}
	return nil
}

// join makes sure the consumer group has an offset row to lock.
func (p *Projector) join(ctx context.Context, offsets sql.OffsetsAdapter, group string) error {
	qs, err := offsets.BeforeSubscribingQueries(sql.BeforeSubscribingQueriesParams{Topic: TopicEventLog, ConsumerGroup: group})
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	for _, q := range qs {
		if _, err := p.pool.Exec(ctx, q.Query, q.Args...); err != nil {
			return fmt.Errorf("join: %w", err)
		}
	}
	return nil
}

// projectorBegin begins each batch's transaction and, in the same round trip, has its
// statements planned for their arguments and the tables as they are now. pgx prepares each
// statement once per connection, and PostgreSQL may then settle on a generic plan chosen while
// the tables were small; where nothing ANALYZEs them again (autovacuum off), such a plan stays
// for good. Measured on such a server: at 1.4 million events the status projection's batches
// took over a second each, a hundred events a second, while the same statements planned afresh
// took a millisecond. Planning costs little against a batch.
const projectorBegin = `BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL plan_cache_mode = force_custom_plan`

// batch reads the next batch of the projection's events, applies it and advances the group's
// offset, in one transaction. It returns how many events it applied.
// resume clears the group's recorded stop in the same transaction.
func (p *Projector) batch(ctx context.Context, proj projections.Rebuildable, schema eventLogSchema, offsets sql.OffsetsAdapter, resume bool) (int, error) {
	start := time.Now()
	sel, err := schema.SelectQuery(sql.SelectQueryParams{Topic: TopicEventLog, ConsumerGroup: proj.Name(), OffsetsAdapter: offsets})
	if err != nil {
		return 0, err
	}
	if schema.SubscribeIsolationLevel() != stdsql.LevelRepeatableRead {
		return 0, fmt.Errorf("projector: unexpected isolation level %v", schema.SubscribeIsolationLevel())
	}
	var (
		n    int
		recs []events.Recorded
	)
	err = pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{BeginQuery: projectorBegin}, func(tx pgx.Tx) error {
		// The select takes the group's offset row FOR UPDATE: one projector per group at a time.
		rows, err := tx.Query(ctx, sel.Query, sel.Args...)
		if err != nil {
			return fmt.Errorf("read %s's batch: %w", proj.Name(), err)
		}
		var last sql.Row
		for rows.Next() {
			row, err := schema.UnmarshalMessage(sql.UnmarshalMessageParams{Row: rows})
			if err != nil {
				rows.Close()
				return err
			}
			rec, err := recordedFromMessage(row.Msg)
			if err != nil {
				rows.Close()
				return err
			}
			recs, last = append(recs, rec), row
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read %s's batch: %w", proj.Name(), err)
		}
		if resume {
			if err := p.log.StopConsumer(ctx, tx, proj.Name(), ""); err != nil {
				return err
			}
		}
		if len(recs) == 0 {
			return nil
		}
		if err := proj.ApplyBatch(ctx, tx, recs); err != nil {
			return fmt.Errorf("%s: apply %d events from position %d: %w", proj.Name(), len(recs), recs[0].Position, err)
		}
		ack, err := offsets.AckMessageQuery(sql.AckMessageQueryParams{Topic: TopicEventLog, LastRow: last, ConsumerGroup: proj.Name()})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, ack.Query, ack.Args...); err != nil {
			return fmt.Errorf("advance %s's offset: %w", proj.Name(), err)
		}
		n = len(recs)
		return nil
	})
	if err == nil && n > 0 && p.metrics != nil {
		p.metrics.observe(proj.Name(), n, time.Since(start))
	}
	if err == nil && n > 0 {
		traceApplied(p.cfg.Tracing, proj.Name(), recs, start, time.Now())
	}
	return n, err
}

type projectorMetrics struct {
	applied  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newProjectorMetrics registers the projector's counters of events applied and its histogram of
// batch durations, per read model, on reg.
func newProjectorMetrics(reg prometheus.Registerer) *projectorMetrics {
	m := &projectorMetrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "projector", Name: "events_applied_total",
			Help: "Events applied to each read model.",
		}, []string{"projection"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "projector", Name: "batch_duration_seconds",
			Help:    "Time to read, apply and commit one batch of events.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"projection"}),
	}
	// A second projector in the process shares the first one's collectors.
	if err := reg.Register(m.applied); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			m.applied = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	if err := reg.Register(m.duration); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			m.duration = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	return m
}

func (m *projectorMetrics) observe(projection string, n int, d time.Duration) {
	m.applied.WithLabelValues(projection).Add(float64(n))
	m.duration.WithLabelValues(projection).Observe(d.Seconds())
}
