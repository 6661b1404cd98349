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

	amqp "github.com/rabbitmq/amqp091-go"
)

// The AMQP half of the raw ceiling: persistent messages through a quorum queue, published with
// confirms and consumed with manual acks, as Herald's relay and workers do.

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

// ceilingMessage is the size of a SendNotification command as Herald publishes it, roughly.
var ceilingMessage = []byte(strings.Repeat("x", 600))

// measureAMQP publishes for d with publishers concurrent channels and consumes meanwhile, on a
// quorum queue of its own that it deletes afterwards.
func measureAMQP(ctx context.Context, amqpURL string, publishers int, d time.Duration) (AMQPCeiling, error) {
	out := AMQPCeiling{Publishers: publishers, ConfirmWindow: confirmWindow, Prefetch: ceilingPrefetch, MessageBytes: len(ceilingMessage)}
	// Publishers and the consumer have a connection each, as Herald's relay and workers do.
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
	deleteQueue, err := declareCeilingQueue(pubConn)
	if err != nil {
		return out, err
	}
	defer deleteQueue()

	c, err := startCeilingConsumer(ctx, subConn)
	if err != nil {
		return out, err
	}
	published, lastConfirm, err := publishFor(ctx, pubConn, publishers, c.start, d)
	if err != nil {
		return out, err
	}
	out.Published, out.PublishSeconds = published, lastConfirm.Seconds()
	// The consumer catches up: give it as long again as publishing took, at least 10 s.
	consumed, lastAck, err := c.finish(ctx, published, max(d, 10*time.Second))
	out.Consumed, out.ConsumeSeconds = consumed, lastAck.Seconds()
	if out.PublishSeconds > 0 {
		out.PublishedPerSec = float64(out.Published) / out.PublishSeconds
	}
	if out.ConsumeSeconds > 0 {
		out.ConsumedPerSec = float64(out.Consumed) / out.ConsumeSeconds
	}
	if err != nil {
		return out, err
	}
	return out, ctx.Err()
}

// declareCeilingQueue declares the ceiling's durable quorum queue, and returns how to delete it
// and close the channel that declared it.
func declareCeilingQueue(conn *amqp.Connection) (deleteQueue func(), err error) {
	admin, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp ceiling: channel: %w", err)
	}
	if _, err := admin.QueueDeclare(ceilingQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		admin.Close()
		return nil, fmt.Errorf("amqp ceiling: declare %s: %w", ceilingQueue, err)
	}
	return func() {
		_, _ = admin.QueueDelete(ceilingQueue, false, false, false)
		admin.Close()
	}, nil
}

// ceilingConsumer consumes the ceiling's queue with manual acks, counting what it acked and
// when it acked the last, since start.
type ceilingConsumer struct {
	ch       *amqp.Channel
	start    time.Time
	consumed atomic.Int64
	lastAck  atomic.Int64 // nanoseconds since start
	done     chan error   // the ack loop's end: nil, or the ack that failed
}

// ceilingConsumerTag names the ceiling's consumer, to cancel it.
const ceilingConsumerTag = "herald-bench"

// startCeilingConsumer starts consuming the ceiling's queue at Herald's prefetch; the time it
// returns from is the start of the measurement.
func startCeilingConsumer(ctx context.Context, conn *amqp.Connection) (*ceilingConsumer, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp ceiling: channel: %w", err)
	}
	if err := ch.Qos(ceilingPrefetch, 0, false); err != nil {
		return nil, fmt.Errorf("amqp ceiling: qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, ceilingQueue, ceilingConsumerTag, false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("amqp ceiling: consume: %w", err)
	}
	c := &ceilingConsumer{ch: ch, start: time.Now(), done: make(chan error, 1)}
	go c.ack(deliveries)
	return c, nil
}

// ack acknowledges every delivery until the consumer is cancelled or an ack fails.
func (c *ceilingConsumer) ack(deliveries <-chan amqp.Delivery) {
	for m := range deliveries {
		if err := m.Ack(false); err != nil {
			c.done <- fmt.Errorf("amqp ceiling: ack: %w", err)
			return
		}
		c.consumed.Add(1)
		c.lastAck.Store(int64(time.Since(c.start)))
	}
	c.done <- nil
}

// finish waits, for at most limit, until the consumer has acked published messages, then
// cancels it; it returns how many it acked, when the last ack was, and a failed ack's error.
func (c *ceilingConsumer) finish(ctx context.Context, published int64, limit time.Duration) (int64, time.Duration, error) {
	wait := time.Now().Add(limit)
	for c.consumed.Load() < published && time.Now().Before(wait) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	_ = c.ch.Cancel(ceilingConsumerTag, false)
	consumed, lastAck := c.consumed.Load(), time.Duration(c.lastAck.Load())
	select {
	case err := <-c.done:
		return consumed, lastAck, err
	default:
		return consumed, lastAck, nil
	}
}

// publishFor publishes from publishers channels at once until d after start, and returns how
// many messages the broker confirmed and when it confirmed the last, since start.
func publishFor(ctx context.Context, conn *amqp.Connection, publishers int, start time.Time, d time.Duration) (int64, time.Duration, error) {
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
			err := publishUntil(ctx, conn, deadline, func() {
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
	return published.Load(), time.Duration(lastConf.Load()), pubErr
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
