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

// BenchmarkRelayWaiting measures the reconciler's outbox check of 500 notifications while n
// commands wait in the outbox unforwarded (RabbitMQ away), the worst case: every row is read.
func BenchmarkRelayWaiting(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("waiting=%d", n), func(b *testing.B) {
			db := heraldtest.NewDatabase(b)
			ctx := context.Background()
			_, err := db.Pool.Exec(ctx, `
INSERT INTO outbox (uuid, payload, metadata, transaction_id)
SELECT gen_random_uuid()::text,
	json_build_object('destination_topic', 'email_notifications', 'uuid', gen_random_uuid(),
		'payload', translate(encode(convert_to(json_build_object('notification_id', id, 'channel', 'email')::text, 'UTF8'), 'base64'), E'\n', ''),
		'metadata', json_build_object('name', 'SendNotification')),
	'{}', pg_current_xact_id()
FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, $1::int)) s`, n)
			if err != nil {
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
			relay := router.NewRelay(db.Pool, router.AMQPConfig{}, router.RelayConfig{Partitions: 4}, nil, slog.New(slog.DiscardHandler))
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
