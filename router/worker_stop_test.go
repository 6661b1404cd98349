package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// holdingProvider holds each message until release is closed, then sends it: an attempt that
// succeeds while its worker is stopping. started receives the notification of the first message
// it holds; sent lists the notifications it sent.
type holdingProvider struct {
	started chan string
	release chan struct{}

	mu   sync.Mutex
	sent []string
}

func (p *holdingProvider) Name() string { return "holding" }

func (p *holdingProvider) Send(_ context.Context, m delivery.Message) (string, error) {
	select {
	case p.started <- m.NotificationID:
	default:
	}
	<-p.release
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, m.NotificationID)
	return "msg-" + m.NotificationID, nil
}

func (p *holdingProvider) sends() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// An attempt in flight when the worker is told to stop, and that then succeeds, has its command
// acknowledged by that worker: the queue no longer holds it. The command RabbitMQ had prefetched
// to the same consumer, which no handler took, goes back to the queue. Before, watermill-amqp's
// subscriber, closed as soon as the stop began, requeued the command in flight as well, and the
// next worker took it again (and found it sent).
func TestStopAcknowledgesAnAttemptThatSucceedsInFlight(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := quietLogger()
	// Prefetch 2: the worker's one consumer holds the second command while the first is handled.
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 2, PublishChannels: 1}
	topology := router.NewTopology(cfg, logger)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	if _, err := topology.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	relay := router.NewRelay(db.Pool, cfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50, Partitions: 1}, topology, logger)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	log := events.NewLog(db.Pool)
	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	var ids []string
	for range 2 {
		a, err := acc.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "somebody@example.com", Content: "hello"})
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		ids = append(ids, a.ID)
	}
	heraldtest.Eventually(t, 30*time.Second, "both commands to be in their queue", func() (bool, error) {
		n := heraldtest.QueueDepth(t, amqpURL, router.QueueEmail)
		return n == 2, fmt.Errorf("%s holds %d", router.QueueEmail, n)
	})

	provider := &holdingProvider{started: make(chan string, 1), release: make(chan struct{})}
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

	var inFlight string
	select {
	case inFlight = <-provider.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the attempt did not start")
	}
	waiting := ids[0]
	if waiting == inFlight {
		waiting = ids[1]
	}
	// Neither command is ready in the queue any more: the one not in flight is prefetched.
	heraldtest.Eventually(t, 30*time.Second, "the other command to be prefetched", func() (bool, error) {
		n := heraldtest.QueueDepth(t, amqpURL, router.QueueEmail)
		return n == 0, fmt.Errorf("%s holds %d ready", router.QueueEmail, n)
	})
	start := time.Now()
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
	t.Logf("the workers stopped in %s", time.Since(start).Round(time.Millisecond))

	n, _, err := log.NotificationNow(ctx, inFlight)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != herald.StatusSent {
		t.Errorf("the notification in flight at the stop is %s, want %s", n.Status, herald.StatusSent)
	}
	if got := provider.sends(); !slices.Equal(got, []string{inFlight}) {
		t.Errorf("sent %v, want only %s", got, inFlight)
	}
	if back := handedBack(t, amqpURL, router.QueueEmail); !slices.Equal(back, []string{waiting}) {
		t.Errorf("after the stop the queue holds the commands of %v; want only %s, which no handler took (%s was sent during the stop)",
			back, waiting, inFlight)
	}
}

// handedBack returns, in order, the notifications whose commands queue holds once its consumers
// have stopped, taking them. A marker published now bounds the look: RabbitMQ puts the messages a
// consumer leaves unacknowledged back ahead of any published later, so every command a stopped
// worker handed back comes before the marker.
func handedBack(t *testing.T, amqpURL, queue string) []string {
	t.Helper()
	ch := heraldtest.AMQPChannel(t, amqpURL)
	defer ch.Close()
	marker := uuid.NewString()
	if err := ch.PublishWithContext(context.Background(), "", queue, true, false, amqp091.Publishing{
		MessageId: marker, DeliveryMode: amqp091.Persistent, Body: []byte(marker),
	}); err != nil {
		t.Fatalf("publish a marker to %s: %v", queue, err)
	}
	var back []string
	heraldtest.Eventually(t, 30*time.Second, "the marker to be taken from "+queue, func() (bool, error) {
		for {
			d, ok, err := ch.Get(queue, true)
			if err != nil {
				t.Fatalf("take from %s: %v", queue, err)
			}
			if !ok {
				return false, errors.New("the marker is not there yet")
			}
			if d.MessageId == marker {
				return true, nil
			}
			var cmd commands.SendNotification
			if err := json.Unmarshal(d.Body, &cmd); err != nil {
				t.Fatalf("read a command from %s: %v", queue, err)
			}
			back = append(back, cmd.NotificationID)
		}
	})
	return back
}

// failingProvider fails every message, for now: each attempt is worth retrying. It counts the
// attempts, and sends on tried after each.
type failingProvider struct {
	tries atomic.Int32
	tried chan struct{}
}

func (p *failingProvider) Name() string { return "failing" }

func (p *failingProvider) Send(context.Context, delivery.Message) (string, error) {
	p.tries.Add(1)
	select {
	case p.tried <- struct{}{}:
	default:
	}
	return "", errors.New("451 try again later")
}

// A stop still ends a retry's wait at once: the handler's context ends with the stop, though the
// subscription that hands the command out outlives it until the command is settled. The command
// goes back to its queue, tried once. (With the handler's context outliving the stop too, the
// worker would wait out the retry's delay, here longer than its close timeout.)
func TestStopEndsARetrysWait(t *testing.T) {
	t.Parallel()
	const (
		retryDelay   = time.Minute
		closeTimeout = 20 * time.Second
		stopBound    = 5 * time.Second
	)
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
	provider := &failingProvider{tried: make(chan struct{}, 1)}
	deliverer := handlers.NewDeliverer(log, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
		handlers.Policy{MaxAttempts: 5, Lease: time.Minute, Timeout: 10 * time.Second}, "w1", logger)
	workers := router.NewWorkers(cfg, router.WorkerConfig{
		Channels: []herald.Channel{herald.ChannelEmail}, Concurrency: 1,
		Retry:        router.RetryConfig{MaxRetries: 5, InitialInterval: retryDelay, MaxInterval: retryDelay, Multiplier: 1},
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

	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	a, err := acc.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "somebody@example.com", Content: "hello"})
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	select {
	case <-provider.tried:
	case <-time.After(30 * time.Second):
		t.Fatal("the attempt did not run")
	}
	// The failed attempt's outcome is recorded before the retry waits.
	heraldtest.Eventually(t, 30*time.Second, "the attempt's outcome to be recorded", func() (bool, error) {
		n, _, err := log.NotificationNow(ctx, a.ID)
		return err == nil && n.Attempts == 1 && !n.AttemptOpen && n.LastError != "",
			fmt.Errorf("attempts %d, open %v, last error %q, error %v", n.Attempts, n.AttemptOpen, n.LastError, err)
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
		t.Errorf("the workers took %s to stop during a retry's wait, want at most %s", took.Round(time.Millisecond), stopBound)
	} else {
		t.Logf("the workers stopped in %s", took.Round(time.Millisecond))
	}
	if n := provider.tries.Load(); n != 1 {
		t.Errorf("the provider was tried %d times, want 1", n)
	}
	if back := handedBack(t, amqpURL, router.QueueEmail); !slices.Equal(back, []string{a.ID}) {
		t.Errorf("after the stop the queue holds the commands of %v; want %s, whose retry the stop cut short", back, a.ID)
	}
}
