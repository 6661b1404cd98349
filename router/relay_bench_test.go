package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// BenchmarkRelayWaiting measures the reconciler's outbox check of 500 notifications while
// commands wait in the outbox unforwarded (RabbitMQ away; every one of them is read), behind
// commands the relay has forwarded but not purged yet (which the check should not read).
func BenchmarkRelayWaiting(b *testing.B) {
	for _, c := range []struct{ forwarded, waiting int }{{0, 1_000}, {0, 100_000}, {100_000, 1_000}} {
		b.Run(fmt.Sprintf("forwarded=%d/waiting=%d", c.forwarded, c.waiting), func(b *testing.B) {
			db := heraldtest.NewDatabase(b)
			ctx := context.Background()
			const partitions = 4
			put := func(n int) {
				b.Helper()
				_, err := db.Pool.Exec(ctx, `
INSERT INTO outbox (uuid, payload, metadata, transaction_id)
SELECT gen_random_uuid()::text,
	json_build_object('destination_topic', 'email_notifications', 'uuid', gen_random_uuid(),
		'payload', translate(encode(convert_to(json_build_object('notification_id', id, 'channel', 'email')::text, 'UTF8'), 'base64'), E'\n', ''),
		'metadata', json_build_object('name', 'SendNotification')),
	'{}', pg_current_xact_id()
FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, $1::int) i) s`, n)
				if err != nil {
					b.Fatal(err)
				}
			}
			if c.forwarded > 0 {
				put(c.forwarded)
				if _, err := db.Pool.Exec(ctx, `
INSERT INTO outbox_offsets (consumer_group, offset_acked, last_processed_transaction_id)
SELECT 'relay-' || k || '-of-' || $1::int, (SELECT max("offset") FROM outbox), (SELECT max(transaction_id) FROM outbox)
FROM generate_series(0, $1::int - 1) k`, partitions); err != nil {
					b.Fatal(err)
				}
			}
			put(c.waiting)
			if _, err := db.Pool.Exec(ctx, `ANALYZE outbox`); err != nil {
				b.Fatal(err)
			}
			var ids []string
			if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, `SELECT convert_from(decode(payload->>'payload', 'base64'), 'UTF8')::json->>'notification_id'
					FROM outbox ORDER BY "offset" DESC LIMIT 500`)
				if err != nil {
					return err
				}
				ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			}); err != nil {
				b.Fatal(err)
			}
			relay := router.NewRelay(db.Pool, router.AMQPConfig{}, router.RelayConfig{Partitions: partitions}, nil, slog.New(slog.DiscardHandler))
			b.ResetTimer()
			for b.Loop() {
				w, err := relay.Waiting(ctx, ids)
				if err != nil || len(w) != len(ids) {
					b.Fatalf("Waiting = %d of %d, %v", len(w), len(ids), err)
				}
			}
		})
	}
}
