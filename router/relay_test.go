package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// A command is waiting while it is in the outbox and the relay has not forwarded it, whichever
// partition it falls in; once RabbitMQ holds it, it is not.
func TestRelayWaitingUntilForwarded(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)

	outbox := router.NewOutbox(nil)
	var ids []string
	for i := range 9 {
		c := herald.ChannelEmail
		if i%3 == 0 {
			c = herald.ChannelSMS
		}
		id := uuid.NewString()
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			return outbox.Send(ctx, tx, commands.SendNotification{NotificationID: id, Channel: c})
		})
		if err != nil {
			t.Fatalf("put the command of %s in the outbox: %v", id, err)
		}
		ids = append(ids, id)
	}
	never := uuid.NewString()

	amqpCfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 2}
	relay := router.NewRelay(db.Pool, amqpCfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 5, Partitions: 3}, nil, logger)
	waiting, err := relay.Waiting(ctx, append([]string{never}, ids...))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !waiting[id] {
			t.Errorf("%s is not waiting before the relay ran", id)
		}
	}
	if waiting[never] {
		t.Errorf("%s, which has no command, is waiting", never)
	}

	// The relay forwards every partition.
	topology := router.NewTopology(amqpCfg, logger)
	relay = router.NewRelay(db.Pool, amqpCfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 5, Partitions: 3}, topology, logger)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = topology.Run(runCtx); done <- struct{}{} }()
	go func() { _ = relay.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	heraldtest.Eventually(t, 30*time.Second, "the queues to be declared", func() (bool, error) {
		err := topology.Ready(ctx)
		return err == nil, err
	})
	heraldtest.Eventually(t, 30*time.Second, "the relay to forward every command", func() (bool, error) {
		n := heraldtest.QueueDepth(t, amqpURL, router.QueueEmail) + heraldtest.QueueDepth(t, amqpURL, router.QueueSMS)
		return n == len(ids), fmt.Errorf("%d of %d commands in RabbitMQ", n, len(ids))
	})
	// The relay's offset moves in the transaction that follows the confirm.
	heraldtest.Eventually(t, 10*time.Second, "no command to be waiting", func() (bool, error) {
		waiting, err := relay.Waiting(ctx, ids)
		return err == nil && len(waiting) == 0, fmt.Errorf("waiting %v, error %v", waiting, err)
	})
}

// A row in the outbox whose payload is no command — not base64, not UTF-8, not JSON, none at
// all — is skipped: the check still answers for every other notification. Rows the relay has
// forwarded are not waiting, whatever they hold.
func TestRelayWaitingSkipsMalformedRows(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	outbox := router.NewOutbox(nil)
	send := func(id string) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			return outbox.Send(ctx, tx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail})
		}); err != nil {
			t.Fatalf("put the command of %s in the outbox: %v", id, err)
		}
	}
	forwarded, before, after := uuid.NewString(), uuid.NewString(), uuid.NewString()
	send(forwarded)
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO outbox_offsets (consumer_group, offset_acked, last_processed_transaction_id)
SELECT 'relay-' || k || '-of-2', (SELECT max("offset") FROM outbox), (SELECT max(transaction_id) FROM outbox)
FROM generate_series(0, 1) k`); err != nil {
		t.Fatal(err)
	}
	send(before)
	for _, payload := range []string{
		`{"destination_topic": "email_notifications", "payload": "not base64!"}`,
		`{"destination_topic": "email_notifications", "payload": "/w=="}`,     // 0xFF: not UTF-8
		`{"destination_topic": "email_notifications", "payload": "e25vdA=="}`, // "{not": not JSON
		`{"destination_topic": "email_notifications", "payload": "e30="}`,     // "{}": no notification
		`{"destination_topic": "email_notifications"}`,
		`null`,
	} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (uuid, payload, metadata, transaction_id)
			VALUES (gen_random_uuid()::text, $1::json, '{}', pg_current_xact_id())`, payload); err != nil {
			t.Fatal(err)
		}
	}
	send(after)

	relay := router.NewRelay(db.Pool, router.AMQPConfig{}, router.RelayConfig{Partitions: 2}, nil, slog.New(slog.DiscardHandler))
	waiting, err := relay.Waiting(ctx, []string{forwarded, before, after})
	if err != nil {
		t.Fatalf("Waiting: %v", err)
	}
	if want := map[string]bool{before: true, after: true}; !maps.Equal(waiting, want) {
		t.Errorf("Waiting = %v; want %v (%s forwarded)", waiting, want, forwarded)
	}
}

// takeForwarded takes every command from queue and returns how many times each notification id
// was there.
func takeForwarded(t *testing.T, amqpURL, queue string) map[string]int {
	t.Helper()
	ch := heraldtest.AMQPChannel(t, amqpURL)
	defer ch.Close()
	seen := map[string]int{}
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("take a command from %s: %v", queue, err)
		}
		if !ok {
			return seen
		}
		var cmd commands.SendNotification
		if err := json.Unmarshal(d.Body, &cmd); err != nil {
			t.Fatalf("read a command from %s: %v", queue, err)
		}
		seen[cmd.NotificationID]++
	}
}

// sendCommands puts n email commands in the outbox, per transactions of perTx, and returns their
// notification ids in outbox order.
func sendCommands(t testing.TB, pool *pgxpool.Pool, n, perTx int) []string {
	t.Helper()
	ctx := context.Background()
	outbox := router.NewOutbox(nil)
	ids := make([]string, 0, n)
	for len(ids) < n {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for range min(perTx, n-len(ids)) {
				id := uuid.NewString()
				if err := outbox.Send(ctx, tx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("put commands in the outbox: %v", err)
		}
	}
	return ids
}

// A partition with no offset row starts where no command of its own can be skipped. Rows of the
// other partitions of its count, or of an earlier count that never got all its rows, do not say
// where that is: the partition must start at the beginning of the outbox. Only when every group
// of an earlier count exists does it start at their lowest offset.
func TestRelayStartsAMissingPartitionSafely(t *testing.T) {
	const n = 20 // commands, at outbox offsets 1…n
	for _, tc := range []struct {
		name       string
		partitions int
		offsets    map[string]int64 // consumer group → the outbox offset it has forwarded up to
		want       func(offset int64) bool
	}{
		{
			name:       "a partition of the current count is missing",
			partitions: 4,
			offsets:    map[string]int64{"relay-0-of-4": n, "relay-2-of-4": n, "relay-3-of-4": n},
			want:       func(o int64) bool { return o%4 == 1 },
		},
		{
			name:       "an earlier count has every group",
			partitions: 4,
			offsets:    map[string]int64{"relay-0-of-2": 12, "relay-1-of-2": 9},
			want:       func(o int64) bool { return o > 9 },
		},
		{
			name:       "an earlier count misses a group",
			partitions: 4,
			offsets:    map[string]int64{"relay-0-of-2": n},
			want:       func(o int64) bool { return true },
		},
		{
			name:       "one partition after three",
			partitions: 1,
			offsets:    map[string]int64{"relay-0-of-3": n, "relay-1-of-3": n, "relay-2-of-3": 6},
			want:       func(o int64) bool { return o > 6 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := heraldtest.NewDatabase(t)
			amqpURL := heraldtest.NewVHost(t)
			ctx := context.Background()
			logger := slog.New(slog.DiscardHandler)
			ids := sendCommands(t, db.Pool, n, 1)
			want := map[string]int{}
			for i, id := range ids {
				if tc.want(int64(i + 1)) {
					want[id] = 1
				}
			}
			for group, offset := range tc.offsets {
				_, err := db.Pool.Exec(ctx, `INSERT INTO outbox_offsets (consumer_group, offset_acked, last_processed_transaction_id)
					SELECT $1, "offset", transaction_id FROM outbox WHERE "offset" = $2`, group, offset)
				if err != nil {
					t.Fatal(err)
				}
			}

			amqpCfg := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 1, PublishChannels: 2}
			topology := router.NewTopology(amqpCfg, logger)
			relay := router.NewRelay(db.Pool, amqpCfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 5, Partitions: tc.partitions}, topology, logger)
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan struct{}, 2)
			go func() { _ = topology.Run(runCtx); done <- struct{}{} }()
			go func() { _ = relay.Run(runCtx); done <- struct{}{} }()
			defer func() { cancel(); <-done; <-done }()

			heraldtest.Eventually(t, 30*time.Second, "every partition to have an offset", func() (bool, error) {
				var groups int
				err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_offsets
					WHERE consumer_group = 'relay' AND $1::int = 1 OR consumer_group LIKE '%-of-' || $1::int`, tc.partitions).Scan(&groups)
				return groups == tc.partitions, err
			})
			heraldtest.Eventually(t, 30*time.Second, "the relay to forward what it is to forward", func() (bool, error) {
				waiting, err := relay.Waiting(ctx, ids)
				return err == nil && len(waiting) == 0, fmt.Errorf("%d commands waiting, error %v", len(waiting), err)
			})
			if diff := cmp.Diff(want, takeForwarded(t, amqpURL, router.QueueEmail)); diff != "" {
				t.Errorf("commands in RabbitMQ, by notification id (-want +got):\n%s", diff)
			}
		})
	}
}

// A relay that stops while it forwards — shutdown, RabbitMQ lost, a partition failing — finishes
// the command it is publishing and records what it forwarded: started again, it forwards nothing
// twice.
func TestRelayStopsWithoutForwardingTwice(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	const n = 1000
	ids := sendCommands(t, db.Pool, n, 50)

	amqpCfg := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 1, PublishChannels: 4}
	topology := router.NewTopology(amqpCfg, logger)
	topoCtx, stopTopology := context.WithCancel(ctx)
	topoDone := make(chan struct{})
	go func() { _ = topology.Run(topoCtx); close(topoDone) }()
	defer func() { stopTopology(); <-topoDone }()
	heraldtest.Eventually(t, 30*time.Second, "the queues to be declared", func() (bool, error) {
		err := topology.Ready(ctx)
		return err == nil, err
	})
	relayCfg := router.RelayConfig{PollInterval: 20 * time.Millisecond, IdlePollMax: time.Second, BatchSize: 10, Partitions: 4}

	left := func(relay *router.Relay) int {
		waiting, err := relay.Waiting(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		return len(waiting)
	}
	stops := 0
	for waiting := n; waiting > 0; {
		relay := router.NewRelay(db.Pool, amqpCfg, relayCfg, topology, logger)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- relay.Run(runCtx) }()
		// Stop it once it has forwarded a few more commands, in the middle of its batches.
		from := waiting
		heraldtest.Eventually(t, 30*time.Second, "the relay to forward", func() (bool, error) {
			waiting = left(relay)
			return waiting <= max(0, from-40), nil
		})
		stop()
		if err := <-done; err != nil {
			t.Fatalf("relay: %v", err)
		}
		stops++
		waiting = left(relay)
	}
	got := takeForwarded(t, amqpURL, router.QueueEmail)
	twice := 0
	for _, id := range ids {
		switch got[id] {
		case 0:
			t.Errorf("command %s never reached RabbitMQ", id)
		case 1:
		default:
			twice++
		}
	}
	if twice > 0 || len(got) != n {
		t.Fatalf("stopped %d times: %d of %d commands were forwarded more than once, %d distinct in RabbitMQ", stops, twice, n, len(got))
	}
	t.Logf("the relay stopped %d times while forwarding %d commands, each forwarded once", stops, n)
}
