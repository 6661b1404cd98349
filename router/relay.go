package router

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RelayConfig tunes the outbox relay.
type RelayConfig struct {
	// PollInterval is how long the relay waits before looking again when the outbox is empty.
	PollInterval time.Duration
	// BatchSize is how many commands one outbox transaction forwards at most. Its transaction is
	// open while they are published, and an open transaction delays every reader of the log, so
	// keep it small.
	BatchSize int
}

// Relay forwards commands from the outbox table to their RabbitMQ queues (watermill's forwarder).
// A command leaves the outbox only once RabbitMQ confirmed it; while RabbitMQ is away, commands
// wait in the outbox and the API keeps accepting.
type Relay struct {
	pool     *pgxpool.Pool
	amqp     AMQPConfig
	cfg      RelayConfig
	topology *Topology
	logger   *slog.Logger
}

// NewRelay returns a relay from the outbox in pool to RabbitMQ; topology must be running.
func NewRelay(pool *pgxpool.Pool, amqpCfg AMQPConfig, cfg RelayConfig, topology *Topology, logger *slog.Logger) *Relay {
	return &Relay{pool: pool, amqp: amqpCfg, cfg: cfg, topology: topology, logger: logger}
}

// Run relays until ctx is done. While RabbitMQ is away the relay stops reading the outbox
// altogether: a relay retrying a publish holds its outbox transaction open, and an open
// transaction holds back every reader of the log on the server.
func (r *Relay) Run(ctx context.Context) error {
	wait := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	for {
		lost, err := r.topology.Wait(ctx)
		if err != nil {
			return nil
		}
		runCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				r.logger.WarnContext(ctx, "relay pauses until RabbitMQ is back")
			case <-runCtx.Done():
			}
			cancel()
		}()
		err = r.relay(runCtx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.logger.WarnContext(ctx, "relay stopped, restarting", "error", err, "retry_in", wait.next())
			wait.sleep(ctx)
			continue
		}
		wait.reset()
	}
}

// relay forwards until ctx is done.
func (r *Relay) relay(ctx context.Context) error {
	wlog := watermillLogger(r.logger)
	pub, err := amqp.NewPublisher(r.amqp.watermill(), wlog)
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer pub.Close()

	sub, err := sql.NewSubscriber(sql.BeginnerFromPgx(r.pool), sql.SubscriberConfig{
		ConsumerGroup:  "relay",
		PollInterval:   r.cfg.PollInterval,
		ResendInterval: 100 * time.Millisecond,
		// A nacked command is retried in the same transaction; the deadline ends that
		// transaction now and then so it does not hold back readers of the log.
		AckDeadline:    ptr(5 * time.Second),
		SchemaAdapter:  outboxSchema(r.cfg.BatchSize),
		OffsetsAdapter: outboxOffsets(),
	}, wlog)
	if err != nil {
		return fmt.Errorf("outbox subscriber: %w", err)
	}
	defer sub.Close()

	fwd, err := forwarder.NewForwarder(sub, &declaredPublisher{pub: pub, topology: r.topology}, wlog, forwarder.Config{
		ForwarderTopic: TopicOutbox,
		// An envelope that cannot be read never will be; it is logged, not retried forever.
		AckWhenCannotUnwrap: true,
	})
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	return runUntilDone(ctx, fwd.Run, fwd.Close)
}

// declaredPublisher publishes only while the queues are known to exist, so that a broker that
// came back without its definitions does not swallow commands.
type declaredPublisher struct {
	pub      message.Publisher
	topology *Topology
}

func (p *declaredPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.topology.Ready(context.Background()); err != nil {
		return err
	}
	return p.pub.Publish(topic, msgs...)
}

func (p *declaredPublisher) Close() error { return p.pub.Close() }

// runUntilDone runs run (a watermill router or forwarder) and closes it when ctx is done. Closing
// rather than cancelling lets messages in flight finish.
func runUntilDone(ctx context.Context, run func(context.Context) error, closeFn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- run(context.Background()) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if err := closeFn(); err != nil {
		<-errc
		return err
	}
	return <-errc
}

func ptr[T any](v T) *T { return &v }
