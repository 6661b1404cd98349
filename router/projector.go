package router

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
)

// ProjectorConfig tunes how the projector reads the log.
type ProjectorConfig struct {
	// PollInterval is how long a projection waits before looking again once it is caught up:
	// the floor of its lag.
	PollInterval time.Duration
	// BatchSize is how many events one transaction applies at most.
	BatchSize int
	// Metrics, if set, receives watermill's handler metrics.
	Metrics prometheus.Registerer
}

// Projector keeps the read models up to date. Each projection is a consumer group on the event
// log topic; its events are applied in the transaction that also advances its offset, so each is
// applied exactly once even if the projector dies mid-batch.
type Projector struct {
	pool   *pgxpool.Pool
	cfg    ProjectorConfig
	projs  []projections.Projection
	logger *slog.Logger
}

// NewProjector returns a projector of projs over the log in pool.
func NewProjector(pool *pgxpool.Pool, cfg ProjectorConfig, logger *slog.Logger, projs ...projections.Projection) *Projector {
	return &Projector{pool: pool, cfg: cfg, projs: projs, logger: logger}
}

// Run projects until ctx is done; the batch in flight is finished or rolled back whole.
func (p *Projector) Run(ctx context.Context) error {
	wlog := watermillLogger(p.logger)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, wlog)
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	if p.cfg.Metrics != nil {
		addMetrics(router, p.cfg.Metrics)
	}
	router.AddMiddleware(middleware.Recoverer)
	for _, proj := range p.projs {
		sub, err := sql.NewSubscriber(sql.BeginnerFromPgx(p.pool), sql.SubscriberConfig{
			ConsumerGroup:  proj.Name(),
			PollInterval:   p.cfg.PollInterval,
			ResendInterval: 100 * time.Millisecond,
			// Applying an event takes milliseconds. A message not acknowledged within the
			// deadline is abandoned with its transaction — what happens when PostgreSQL drops the
			// connection under it — and the batch is read again from the stored offset.
			AckDeadline:    ptr(5 * time.Second),
			SchemaAdapter:  eventLogSchema{batchSize: p.cfg.BatchSize},
			OffsetsAdapter: eventLogOffsets(),
		}, wlog)
		if err != nil {
			return fmt.Errorf("projector: %s subscriber: %w", proj.Name(), err)
		}
		router.AddConsumerHandler(proj.Name(), TopicEventLog, sub, p.apply(proj))
	}
	return runUntilDone(ctx, router.Run, router.Close)
}

// applyTimeout bounds one application, well inside the subscriber's ack deadline: past the
// deadline the subscriber rolls the transaction back, and it must not do so while the handler
// is still using the transaction's connection.
const applyTimeout = 2 * time.Second

// apply applies one event inside the subscriber's transaction. A nacked message is redelivered
// in that same transaction, whose earlier writes stay: the projection's own guard makes the
// second application a no-op, and a savepoint keeps a failed statement from aborting the batch.
func (p *Projector) apply(proj projections.Projection) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		ctx, cancel := context.WithTimeout(msg.Context(), applyTimeout)
		defer cancel()
		rec, err := recordedFromMessage(msg)
		if err != nil {
			return fmt.Errorf("%s: %w", proj.Name(), err)
		}
		wtx, ok := sql.TxFromContext(ctx)
		if !ok {
			return fmt.Errorf("%s: event %d arrived outside a transaction", proj.Name(), rec.Position)
		}
		ptx, ok := wtx.(*sql.PgxTx)
		if !ok {
			return fmt.Errorf("%s: event %d: transaction is a %T, not pgx", proj.Name(), rec.Position, wtx)
		}
		sp, err := ptx.Tx.Begin(ctx)
		if err != nil {
			return p.lost(ctx, proj, rec, err)
		}
		if err := proj.Apply(ctx, sp, rec); err != nil {
			if rbErr := sp.Rollback(context.WithoutCancel(ctx)); rbErr != nil || ptx.Tx.Conn().IsClosed() {
				return p.lost(ctx, proj, rec, err)
			}
			return fmt.Errorf("%s: apply %s v%d at %d: %w", proj.Name(), rec.StreamID, rec.Version, rec.Position, err)
		}
		if err := sp.Commit(ctx); err != nil {
			return p.lost(ctx, proj, rec, err)
		}
		return nil
	}
}

// lost handles an event whose transaction died under it (PostgreSQL dropped the connection, or
// the transaction can no longer commit). Redelivering into that transaction cannot succeed; so
// the event is acknowledged, which lets the subscriber reach its offset update, fail there, roll
// back and read the batch again in a new transaction. Nothing is skipped: nothing in a dead
// transaction commits, the offset included.
func (p *Projector) lost(ctx context.Context, proj projections.Projection, rec events.Recorded, err error) error {
	p.logger.WarnContext(ctx, "projection transaction lost; the batch will be read again",
		"projection", proj.Name(), "position", rec.Position, "error", err)
	return nil
}
