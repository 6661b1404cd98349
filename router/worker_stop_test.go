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

// gatedProvider holds the first notification it is given until first is closed, and every other
// until rest is closed, then sends it: one slow attempt among quick ones. started receives each
// notification as its attempt begins.
type gatedProvider struct {
	first, rest chan struct{}
	started     chan string

	mu      sync.Mutex
	firstID string
	sent    []string
}

func newGatedProvider() *gatedProvider {
	return &gatedProvider{first: make(chan struct{}), rest: make(chan struct{}), started: make(chan string, 64)}
}

func (p *gatedProvider) Name() string { return "gated" }

func (p *gatedProvider) Send(_ context.Context, m delivery.Message) (string, error) {
	p.mu.Lock()
	gate := p.rest
	if p.firstID == "" {
		p.firstID = m.NotificationID
	}
	if p.firstID == m.NotificationID {
		gate = p.first
	}
	p.mu.Unlock()
	p.started <- m.NotificationID
	<-gate
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, m.NotificationID)
	return "msg-" + m.NotificationID, nil
}

// sentOf returns how many of ids were sent.
func (p *gatedProvider) sentOf(ids []string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, id := range p.sent {
		if slices.Contains(ids, id) {
			n++
		}
	}
	return n
}

// A stopping worker hands back at once the commands RabbitMQ prefetched to its consumers, though
// an attempt on another consumer goes on: a busy consumer's right after the ack of its command in
// hand, an idle one's at once, for the next worker to take. Before, every consumer of the worker
// kept its commands, unacknowledged, until the slowest attempt in flight had ended (up to the
// close timeout): watermill-amqp goes on taking deliveries that the stopped drain no longer
// reads, and all of them shared one subscriber, closed only once every attempt was settled.
func TestStopHandsBackPrefetchedCommandsWhileAnAttemptRuns(t *testing.T) {
	t.Parallel()
	const (
		closeTimeout = time.Minute
		handBackBy   = 15 * time.Second // well before the close timeout
		queued       = 5
	)
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := quietLogger()
	// Prefetch 4: the high lane's one consumer holds three commands behind the one in hand.
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 4, PublishChannels: 1}
	topology := router.NewTopology(cfg, logger)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	if _, err := topology.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	relay := router.NewRelay(db.Pool, cfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50, Partitions: 1}, topology, logger)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	log := events.NewLog(db.Pool)
	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	accept := func(priority string) string {
		t.Helper()
		a, err := acc.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "somebody@example.com", Content: "hello", Priority: priority})
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		return a.ID
	}

	provider := newGatedProvider()
	deliverer := handlers.NewDeliverer(log, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
		handlers.Policy{MaxAttempts: 1, Lease: 5 * time.Minute, Timeout: 2 * time.Minute}, "w1", logger)
	workers := router.NewWorkers(cfg, router.WorkerConfig{
		Channels: []herald.Channel{herald.ChannelEmail}, Concurrency: 1,
		Retry:        router.RetryConfig{MaxRetries: 1, InitialInterval: 10 * time.Millisecond, MaxInterval: 10 * time.Millisecond, Multiplier: 1},
		CloseTimeout: closeTimeout,
	}, deliverer, topology, "w1", logger)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- workers.Run(runCtx) }()
	var releasedFirst, releasedRest sync.Once
	releaseFirst := func() { releasedFirst.Do(func() { close(provider.first) }) }
	releaseRest := func() { releasedRest.Do(func() { close(provider.rest) }) }
	t.Cleanup(func() {
		stop()
		releaseFirst()
		releaseRest()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Error("the workers did not stop")
		}
	})
	started := func(what string) string {
		t.Helper()
		select {
		case id := <-provider.started:
			return id
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not start", what)
			return ""
		}
	}

	// The slow attempt, in the normal lane.
	slow := accept("")
	if id := started("the slow attempt"); id != slow {
		t.Fatalf("the attempt of %s started, want %s", id, slow)
	}
	// A backlog in the high lane: one command in hand, three prefetched, one ready.
	var high []string
	for range queued {
		high = append(high, accept("high"))
	}
	if id := started("an attempt in the high lane"); !slices.Contains(high, id) {
		t.Fatalf("the attempt of %s started, want one of the high lane's %v", id, high)
	}
	heraldtest.Eventually(t, 30*time.Second, "the high lane's consumer to hold all it may", func() (bool, error) {
		n := heraldtest.QueueDepth(t, amqpURL, router.QueueEmailHigh)
		return n == queued-cfg.Prefetch, fmt.Errorf("%s holds %d ready", router.QueueEmailHigh, n)
	})

	start := time.Now()
	stop()
	// The high lane's attempt ends during the stop; the slow one goes on.
	releaseRest()
	// A command that comes while the worker stops finds the low lane's consumer idle.
	low := []string{accept("low")}
	// A command handed out before the stop reached its subscription is sent; every other is
	// ready in its queue, none held by the stopping worker.
	heraldtest.Eventually(t, handBackBy, "the stopping worker to hand back every command it holds but the slow one's", func() (bool, error) {
		h, l := heraldtest.QueueDepth(t, amqpURL, router.QueueEmailHigh), heraldtest.QueueDepth(t, amqpURL, router.QueueEmailLow)
		hs, ls := provider.sentOf(high), provider.sentOf(low)
		return h+hs == len(high) && l+ls == len(low),
			fmt.Errorf("%s: %d ready, %d sent of %d; %s: %d ready, %d sent of %d",
				router.QueueEmailHigh, h, hs, len(high), router.QueueEmailLow, l, ls, len(low))
	})
	t.Logf("the stopping worker handed back its prefetched commands in %s", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-done:
		t.Fatalf("the workers stopped (%v) before the slow attempt ended", err)
	default:
	}

	releaseFirst()
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("workers: %v", err)
		}
	case <-time.After(closeTimeout + 30*time.Second):
		t.Fatal("the workers did not stop")
	}
	if provider.sentOf([]string{slow}) != 1 {
		t.Errorf("the slow attempt's notification %s was not sent", slow)
	}
	if back := handedBack(t, amqpURL, router.QueueEmail); len(back) != 0 {
		t.Errorf("after the stop %s holds the commands of %v; want none: the slow attempt ended within the close timeout", router.QueueEmail, back)
	}
}
