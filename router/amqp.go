// Package router is the only part of Herald that knows brokers, topics and middleware. It wires
// watermill to RabbitMQ (one node, or the nodes of a cluster: see brokerNodes) and PostgreSQL: the outbox that stores commands in the API's transaction,
// the relay that forwards them to RabbitMQ, the workers that consume them, and the projector that
// reads the event log as a watermill-sql topic.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald"
)

// RabbitMQ queue names. The work queues keep the names clients and dashboards already know;
// renaming one is a breaking change.
const (
	QueueEmail  = "email_notifications"
	QueueSMS    = "sms_notifications"
	QueuePoison = "poison_notifications"
)

// QueueFor returns the work queue of channel c.
func QueueFor(c herald.Channel) (string, error) {
	switch c {
	case herald.ChannelEmail:
		return QueueEmail, nil
	case herald.ChannelSMS:
		return QueueSMS, nil
	}
	return "", fmt.Errorf("no queue for channel %q", c)
}

// AMQPConfig says how Herald uses RabbitMQ.
type AMQPConfig struct {
	// URL names one RabbitMQ node, or several nodes of a cluster (see brokerNodes).
	URL string
	// QueueType is "quorum" (replicated, the default) or "classic". A queue's type is fixed when
	// it is first declared; declaring it again with another type fails.
	QueueType string
	// Prefetch is how many unacknowledged messages each consumer may hold.
	Prefetch int
	// PublishChannels is the size of each publisher's channel pool.
	PublishChannels int
}

// Validate reports what is wrong with c.
func (c AMQPConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("AMQP URL is empty"))
	} else if _, err := parseNodes(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("AMQP URL: %w", err))
	}
	if c.QueueType != "quorum" && c.QueueType != "classic" {
		errs = append(errs, fmt.Errorf("queue type %q: want quorum or classic", c.QueueType))
	}
	if c.Prefetch < 1 {
		errs = append(errs, fmt.Errorf("prefetch %d: want at least 1", c.Prefetch))
	}
	if c.PublishChannels < 1 {
		errs = append(errs, fmt.Errorf("publish channels %d: want at least 1", c.PublishChannels))
	}
	return errors.Join(errs...)
}

// watermill returns watermill-amqp's configuration: durable queues named after the topic on the
// default exchange, persistent messages, publisher confirms.
func (c AMQPConfig) watermill() amqp.Config {
	cfg := amqp.NewDurableQueueConfig(c.URL)
	cfg.Marshaler = headerTolerantMarshaler{}
	cfg.Queue.Arguments = c.queueArguments()
	cfg.Consume.Qos.PrefetchCount = c.Prefetch
	cfg.Publish.ConfirmDelivery = true
	cfg.Publish.ChannelPoolSize = c.PublishChannels
	return cfg
}

// queueArguments are the work queues' arguments. A command RabbitMQ gives up on — a quorum queue
// drops a message redelivered more often than its delivery limit, 20 by default since RabbitMQ
// 4.0 — is dead-lettered to the poison queue rather than dropped.
func (c AMQPConfig) queueArguments() amqp091.Table {
	return amqp091.Table{
		"x-queue-type":              c.QueueType,
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": QueuePoison,
	}
}

// poisonQueueArguments are the poison queue's. It is a classic queue whatever the work queues
// are: listing parked messages hands them back to the queue, which a quorum queue counts as a
// redelivery and, past its delivery limit, drops.
func poisonQueueArguments() amqp091.Table {
	return amqp091.Table{"x-queue-type": "classic"}
}

// Declare declares Herald's queues on ch: the work queues of every lane, and the poison queue their commands
// are parked in. Declaring them again with the same arguments is harmless; with others, RabbitMQ
// refuses (PRECONDITION_FAILED), and the error says so.
//
// The work queues come first: when the node that holds the (classic, unreplicated) poison queue
// is down, RabbitMQ refuses to declare it, and the error wraps ErrPoisonQueueNodeDown after the
// work queues are declared.
func (c AMQPConfig) Declare(ch *amqp091.Channel) error {
	for _, name := range WorkQueues() {
		if _, err := ch.QueueDeclare(name, true, false, false, false, c.queueArguments()); err != nil {
			return fmt.Errorf("declare queue %s (%v): %w", name, c.queueArguments(), err)
		}
	}
	if _, err := ch.QueueDeclare(QueuePoison, true, false, false, false, poisonQueueArguments()); err != nil {
		err = poisonNodeDown(err)
		return fmt.Errorf("declare queue %s (%v): %w", QueuePoison, poisonQueueArguments(), err)
	}
	return nil
}

// poisonNodeDown wraps err in ErrPoisonQueueNodeDown when RabbitMQ says the node holding the
// poison queue is down (NOT_FOUND, "home node ... is down or inaccessible").
func poisonNodeDown(err error) error {
	var aerr *amqp091.Error
	if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound && strings.Contains(aerr.Reason, "home node") {
		return fmt.Errorf("%w: %w", ErrPoisonQueueNodeDown, err)
	}
	return err
}

// ErrPoisonQueueNodeDown says the RabbitMQ node that holds the poison queue is down. The poison
// queue is a classic queue (see poisonQueueArguments), which lives on the node it was first
// declared on; its commands wait for that node, the rest of Herald does not.
var ErrPoisonQueueNodeDown = errors.New("the RabbitMQ node holding the poison queue is down")

// headerTolerantMarshaler is watermill-amqp's message format, reading header values of any type.
// RabbitMQ adds headers of its own — a quorum queue counts redeliveries in an integer
// x-delivery-count — and the default format refuses any header that is not a string, so a
// redelivered command could never be read again.
type headerTolerantMarshaler struct {
	amqp.DefaultMarshaler
}

// errNoDelivery is the error for the empty delivery a cancelled consumer's closed channel yields.
var errNoDelivery = errors.New("no delivery: the consumer was cancelled (its queue deleted?)")

func (m headerTolerantMarshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	if d.Acknowledger == nil {
		// RabbitMQ cancels the consumers of a deleted queue, and watermill-amqp then reads the
		// closed delivery channel's zero value as a message: without this refusal, a handler
		// would get an empty command and park it. Refused, the subscription fails to nack it,
		// reconnects and declares the queue again.
		return nil, errNoDelivery
	}
	headers := make(amqp091.Table, len(d.Headers))
	for k, v := range d.Headers {
		if s, ok := v.(string); ok {
			headers[k] = s
			continue
		}
		headers[k] = fmt.Sprint(v)
	}
	d.Headers = headers
	return m.DefaultMarshaler.Unmarshal(d)
}

// Topology keeps Herald's queues declared. A message published to the default exchange with no
// queue to route it to is dropped silently, confirms or not; so the queues are declared before
// anything is published, again after every reconnection, in case the broker came back without
// its definitions, and again when a publisher finds a queue missing (Unroutable) — deleted by
// hand, say. Topology also answers whether RabbitMQ is reachable and the queues declared.
type Topology struct {
	cfg    AMQPConfig
	logger *slog.Logger
	// missingGrace is how long the topology stays down after a publisher found a queue missing
	// before it declares the queues again.
	missingGrace time.Duration
	// poisonRetry is how often the poison queue is declared again while its node is down.
	poisonRetry time.Duration

	redeclare chan string // queues a publisher found missing

	mu       sync.Mutex
	declared chan struct{} // closed while the queues are known to exist
	lost     chan struct{} // closed when the connection that declared them is gone
	lastErr  error
	// poisonErr is set while the poison queue's node is down: the rest is declared.
	poisonErr error
	conn      *amqp091.Connection // the connection that declared them, while it lasts
}

// NewTopology returns a topology keeper for cfg; Run makes it work.
func NewTopology(cfg AMQPConfig, logger *slog.Logger) *Topology {
	return &Topology{
		cfg:          cfg,
		logger:       logger,
		missingGrace: time.Second,
		poisonRetry:  poisonRetryInterval,
		redeclare:    make(chan string, 1),
		declared:     make(chan struct{}),
		lost:         make(chan struct{}),
		lastErr:      errors.New("not connected to RabbitMQ yet"),
	}
}

// Unroutable tells the topology that RabbitMQ had no queue for a message published to queue: the
// topology goes down — publishers refuse, the relay pauses, readiness says why — and declares the
// queues again shortly. It does not block.
func (t *Topology) Unroutable(queue string) {
	select {
	case t.redeclare <- queue:
	default: // a redeclaration is already due
	}
}

// Run connects, declares the queues, and does both again whenever the connection drops or a
// queue is found missing, until ctx is done. If declaring fails (RabbitMQ refuses, say, after a
// permission or policy change), the topology stays down and tries again with backoff.
func (t *Topology) Run(ctx context.Context) error {
	wait := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		conn, err := t.cfg.dial("herald topology")
		if err == nil {
			err = t.declare(conn)
		}
		var poisonErr error
		if errors.Is(err, ErrPoisonQueueNodeDown) {
			// The work queues are declared: delivery goes on while the poison queue's node is
			// down. Parking is refused meanwhile (the commands to park are retried from their
			// work queues), and watch declares the poison queue again until its node is back.
			t.logger.WarnContext(ctx, "the poison queue's RabbitMQ node is down; delivering without it until it is back", "error", err)
			poisonErr, err = err, nil
		}
		if err != nil {
			t.setDown(err)
			t.logger.WarnContext(ctx, "RabbitMQ unreachable, retrying", "error", err, "retry_in", wait.next())
			wait.sleep(ctx)
			continue
		}
		wait.reset()
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		t.setUp(conn, poisonErr)
		t.logger.InfoContext(ctx, "RabbitMQ queues declared", "queues", append(WorkQueues(), QueuePoison), "node", conn.RemoteAddr().String())
		if stop := t.watch(ctx, conn, closed); stop {
			return nil
		}
	}
	return nil
}

// watch holds conn until ctx is done (it returns true), the connection closes, or a queue is
// found missing (false).
//
// A missing queue is not declared again at once. Deleting a queue makes RabbitMQ cancel its
// consumers, asynchronously; declaring the same name before it has done so can leave the
// workers' consumers attached to nothing (measured with quorum queues on RabbitMQ 3.10: the new
// queue shows the consumers and hands a command to one that never receives it). Workers that were
// cancelled declare the queue themselves as they subscribe again; the topology declares it after
// missingGrace, for when no worker runs.
func (t *Topology) watch(ctx context.Context, conn *amqp091.Connection, closed <-chan *amqp091.Error) (stop bool) {
	// The poison queue is declared again on every tick while its node is known to be down:
	// known at the first declaration, or later, when a park finds it gone (see
	// Topology.poisonDown).
	tick := time.NewTicker(t.poisonRetry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close()
			return true
		case queue := <-t.redeclare:
			t.setDown(fmt.Errorf("queue %s is missing: RabbitMQ could not route to it", queue))
			t.logger.WarnContext(ctx, "RabbitMQ could not route to a queue, declaring the queues again shortly",
				"queue", queue, "retry_in", t.missingGrace)
			_ = conn.Close()
			select {
			case <-ctx.Done():
				return true
			case <-time.After(t.missingGrace):
			}
			return false
		case cerr := <-closed:
			err := errors.New("connection closed")
			if cerr != nil {
				err = cerr
			}
			t.setDown(err)
			t.logger.WarnContext(ctx, "RabbitMQ connection lost", "error", err)
			return false
		case <-tick.C:
			if t.PoisonReady() == nil {
				continue
			}
			if err := t.declarePoison(conn); err != nil {
				continue
			}
			t.mu.Lock()
			t.poisonErr = nil
			t.mu.Unlock()
			t.logger.InfoContext(ctx, "poison queue declared: its RabbitMQ node is back")
		}
	}
}

// poisonDown records that a park found the poison queue's node down after the topology declared
// it (a failover the topology's connection did not see): parking is refused, and watch declares
// the poison queue again until the node is back.
func (t *Topology) poisonDown(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastErr == nil && t.poisonErr == nil {
		t.poisonErr = err
		t.logger.Warn("the poison queue's RabbitMQ node is down; parking waits until it is back", "error", err)
	}
}

// poisonRetryInterval is how often the topology declares the poison queue again while its node
// is down.
const poisonRetryInterval = 2 * time.Second

// declarePoison declares the poison queue on a channel of its own (a refusal closes the channel,
// not the connection).
func (t *Topology) declarePoison(conn *amqp091.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(QueuePoison, true, false, false, false, poisonQueueArguments())
	return err
}

func (t *Topology) declare(conn *amqp091.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := t.cfg.Declare(ch); err != nil {
		if !errors.Is(err, ErrPoisonQueueNodeDown) {
			_ = conn.Close()
		}
		return err
	}
	return nil
}

// setUp says conn declared the queues, all but the poison queue when poisonErr says why not.
func (t *Topology) setUp(conn *amqp091.Connection, poisonErr error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastErr = nil
	t.poisonErr = poisonErr
	t.conn = conn
	select {
	case <-t.declared:
	default:
		close(t.declared)
		t.lost = make(chan struct{})
	}
}

func (t *Topology) setDown(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastErr = err
	t.conn = nil
	select {
	case <-t.declared:
		t.declared = make(chan struct{})
		close(t.lost)
	default:
	}
}

// Ready returns nil when RabbitMQ is reachable and the queues are declared, else why not.
func (t *Topology) Ready(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastErr != nil {
		return fmt.Errorf("rabbitmq: %w", t.lastErr)
	}
	return nil
}

// PoisonReady returns nil when the poison queue is declared as well as the work queues, else
// why not: its node may be down while the rest of the cluster works.
func (t *Topology) PoisonReady() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastErr != nil {
		return fmt.Errorf("rabbitmq: %w", t.lastErr)
	}
	if t.poisonErr != nil {
		return fmt.Errorf("rabbitmq: %w", t.poisonErr)
	}
	return nil
}

// Wait blocks until the queues are declared or ctx is done. It returns a channel that is closed
// when RabbitMQ is lost again.
func (t *Topology) Wait(ctx context.Context) (lost <-chan struct{}, err error) {
	for {
		t.mu.Lock()
		declared, lost := t.declared, t.lost
		t.mu.Unlock()
		select {
		case <-declared:
			t.mu.Lock()
			current := t.lost
			t.mu.Unlock()
			if current != lost {
				// Lost and found again between the two looks: take the new period.
				continue
			}
			return lost, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// backoff is a capped doubling delay for reconnection loops.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	}
	return b.cur
}

func (b *backoff) sleep(ctx context.Context) {
	d := b.next()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	b.cur = min(2*d, b.max)
}

func (b *backoff) reset() { b.cur = 0 }
