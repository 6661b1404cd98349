package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// After the node leading a quorum queue was killed, RabbitMQ nacked every publish on one of the
// relay's channels for as long as the channel lived, while it took the publishes of other
// channels. The relay's publisher closes a channel RabbitMQ nacked on, and the command's next
// try goes out on a fresh channel and is forwarded. Before, the nacked channel went back to the
// pool, and every resend of the command (each 100 ms) went out on it and was nacked again: in the
// scale suite, for 90 s and more.
func TestRelayLeavesAChannelRabbitMQNacksOn(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	proxy, proxyURL := newAMQPProxy(t, amqpURL)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)

	direct := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 1, PublishChannels: 1}
	topology := router.NewTopology(direct, logger)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	if _, err := topology.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	proxied := direct
	proxied.URL = proxyURL
	// One partition and one pooled channel: every publish takes the channel the last one left.
	relay := router.NewRelay(db.Pool, proxied, router.RelayConfig{
		PollInterval: 20 * time.Millisecond, IdlePollMax: 100 * time.Millisecond, BatchSize: 10, Partitions: 1,
	}, topology, logger)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	// A command is forwarded first, so that the publisher holds an open channel in its pool.
	warm := sendCommands(t, db.Pool, 1, 1)
	heraldtest.Eventually(t, 30*time.Second, "the first command to be forwarded", func() (bool, error) {
		waiting, err := relay.Waiting(ctx, warm)
		return err == nil && len(waiting) == 0, fmt.Errorf("waiting %v, error %v", waiting, err)
	})

	// From the next publish on, RabbitMQ nacks every publish on the channel it goes out on.
	nacker := &channelNacker{}
	proxy.rewriteFromServer(nacker.rewrite)
	ids := sendCommands(t, db.Pool, 1, 1)
	heraldtest.Eventually(t, 15*time.Second, "the relay to forward the command on another channel", func() (bool, error) {
		waiting, err := relay.Waiting(ctx, ids)
		nacks, closed, acks := nacker.state()
		return err == nil && len(waiting) == 0, fmt.Errorf("waiting %v, error %v; %d nacks on the channel (closed: %t), %d acks on others",
			waiting, err, nacks, closed, acks)
	})
	// The channel is closed aside: its close may end after the next publish.
	heraldtest.Eventually(t, 10*time.Second, "the nacked channel to be closed", func() (bool, error) {
		_, closed, _ := nacker.state()
		return closed, nil
	})
	nacks, _, acks := nacker.state()
	t.Logf("%d nacks on the channel, %d acks on others", nacks, acks)
	if nacks != 1 {
		t.Errorf("RabbitMQ nacked %d publishes on the channel, want 1: the relay published on it again after its nack", nacks)
	}
	if acks == 0 {
		t.Errorf("no publish on another channel was acked")
	}
	// RabbitMQ took the publish whose ack the proxy turned into a nack: the command may be there
	// twice, which the workers take as a redelivery.
	if got := takeForwarded(t, amqpURL, router.QueueEmail); got[ids[0]] == 0 {
		t.Errorf("command %s never reached RabbitMQ (in RabbitMQ: %v)", ids[0], got)
	}
}
