package router

import (
	"context"
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
	sub   message.Subscriber
	grace time.Duration

	stop      chan struct{} // closed when the stop begins: hand out nothing more
	stopOnce  sync.Once
	deadline  time.Time // grace after the stop began; set before stop is closed
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	done    []chan struct{} // one per subscription: closed once nothing it handed out is unsettled
	cancels []context.CancelFunc
}

var _ message.Subscriber = (*drainingSubscriber)(nil)

func newDrainingSubscriber(sub message.Subscriber, grace time.Duration) *drainingSubscriber {
	return &drainingSubscriber{sub: sub, grace: grace, stop: make(chan struct{})}
}

// Subscribe subscribes to topic. Each subscription hands out one message at a time: the next once
// the last is settled.
func (s *drainingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() {
		s.halt()
		time.AfterFunc(time.Until(s.deadline), cancel)
	})
	in, err := s.sub.Subscribe(subCtx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.done = append(s.done, done)
	s.cancels = append(s.cancels, cancel)
	s.mu.Unlock()
	out := make(chan *message.Message)
	go func() {
		defer close(done)
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

// Close waits, until grace after the stop began, for the messages in hand to be settled (an ack,
// taken by the subscriber), then closes the subscriber.
// It may be called more than once, and by several goroutines at once: each returns once the
// subscriber is closed.
func (s *drainingSubscriber) Close() error {
	s.closeOnce.Do(func() {
		s.halt()
		s.mu.Lock()
		done, cancels := slices.Clone(s.done), slices.Clone(s.cancels)
		s.mu.Unlock()
		deadline := time.NewTimer(time.Until(s.deadline))
		defer deadline.Stop()
	wait:
		for _, d := range done {
			select {
			case <-d:
			case <-deadline.C:
				break wait
			}
		}
		s.closeErr = s.sub.Close()
		for _, cancel := range cancels {
			cancel()
		}
	})
	return s.closeErr
}
