package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/postgres"
)

// The raw ceiling: what the same services do, through the same client libraries, for the
// simplest operations a notification is made of.

// ceilingQueue is the durable quorum queue the AMQP ceiling publishes to, in the run's vhost.
const ceilingQueue = "herald_bench_ceiling"

// confirmWindow is how many unconfirmed messages each publisher may have outstanding.
const confirmWindow = 100

// ceilingPrefetch is the consumer's prefetch.
const ceilingPrefetch = 50

// AMQPCeiling is what RabbitMQ did: persistent messages published with confirms to a durable
// quorum queue by Publishers channels at once, and consumed from it meanwhile with manual acks.
type AMQPCeiling struct {
	Publishers      int     `json:"publishers"`
	ConfirmWindow   int     `json:"confirm_window"`
	Prefetch        int     `json:"prefetch"`
	MessageBytes    int     `json:"message_bytes"`
	Published       int64   `json:"published"`
	PublishSeconds  float64 `json:"publish_seconds"`
	PublishedPerSec float64 `json:"published_per_sec"`
	Consumed        int64   `json:"consumed"`
	ConsumeSeconds  float64 `json:"consume_seconds"`
	// ConsumedPerSec is consumed messages over the time from the first publish to the last
	// ack: the end-to-end rate through the broker.
	ConsumedPerSec float64 `json:"consumed_per_sec"`
}

// PGCeiling is what PostgreSQL did: single-row INSERTs, each its own transaction (one commit,
// one WAL flush), from Clients connections at once.
type PGCeiling struct {
	Clients    int     `json:"clients"`
	Inserts    int64   `json:"inserts"`
	Seconds    float64 `json:"seconds"`
	InsertsPer float64 `json:"inserts_per_sec"`
}

// ceilingMessage is the size of a SendNotification command as Herald publishes it, roughly.
var ceilingMessage = []byte(strings.Repeat("x", 600))

// measureAMQP publishes for d with publishers concurrent channels and consumes meanwhile.
func measureAMQP(ctx context.Context, amqpURL string, publishers int, d time.Duration) (AMQPCeiling, error) {
	out := AMQPCeiling{Publishers: publishers, ConfirmWindow: confirmWindow, Prefetch: ceilingPrefetch, MessageBytes: len(ceilingMessage)}
	pubConn, err := amqp.Dial(amqpURL)
	if err != nil {
		return out, fmt.Errorf("amqp ceiling: connect: %w", err)
	}
	defer pubConn.Close()
	subConn, err := amqp.Dial(amqpURL)
	if err != nil {
		return out, fmt.Errorf("amqp ceiling: connect: %w", err)
	}
	defer subConn.Close()

	admin, err := pubConn.Channel()
	if err != nil {
		return out, fmt.Errorf("amqp ceiling: channel: %w", err)
	}
	defer admin.Close()
	if _, err := admin.QueueDeclare(ceilingQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return out, fmt.Errorf("amqp ceiling: declare %s: %w", ceilingQueue, err)
	}
	defer func() { _, _ = admin.QueueDelete(ceilingQueue, false, false, false) }()

	sub, err := subConn.Channel()
	if err != nil {
		return out, fmt.Errorf("amqp ceiling: channel: %w", err)
	}
	if err := sub.Qos(ceilingPrefetch, 0, false); err != nil {
		return out, fmt.Errorf("amqp ceiling: qos: %w", err)
	}
	deliveries, err := sub.ConsumeWithContext(ctx, ceilingQueue, "herald-bench", false, false, false, false, nil)
	if err != nil {
		return out, fmt.Errorf("amqp ceiling: consume: %w", err)
	}

	var consumed atomic.Int64
	var lastAck atomic.Int64 // nanoseconds since start
	start := time.Now()
	consumerDone := make(chan error, 1)
	go func() {
		for m := range deliveries {
			if err := m.Ack(false); err != nil {
				consumerDone <- fmt.Errorf("amqp ceiling: ack: %w", err)
				return
			}
			consumed.Add(1)
			lastAck.Store(int64(time.Since(start)))
		}
		consumerDone <- nil
	}()

	var (
		published atomic.Int64
		lastConf  atomic.Int64
		wg        sync.WaitGroup
		errMu     sync.Mutex
		pubErr    error
	)
	deadline := start.Add(d)
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := publishUntil(ctx, pubConn, deadline, func() {
				published.Add(1)
				lastConf.Store(int64(time.Since(start)))
			})
			if err != nil {
				errMu.Lock()
				pubErr = errors.Join(pubErr, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if pubErr != nil {
		return out, pubErr
	}
	out.Published = published.Load()
	out.PublishSeconds = time.Duration(lastConf.Load()).Seconds()

	// The consumer catches up: give it as long again as publishing took, at least 10 s.
	wait := time.Now().Add(max(d, 10*time.Second))
	for consumed.Load() < out.Published && time.Now().Before(wait) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	_ = sub.Cancel("herald-bench", false)
	out.Consumed = consumed.Load()
	out.ConsumeSeconds = time.Duration(lastAck.Load()).Seconds()
	if out.PublishSeconds > 0 {
		out.PublishedPerSec = float64(out.Published) / out.PublishSeconds
	}
	if out.ConsumeSeconds > 0 {
		out.ConsumedPerSec = float64(out.Consumed) / out.ConsumeSeconds
	}
	select {
	case err := <-consumerDone:
		if err != nil {
			return out, err
		}
	default:
	}
	return out, ctx.Err()
}

// publishUntil publishes on a channel of its own in confirm mode until deadline, keeping up to
// confirmWindow messages unconfirmed, and calls confirmed for each message the broker confirms.
func publishUntil(ctx context.Context, conn *amqp.Connection, deadline time.Time, confirmed func()) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp ceiling: channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("amqp ceiling: confirm mode: %w", err)
	}
	window := make([]*amqp.DeferredConfirmation, 0, confirmWindow)
	wait := func(dc *amqp.DeferredConfirmation) error {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("amqp ceiling: the broker refused a message (nack)")
		}
		confirmed()
		return nil
	}
	msg := amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "application/octet-stream", Body: ceilingMessage}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if len(window) == confirmWindow {
			if err := wait(window[0]); err != nil {
				return err
			}
			window = slices.Delete(window, 0, 1)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", ceilingQueue, true, false, msg)
		if err != nil {
			return fmt.Errorf("amqp ceiling: publish: %w", err)
		}
		window = append(window, dc)
	}
	for _, dc := range window {
		if err := wait(dc); err != nil {
			return err
		}
	}
	return nil
}

// ceilingTable is the scratch table of the PostgreSQL ceiling: a row about the size of an event.
const ceilingTable = "herald_bench_ceiling"

// measurePostgres runs single-row INSERT commits for d from each number of clients in turn.
func measurePostgres(ctx context.Context, pool *pgxpool.Pool, clients []int, d time.Duration) ([]PGCeiling, error) {
	if _, err := pool.Exec(ctx, `CREATE TABLE `+ceilingTable+` (
		id BIGSERIAL PRIMARY KEY, stream_id UUID NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), data JSONB NOT NULL)`); err != nil {
		return nil, fmt.Errorf("postgres ceiling: create table: %w", err)
	}
	defer func() { _, _ = pool.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+ceilingTable) }()
	const data = `{"channel":"email","recipient":"b1@bench.herald.test","subject":"Bench","body":"Hello Ada, this is notification 1 of the bench.","variables":{"name":"Ada","n":1}}`

	var out []PGCeiling
	for _, c := range clients {
		var (
			n     atomic.Int64
			wg    sync.WaitGroup
			errMu sync.Mutex
			first error
		)
		start := time.Now()
		deadline := start.Add(d)
		for range c {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := pool.Acquire(ctx)
				if err != nil {
					errMu.Lock()
					first = errors.Join(first, err)
					errMu.Unlock()
					return
				}
				defer conn.Release()
				for time.Now().Before(deadline) && ctx.Err() == nil {
					if _, err := conn.Exec(ctx, `INSERT INTO `+ceilingTable+` (stream_id, data) VALUES (gen_random_uuid(), $1)`, data); err != nil {
						errMu.Lock()
						first = errors.Join(first, err)
						errMu.Unlock()
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		if first != nil {
			return out, fmt.Errorf("postgres ceiling with %d clients: %w", c, first)
		}
		secs := time.Since(start).Seconds()
		out = append(out, PGCeiling{Clients: c, Inserts: n.Load(), Seconds: secs, InsertsPer: float64(n.Load()) / secs})
	}
	return out, ctx.Err()
}

// pgClientCounts are the client counts of the PostgreSQL ceiling: 1, 4, 16 and concurrency.
func pgClientCounts(concurrency int) []int {
	out := []int{1, 4, 16}
	if !slices.Contains(out, concurrency) {
		out = append(out, concurrency)
		slices.Sort(out)
	}
	return out
}

// newCeilingPool connects to the scratch database with enough connections for the clients.
func newCeilingPool(ctx context.Context, databaseURL string, clients []int) (*pgxpool.Pool, error) {
	return postgres.Connect(ctx, databaseURL, postgres.Options{MaxConns: slices.Max(clients), AppName: "herald-bench-ceiling"})
}
