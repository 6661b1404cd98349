package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
