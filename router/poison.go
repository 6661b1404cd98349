package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/handlers"
)

// PoisonQueue reads and removes the commands workers parked in poison_notifications, for
// operators. It opens a connection of its own for each call and declares nothing but its lock:
// the queue is the workers' and the relay's to declare (see Topology).
//
// AMQP 0-9-1 has no way to look at a message without taking it, so List takes every message
// unacknowledged (basic.get) and then closes its channel, which hands them all back untouched.
// Meanwhile the messages count as unacknowledged rather than ready, so the queue's total depth,
// as RabbitMQ's management UI shows it, stays true; but another reader of the queue would not
// see them. So every look and removal, in any process, first takes a lock held by the broker:
// the exclusive queue QueuePoisonLock, declared on the looking connection. A declaration from
// another connection fails with 405 RESOURCE_LOCKED, and that caller waits (saying so once in
// its log) until the lock is free or its context ends. The broker deletes an exclusive queue
// when its connection closes, so a holder that dies releases the lock with its connection; one
// that finishes deletes it at once, after its messages are back in the queue.
//
// The poison queue is a classic queue: a quorum queue would count each return as a redelivery
// and, past its delivery limit (20 by default since RabbitMQ 4.0), drop the parked command.
type PoisonQueue struct {
	url       string
	queue     string
	lockQueue string
	logger    *slog.Logger
	// dialTimeout bounds connecting when the caller's context has no deadline.
	dialTimeout time.Duration
}

var _ handlers.ParkedQueue = (*PoisonQueue)(nil)

// QueuePoisonLock is the queue whose existence means a look at the poison queue is under way.
// It is exclusive to the looking connection, never durable, and holds no message (its
// x-max-length is 0): nothing is ever routed to it.
const QueuePoisonLock = QueuePoison + ".lock"

// Waiting for the lock asks again after lockRetryMin, doubling up to lockRetryMax: each ask
// costs a channel (a failed declaration closes it) and a line in the broker's log.
const (
	lockRetryMin = 50 * time.Millisecond
	lockRetryMax = time.Second
)

// returnTimeout bounds how long a look waits, before it releases the lock, for the messages it
// handed back to be ready again.
const returnTimeout = 5 * time.Second

// NewPoisonQueue returns the poison queue of the RabbitMQ at url (one node's URL, or several:
// see AMQPConfig.URL). logger says when a call waits
// for another look to finish; nil logs nothing.
func NewPoisonQueue(url string, logger *slog.Logger) *PoisonQueue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PoisonQueue{url: url, queue: QueuePoison, lockQueue: QueuePoisonLock, logger: logger, dialTimeout: 30 * time.Second}
}

// ErrPoisonQueueBusy is wrapped by the error of a call whose context ended while another look at
// the poison queue held the lock.
var ErrPoisonQueueBusy = errors.New("another look at the poison queue is under way; try again once it is done")

// ErrPoisonQueueMissing is wrapped by the errors of a PoisonQueue whose queue does not exist.
var ErrPoisonQueueMissing = errors.New("poison queue not declared yet: start a worker or serve once")

// List returns every parked message, in queue order, and leaves them all in the queue.
func (q *PoisonQueue) List(ctx context.Context) ([]handlers.ParkedMessage, error) {
	var out []handlers.ParkedMessage
	err := q.Walk(ctx, func(m handlers.ParkedMessage) bool {
		out = append(out, m)
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// errWalkDone stops a walk when its function has seen enough.
var errWalkDone = errors.New("walk done")

// Walk hands the parked messages to fn, in queue order, until fn returns false or the queue has
// none left, and then hands them all back. It keeps nothing of a message fn has been given: the
// broker holds the messages taken (unacknowledged, which is what bounds Walk's memory), and the
// client only their delivery tags.
func (q *PoisonQueue) Walk(ctx context.Context, fn func(handlers.ParkedMessage) bool) error {
	err := q.session(ctx, func(ch *amqp091.Channel, l *look) error {
		return q.drain(ctx, ch, l, func(d amqp091.Delivery) error {
			if !fn(decodeParked(d)) {
				return errWalkDone
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errWalkDone) {
		return fmt.Errorf("list %s: %w", q.queue, err)
	}
	return nil
}

// Remove deletes every message a key names — all copies: a command can be parked twice — and
// hands every other message back. It returns how many messages it deleted per notification id.
// The deletions are confirmed by the orderly close of the channel that made them; when the close
// is not orderly, an error says the removal may be partial, and List tells what is left.
func (q *PoisonQueue) Remove(ctx context.Context, keys []handlers.ParkedKey) (map[string]int, error) {
	wanted := make(map[handlers.ParkedKey]bool, len(keys))
	for _, k := range keys {
		wanted[k] = true
	}
	removed := map[string]int{}
	err := q.session(ctx, func(ch *amqp091.Channel, l *look) error {
		return q.drain(ctx, ch, l, func(d amqp091.Delivery) error {
			m := decodeParked(d)
			if m.NotificationID == "" {
				return nil
			}
			if !wanted[handlers.ParkedKey{NotificationID: m.NotificationID, MessageID: m.MessageID}] &&
				!wanted[handlers.ParkedKey{NotificationID: m.NotificationID}] {
				return nil
			}
			if err := ch.Ack(d.DeliveryTag, false); err != nil {
				return fmt.Errorf("acknowledge message %s of %s: %w", m.MessageID, m.NotificationID, err)
			}
			l.acked++
			removed[m.NotificationID]++
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("remove from %s (possibly in part): %w", q.queue, err)
	}
	return removed, nil
}

// look counts what a session took from the queue, so that it can tell when all it hands back
// is ready again.
type look struct {
	taken int // messages got, unacknowledged
	acked int // of those, acknowledged (removed)
	left  int // messages ready in the queue after the last get
}

// back is how many messages the queue holds ready at least once the session's channel has
// handed back what it took: no other look takes any meanwhile, and parking only adds.
func (l *look) back() int { return l.taken - l.acked + l.left }

// drain gets every message of the queue, unacknowledged, and hands each to fn, until the queue
// has none left to give. Closing the channel returns those fn did not acknowledge.
func (q *PoisonQueue) drain(ctx context.Context, ch *amqp091.Channel, l *look, fn func(amqp091.Delivery) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(q.queue, false)
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if !ok {
			l.left = 0
			return nil
		}
		l.taken++
		l.left = int(d.MessageCount)
		if err := fn(d); err != nil {
			return err
		}
	}
}

// session connects, checks the queue exists, takes the lock, and runs fn on a channel of its
// own. It then closes the channel — which returns every message fn took and did not acknowledge
// — waits until those are ready again, and releases the lock; it reports a channel that did not
// close in order, since an acknowledgement may then have been lost. The lock goes on every path:
// deleted in order after fn, or with the connection, which is closed last, on a panic or a
// broken connection. ctx bounds it all: when ctx is done the connection is closed under fn.
func (q *PoisonQueue) session(ctx context.Context, fn func(ch *amqp091.Channel, l *look) error) (err error) {
	conn, err := q.dial(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer func() {
		stop()
		_ = conn.Close()
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// The connection was closed under fn: say why.
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
	}()

	// A passive declare of a missing queue closes its channel: use one for nothing else.
	check, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if _, err := check.QueueDeclarePassive(q.queue, true, false, false, false, nil); err != nil {
		var amqpErr *amqp091.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp091.NotFound {
			return &herald.Error{Code: herald.EUNAVAILABLE, Message: ErrPoisonQueueMissing.Error(), Err: ErrPoisonQueueMissing}
		}
		return fmt.Errorf("check queue: %w", err)
	}
	_ = check.Close()

	release, err := q.lock(ctx, conn)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = release()
		return fmt.Errorf("open channel: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	var l look
	defer func() {
		// Deferred, so that a panic in fn hands the messages back before the lock goes too.
		closeErr := ch.Close()
		if cerr, ok := <-closed; ok && cerr != nil {
			closeErr = cerr
		}
		q.awaitReturn(conn, l.back())
		// Should the delete fail, the connection is gone or about to be closed, which
		// releases the lock all the same.
		_ = release()
		if err == nil && closeErr != nil {
			err = fmt.Errorf("close channel: %w", closeErr)
		}
	}()
	return fn(ch, &l)
}

// lock takes the poison queue's lock on conn: it declares QueuePoisonLock exclusive to conn.
// While another connection holds it, it asks again with a backoff, logging once that it waits,
// until ctx ends (ErrPoisonQueueBusy, EUNAVAILABLE). release deletes the lock queue.
func (q *PoisonQueue) lock(ctx context.Context, conn *amqp091.Connection) (release func() error, err error) {
	wait, waiting := lockRetryMin, false
	for {
		if err := ctx.Err(); err != nil {
			return nil, q.busy(err)
		}
		ch, err := conn.Channel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, q.busy(ctx.Err())
			}
			return nil, fmt.Errorf("open lock channel: %w", err)
		}
		_, err = ch.QueueDeclare(q.lockQueue, false, true, true, false, amqp091.Table{"x-max-length": int32(0)})
		if err == nil {
			if waiting {
				q.logger.InfoContext(ctx, "the other look at the poison queue is done", "queue", q.queue)
			}
			return func() error {
				defer ch.Close()
				if _, err := ch.QueueDelete(q.lockQueue, false, false, false); err != nil {
					return fmt.Errorf("delete %s: %w", q.lockQueue, err)
				}
				return nil
			}, nil
		}
		var amqpErr *amqp091.Error
		if !errors.As(err, &amqpErr) || amqpErr.Code != amqp091.ResourceLocked {
			_ = ch.Close()
			if ctx.Err() != nil {
				return nil, q.busy(ctx.Err())
			}
			return nil, fmt.Errorf("declare lock %s: %w", q.lockQueue, err)
		}
		// The failed declaration closed ch.
		if !waiting {
			waiting = true
			q.logger.InfoContext(ctx, "waiting for another look at the poison queue to finish", "queue", q.queue, "lock_queue", q.lockQueue)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, q.busy(ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, lockRetryMax)
	}
}

// busy is the error of a wait for the lock that ctx ended.
func (q *PoisonQueue) busy(ctxErr error) error {
	return &herald.Error{Code: herald.EUNAVAILABLE, Message: ErrPoisonQueueBusy.Error(),
		Err: &lockWaitError{lock: q.lockQueue, err: ctxErr}}
}

// lockWaitError is why a wait for the lock ended; it is ErrPoisonQueueBusy, without saying so
// again after the message that already does.
type lockWaitError struct {
	lock string
	err  error
}

func (e *lockWaitError) Error() string {
	return fmt.Sprintf("waited for the lock %s: %v", e.lock, e.err)
}
func (e *lockWaitError) Unwrap() error        { return e.err }
func (e *lockWaitError) Is(target error) bool { return target == ErrPoisonQueueBusy }

// awaitReturn waits, at most returnTimeout, until the queue holds at least want messages ready.
// Messages a closed channel hands back are ready again a moment after the close; releasing the
// lock before then would let the next look miss them. It gives up early on a broken connection
// (whose messages come back as it closes) and, at the timeout, on a queue someone else emptied.
func (q *PoisonQueue) awaitReturn(conn *amqp091.Connection, want int) {
	if want == 0 || conn.IsClosed() {
		return
	}
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	deadline := time.Now().Add(returnTimeout)
	for {
		st, err := ch.QueueDeclarePassive(q.queue, true, false, false, false, nil)
		if err != nil || st.Messages >= want {
			return
		}
		if time.Now().After(deadline) {
			q.logger.Warn("the poison queue holds fewer messages than a look handed back; releasing its lock anyway",
				"queue", q.queue, "ready", st.Messages, "want", want)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dial connects within ctx (or dialTimeout, when ctx has no deadline), handshake included.
func (q *PoisonQueue) dial(ctx context.Context) (*amqp091.Connection, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(q.dialTimeout)
	}
	// Each node tried gets nodeDialTimeout to connect, or what is left of the deadline if less
	// (a node gone without refusing must not take the whole deadline from the next), and the
	// handshakes run within the deadline.
	uri, cfg, nodes, err := AMQPConfig{URL: q.url}.amqpDialConfig("herald poison", func(network, addr string) (net.Conn, error) {
		nodeDeadline := time.Now().Add(nodeDialTimeout)
		if deadline.Before(nodeDeadline) {
			nodeDeadline = deadline
		}
		dctx, cancel := context.WithDeadline(ctx, nodeDeadline)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Cleared by the library once the AMQP handshake is done.
		if err := c.SetDeadline(deadline); err != nil {
			_ = c.Close()
			return nil, err
		}
		return c, nil
	})
	if err == nil {
		var conn *amqp091.Connection
		if conn, err = dialEach(uri, cfg, nodes); err == nil {
			return conn, nil
		}
	}
	return nil, &herald.Error{Code: herald.EUNAVAILABLE, Message: "RabbitMQ is unreachable", Err: fmt.Errorf("connect to RabbitMQ: %w", err)}
}

// decodeParked reads a parked message in watermill-amqp's format: the command's JSON as body,
// watermill's metadata (the message id, the command's name, the correlation id and what the
// poison middleware added) as headers.
func decodeParked(d amqp091.Delivery) handlers.ParkedMessage {
	m := handlers.ParkedMessage{
		Headers:   make(map[string]string, len(d.Headers)),
		Body:      d.Body,
		Timestamp: d.Timestamp,
	}
	for k, v := range d.Headers {
		if s, ok := v.(string); ok {
			m.Headers[k] = s
		} else {
			m.Headers[k] = fmt.Sprint(v)
		}
	}
	m.MessageID = m.Headers[amqp.DefaultMessageUUIDHeaderKey]
	m.CorrelationID = m.Headers[middleware.CorrelationIDMetadataKey]
	m.Reason = m.Headers[middleware.ReasonForPoisonedKey]
	m.Queue = m.Headers[middleware.PoisonedTopicKey]
	m.Handler = m.Headers[middleware.PoisonedHandlerKey]
	if n, err := strconv.Atoi(m.Headers["x-delivery-count"]); err == nil {
		m.Deliveries = n
	}

	want := commandMarshaler.Name(commands.SendNotification{})
	if name := m.Headers["name"]; name != want {
		m.Unreadable = fmt.Sprintf("the message is a %q, not a %s command", name, want)
		return m
	}
	var cmd commands.SendNotification
	if err := json.Unmarshal(d.Body, &cmd); err != nil {
		m.Unreadable = "the command is not valid JSON: " + err.Error()
		return m
	}
	if cmd.NotificationID == "" {
		m.Unreadable = "the command names no notification"
		return m
	}
	m.NotificationID = strings.ToLower(cmd.NotificationID)
	m.Channel = cmd.Channel
	return m
}
