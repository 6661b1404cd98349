package router_test

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// lateSubscriber hands out one message as watermill-sql's subscriber does — with a context of
// its own, cancelled once the subscriber is done with the message — from a goroutine that, like
// one descheduled right after the hand-off, looks for the message's ack only once look is
// closed. Looking, it finds its own close before the ack when both are there: watermill-sql's
// select picks either, at random. took reports whether it took the ack, that is whether
// watermill-sql would record the message in the batch's offset.
type lateSubscriber struct {
	look      chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	stopped   chan struct{} // closed when the goroutine has returned
	took      bool          // read after stopped
}

var _ message.Subscriber = (*lateSubscriber)(nil)

func newLateSubscriber() *lateSubscriber {
	return &lateSubscriber{look: make(chan struct{}), closing: make(chan struct{}), stopped: make(chan struct{})}
}

func (s *lateSubscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go func() {
		defer close(s.stopped)
		defer close(out)
		msgCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		msg := message.NewMessage("1", nil)
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-s.closing:
			return
		}
		<-s.look
		select {
		case <-s.closing:
			return
		default:
		}
		select {
		case <-msg.Acked():
			s.took = true
		case <-msg.Nacked():
		case <-s.closing:
		}
	}()
	return out, nil
}

func (s *lateSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.stopped
	return nil
}

// A stopping relay closes watermill-sql's subscriber only once it has taken the ack of the
// command in hand. Closed as soon as the command is acknowledged, a subscriber whose goroutine
// had not yet come back to the message may take its close instead of the ack: the batch's offset
// then leaves out a command RabbitMQ already holds, and the next run forwards it again — the rare
// duplicate of a relay stopped under heavy load.
func TestDrainClosesOnceTheAckIsTaken(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		inner := newLateSubscriber()
		sub := router.NewDrainingSubscriber(inner, time.Minute)
		msgs, err := sub.Subscribe(context.Background(), router.TopicOutbox)
		if err != nil {
			t.Fatal(err)
		}
		msg := <-msgs
		msg.Ack()
		closed := make(chan error, 1)
		go func() { closed <- sub.Close() }()
		synctest.Wait() // the close goes as far as it goes before the subscriber looks again
		close(inner.look)
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !inner.took {
			t.Error("the subscriber was closed before it took the ack of the command in hand: the command would be forwarded again")
		}
	})
}

// watermill-sql ends a message's context once it has taken its ack, which is what a stopping
// relay waits for: the close does not wait out its grace, and the offset records the command.
func TestDrainClosesWatermillSQLWithTheAckRecorded(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	ids := sendCommands(t, db.Pool, 2, 2)
	inner, err := sql.NewSubscriber(sql.BeginnerFromPgx(db.Pool), sql.SubscriberConfig{
		ConsumerGroup: "relay",
		PollInterval:  20 * time.Millisecond,
		SchemaAdapter: sql.DefaultPostgreSQLSchema{GenerateMessagesTableName: func(string) string { return "outbox" }},
		OffsetsAdapter: sql.DefaultPostgreSQLOffsetsAdapter{
			GenerateMessagesOffsetsTableName: func(string) string { return "outbox_offsets" },
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := router.NewDrainingSubscriber(inner, time.Minute)
	msgs, err := sub.Subscribe(context.Background(), router.TopicOutbox)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-msgs:
		msg.Ack()
	case <-time.After(30 * time.Second):
		t.Fatal("no command handed out")
	}
	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for its grace: watermill-sql no longer ends the context of a message whose ack it took")
	}

	relay := router.NewRelay(db.Pool, router.AMQPConfig{}, router.RelayConfig{Partitions: 1}, nil, slog.New(slog.DiscardHandler))
	waiting, err := relay.Waiting(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{ids[1]: true}; !maps.Equal(waiting, want) {
		t.Errorf("waiting after the first command was acknowledged = %v; want %v", waiting, want)
	}
}

// endlessSubscriber hands out messages, one at a time per subscription, for as long as they are
// taken, each with a context of its own that it cancels once the message is settled; closing, it
// gives up on the message in hand, as watermill-amqp does (it nacks it with requeue). acks counts
// the acks it took.
type endlessSubscriber struct {
	closing   chan struct{}
	closeOnce sync.Once
	running   sync.WaitGroup
	acks      atomic.Int32
}

var _ message.Subscriber = (*endlessSubscriber)(nil)

func newEndlessSubscriber() *endlessSubscriber {
	return &endlessSubscriber{closing: make(chan struct{})}
}

func (s *endlessSubscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		defer close(out)
		for {
			if !s.handOut(ctx, out) {
				return
			}
		}
	}()
	return out, nil
}

func (s *endlessSubscriber) handOut(ctx context.Context, out chan<- *message.Message) bool {
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg := message.NewMessage(uuid.NewString(), nil)
	msg.SetContext(msgCtx)
	select {
	case out <- msg:
	case <-s.closing:
		return false
	}
	select {
	case <-msg.Acked():
		s.acks.Add(1)
		return true
	case <-msg.Nacked():
		return true
	case <-s.closing:
		return false
	}
}

func (s *endlessSubscriber) closed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func (s *endlessSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.running.Wait()
	return nil
}

// The router cancels the context it subscribed with when it starts closing, and may close the
// subscriber only later, or not at all: watermill's handler closes it from a select that takes
// either that close or the cancellation. The cancellation alone stops the hand-out; before, the
// workers' subscription went on handing out commands, each taken from RabbitMQ only to be
// refused and requeued, until its close.
func TestDrainStopsWhenTheRouterCancelsItsContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		inner := newEndlessSubscriber()
		sub := router.NewDrainingSubscriber(inner, time.Minute)
		defer sub.Close()
		ctx, cancel := context.WithCancel(context.Background())
		msgs, err := sub.Subscribe(ctx, router.QueueEmail)
		if err != nil {
			t.Fatal(err)
		}
		(<-msgs).Ack()
		cancel()
		synctest.Wait()
		select {
		case msg, ok := <-msgs:
			if ok {
				msg.Nack()
				t.Error("a message was handed out after the router cancelled the subscription's context")
			}
		default:
			t.Error("the subscription is still open after the router cancelled its context")
		}
	})
}

// The workers' lanes share one subscriber, each consuming through several subscriptions: the
// close waits for the message in hand of every one of them, and closes the subscriber once their
// acks are taken, at once.
func TestDrainWaitsForEverySubscription(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		inner := newEndlessSubscriber()
		sub := router.NewDrainingSubscriber(inner, time.Minute)
		var inHand []*message.Message
		for range 3 {
			msgs, err := sub.Subscribe(context.Background(), router.QueueEmail)
			if err != nil {
				t.Fatal(err)
			}
			inHand = append(inHand, <-msgs)
		}
		start := time.Now()
		closed := make(chan error, 1)
		go func() { closed <- sub.Close() }()
		for _, msg := range inHand[1:] {
			msg.Ack()
		}
		synctest.Wait()
		if inner.closed() {
			t.Error("the subscriber was closed while a subscription still had a message in hand")
		}
		inHand[0].Ack()
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("Close took %s; want no wait once every message is settled", took)
		}
		if n := inner.acks.Load(); n != 3 {
			t.Errorf("the subscriber took %d acks, want 3", n)
		}
	})
}

// A message still in hand when the grace has passed is given up: the subscriber is closed anyway
// (watermill-amqp then hands the command back to its queue).
func TestDrainClosesAfterItsGrace(t *testing.T) {
	t.Parallel()
	const grace = 30 * time.Second
	synctest.Test(t, func(t *testing.T) {
		inner := newEndlessSubscriber()
		sub := router.NewDrainingSubscriber(inner, grace)
		msgs, err := sub.Subscribe(context.Background(), router.QueueEmail)
		if err != nil {
			t.Fatal(err)
		}
		msg := <-msgs
		start := time.Now()
		if err := sub.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if took := time.Since(start); took != grace {
			t.Errorf("Close took %s with a message in hand; want its grace, %s", took, grace)
		}
		if !inner.closed() {
			t.Error("the subscriber was not closed")
		}
		msg.Ack() // too late: the subscriber gave the message up
		if n := inner.acks.Load(); n != 0 {
			t.Errorf("the subscriber took %d acks after its close, want 0", n)
		}
	})
}

// Each of the workers' subscriptions has a subscriber of its own, closed as soon as it holds
// nothing once the stop began: an idle one's at once, handing back the message it was about to
// hand out (watermill-amqp: the commands RabbitMQ prefetched to its consumer), a busy one's right
// after the ack of its message in hand. With one subscriber for all, closed once the last message
// in hand was settled, the idle subscriptions held theirs as long as the slowest attempt ran.
func TestDrainClosesEachSubscriptionOnceItHoldsNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var opened []*endlessSubscriber
		sub := router.NewDrainingSubscribers(func() (message.Subscriber, error) {
			s := newEndlessSubscriber()
			opened = append(opened, s)
			return s, nil
		}, time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		var subscriptions []<-chan *message.Message
		for range 3 {
			msgs, err := sub.Subscribe(ctx, router.QueueEmail)
			if err != nil {
				t.Fatal(err)
			}
			subscriptions = append(subscriptions, msgs)
		}
		inHand := <-subscriptions[0]
		synctest.Wait() // every subscriber holds its next message, waiting to hand it out
		start := time.Now()
		cancel()
		synctest.Wait()
		if opened[0].closed() {
			t.Error("the subscriber of the subscription with a message in hand was closed before its ack")
		}
		for i, s := range opened[1:] {
			if !s.closed() {
				t.Errorf("idle subscription %d still holds its next message once the stop began", i+2)
			}
		}
		inHand.Ack()
		synctest.Wait()
		if !opened[0].closed() {
			t.Error("the subscription whose message was acknowledged still holds its next message")
		}
		if n := opened[0].acks.Load(); n != 1 {
			t.Errorf("the busy subscription's subscriber took %d acks, want 1", n)
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("the stop took %s; want no wait once every message is settled", took)
		}
	})
}

// The stop's deadline runs from when it began, not from the call to Close: watermill's router,
// stopping through the cancellation of the subscription's context, waits its close timeout for
// a handler still running and gives up without closing the subscriber, which the workers then
// close themselves. That close used to wait a whole grace of its own: a stop of twice the close
// timeout.
func TestDrainCloseWaitsOnlyUntilGraceAfterTheStopBegan(t *testing.T) {
	t.Parallel()
	const grace = 30 * time.Second
	for _, tc := range []struct {
		name  string
		drain func(message.Subscriber) message.Subscriber
		late  time.Duration // how long after the stop began Close comes
	}{
		{"shared subscriber, closed at the deadline", func(s message.Subscriber) message.Subscriber { return router.NewDrainingSubscriber(s, grace) }, grace},
		{"shared subscriber, closed before the deadline", func(s message.Subscriber) message.Subscriber { return router.NewDrainingSubscriber(s, grace) }, grace / 3},
		{"own subscribers, closed at the deadline", func(s message.Subscriber) message.Subscriber {
			return router.NewDrainingSubscribers(func() (message.Subscriber, error) { return s, nil }, grace)
		}, grace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				inner := newEndlessSubscriber()
				sub := tc.drain(inner)
				ctx, cancel := context.WithCancel(context.Background())
				msgs, err := sub.Subscribe(ctx, router.QueueEmail)
				if err != nil {
					t.Fatal(err)
				}
				msg := <-msgs
				cancel() // the router's cancellation: the stop begins
				began := time.Now()
				time.Sleep(tc.late)
				if err := sub.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if took := time.Since(began); took != grace {
					t.Errorf("the stop took %s with a message in hand; want its grace, %s, from when it began", took, grace)
				}
				if !inner.closed() {
					t.Error("the subscriber was not closed")
				}
				msg.Ack()
			})
		})
	}
}
