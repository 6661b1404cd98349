package router_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

func TestQueueOfEveryLane(t *testing.T) {
	for _, tc := range []struct {
		channel  herald.Channel
		priority herald.Priority
		want     string
	}{
		{herald.ChannelEmail, "", "email_notifications"},
		{herald.ChannelEmail, herald.PriorityNormal, "email_notifications"},
		{herald.ChannelEmail, herald.PriorityHigh, "email_notifications_high"},
		{herald.ChannelEmail, herald.PriorityLow, "email_notifications_low"},
		{herald.ChannelSMS, "", "sms_notifications"},
		{herald.ChannelSMS, herald.PriorityHigh, "sms_notifications_high"},
		{herald.ChannelSMS, herald.PriorityLow, "sms_notifications_low"},
	} {
		got, err := router.QueueOf(tc.channel, tc.priority)
		if err != nil || got != tc.want {
			t.Errorf("QueueOf(%s, %q) = %q, %v; want %q", tc.channel, tc.priority, got, err, tc.want)
		}
	}
	if _, err := router.QueueOf(herald.ChannelEmail, "urgent"); err == nil {
		t.Error("QueueOf(email, urgent) found a lane")
	}
	want := []string{"email_notifications_high", "email_notifications", "email_notifications_low",
		"sms_notifications_high", "sms_notifications", "sms_notifications_low"}
	if diff := cmp.Diff(want, router.WorkQueues()); diff != "" {
		t.Errorf("WorkQueues (-want +got):\n%s", diff)
	}
}

// recordingProvider takes every message after a pause, as a provider busy with a backlog
// would, and remembers the order it took them in.
type recordingProvider struct {
	pause time.Duration
	mu    sync.Mutex
	order []string
}

func (p *recordingProvider) Name() string { return "recording" }

func (p *recordingProvider) Send(ctx context.Context, m delivery.Message) (string, error) {
	select {
	case <-time.After(p.pause):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.order = append(p.order, m.NotificationID)
	return "", nil
}

func (p *recordingProvider) sent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.order...)
}

// A backlog of low-priority commands in RabbitMQ does not stand in front of high-priority ones:
// the accept path routes each to its lane, the relay forwards them there, and the workers'
// high-lane consumers deliver every high-priority notification while most of the backlog is
// still waiting. With one queue per channel, the high ones would come after the whole backlog.
func TestHighPriorityOvertakesALowBacklog(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := quietLogger()
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 10, PublishChannels: 4}
	topology := router.NewTopology(cfg, logger)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	relay := router.NewRelay(db.Pool, cfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50, Partitions: 2}, topology, logger)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	log := events.NewLog(db.Pool)
	acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	send := func(p herald.Priority, i int) string {
		t.Helper()
		a, err := acc.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: fmt.Sprintf("r%d@example.com", i),
			Content: "hello", Priority: string(p)})
		if err != nil {
			t.Fatalf("accept %s #%d: %v", p, i, err)
		}
		if a.Priority != p {
			t.Fatalf("accepted %s #%d with priority %q", p, i, a.Priority)
		}
		return a.ID
	}
	const lows, highs = 300, 20
	for i := range lows {
		send(herald.PriorityLow, i)
	}
	high := map[string]bool{}
	for i := range highs {
		high[send(herald.PriorityHigh, i)] = true
	}
	heraldtest.Eventually(t, 60*time.Second, "the relay to forward every command to its lane", func() (bool, error) {
		l, h := heraldtest.QueueDepth(t, amqpURL, router.QueueEmailLow), heraldtest.QueueDepth(t, amqpURL, router.QueueEmailHigh)
		return l == lows && h == highs, fmt.Errorf("%d low, %d high in their queues", l, h)
	})
	if n := heraldtest.QueueDepth(t, amqpURL, router.QueueEmail); n != 0 {
		t.Fatalf("%d commands in the normal lane; want none", n)
	}

	provider := &recordingProvider{pause: 5 * time.Millisecond}
	deliverer := handlers.NewDeliverer(log, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
		handlers.Policy{MaxAttempts: 3, Lease: time.Minute, Timeout: 10 * time.Second}, "w1", logger)
	workers := router.NewWorkers(cfg, router.WorkerConfig{
		Channels: []herald.Channel{herald.ChannelEmail}, Concurrency: 1, HighConcurrency: 1,
		Retry:        router.RetryConfig{MaxRetries: 1, InitialInterval: 10 * time.Millisecond, MaxInterval: 10 * time.Millisecond, Multiplier: 1},
		CloseTimeout: 10 * time.Second,
	}, deliverer, topology, "w1", logger)
	heraldtest.RunInBackground(t, "workers", workers.Run)

	var lowsBefore int
	heraldtest.Eventually(t, 60*time.Second, "every high-priority notification to be sent", func() (bool, error) {
		got, lowsSent := 0, 0
		for _, id := range provider.sent() {
			if high[id] {
				got++
			} else {
				lowsSent++
			}
		}
		lowsBefore = lowsSent
		return got == highs, fmt.Errorf("%d of %d high sent, %d low", got, highs, lowsSent)
	})
	// The lanes are consumed side by side, one at a time each here: by the time the high lane
	// is empty, the low lane has been through about as many, far from its whole backlog.
	if waiting := lows - lowsBefore; waiting < lows/2 {
		t.Errorf("only %d of %d low-priority notifications were still waiting when the last high-priority one was sent; want at least %d",
			waiting, lows, lows/2)
	}
	t.Logf("all %d high-priority notifications sent while %d of %d low-priority ones still waited", highs, lows-lowsBefore, lows)
	heraldtest.Eventually(t, 120*time.Second, "the backlog to drain", func() (bool, error) {
		n := len(provider.sent())
		return n == lows+highs, fmt.Errorf("%d of %d sent", n, lows+highs)
	})
}
