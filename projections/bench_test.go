package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// storyRecords makes n notifications' three events (queued, processing, sent), as recorded.
func storyRecords(n int) []events.Recorded {
	var out []events.Recorded
	pos := int64(0)
	t := time.Now()
	for i := 0; i < n; i++ {
		id := uuid.NewString()
		for v, e := range []events.Event{
			&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: fmt.Sprintf("u%d@example.com", i), Content: "c", Body: "b"},
			&events.NotificationProcessing{Attempt: 1, Worker: "w"},
			&events.NotificationSent{Attempt: 1, Provider: "smtp", ProviderMessageID: id + "@example.com"},
		} {
			pos++
			data, _ := jsonOf(e)
			out = append(out, events.Recorded{ID: uuid.NewString(), StreamID: id, Version: int64(v + 1), Position: pos,
				Type: e.EventType(), Time: t, Data: data, Metadata: events.Metadata{Actor: "bench"}})
		}
	}
	return out
}

// benchApply measures applying batches of batch events to p's table, a transaction a batch.
func benchApply(b *testing.B, p projections.Rebuildable, batch int) {
	db := heraldtest.NewDatabase(b)
	ctx := context.Background()
	recs := storyRecords(batch / 3)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if _, err := db.Pool.Exec(ctx, `TRUNCATE `+p.TableName()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return p.ApplyBatch(ctx, tx, recs) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkStatusApply(b *testing.B) {
	for _, n := range []int{3, 99, 498} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchApply(b, projections.Status{}, n) })
	}
}

func BenchmarkHistoryApply(b *testing.B) {
	for _, n := range []int{3, 99, 498} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchApply(b, projections.History{}, n) })
	}
}

func jsonOf(e events.Event) ([]byte, error) { return json.Marshal(e) }

// BenchmarkUnfinished measures the reconciler's look for stalled notifications in a status table
// of n rows, all but one in 200 sent, the rest pending and idle for an hour; with stuck=true, a
// further n/2 rows are pending, idle as long but recovered four times in a row, so still in their
// backoff (16 × 10 minutes), and changed before any of the others: the look must pass them by.
func BenchmarkUnfinished(b *testing.B) {
	for _, c := range []struct {
		n     int
		stuck bool
	}{{100_000, false}, {1_000_000, false}, {100_000, true}} {
		b.Run(fmt.Sprintf("rows=%d/stuck=%v", c.n, c.stuck), func(b *testing.B) {
			if testing.Short() && c.n > 100_000 {
				b.Skip("-short: a million rows take half a minute to insert")
			}
			db := heraldtest.NewDatabase(b)
			ctx := context.Background()
			if _, err := db.Pool.Exec(ctx, `
INSERT INTO notification_status (notification_id, channel, recipient, status, version, position, created_at, updated_at)
SELECT gen_random_uuid(), 'email', 'u' || i || '@example.com', CASE WHEN i % 200 = 0 THEN 'pending' ELSE 'sent' END,
	1, i, now() - interval '1 hour', now() - interval '1 hour' + i * interval '1 microsecond'
FROM generate_series(1, $1::int) i`, c.n); err != nil {
				b.Fatal(err)
			}
			if c.stuck {
				if _, err := db.Pool.Exec(ctx, `
INSERT INTO notification_status (notification_id, channel, recipient, status, version, position, created_at, updated_at, recoveries)
SELECT gen_random_uuid(), 'sms', '+1' || i, 'pending', 5, i, now() - interval '2 hours', now() - interval '2 hours' + i * interval '1 microsecond', 4
FROM generate_series(1, $1::int / 2) i`, c.n); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := db.Pool.Exec(ctx, `ANALYZE notification_status`); err != nil {
				b.Fatal(err)
			}
			r := projections.NewReader(db.Pool, events.NewLog(db.Pool))
			b.ResetTimer()
			for b.Loop() {
				ids, _, err := r.Unfinished(ctx, handlers.RecoveryWaits(10*time.Minute), 500)
				if err != nil || len(ids) != 500 {
					b.Fatalf("Unfinished = %d ids, %v; want 500", len(ids), err)
				}
			}
		})
	}
}
