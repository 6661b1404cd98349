package router

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/tracing"
)

// RelayConfig tunes the outbox relay.
type RelayConfig struct {
	// PollInterval is how long a partition waits before looking again when the outbox first
	// has nothing for it, and the least time between two of its looks when woken.
	PollInterval time.Duration
	// IdlePollMax is the longest a partition waits between looks while the outbox stays empty
	// for it: its waits double from PollInterval up to IdlePollMax. A command whose partition
	// runs in this process is seen at once through Wake; one written by another process, or
	// whose partition another process holds, is seen within IdlePollMax. Zero, or less than
	// PollInterval, polls every PollInterval.
	IdlePollMax time.Duration
	// Wake, shared with the Outbox this process writes through, wakes the idle partitions when
	// a transaction that stored commands has committed. Nil: only polls.
	Wake *OutboxSignal
	// BatchSize is how many commands one outbox transaction forwards at most. Its transaction is
	// open while they are published, and an open transaction delays every reader of the log, so
	// keep it small.
	BatchSize int
	// Partitions is how many forwarders share the outbox, each the commands whose offset modulo
	// Partitions is its own. A forwarder publishes one command at a time and waits for
	// RabbitMQ's confirm; partitions publish side by side.
	Partitions int
	// Tracing opens a span for each command published, continuing the trace stored with it.
	Tracing tracing.Tracing
}

// Relay forwards commands from the outbox table to their RabbitMQ queues (watermill's forwarder).
// A command leaves the outbox only once RabbitMQ routed it to its queue and confirmed it; while
// RabbitMQ is away or its queue is missing, commands wait in the outbox and the API keeps
// accepting.
//
// Each partition runs in one process at a time, whichever holds its consumer group's advisory
// lock; in other `serve` processes it stands by. The relay runs whole or not at all: a partition
// that fails, to start or later, stops the others, and the relay starts again after a backoff,
// while Ready names the partition.
type Relay struct {
	pool     *pgxpool.Pool
	amqp     AMQPConfig
	cfg      RelayConfig
	topology *Topology
	logger   *slog.Logger
	health   *parts
	election string // application_name of its lock sessions
	// ackDeadline bounds how long a partition waits for the command it handed out, RabbitMQ's
	// confirm included, before it gives the command up and ends its transaction.
	ackDeadline time.Duration
}

var _ handlers.WaitingCommands = (*Relay)(nil)

// NewRelay returns a relay from the outbox in pool to RabbitMQ; topology must be running.
func NewRelay(pool *pgxpool.Pool, amqpCfg AMQPConfig, cfg RelayConfig, topology *Topology, logger *slog.Logger) *Relay {
	r := &Relay{pool: pool, amqp: amqpCfg, cfg: cfg, topology: topology, logger: logger, election: electionName("relay"), ackDeadline: relayAckDeadline}
	r.health = newParts(r.groups()...)
	return r
}

// Ready returns nil when every partition runs here or stands by for another process, and
// otherwise an error naming those that do not, and why.
func (r *Relay) Ready(context.Context) error { return r.health.ready() }

// Run relays until ctx is done. While RabbitMQ is away the relay stops reading the outbox
// altogether: a relay retrying a publish holds its outbox transaction open, and an open
// transaction holds back every reader of the log on the server.
func (r *Relay) Run(ctx context.Context) error {
	wait := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	for {
		r.health.setAll("waiting for RabbitMQ")
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
		started := time.Now()
		err = r.relay(runCtx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if time.Since(started) > time.Minute {
				wait.reset() // a failure after a long run is a new one, not the same again
			}
			r.logger.WarnContext(ctx, "relay stopped; it starts again whole", "error", err, "retry_in", wait.next())
			wait.sleep(ctx)
			continue
		}
		wait.reset()
	}
}

// relay forwards until ctx is done or a partition fails, one forwarder per partition this
// process holds the lock of, over one publisher.
func (r *Relay) relay(ctx context.Context) error {
	wlog := watermillLogger(r.logger)
	routed := newRoutedPublisher(r.amqp, max(r.amqp.PublishChannels, r.partitions()), "herald relay", r.topology)
	defer routed.Close()
	var pub message.Publisher = routed
	if r.cfg.Tracing.On() {
		pub = tracedPublisher{Publisher: routed, tracing: r.cfg.Tracing}
	}
	if err := r.startPartitions(ctx); err != nil {
		r.health.setAll(err.Error())
		return err
	}
	return runElected(ctx, r.pool, r.election, r.groups(), r.health, r.logger, func(ctx context.Context, k int, running func()) error {
		return r.forward(ctx, k, pub, wlog, running)
	})
}

func (r *Relay) partitions() int { return max(1, r.cfg.Partitions) }

func (r *Relay) groups() []string {
	groups := make([]string, r.partitions())
	for k := range groups {
		groups[k] = r.group(k)
	}
	return groups
}

// group is the consumer group of partition k: "relay" alone, or "relay-k-of-n".
func (r *Relay) group(k int) string {
	if r.partitions() == 1 {
		return "relay"
	}
	return fmt.Sprintf("relay-%d-of-%d", k, r.partitions())
}

// startPartitions gives every partition that has no offset yet a safe place to start. With a
// partition count changed, a new group starts at the lowest offset of the groups of an earlier
// count, when every one of that count's groups exists: each of them has forwarded its own commands
// up to its offset, so every command at or below their lowest has been forwarded, and earlier
// progress is not thrown away (at worst a few commands are forwarded twice, which the workers
// acknowledge). Groups of the current count, and the groups of a count that never got all its
// rows, say nothing about the commands of a missing partition: started at another partition's
// offset, it would skip its own commands below it. Without such a count, a missing group starts
// at the beginning of the outbox. All missing groups are inserted in one statement, so a failure
// leaves none of them half there.
func (r *Relay) startPartitions(ctx context.Context) error {
	_, err := r.pool.Exec(ctx, `
WITH relay_groups AS (
	SELECT offset_acked, last_processed_transaction_id,
		CASE WHEN consumer_group = 'relay' THEN 0
			ELSE substring(consumer_group FROM '^relay-([0-9]{1,9})-of-[0-9]{1,9}$')::int END AS k,
		CASE WHEN consumer_group = 'relay' THEN 1
			ELSE substring(consumer_group FROM '^relay-[0-9]{1,9}-of-([0-9]{1,9})$')::int END AS n
	FROM outbox_offsets
	WHERE consumer_group = 'relay' OR consumer_group ~ '^relay-[0-9]{1,9}-of-[0-9]{1,9}$'
), complete AS (
	SELECT n FROM relay_groups WHERE n <> $1::int AND k < n GROUP BY n HAVING count(*) = n
), seed AS (
	SELECT offset_acked, last_processed_transaction_id FROM relay_groups JOIN complete USING (n)
	ORDER BY last_processed_transaction_id, offset_acked LIMIT 1
)
INSERT INTO outbox_offsets (consumer_group, offset_acked, last_processed_transaction_id)
SELECT CASE WHEN $1::int = 1 THEN 'relay' ELSE 'relay-' || k || '-of-' || $1::int END, seed.offset_acked, seed.last_processed_transaction_id
FROM seed CROSS JOIN generate_series(0, $1::int - 1) AS k
ORDER BY k
ON CONFLICT (consumer_group) DO NOTHING`, r.partitions())
	if err != nil {
		return fmt.Errorf("start relay partitions: %w", err)
	}
	return nil
}

// relayAckDeadline is a partition's ack deadline: how long a command handed out may take to be
// published and confirmed.
const relayAckDeadline = 5 * time.Second

// relayStopGrace bounds how long a stopping partition waits for the command it is publishing
// (whose wait is bounded by the subscriber's ack deadline) and then for its batch's offset to be
// recorded; and how long watermill's router waits for the forwarder's handler, so that nothing
// the handler waits on holds the relay's stop for longer (watermill's default is 30 s).
const relayStopGrace = 10 * time.Second

// forward runs the forwarder of partition k until ctx is done; it calls running once the
// forwarder has subscribed.
func (r *Relay) forward(ctx context.Context, k int, pub message.Publisher, wlog watermill.LoggerAdapter, running func()) error {
	woken, unlisten := r.cfg.Wake.listen()
	defer unlisten()
	poll := r.cfg.PollInterval
	if poll <= 0 {
		poll = time.Second // watermill-sql's default
	}
	// The idle wait ends when the partition is stopped (ctx), before its subscriber is closed:
	// that close waits for the subscriber's loop, which may be in the wait. Should the forwarder
	// stop on its own, its router closes the subscriber first, and that close waits out the
	// current idle wait (at most IdlePollMax).
	idleCtx, stopIdle := context.WithCancel(ctx)
	defer stopIdle()
	sub, err := sql.NewSubscriber(newOutboxWalker(r.pool), sql.SubscriberConfig{
		ConsumerGroup:  r.group(k),
		PollInterval:   poll,
		BackoffManager: newIdleBackoff(poll, r.cfg.IdlePollMax, woken, idleCtx.Done()),
		ResendInterval: 100 * time.Millisecond,
		// A nacked command is retried in the same transaction; the deadline ends that
		// transaction now and then so it does not hold back readers of the log.
		AckDeadline:    ptr(r.ackDeadline),
		SchemaAdapter:  outboxSchema{batchSize: r.cfg.BatchSize, partitions: r.partitions(), partition: k},
		OffsetsAdapter: outboxOffsets(),
	}, wlog)
	if err != nil {
		return fmt.Errorf("outbox subscriber %d: %w", k, err)
	}
	// Stopping finishes the command being published and records the batch's progress, so the
	// next run does not forward those commands again.
	drained := newDrainingSubscriber(sub, relayStopGrace)
	defer drained.Close()
	defer stopIdle()
	// A command RabbitMQ cannot route is nacked and stays in the outbox: the publisher fails, and
	// the topology declares the queues again.
	fwd, err := forwarder.NewForwarder(drained, pub, wlog, forwarder.Config{
		ForwarderTopic: TopicOutbox,
		CloseTimeout:   relayStopGrace,
		// An envelope that cannot be read never will be; it is logged, not retried forever.
		AckWhenCannotUnwrap: true,
	})
	if err != nil {
		return fmt.Errorf("forwarder %d: %w", k, err)
	}
	go func() {
		select {
		case <-fwd.Running():
			running()
		case <-ctx.Done():
		}
	}()
	return runUntilDone(ctx, fwd.Run, fwd.Close)
}

// PurgeOutbox deletes the outbox rows every partition has forwarded, a batch at a time, and
// returns how many. Forwarded rows are never read again; left alone they would only grow the
// table every poll has to search.
func (r *Relay) PurgeOutbox(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := r.pool.Exec(ctx, `
DELETE FROM outbox WHERE ctid IN (
	SELECT o.ctid FROM outbox o JOIN outbox_offsets g
		ON g.consumer_group = CASE WHEN $1::int = 1 THEN 'relay' ELSE 'relay-' || (o."offset" % $1::int) || '-of-' || $1::int END
	WHERE (o.transaction_id, o."offset") <= (g.last_processed_transaction_id, g.offset_acked)
	LIMIT 5000)`, r.partitions())
		if err != nil {
			return total, fmt.Errorf("purge outbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 {
			return total, nil
		}
	}
}

// Waiting returns which of the notifications ids have a SendNotification command in the outbox
// that the relay has not forwarded yet (with this relay's partitions), so that the reconciler
// does not send again a command that is only waiting for RabbitMQ.
//
// The database picks the unforwarded rows by their partition's offset alone, from a range of
// the outbox's key, so rows forwarded but not yet purged are not read; only the unforwarded are, and
// their commands are decoded here from the forwarder's envelope, where the command's JSON is the
// base64 "payload". A row that does not decode is no command anyone can send: it is skipped and
// counted in a warning instead of failing the check of every other notification.
func (r *Relay) Waiting(ctx context.Context, ids []string) (map[string]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	// Every partition's rows lie past the lowest of the partitions' positions: that bound is a
	// range of the outbox's key, and only the rows in it are read and matched to their partition.
	rows, err := r.pool.Query(ctx, `
WITH parts AS MATERIALIZED (
	SELECT k, g.last_processed_transaction_id AS tx, coalesce(g.offset_acked, 0) AS acked
	FROM generate_series(0, $1::int - 1) k
	LEFT JOIN outbox_offsets g
		ON g.consumer_group = CASE WHEN $1::int = 1 THEN 'relay' ELSE 'relay-' || k || '-of-' || $1::int END
)
SELECT o."offset", o.payload->>'payload'
FROM outbox o JOIN parts p ON p.k = o."offset" % $1::int
WHERE (o.transaction_id, o."offset") > (
		SELECT coalesce(tx, '0'::xid8), CASE WHEN tx IS NULL THEN 0 ELSE acked END
		FROM parts ORDER BY tx NULLS FIRST, acked LIMIT 1)
	AND (p.tx IS NULL OR (o.transaction_id, o."offset") > (p.tx, p.acked))`, r.partitions())
	if err != nil {
		return nil, fmt.Errorf("commands waiting in the outbox: %w", err)
	}
	var (
		out       = map[string]bool{}
		offset    int64
		payload   []byte
		malformed int
		first     int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&offset, &payload}, func() error {
		id, ok := waitingCommand(payload)
		switch {
		case !ok:
			if malformed == 0 {
				first = offset
			}
			malformed++
		case want[id]:
			out[id] = true
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("commands waiting in the outbox: %w", err)
	}
	if malformed > 0 {
		r.logger.WarnContext(ctx, "outbox rows that hold no command were skipped", "rows", malformed, "first_offset", first)
	}
	return out, nil
}

// waitingCommand returns the notification of the SendNotification command whose base64 JSON is
// payload, and false when payload is not one.
func waitingCommand(payload []byte) (string, bool) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(payload)))
	n, err := base64.StdEncoding.Decode(raw, payload)
	if err != nil {
		return "", false
	}
	var cmd commands.SendNotification
	if err := json.Unmarshal(raw[:n], &cmd); err != nil || cmd.NotificationID == "" {
		return "", false
	}
	return cmd.NotificationID, true
}

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
