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

// errUnanswered is wrapped by the error of a wait for RabbitMQ that was given up on.
var errUnanswered = errors.New("RabbitMQ did not answer")

const (
	// confirmTimeout bounds the wait for RabbitMQ's confirm of one message.
	confirmTimeout = 30 * time.Second
	// poisonCheckTimeout bounds the passive declaration of the poison queue before a park.
	poisonCheckTimeout = 5 * time.Second
	// abandonedMax is how many channel operations given up on (a confirm that did not come, then
	// the channel's close; an open) may wait for RabbitMQ on one connection at once before the
	// connection is given up on too.
	abandonedMax = 4
	// abandonedLimit is how long any one channel operation left to run aside may wait for
	// RabbitMQ before its connection is given up on.
	abandonedLimit = 10 * time.Second
	// publisherCloseTimeout bounds the wait for RabbitMQ to confirm the close of a publisher's
	// connection; the connection is closed either way.
	publisherCloseTimeout = 2 * time.Second
)

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
//
// RabbitMQ may stop answering a connection that still sends heartbeats: under a memory or disk
// alarm it stops reading a publishing connection until the alarm clears. amqp091 waits for the
// answer to a channel's open, close or declaration without end, each wait holding a goroutine
// and a channel id of the connection (2047 at most). So those waits run aside, and a connection
// on which they pile up is given up on: closed, which ends them all, and replaced by a new one
// at the next publish (see waiting).
type routedPublisher struct {
	amqp      AMQPConfig
	name      string // connection name, as RabbitMQ's management UI shows it
	marshaler amqp.Marshaler
	topology  *Topology

	idle chan *confirmingChannel // channels ready for a publish; capacity is the pool size

	mu     sync.Mutex
	conn   *publisherConn // the connection publishes open channels on; nil when there is none
	dial   *dialing       // the dial under way, if any
	closed bool
}

// publisherConn is one connection of a publisher.
type publisherConn struct {
	*amqp091.Connection
	// Under the publisher's mu:
	abandoned int  // channel operations given up on that still wait for RabbitMQ
	retired   bool // given up on: being closed, and no longer handed out
}

// dialing is a dial of the publisher's connection, run aside so that neither a publish nor
// Close waits behind it longer than it wants to.
type dialing struct {
	done   chan struct{} // closed once conn or err is set
	cancel context.CancelFunc
	conn   *publisherConn
	err    error
}

type confirmingChannel struct {
	ch      *amqp091.Channel
	conn    *publisherConn
	returns chan amqp091.Return
}

// newRoutedPublisher returns a publisher to the RabbitMQ of cfg with up to size channels. It
// connects on first use, and again after its connection is lost or given up on.
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
	return p.publishAll(context.Background(), topic, msgs)
}

// publishAll is Publish, with the check that the queue is ready given up when ctx ends.
func (p *routedPublisher) publishAll(ctx context.Context, topic string, msgs []*message.Message) error {
	if err := p.ready(ctx, topic); err != nil {
		return err
	}
	for _, msg := range msgs {
		if err := p.publish(topic, msg); err != nil {
			return fmt.Errorf("publish message %s to %s: %w", msg.UUID, topic, err)
		}
	}
	return nil
}

// ready returns nil when queue can take a publish, else why not.
func (p *routedPublisher) ready(ctx context.Context, queue string) error {
	if queue == QueuePoison {
		return p.poisonReady(ctx)
	}
	return p.topology.Ready(ctx)
}

// publish sends msg to queue as a mandatory message and waits for the broker's confirm: a
// message no queue takes comes back as ErrUnroutable rather than being dropped. A channel that
// fails is discarded, so the next publish opens a fresh one. Only RabbitMQ's ack makes a publish
// succeed; anything else is an error, and the relay's command stays in the outbox.
//
// A publish waits for RabbitMQ until msg's context ends, and at most confirmTimeout: for a
// connection to be dialled (see connection), for a channel to open, and for the confirm. A
// message whose context has already ended is refused at once, without touching a channel:
// watermill-sql hands a nacked command out again with the context that ended, and a publish of
// it would throw away a healthy idle channel, or start an open no one waits for. A channel
// whose confirm did not come, or that opened too late, is closed aside without waiting for
// RabbitMQ to confirm the close — a channel that missed a confirm may not answer its close
// either, and waiting for it held the relay's handler, and with it the relay's stop — and what
// runs aside is bounded by giving its connection up (see waiting). The one wait not bounded by
// the context is the write of the message itself, which blocks only once the socket's buffers
// are full of what RabbitMQ has not read; it ends when the connection is closed: given up on,
// or with the publisher.
func (p *routedPublisher) publish(queue string, msg *message.Message) error {
	if err := msg.Context().Err(); err != nil {
		return fmt.Errorf("not published, its context ended: %w", err)
	}
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
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			p.release(c) // nothing was sent on it
			return fmt.Errorf("not published, its context ended: %w", err)
		}
		p.giveUp(c)
		return err
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// The confirm may still come; the channel cannot be trusted with another publish.
		p.giveUp(c)
		return fmt.Errorf("wait for confirm: %w: %w", errUnanswered, err)
	}
	select {
	case ret, ok := <-c.returns:
		if !ok {
			// The channel closed after the wait. An ack that came first stands: RabbitMQ sends
			// a basic.return before the basic.ack, and amqp091 buffers it before handling the
			// ack, so a closed returns channel after an ack means the message was routed.
			if acked {
				p.giveUp(c)
				return nil
			}
			// Why, asked before giving the channel up: giving it up counts an operation left
			// waiting, and may itself retire the connection.
			err := p.closedUnder(c)
			p.giveUp(c)
			return err
		}
		p.release(c)
		p.topology.Unroutable(queue)
		return fmt.Errorf("%w (%d %s)", ErrUnroutable, ret.ReplyCode, ret.ReplyText)
	default:
	}
	if !acked {
		// Not put back: a channel RabbitMQ nacked on may go on nacking. After a quorum queue's
		// leader was lost with its node, a channel's publishes to it were nacked for as long as
		// the channel lived (90 s and more, every resend of the same commands, while the new
		// leader took the publishes of other channels); the next publish opens a fresh channel.
		p.closeAside(c)
		return errors.New("RabbitMQ refused the message (nack)")
	}
	p.release(c)
	return nil
}

// closedUnder returns the error of a publish whose channel c closed before RabbitMQ confirmed it,
// saying why: amqp091 fails such a confirm as it would a nack (Ack false), and only the closed
// channel tells them apart (amqp091 closes a channel's return listeners before it fails its
// confirms). RabbitMQ refused nothing: a publisher gives a connection up (see waiting) for
// channel operations RabbitMQ left unanswered, often on other channels than c.
func (p *routedPublisher) closedUnder(c *confirmingChannel) error {
	p.mu.Lock()
	retired, closed := c.conn.retired, p.closed
	p.mu.Unlock()
	switch {
	case retired:
		return fmt.Errorf("%w before the publisher gave its connection up, on which channel operations went unanswered", errUnanswered)
	case closed:
		return errors.New("publisher closed before RabbitMQ confirmed the message")
	case c.conn.IsClosed():
		return errors.New("connection to RabbitMQ closed before RabbitMQ confirmed the message")
	default:
		return errors.New("channel closed before RabbitMQ confirmed the message")
	}
}

// poisonReady returns nil when the poison queue can take a park, else why not, wrapping
// ErrPoisonQueueNodeDown when its node is down. The topology's word is not enough: its
// connection may sit on a node that outlived a failover without noticing that the poison queue's
// node went. So each park first declares the poison queue passively, on a channel of its own (a
// refusal closes the channel); parks are rare, and the declaration is one round trip. It is
// given up when ctx ends, or after poisonCheckTimeout.
func (p *routedPublisher) poisonReady(ctx context.Context) error {
	if err := p.topology.PoisonReady(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, poisonCheckTimeout)
	defer cancel()
	pc, err := p.connection(ctx)
	if err != nil {
		return err
	}
	refused, err := aside(ctx, p, pc, func() (bool, error) { return declarePoisonPassively(pc.Connection) }, nil)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("declare queue %s passively: %w", QueuePoison, err)
	if refused {
		err = poisonNodeDown(err)
		if errors.Is(err, ErrPoisonQueueNodeDown) {
			p.topology.poisonDown(err)
		} else {
			p.topology.Unroutable(QueuePoison)
		}
	}
	return err
}

// declarePoisonPassively declares the poison queue passively on a channel of its own, and says
// whether RabbitMQ refused the declaration (rather than the channel).
func declarePoisonPassively(conn *amqp091.Connection) (refused bool, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(QueuePoison, true, false, false, false, nil); err != nil {
		return true, err
	}
	return false, nil
}

// channel returns an idle channel of the pool, or opens one, giving up when ctx ends.
func (p *routedPublisher) channel(ctx context.Context) (*confirmingChannel, error) {
	for {
		select {
		case c := <-p.idle:
			if c.ch.IsClosed() || !p.current(c.conn) {
				continue // its connection is gone, or being closed, and the channel with it
			}
			return c, nil
		default:
		}
		break
	}
	pc, err := p.connection(ctx)
	if err != nil {
		return nil, err
	}
	c, err := aside(ctx, p, pc, func() (*confirmingChannel, error) { return newConfirmingChannel(pc) },
		func(c *confirmingChannel) { _ = c.ch.Close() })
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	return c, nil
}

// newConfirmingChannel opens a channel on pc, in confirm mode and listening for returns.
func newConfirmingChannel(pc *publisherConn) (*confirmingChannel, error) {
	ch, err := pc.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("put channel in confirm mode: %w", err)
	}
	return &confirmingChannel{ch: ch, conn: pc, returns: ch.NotifyReturn(make(chan amqp091.Return, 1))}, nil
}

// aside runs op, which waits for RabbitMQ on pc, in a goroutine of its own, and waits for it
// until ctx ends. An op given up on is counted against pc until it returns (see waiting); undo,
// when not nil, is then handed what it made (a channel opened too late, to close).
func aside[T any](ctx context.Context, p *routedPublisher, pc *publisherConn, op func() (T, error), undo func(T)) (T, error) {
	type outcome struct {
		v   T
		err error
	}
	result := make(chan outcome)   // unbuffered: what is handed over is the caller's
	gaveUp := make(chan func(), 1) // what op's goroutine calls once op returns, if the caller gave up
	go func() {
		v, err := op()
		select {
		case result <- outcome{v, err}:
		case finished := <-gaveUp:
			if err == nil && undo != nil {
				undo(v)
			}
			finished()
		}
	}()
	select {
	case o := <-result:
		return o.v, o.err
	case <-ctx.Done():
		gaveUp <- p.waiting(pc, true)
		var zero T
		return zero, fmt.Errorf("%w: %w", errUnanswered, ctx.Err())
	}
}

// waiting counts a channel operation on pc that is left to run aside, and returns what to call
// once it has returned. Until then it holds a goroutine and a channel id of pc, and nothing but
// RabbitMQ's answer or the connection's end releases them. So pc is given up on (see retire)
// once the operation has waited abandonedLimit; and, when abandoned (no one waits for it any
// more: a confirm or an open given up on), once abandonedMax such operations wait on pc at once.
// That bounds what a silent RabbitMQ can hold: at most some abandonedMax operations per
// connection, each for at most abandonedLimit and the connection's close.
func (p *routedPublisher) waiting(pc *publisherConn, abandoned bool) (finished func()) {
	timer := time.AfterFunc(abandonedLimit, func() { p.retire(pc) })
	if abandoned {
		p.mu.Lock()
		pc.abandoned++
		full := pc.abandoned >= abandonedMax
		p.mu.Unlock()
		if full {
			p.retire(pc)
		}
	}
	return func() {
		timer.Stop()
		if abandoned {
			p.mu.Lock()
			pc.abandoned--
			p.mu.Unlock()
		}
	}
}

// retire gives pc up: no publish takes it any more, the next one dials a new connection, and pc
// is closed aside, within publisherCloseTimeout, which ends every wait on it and frees its
// channels. Publishes still waiting for a confirm on pc fail; their commands stay in the outbox.
func (p *routedPublisher) retire(pc *publisherConn) {
	p.mu.Lock()
	if pc.retired {
		p.mu.Unlock()
		return
	}
	pc.retired = true
	if p.conn == pc {
		p.conn = nil
	}
	p.mu.Unlock()
	go func() { _ = pc.CloseDeadline(time.Now().Add(publisherCloseTimeout)) }()
}

// current says whether pc is the connection publishes take: not lost, given up on, or closed
// with the publisher.
func (p *routedPublisher) current(pc *publisherConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && p.conn == pc && !pc.IsClosed()
}

// connection returns the open connection, dialling when there is none, and waits for a dial at
// most until ctx ends. One dial runs at a time, aside: it takes up to the URL's connect and
// handshake bounds per node, and neither a publish nor Close waits for it past what they want.
// Close ends a dial under way.
func (p *routedPublisher) connection(ctx context.Context) (*publisherConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("publisher closed")
	}
	if pc := p.conn; pc != nil && !pc.IsClosed() {
		p.mu.Unlock()
		return pc, nil
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
		return nil, fmt.Errorf("connect to RabbitMQ: %w: %w", errUnanswered, ctx.Err())
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
		d.conn = &publisherConn{Connection: conn}
		p.conn = d.conn
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

// release puts c back in the pool, or closes it when the pool is full. A channel of a connection
// that is no longer current is left to that connection's close.
func (p *routedPublisher) release(c *confirmingChannel) {
	if !p.current(c.conn) {
		return
	}
	select {
	case p.idle <- c:
	default:
		p.closeAside(c)
	}
}

// closeAside closes c, which RabbitMQ still answers, without waiting for the close: it counts
// against its connection only if the close outlasts abandonedLimit (see waiting).
func (p *routedPublisher) closeAside(c *confirmingChannel) {
	finished := p.waiting(c.conn, false)
	go func() {
		_ = c.ch.Close()
		finished()
	}()
}

// giveUp closes c aside, as an operation given up on (see waiting): closing a channel waits for
// RabbitMQ to confirm the close, and a channel that missed a confirm may never do so.
func (p *routedPublisher) giveUp(c *confirmingChannel) {
	finished := p.waiting(c.conn, true)
	go func() {
		_ = c.ch.Close()
		finished()
	}()
}

// Close closes the publisher's connection, within publisherCloseTimeout, and ends a dial under
// way without waiting for it; publishes under way, and the channel operations left to run aside,
// fail. Connections given up on earlier close on their own, within publisherCloseTimeout.
func (p *routedPublisher) Close() error {
	p.mu.Lock()
	p.closed = true
	pc := p.conn
	p.conn = nil
	if p.dial != nil {
		p.dial.cancel()
	}
	p.mu.Unlock()
	if pc == nil || pc.IsClosed() {
		return nil
	}
	if err := pc.CloseDeadline(time.Now().Add(publisherCloseTimeout)); err != nil {
		return fmt.Errorf("close publisher connection: %w", err)
	}
	return nil
}
