package router

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// drainingSubscriber stops a subscription without handing back what a handler has taken: the
// relay's watermill-sql subscription, so that it forwards nothing twice, and the workers'
// watermill-amqp subscriptions, so that a command whose attempt ended during the stop is neither
// sent again nor parked twice.
//
// watermill's router cancels the context it subscribed with as soon as it starts closing, at the
// same time as it closes the subscriber, and lets the handlers in flight finish afterwards (up to
// its close timeout). Neither subscriber waits for them:
//
//   - watermill-sql runs a batch's transaction, the offset update that records what was
//     forwarded, and the contexts of the messages under that context: cancelled, the command
//     being published loses its confirm and the offset update fails ("could not get args for
//     acking the message: context canceled"), so the commands the batch had already put in
//     RabbitMQ are forwarded again by the next run — on every restart of the relay.
//   - watermill-amqp, closing, nacks with requeue every message whose ack it has not yet taken.
//     A worker lets an attempt in flight finish during a stop; its command went back to its
//     queue all the same, and the next worker took it again: one whose attempt was sent was
//     acknowledged without sending, one that failed for good was parked by the stopping worker
//     and then a second time by the next.
//
// These subscriptions are instead closed in order: they stop handing out messages, wait for the
// ones in hand to be acknowledged or refused, and then close the subscriber, which commits the
// offset of what was acknowledged (watermill-sql) or hands back what no handler took
// (watermill-amqp: the commands RabbitMQ had prefetched to the consumers). The subscriber keeps
// its context until grace after the stop began, so a database or broker that does not answer
// cannot hold the close for longer. The stop begins with the router's cancellation of the
// context or with Close, whichever comes first: the router closes the subscriber only from a
// select that may take the cancellation instead. Every wait is bounded by that one deadline, grace
// after the stop began, however late Close comes: the router, whose own close timeout runs from
// the same moment, may give up on a handler and leave the close to a deferred call.
//
// The relay's partition has one subscription, on the subscriber it is given, closed once that
// subscription is settled. The workers' subscriptions each have a subscriber of their own, made by
// open on a shared connection, closed as soon as that subscription has nothing in hand once the
// stop began: at once for an idle one, right after its ack for a busy one. watermill-amqp's
// subscription goes on taking deliveries while the drain no longer reads them, each one's
// processMessage blocked handing it out; RabbitMQ goes on sending them up to the prefetch, to the
// idle consumers above all, so with one subscriber for all, closed only once the slowest attempt
// was settled, those commands waited out that attempt (up to the close timeout) in every lane
// instead of going to another worker. Refusing them instead (a nack with requeue) would not do:
// RabbitMQ would hand each one straight back to the same consumer, over and over, each time
// counting towards a quorum queue's delivery limit.
//
// An acknowledgement counts only once the subscriber has taken it: its goroutine, having handed a
// message out, waits for the message's ack, nack, its own close and its context in one select, and
// a select with several of them ready picks one at random. A goroutine that was not yet waiting in
// that select when the message was acknowledged and the subscriber closed — descheduled right
// after the hand-off, as under heavy load — takes the close half the time: it records nothing for
// a command RabbitMQ already holds (watermill-sql), or requeues a command that was handled
// (watermill-amqp). So after an ack this subscription waits for the subscriber to have finished
// with the message, which its context says: both cancel a message's context once they have taken
// its ack (watermill-amqp once it has sent it to RabbitMQ, on the channel it closes only after),
// or given up on it, before they go on.
type drainingSubscriber struct {
	// shared, if set, serves every subscription and is closed by Close; otherwise open makes each
	// subscription a subscriber of its own.
	shared message.Subscriber
	open   func() (message.Subscriber, error)
	grace  time.Duration

	stop     chan struct{} // closed when the stop begins: hand out nothing more
	stopOnce sync.Once
	deadline time.Time // grace after the stop began; set before stop is closed

	closeOnce sync.Once
	closeErr  error

	mu   sync.Mutex
	subs []*drainedSubscription
}

// drainedSubscription is one subscription of a drainingSubscriber.
type drainedSubscription struct {
	done   chan struct{} // closed once nothing it handed out is unsettled, and its own subscriber is closed
	cancel context.CancelFunc
	own    message.Subscriber // nil when the subscriber is shared

	closeOnce sync.Once
	closeErr  error
}

// close closes the subscription's own subscriber, which hands back what it holds, and then ends
// its context. It may be called more than once, and by several goroutines at once: each returns
// once the subscriber is closed. A shared subscriber is Close's to close.
func (d *drainedSubscription) close() error {
	if d.own == nil {
		return nil
	}
	d.closeOnce.Do(func() {
		d.closeErr = d.own.Close()
		d.cancel()
	})
	return d.closeErr
}

var _ message.Subscriber = (*drainingSubscriber)(nil)

// newDrainingSubscriber returns a draining subscriber whose subscriptions all go through sub,
// closed once every one of them is settled.
func newDrainingSubscriber(sub message.Subscriber, grace time.Duration) *drainingSubscriber {
	return &drainingSubscriber{shared: sub, grace: grace, stop: make(chan struct{})}
}

// newDrainingSubscribers returns a draining subscriber that gives each subscription a subscriber
// of its own, from open, closed as soon as that subscription has nothing in hand once the stop
// began.
func newDrainingSubscribers(open func() (message.Subscriber, error), grace time.Duration) *drainingSubscriber {
	return &drainingSubscriber{open: open, grace: grace, stop: make(chan struct{})}
}

// Subscribe subscribes to topic. Each subscription hands out one message at a time: the next once
// the last is settled.
func (s *drainingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	sub := s.shared
	var own message.Subscriber
	if sub == nil {
		var err error
		if own, err = s.open(); err != nil {
			return nil, err
		}
		sub = own
	}
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() {
		s.halt()
		time.AfterFunc(time.Until(s.deadline), cancel)
	})
	in, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		cancel()
		if own != nil {
			_ = own.Close()
		}
		return nil, err
	}
	d := &drainedSubscription{done: make(chan struct{}), cancel: cancel, own: own}
	s.mu.Lock()
	s.subs = append(s.subs, d)
	s.mu.Unlock()
	out := make(chan *message.Message)
	go func() {
		defer close(d.done)
		// Nothing is in hand any more: a subscriber of its own hands back at once what it
		// holds, for another consumer to take.
		defer d.close()
		defer close(out)
		for {
			// Stopping wins over a message ready at the same moment. A message not handed out
			// is left to the subscriber, closing: unacknowledged in the outbox (watermill-sql),
			// requeued (watermill-amqp). One handed out is waited for.
			if s.stopping() {
				return
			}
			var msg *message.Message
			select {
			case <-s.stop:
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				msg = m
			}
			if s.stopping() {
				return
			}
			// The context the subscriber handed the message out with; the router wraps it later.
			taken := msg.Context()
			select {
			case <-s.stop:
				return
			case out <- msg:
			}
			select {
			case <-msg.Acked():
				if done := taken.Done(); done != nil {
					<-done
				}
			case <-msg.Nacked():
			}
		}
	}()
	return out, nil
}

// halt begins the stop, once, and sets its deadline.
func (s *drainingSubscriber) halt() {
	s.stopOnce.Do(func() {
		s.deadline = time.Now().Add(s.grace)
		close(s.stop)
	})
}

func (s *drainingSubscriber) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Close waits, until grace after the stop began, for the messages in hand to be settled (an
// ack, taken by the subscriber), then closes the subscribers that are not closed yet: the shared
// one, or the own ones of the subscriptions still holding a message, which give it up.
// It may be called more than once, and by several goroutines at once: each returns once every
// subscriber is closed.
func (s *drainingSubscriber) Close() error {
	s.closeOnce.Do(func() {
		s.halt()
		s.mu.Lock()
		subs := slices.Clone(s.subs)
		s.mu.Unlock()
		deadline := time.NewTimer(time.Until(s.deadline))
		defer deadline.Stop()
	wait:
		for _, d := range subs {
			select {
			case <-d.done:
			case <-deadline.C:
				break wait
			}
		}
		errs := make([]error, len(subs)+1)
		if s.shared != nil {
			errs[len(subs)] = s.shared.Close()
		}
		// Side by side: watermill-amqp's close of a subscription takes a tenth of a second.
		var wg sync.WaitGroup
		for i, d := range subs {
			wg.Go(func() { errs[i] = d.close() })
		}
		wg.Wait()
		for _, d := range subs {
			d.cancel()
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
