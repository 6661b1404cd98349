package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ErrUnroutable is wrapped by the error of a publish RabbitMQ could not route to any queue.
var ErrUnroutable = errors.New("RabbitMQ has no queue to route the message to")

// confirmTimeout bounds the wait for RabbitMQ's confirm of one message.
const confirmTimeout = 30 * time.Second

// routedPublisher publishes each message to the default exchange with the queue's name as routing
// key, and returns only once RabbitMQ has both routed it to its queue and confirmed it.
//
// A publisher confirm alone does not say a message reached a queue: RabbitMQ confirms a message
// it routed nowhere — a work queue deleted by hand, or lost with a broker's definitions — and
// drops it. watermill-amqp passes the mandatory flag on but never listens for basic.return, so
// such a message would count as published and its command would leave the outbox. Here every
// message is mandatory, and each channel listens for returns: RabbitMQ sends the basic.return of
// an unroutable message before its basic.ack, on the same channel, and the client hands them over
// in that order, so a return is waiting by the time the confirm arrives. A returned message is an
// error wrapping ErrUnroutable, and the topology is asked to declare the queues again.
//
// A channel carries one publish at a time; up to size channels publish side by side.
type routedPublisher struct {
	amqp      AMQPConfig
	name      string // connection name, as RabbitMQ's management UI shows it
	marshaler amqp.Marshaler
	topology  *Topology

	idle chan *confirmingChannel // channels ready for a publish; capacity is the pool size

	mu     sync.Mutex
	conn   *amqp091.Connection // nil when there is none
	dial   *dialing            // the dial under way, if any
	closed bool
}

// dialing is a dial of the publisher's connection, run aside so that neither a publish nor
// Close waits behind it longer than it wants to.
type dialing struct {
	done   chan struct{} // closed once conn or err is set
	cancel context.CancelFunc
	conn   *amqp091.Connection
	err    error
}

type confirmingChannel struct {
	ch      *amqp091.Channel
	conn    *amqp091.Connection
	returns chan amqp091.Return
}

// newRoutedPublisher returns a publisher to the RabbitMQ of cfg with up to size channels. It
// connects on first use, and again after its connection is lost.
func newRoutedPublisher(cfg AMQPConfig, size int, name string, topology *Topology) *routedPublisher {
	return &routedPublisher{
		amqp:      cfg,
		name:      name,
		marshaler: cfg.watermill().Marshaler,
		topology:  topology,
		idle:      make(chan *confirmingChannel, max(1, size)),
	}
}

// Publish publishes msgs, in order, to queue topic. It refuses while the topology says the queues
// are not declared, and parking while the poison queue's node is down: RabbitMQ may confirm a
// message routed to a queue whose node is down without keeping it.
func (p *routedPublisher) Publish(topic string, msgs ...*message.Message) error {
	ready := p.topology.Ready
	if topic == QueuePoison {
		ready = func(context.Context) error { return p.poisonReady() }
	}
	if err := ready(context.Background()); err != nil {
		return err
	}
	for _, msg := range msgs {
		if err := p.publish(topic, msg); err != nil {
			return fmt.Errorf("publish message %s to %s: %w", msg.UUID, topic, err)
		}
	}
	return nil
}

// publish sends msg to queue as a mandatory message and waits for the broker's confirm: a
// message no queue takes comes back as ErrUnroutable rather than being dropped. A channel that
// fails is discarded, so the next publish opens a fresh one.
//
// Nothing here waits on RabbitMQ beyond msg's context (and confirmTimeout): a connection that is
// not dialled, a channel that does not open, or a confirm that does not come, is given up when
// the context ends, and the channel is closed without waiting for RabbitMQ to confirm the close. A channel that missed a confirm
// may well not answer its close either: waiting for it held the relay's handler, and with it the
// relay's stop, until the connection went.
func (p *routedPublisher) publish(queue string, msg *message.Message) error {
	pub, err := p.marshaler.Marshal(msg)
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	ctx, cancel := context.WithTimeout(msg.Context(), confirmTimeout)
	defer cancel()
	c, err := p.channel(ctx)
	if err != nil {
		return err
	}
	dc, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, pub)
	if err != nil {
		p.discard(c)
		return err
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// The confirm may still come; the channel cannot be trusted with another publish.
		p.discard(c)
		return fmt.Errorf("wait for confirm: %w", err)
	}
	select {
	case ret, ok := <-c.returns:
		if !ok {
			p.discard(c)
			return errors.New("channel closed while publishing")
		}
		p.release(c)
		p.topology.Unroutable(queue)
		return fmt.Errorf("%w (%d %s)", ErrUnroutable, ret.ReplyCode, ret.ReplyText)
	default:
	}
	if !acked {
		p.release(c)
		return errors.New("RabbitMQ refused the message (nack)")
	}
	p.release(c)
	return nil
}

// poisonReady returns nil when the poison queue can take a park, else why not, wrapping
// ErrPoisonQueueNodeDown when its node is down. The topology's word is not enough: its
// connection may sit on a node that outlived a failover without noticing that the poison queue's
// node went. So each park first declares the poison queue passively, on a channel of its own (a
// refusal closes the channel); parks are rare, and the declaration is one round trip.
func (p *routedPublisher) poisonReady() error {
	if err := p.topology.PoisonReady(); err != nil {
		return err
	}
	conn, err := p.connection(context.Background())
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(QueuePoison, true, false, false, false, nil); err != nil {
		err = poisonNodeDown(fmt.Errorf("declare queue %s passively: %w", QueuePoison, err))
		if errors.Is(err, ErrPoisonQueueNodeDown) {
			p.topology.poisonDown(err)
		} else {
			p.topology.Unroutable(QueuePoison)
		}
		return err
	}
	return nil
}

// channel returns an idle channel of the pool, or opens one, giving up when ctx ends.
func (p *routedPublisher) channel(ctx context.Context) (*confirmingChannel, error) {
	for {
		select {
		case c := <-p.idle:
			if c.ch.IsClosed() {
				continue
			}
			return c, nil
		default:
		}
		break
	}
	conn, err := p.connection(ctx)
	if err != nil {
		return nil, err
	}
	return openChannel(ctx, conn)
}

// openChannel opens a confirming channel on conn (see newConfirmingChannel). Opening a channel
// and putting it in confirm mode each wait for RabbitMQ's answer, which amqp091 waits for without
// end; so they run aside, and the caller stops waiting when ctx ends. A channel that opens after
// that is closed.
func openChannel(ctx context.Context, conn *amqp091.Connection) (*confirmingChannel, error) {
	type opened struct {
		c   *confirmingChannel
		err error
	}
	result := make(chan opened) // unbuffered: a channel handed over is the caller's, any other is closed here
	go func() {
		c, err := newConfirmingChannel(conn)
		select {
		case result <- opened{c, err}:
		case <-ctx.Done():
			if c != nil {
				_ = c.ch.Close()
			}
		}
	}()
	select {
	case o := <-result:
		return o.c, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("open channel: RabbitMQ did not answer: %w", ctx.Err())
	}
}

// newConfirmingChannel opens a channel on conn, in confirm mode and listening for returns.
func newConfirmingChannel(conn *amqp091.Connection) (*confirmingChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("put channel in confirm mode: %w", err)
	}
	return &confirmingChannel{ch: ch, conn: conn, returns: ch.NotifyReturn(make(chan amqp091.Return, 1))}, nil
}

// connection returns the open connection, dialling when there is none, and waits for a dial at
// most until ctx ends. One dial runs at a time, aside: it takes up to the URL's connect and
// handshake bounds per node, and neither a publish nor Close waits for it past what they want.
// Close ends a dial under way.
func (p *routedPublisher) connection(ctx context.Context) (*amqp091.Connection, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("publisher closed")
	}
	if conn := p.conn; conn != nil && !conn.IsClosed() {
		p.mu.Unlock()
		return conn, nil
	}
	d := p.dial
	if d == nil {
		dialCtx, cancel := context.WithCancel(context.Background())
		d = &dialing{done: make(chan struct{}), cancel: cancel}
		p.dial = d
		go p.dialAside(dialCtx, d)
	}
	p.mu.Unlock()
	select {
	case <-d.done:
		return d.conn, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to RabbitMQ: RabbitMQ did not answer: %w", ctx.Err())
	}
}

// dialAside dials the publisher's connection for d, until ctx ends.
func (p *routedPublisher) dialAside(ctx context.Context, d *dialing) {
	defer close(d.done)
	defer d.cancel()
	conn, err := p.amqp.dialContext(ctx, p.name)
	p.mu.Lock()
	p.dial = nil
	closed := p.closed
	if err == nil && !closed {
		d.conn = conn
		p.conn = conn
	}
	p.mu.Unlock()
	switch {
	case err != nil:
		d.err = fmt.Errorf("connect to RabbitMQ: %w", err)
	case closed:
		_ = conn.CloseDeadline(time.Now().Add(publisherCloseTimeout))
		d.err = errors.New("publisher closed")
	}
}

// release puts c back in the pool, or closes it when the pool is full or c's connection is not
// the current one.
func (p *routedPublisher) release(c *confirmingChannel) {
	p.mu.Lock()
	current := !p.closed && c.conn == p.conn
	p.mu.Unlock()
	if !current {
		p.discard(c)
		return
	}
	select {
	case p.idle <- c:
	default:
		p.discard(c)
	}
}

// discard closes c without waiting: closing a channel waits for RabbitMQ to confirm the close,
// and a channel that missed a confirm may never do so. Its close ends at the latest with its
// connection.
func (p *routedPublisher) discard(c *confirmingChannel) { go func() { _ = c.ch.Close() }() }

// publisherCloseTimeout bounds the wait for RabbitMQ to confirm the close of a publisher's
// connection; the connection is closed either way.
const publisherCloseTimeout = 2 * time.Second

// Close closes the publisher's connection, within publisherCloseTimeout, and ends a dial under
// way without waiting for it; publishes under way, and the closes of channels it discarded, fail.
func (p *routedPublisher) Close() error {
	p.mu.Lock()
	p.closed = true
	conn := p.conn
	p.conn = nil
	if p.dial != nil {
		p.dial.cancel()
	}
	p.mu.Unlock()
	if conn == nil || conn.IsClosed() {
		return nil
	}
	if err := conn.CloseDeadline(time.Now().Add(publisherCloseTimeout)); err != nil {
		return fmt.Errorf("close publisher connection: %w", err)
	}
	return nil
}
