package router

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// drainingSubscriber stops a watermill-sql subscription without forwarding anything twice.
//
// watermill's router cancels the context it subscribed with as soon as it starts closing, at the
// same time as it closes the subscriber. watermill-sql runs a batch's transaction, the offset
// update that records what was forwarded, and the contexts of the messages under that context:
// cancelled, the command being published loses its confirm and the offset update fails
// ("could not get args for acking the message: context canceled"), so the commands the batch had
// already put in RabbitMQ are forwarded again by the next run — on every restart of the relay.
//
// This subscription is instead closed in order: it stops handing out messages, waits for the one
// in hand to be acknowledged or refused, and then closes watermill-sql's subscriber, which commits
// the offset of what was acknowledged. The subscriber keeps its context until grace after the
// router stopped, so a database that does not answer cannot hold the close for longer.
//
// An acknowledgement counts only once watermill-sql has taken it: its goroutine, having handed a
// message out, waits for the message's ack, nack, its own close and its context in one select, and
// a select with several of them ready picks one at random. A goroutine that was not yet waiting in
// that select when the message was acknowledged and the subscriber closed — descheduled right
// after the hand-off, as under heavy load — takes the close half the time: it records nothing for
// a command RabbitMQ already holds, and the next run forwards it again. So after an ack this
// subscription waits for watermill-sql to have finished with the message, which its context says:
// watermill-sql cancels a message's context once it has taken the message's ack (or given up on
// it), before it goes on.
type drainingSubscriber struct {
	sub   message.Subscriber
	grace time.Duration

	stop      chan struct{} // closed by Close: hand out nothing more
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	done   chan struct{} // closed once nothing handed out is unsettled; nil before Subscribe
	cancel context.CancelFunc
}

var _ message.Subscriber = (*drainingSubscriber)(nil)

func newDrainingSubscriber(sub message.Subscriber, grace time.Duration) *drainingSubscriber {
	return &drainingSubscriber{sub: sub, grace: grace, stop: make(chan struct{})}
}

// Subscribe subscribes to topic; a drainingSubscriber serves one subscription.
func (s *drainingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() { time.AfterFunc(s.grace, cancel) })
	in, err := s.sub.Subscribe(subCtx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.done, s.cancel = done, cancel
	s.mu.Unlock()
	out := make(chan *message.Message)
	go func() {
		defer close(done)
		defer close(out)
		for {
			// Stopping wins over a message ready at the same moment. A message not handed out
			// is left unacknowledged in the outbox by watermill-sql, closing; one handed out
			// is waited for.
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
			// The context watermill-sql handed the message out with; the router wraps it later.
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

func (s *drainingSubscriber) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Close waits, at most grace, for the message in hand to be settled (an ack, taken by
// watermill-sql), then closes the subscriber.
// It may be called more than once.
func (s *drainingSubscriber) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.mu.Lock()
		done, cancel := s.done, s.cancel
		s.mu.Unlock()
		if done != nil {
			select {
			case <-done:
			case <-time.After(s.grace):
			}
		}
		s.closeErr = s.sub.Close()
		if cancel != nil {
			cancel()
		}
	})
	return s.closeErr
}
