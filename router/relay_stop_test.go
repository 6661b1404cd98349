package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// relayStopBound is how long a relay may take to stop while RabbitMQ leaves its publish
// unanswered: the command in hand is given up at its ack deadline (5 s), and the publisher's
// connection closed within 2 s — well within a process's stop deadline, and short of the 10 s
// watermill's router is given to wait for a stuck handler.
const relayStopBound = 9 * time.Second

// A relay told to stop while RabbitMQ does not answer the command it is publishing — no confirm
// comes, a channel it opens is never opened, the connection it dials never finishes its
// handshake, or every publish is refused — stops within seconds all the same, and leaves the
// command in the outbox: the next relay forwards it. Before, a publish whose confirm never came
// closed its channel and waited for RabbitMQ to confirm the close, watermill's router waited 30 s
// for that handler, and the relay took longer to stop than a process is given; and a publish
// that dialled waited out the handshake's 30 s bound, and the publisher's close waited behind it.
func TestRelayStopsWhileRabbitMQLeavesAPublishUnanswered(t *testing.T) {
	for _, tc := range []struct {
		name string
		// warm forwards a command before RabbitMQ goes wrong, so that the relay's publisher
		// holds an open channel in confirm mode.
		warm bool
		// fault makes RabbitMQ go wrong for the relay, and returns what undoes it.
		fault func(t *testing.T, proxy *amqpProxy, amqpURL string) (undo func())
		// caught says when the relay is publishing a command RabbitMQ leaves unanswered.
		caught func(proxy *amqpProxy) error
	}{
		{
			name: "its confirm never comes",
			warm: true,
			fault: func(t *testing.T, proxy *amqpProxy, _ string) func() {
				proxy.withhold.Store(true)
				return func() {}
			},
			caught: withheld,
		},
		{
			name: "its channel never opens",
			fault: func(t *testing.T, proxy *amqpProxy, _ string) func() {
				proxy.withhold.Store(true)
				return func() {}
			},
			caught: withheld,
		},
		{
			name: "RabbitMQ answers nothing but heartbeats",
			warm: true,
			fault: func(t *testing.T, proxy *amqpProxy, _ string) func() {
				proxy.withholdAll.Store(true)
				return func() {}
			},
			caught: withheld,
		},
		{
			name: "its new connection's handshake never ends",
			warm: true,
			fault: func(t *testing.T, proxy *amqpProxy, _ string) func() {
				// The relay's connection drops, and the connection it dials next is taken but
				// never answered: its handshake would wait out its 30 s bound.
				proxy.stallNew.Store(true)
				proxy.cut()
				return func() {}
			},
			caught: func(proxy *amqpProxy) error {
				if n := proxy.accepted.Load(); n < 2 {
					return fmt.Errorf("%d connections so far", n)
				}
				return nil
			},
		},
		{
			name: "RabbitMQ nacks every publish",
			fault: func(t *testing.T, _ *amqpProxy, amqpURL string) func() {
				// A queue that may hold nothing and refuses what would overflow it: RabbitMQ
				// nacks every message routed to it.
				heraldtest.RabbitAPI(t, amqpURL, http.MethodPut, "/api/policies/{vhost}/refuse-all",
					`{"pattern": ".*", "apply-to": "queues", "definition": {"max-length": 0, "overflow": "reject-publish"}}`)
				return func() { heraldtest.RabbitAPI(t, amqpURL, http.MethodDelete, "/api/policies/{vhost}/refuse-all", "") }
			},
			caught: func(proxy *amqpProxy) error {
				if n := proxy.nacks.Load(); n < 2 {
					return fmt.Errorf("%d nacks so far", n)
				}
				return nil
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := heraldtest.NewDatabase(t)
			amqpURL := heraldtest.NewVHost(t)
			proxy, proxyURL := newAMQPProxy(t, amqpURL)
			ctx := context.Background()
			logger := slog.New(slog.DiscardHandler)

			direct := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 1, PublishChannels: 1}
			topology := router.NewTopology(direct, logger)
			topoCtx, stopTopology := context.WithCancel(ctx)
			topoDone := make(chan struct{})
			go func() { _ = topology.Run(topoCtx); close(topoDone) }()
			t.Cleanup(func() { stopTopology(); <-topoDone })
			heraldtest.Eventually(t, 30*time.Second, "the queues to be declared", func() (bool, error) {
				err := topology.Ready(ctx)
				return err == nil, err
			})

			relayCfg := router.RelayConfig{PollInterval: 20 * time.Millisecond, IdlePollMax: 100 * time.Millisecond, BatchSize: 10, Partitions: 1}
			proxied := direct
			proxied.URL = proxyURL
			relay := router.NewRelay(db.Pool, proxied, relayCfg, topology, logger)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- relay.Run(runCtx) }()
			t.Cleanup(func() {
				stop()
				select {
				case <-done:
				case <-time.After(time.Minute):
					t.Error("the relay did not stop")
				}
			})
			heraldtest.Eventually(t, 30*time.Second, "the relay to run", func() (bool, error) {
				err := relay.Ready(ctx)
				return err == nil, err
			})
			var ids []string
			if tc.warm {
				ids = append(ids, sendCommands(t, db.Pool, 1, 1)...)
				heraldtest.Eventually(t, 30*time.Second, "the first command to be forwarded", func() (bool, error) {
					waiting, err := relay.Waiting(ctx, ids)
					return err == nil && len(waiting) == 0, fmt.Errorf("waiting %v, error %v", waiting, err)
				})
			}

			undo := tc.fault(t, proxy, amqpURL)
			unanswered := sendCommands(t, db.Pool, 1, 1)
			ids = append(ids, unanswered...)
			heraldtest.Eventually(t, 30*time.Second, "the relay to publish a command RabbitMQ leaves unanswered", func() (bool, error) {
				err := tc.caught(proxy)
				return err == nil, err
			})

			start := time.Now()
			stop()
			select {
			case err := <-done:
				done <- err // for the cleanup
				if err != nil {
					t.Errorf("relay: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("the relay did not stop within a minute")
			}
			if took := time.Since(start); took > relayStopBound {
				t.Errorf("the relay took %s to stop, want at most %s", took.Round(time.Millisecond), relayStopBound)
			} else {
				t.Logf("the relay stopped in %s", took.Round(time.Millisecond))
			}
			waiting, err := relay.Waiting(ctx, unanswered)
			if err != nil {
				t.Fatal(err)
			}
			if !waiting[unanswered[0]] {
				t.Fatalf("the command RabbitMQ did not take is no longer waiting in the outbox")
			}

			// RabbitMQ answers again: the next relay forwards the command.
			undo()
			next := router.NewRelay(db.Pool, direct, relayCfg, topology, logger)
			nextCtx, stopNext := context.WithCancel(ctx)
			nextDone := make(chan struct{})
			go func() { _ = next.Run(nextCtx); close(nextDone) }()
			t.Cleanup(func() { stopNext(); <-nextDone })
			heraldtest.Eventually(t, 30*time.Second, "the next relay to forward the command", func() (bool, error) {
				waiting, err := next.Waiting(ctx, unanswered)
				return err == nil && len(waiting) == 0, fmt.Errorf("waiting %v, error %v", waiting, err)
			})
			// Nothing is lost. A command whose confirm never came may be in RabbitMQ twice: the
			// workers take a duplicate as such.
			got := takeForwarded(t, amqpURL, router.QueueEmail)
			for _, id := range ids {
				if got[id] == 0 {
					t.Errorf("command %s never reached RabbitMQ (in RabbitMQ: %v)", id, got)
				}
			}
		})
	}
}

// withheld says whether RabbitMQ sent the relay an answer that the proxy withheld.
func withheld(proxy *amqpProxy) error {
	if proxy.withheld.Load() == 0 {
		return fmt.Errorf("nothing withheld yet (%d publishes)", proxy.publishes.Load())
	}
	return nil
}
