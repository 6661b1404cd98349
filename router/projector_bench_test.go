package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// BenchmarkProjectorBatch measures one batch of the projector: read the next events from the
// log, apply them to a read model (checking each stream's versions), advance the offset, commit.
func BenchmarkProjectorBatch(b *testing.B) {
	for _, proj := range []projections.Rebuildable{projections.Status{}, projections.History{}} {
		for _, size := range []int{100, 500} {
			benchmarkProjectorBatch(b, proj, size)
		}
	}
}

func benchmarkProjectorBatch(b *testing.B, proj projections.Rebuildable, size int) {
	{
		b.Run(fmt.Sprintf("%s/batch=%d", proj.Name(), size), func(b *testing.B) {
			db := heraldtest.NewDatabase(b)
			ctx := context.Background()
			log := events.NewLog(db.Pool)
			const stories = 2000
			for i := 0; i < stories; i++ {
				if _, err := log.Append(ctx, uuid.NewString(), 0, events.Metadata{},
					&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"},
					&events.NotificationProcessing{Attempt: 1}, &events.NotificationSent{Attempt: 1, Provider: "p"}); err != nil {
					b.Fatal(err)
				}
			}
			heraldtest.WaitLogVisible(b, db, 3*stories)
			p := NewProjector(db.Pool, ProjectorConfig{BatchSize: size}, slog.New(slog.NewTextHandler(io.Discard, nil)), proj)
			if err := p.join(ctx, eventLogOffsets(), proj.Name()); err != nil {
				b.Fatal(err)
			}
			schema, offsets := eventLogSchema{batchSize: size}, eventLogOffsets()
			applied := 0
			b.ResetTimer()
			for b.Loop() {
				n, err := p.batch(ctx, proj, schema, offsets, false)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					// The log is projected: start it again on an empty table.
					b.StopTimer()
					if _, err := db.Pool.Exec(ctx, `TRUNCATE `+proj.TableName()+`;
						UPDATE event_log_offsets SET offset_acked = 0, last_processed_transaction_id = '0'`); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				applied += n
			}
			b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
