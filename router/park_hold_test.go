package router_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// stoppingRefuser holds each message until release is closed, then refuses it for good: an
// attempt that ends for good while its worker is stopping.
type stoppingRefuser struct {
	started chan struct{}
	release chan struct{}
}

func (p *stoppingRefuser) Name() string { return "refusing" }

func (p *stoppingRefuser) Send(context.Context, delivery.Message) (string, error) {
	select {
	case p.started <- struct{}{}:
	default:
	}
	<-p.release
	return "", delivery.Permanent(errors.New("550 no such user"))
}

// refusingProvider refuses every message for good, counting the attempts.
type refusingProvider struct{ sends atomic.Int32 }

func (p *refusingProvider) Name() string { return "refusing" }

func (p *refusingProvider) Send(context.Context, delivery.Message) (string, error) {
	p.sends.Add(1)
	return "", delivery.Permanent(errors.New("550 no such user"))
}

// A command that fails for good while the poison queue's node is down is held by the worker,
// not handed back to its queue at once: it is not redelivered over and over (each requeue counts
// towards a quorum queue's delivery limit, past which RabbitMQ would dead-letter it into the
// unavailable poison queue and lose it), and it is parked once the poison queue is back.
func TestParkWaitsForThePoisonQueue(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := quietLogger()
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}
	topology := router.NewTopology(cfg, logger)
	// The topology must not find the poison queue back by itself while the test holds it down.
	router.SetPoisonRetry(topology, time.Hour)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	if _, err := topology.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	router.SetPoisonDown(topology, fmt.Errorf("%w (held down by the test)", router.ErrPoisonQueueNodeDown))
	relay := router.NewRelay(db.Pool, cfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50, Partitions: 1}, topology, logger)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	log := events.NewLog(db.Pool)
	provider := &refusingProvider{}
	deliverer := handlers.NewDeliverer(log, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
		handlers.Policy{MaxAttempts: 1, Lease: time.Minute, Timeout: 10 * time.Second}, "w1", logger)
	workers := router.NewWorkers(cfg, router.WorkerConfig{
		Channels: []herald.Channel{herald.ChannelEmail}, Concurrency: 1,
		Retry:        router.RetryConfig{MaxRetries: 1, InitialInterval: 10 * time.Millisecond, MaxInterval: 10 * time.Millisecond, Multiplier: 1},
		CloseTimeout: 10 * time.Second,
	}, deliverer, topology, "w1", logger)
	heraldtest.RunInBackground(t, "workers", workers.Run)

	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	a, err := acc.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "nobody@example.com", Content: "hello"})
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	heraldtest.Eventually(t, 30*time.Second, "the provider to refuse the notification", func() (bool, error) {
		return provider.sends.Load() > 0, errors.New("not tried yet")
	})
	// An observation window, not a wait for a condition: a requeue loop redelivers the command
	// hundreds of times in it, a held park not once.
	time.Sleep(2 * time.Second)
	if n := heraldtest.QueueDepth(t, amqpURL, router.QueuePoison); n != 0 {
		t.Fatalf("%d parked while the poison queue was down", n)
	}

	router.SetPoisonUp(topology)
	heraldtest.Eventually(t, 30*time.Second, "the command to be parked", func() (bool, error) {
		n := heraldtest.QueueDepth(t, amqpURL, router.QueuePoison)
		return n == 1, fmt.Errorf("the poison queue holds %d", n)
	})
	parked, err := router.NewPoisonQueue(amqpURL, logger).List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(parked) != 1 || parked[0].NotificationID != a.ID {
		t.Fatalf("parked %+v, want notification %s", parked, a.ID)
	}
	// x-delivery-count counts the redeliveries before the park: none, the park was held.
	if d := parked[0].Deliveries; d > 1 {
		t.Errorf("the command was delivered again %d times before it was parked; want it held, not requeued", d)
	}
	if n := provider.sends.Load(); n != 1 {
		t.Errorf("the provider was tried %d times, want 1", n)
	}
}

// A worker told to stop while it waits for RabbitMQ to answer the check that comes before a
// park — the poison queue's passive declaration, on a channel of its own — stops at once, and
// the command goes back to its queue, unparked and not lost. Before, the check waited for the
// channel's open (and the declaration, and the channel's close) without end: the worker's
// router waited its whole close timeout for the handler, and only the publisher's close, after
// it, ended the wait.
func TestParkStopsWhileRabbitMQLeavesThePoisonCheckUnanswered(t *testing.T) {
	t.Parallel()
	const (
		closeTimeout = 20 * time.Second
		stopBound    = 5 * time.Second
	)
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	proxy, proxyURL := newAMQPProxy(t, amqpURL)
	ctx := context.Background()
	logger := quietLogger()
	direct := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}
	topology := router.NewTopology(direct, logger)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	if _, err := topology.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	relay := router.NewRelay(db.Pool, direct, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50, Partitions: 1}, topology, logger)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	log := events.NewLog(db.Pool)
	provider := &refusingProvider{}
	deliverer := handlers.NewDeliverer(log, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
		handlers.Policy{MaxAttempts: 1, Lease: time.Minute, Timeout: 10 * time.Second}, "w1", logger)
	proxied := direct
	proxied.URL = proxyURL
	workers := router.NewWorkers(proxied, router.WorkerConfig{
		Channels: []herald.Channel{herald.ChannelEmail}, Concurrency: 1,
		Retry:        router.RetryConfig{MaxRetries: 1, InitialInterval: 10 * time.Millisecond, MaxInterval: 10 * time.Millisecond, Multiplier: 1},
		CloseTimeout: closeTimeout,
	}, deliverer, topology, "w1", logger)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- workers.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("the workers did not stop")
		}
	})
	heraldtest.Eventually(t, 30*time.Second, "the workers to consume", func() (bool, error) {
		ch := heraldtest.AMQPChannel(t, amqpURL)
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(router.QueueEmail, true, false, false, false, nil)
		return err == nil && q.Consumers > 0, fmt.Errorf("consumers %d, error %v", q.Consumers, err)
	})
	// The worker's consumers keep their connection; the connection the park dials gets no answer
	// on its channels.
	proxy.withholdNew.Store(true)

	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	if _, err := acc.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "nobody@example.com", Content: "hello"}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	heraldtest.Eventually(t, 30*time.Second, "the park to wait for RabbitMQ", func() (bool, error) {
		return provider.sends.Load() > 0 && proxy.withheld.Load() > 0,
			fmt.Errorf("%d sends, %d frames withheld", provider.sends.Load(), proxy.withheld.Load())
	})

	start := time.Now()
	stop()
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("workers: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the workers did not stop within a minute")
	}
	if took := time.Since(start); took > stopBound {
		t.Errorf("the workers took %s to stop, want at most %s", took.Round(time.Millisecond), stopBound)
	} else {
		t.Logf("the workers stopped in %s", took.Round(time.Millisecond))
	}
	heraldtest.Eventually(t, 30*time.Second, "the command to be back in its queue", func() (bool, error) {
		n := heraldtest.QueueDepth(t, amqpURL, router.QueueEmail)
		return n == 1, fmt.Errorf("%s holds %d", router.QueueEmail, n)
	})
	if n := heraldtest.QueueDepth(t, amqpURL, router.QueuePoison); n != 0 {
		t.Errorf("%d parked, want none: RabbitMQ never answered the park's check", n)
	}
}

// An attempt in flight when the worker is told to stop, and that then fails for good, is parked
// by that worker: it lets the attempt finish, and the park, which starts after the stop, still
// looks at the poison queue (bounded by its own timeout) rather than being refused for the stop.
// The command is parked once: the worker acknowledges it before it closes its subscriber, so its
// queue no longer holds it. Before, watermill-amqp handed back a message whose subscriber closed
// before the handler acknowledged it, and the next worker, finding its notification failed,
// parked it a second time.
func TestParkAfterTheStopOfAnAttemptInFlight(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := quietLogger()
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}
	topology := router.NewTopology(cfg, logger)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	if _, err := topology.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	relay := router.NewRelay(db.Pool, cfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50, Partitions: 1}, topology, logger)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	log := events.NewLog(db.Pool)
	provider := &stoppingRefuser{started: make(chan struct{}, 1), release: make(chan struct{})}
	deliverer := handlers.NewDeliverer(log, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
		handlers.Policy{MaxAttempts: 1, Lease: time.Minute, Timeout: 10 * time.Second}, "w1", logger)
	workers := router.NewWorkers(cfg, router.WorkerConfig{
		Channels: []herald.Channel{herald.ChannelEmail}, Concurrency: 1,
		Retry:        router.RetryConfig{MaxRetries: 1, InitialInterval: 10 * time.Millisecond, MaxInterval: 10 * time.Millisecond, Multiplier: 1},
		CloseTimeout: 30 * time.Second,
	}, deliverer, topology, "w1", logger)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- workers.Run(runCtx) }()
	var released sync.Once
	release := func() { released.Do(func() { close(provider.release) }) }
	t.Cleanup(func() {
		stop()
		release()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("the workers did not stop")
		}
	})

	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	a, err := acc.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "nobody@example.com", Content: "hello"})
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	select {
	case <-provider.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the attempt did not start")
	}
	stop()
	release()
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("workers: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the workers did not stop within a minute")
	}
	// Parked by the stopped worker itself: no other worker runs.
	if n := heraldtest.QueueDepth(t, amqpURL, router.QueuePoison); n != 1 {
		t.Fatalf("the poison queue holds %d after the stop, want 1: the park was refused for the stop", n)
	}
	parked, err := router.NewPoisonQueue(amqpURL, logger).List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(parked) != 1 || parked[0].NotificationID != a.ID {
		t.Fatalf("parked %+v, want notification %s", parked, a.ID)
	}
	if back := handedBack(t, amqpURL, router.QueueEmail); len(back) != 0 {
		t.Errorf("after the stop %s holds the commands of %v; want none: the command parked was handed back, and the next worker would park it again",
			router.QueueEmail, back)
	}
}
