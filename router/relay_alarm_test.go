package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// While RabbitMQ stops reading a publishing connection — a memory or disk alarm: its heartbeats
// go on, nothing else is answered — the relay gives up each publish at its ack deadline and
// tries again. What it gives up on must not pile up: every try used to leave a goroutine waiting
// for a channel's close and another waiting in a channel's open, each holding a channel id of
// the one connection, and a command handed out again after its deadline started one more open
// and threw away an idle channel. With 8 partitions and a 5 s deadline the connection's 2047
// channel ids ran out in about 10 minutes, and nothing replaced the connection. Here the
// deadline is 200 ms, so a 12-second alarm is 60 deadlines: the goroutines of the process and
// the channels held open through the proxy stay within bounds all along, nothing leaves the
// outbox without RabbitMQ's confirm, and once the alarm clears every command is forwarded.
//
// Not parallel: it counts the goroutines of the whole process.
func TestRelayStaysBoundedWhileRabbitMQStopsReading(t *testing.T) {
	const (
		partitions  = 8
		ackDeadline = 200 * time.Millisecond
		alarm       = 12 * time.Second
		// A connection given up on holds, until it is closed within 2 s, at most its pool of
		// channels (one per partition) and their closes, some 13 goroutines of the publisher,
		// amqp091 and the proxy; with a deadline this short, some 8 are closing at any moment
		// (measured: about 105 goroutines and 64 channels; before, both grew with every deadline,
		// to some 330 and 320).
		maxGoroutines = 200
		maxChannels   = 120
	)
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
	relay := router.NewRelay(db.Pool, proxied, router.RelayConfig{
		PollInterval: 20 * time.Millisecond, IdlePollMax: 100 * time.Millisecond, BatchSize: 10, Partitions: partitions,
	}, topology, logger)
	router.SetAckDeadline(relay, ackDeadline)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	// Commands are forwarded first, so the publisher holds open channels in confirm mode, as a
	// relay at work does.
	warm := sendCommands(t, db.Pool, 4*partitions, 1)
	heraldtest.Eventually(t, 30*time.Second, "the first commands to be forwarded", func() (bool, error) {
		waiting, err := relay.Waiting(ctx, warm)
		return err == nil && len(waiting) == 0, fmt.Errorf("%d waiting, error %v", len(waiting), err)
	})
	before := runtime.NumGoroutine()
	conns, channels := proxy.open()
	t.Logf("before the alarm: %d goroutines, %d connections and %d channels through the proxy", before, conns, channels)

	proxy.setAlarm(true)
	t.Cleanup(func() { proxy.setAlarm(false) })
	ids := sendCommands(t, db.Pool, 4*partitions, 1)
	heraldtest.Eventually(t, 10*time.Second, "RabbitMQ to stop reading the relay's connection", func() (bool, error) {
		return proxy.stalled.Load() > 0, nil
	})
	var mostGoroutines, mostConns, mostChannels int64
	for end := time.Now().Add(alarm); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		mostGoroutines = max(mostGoroutines, int64(runtime.NumGoroutine()-before))
		conns, channels := proxy.open()
		mostConns, mostChannels = max(mostConns, conns), max(mostChannels, channels)
	}
	t.Logf("during a %s alarm (%d ack deadlines): at most %d goroutines more, %d connections and %d channels; %d connections stalled",
		alarm, alarm/ackDeadline, mostGoroutines, mostConns, mostChannels, proxy.stalled.Load())
	if mostGoroutines > maxGoroutines {
		t.Errorf("the process ran up to %d goroutines more than before the alarm, want at most %d", mostGoroutines, maxGoroutines)
	}
	if mostChannels > maxChannels {
		t.Errorf("the relay held up to %d channels open, want at most %d", mostChannels, maxChannels)
	}
	waiting, err := relay.Waiting(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(waiting) != len(ids) {
		t.Fatalf("%d of %d commands left the outbox while RabbitMQ confirmed nothing", len(ids)-len(waiting), len(ids))
	}

	proxy.setAlarm(false)
	heraldtest.Eventually(t, 30*time.Second, "the relay to forward every command once the alarm clears", func() (bool, error) {
		waiting, err := relay.Waiting(ctx, ids)
		return err == nil && len(waiting) == 0, fmt.Errorf("%d waiting, error %v", len(waiting), err)
	})
	got := takeForwarded(t, amqpURL, router.QueueEmail)
	for _, id := range append(warm, ids...) {
		if got[id] == 0 {
			t.Errorf("command %s never reached RabbitMQ", id)
		}
	}
}
