package router_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// newProxiedPublisher returns a publisher to a scratch vhost of RabbitMQ, through a proxy, with
// up to size channels, once the vhost's queues are declared.
func newProxiedPublisher(t *testing.T, size int) (*amqpProxy, message.Publisher) {
	t.Helper()
	amqpURL := heraldtest.NewVHost(t)
	proxy, proxyURL := newAMQPProxy(t, amqpURL)
	direct := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 1, PublishChannels: size}
	topology := router.NewTopology(direct, slog.New(slog.DiscardHandler))
	heraldtest.RunInBackground(t, "topology", topology.Run)
	if _, err := topology.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxied := direct
	proxied.URL = proxyURL
	pub := router.NewPublisher(proxied, size, topology)
	t.Cleanup(func() { _ = pub.Close() })
	return proxy, pub
}

// publishWithin publishes a message to the email queue, waiting for RabbitMQ at most d.
func publishWithin(pub message.Publisher, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	msg := message.NewMessage(uuid.NewString(), []byte(`{}`))
	msg.SetContext(ctx)
	return pub.Publish(router.QueueEmail, msg)
}

// A publish RabbitMQ nacks fails, saying so, and the channel it went out on is closed: the next
// publish takes a fresh channel, which RabbitMQ may well answer. Before, the channel went back to
// the pool, and the next publish took it again, for RabbitMQ to nack it again.
func TestPublishAfterANackTakesAFreshChannel(t *testing.T) {
	t.Parallel()
	proxy, pub := newProxiedPublisher(t, 1)
	if err := publishWithin(pub, 10*time.Second); err != nil {
		t.Fatalf("publish before any nack: %v", err)
	}

	nacker := &channelNacker{}
	proxy.rewriteFromServer(nacker.rewrite)
	err := publishWithin(pub, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "refused the message (nack)") {
		t.Fatalf("publish RabbitMQ nacked: error %v, want it to say RabbitMQ refused the message", err)
	}
	if err := publishWithin(pub, 10*time.Second); err != nil {
		t.Errorf("publish after the nack: %v", err)
	}
	// The channel is closed aside: its close may end after the next publish.
	heraldtest.Eventually(t, 10*time.Second, "the nacked channel to be closed", func() (bool, error) {
		_, closed, _ := nacker.state()
		return closed, nil
	})
	if nacks, _, acks := nacker.state(); nacks != 1 || acks != 1 {
		t.Errorf("%d publishes nacked on the channel and %d acked on others, want 1 and 1", nacks, acks)
	}
}

// A publisher gives its connection up once channel operations RabbitMQ leaves unanswered pile up
// on it, and a publish still waiting on another channel of that connection for its confirm then
// fails. Its error says that the connection was given up on, not that RabbitMQ refused the
// message: amqp091 fails such a confirm as negative, as it does a nack, and an operator who reads
// "nack" looks in RabbitMQ for a refusal. Before, the error said only that the channel closed.
func TestPublishSaysItsConnectionWasGivenUp(t *testing.T) {
	t.Parallel()
	proxy, pub := newProxiedPublisher(t, router.AbandonedMax+1)
	if err := publishWithin(pub, 10*time.Second); err != nil {
		t.Fatalf("publish before RabbitMQ goes quiet: %v", err)
	}

	// RabbitMQ goes on opening channels, but confirms no publish and no channel's close.
	proxy.rewriteFromServer(func(_ *proxiedConn, frame []byte, _, class, method uint16) []byte {
		if (class == classBasic && method == methodBasicAck) || (class == classChannel && method == methodChannelCloseO) {
			return nil
		}
		return frame
	})
	waiting := make(chan error, 1)
	go func() { waiting <- publishWithin(pub, time.Minute) }()
	heraldtest.Eventually(t, 10*time.Second, "the publish to be sent", func() (bool, error) {
		return proxy.publishes.Load() == 2, nil
	})
	// Each of these publishes is given up at its deadline, and the close of its channel waits for
	// RabbitMQ; the last of them makes the publisher give the connection up.
	for i := range router.AbandonedMax {
		if err := publishWithin(pub, 200*time.Millisecond); err == nil {
			t.Fatalf("publish %d was confirmed, though RabbitMQ confirms nothing", i)
		}
	}
	select {
	case err := <-waiting:
		t.Logf("the publish waiting for its confirm: %v", err)
		switch {
		case err == nil:
			t.Fatal("the publish waiting for its confirm succeeded, though RabbitMQ confirms nothing")
		case strings.Contains(err.Error(), "nack"):
			t.Errorf("the publish waiting for its confirm says RabbitMQ nacked it: %v", err)
		case !strings.Contains(err.Error(), "gave its connection up"):
			t.Errorf("the publish waiting for its confirm does not say its connection was given up: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the publish waiting for its confirm still waits, 30 s after its connection was to be given up")
	}
}
