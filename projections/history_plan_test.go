package projections_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// TestHistoryBatchReadsItsStreamsNotTheTable applies a batch of 40 streams' events to a history
// of 60,000 rows whose statistics are stale the way a table's are under load (ANALYZE last ran
// when each stream seemed to have thousands of rows): finding where each stream's rows go on
// must read those streams' index entries, not the table. It reads the transaction's own table
// statistics, so the count is exactly this batch's.
func TestHistoryBatchReadsItsStreamsNotTheTable(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO notification_history (notification_id, version, position, event_type, status, occurred_at)
SELECT id, v, 0, 'NotificationQueued', 'queued', now()
FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 20000)) s, generate_series(1, 3) AS v`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE notification_history ALTER COLUMN notification_id SET (n_distinct = 10);
		ANALYZE notification_history`); err != nil {
		t.Fatal(err)
	}

	log := events.NewLog(db.Pool)
	var batch []events.Recorded
	for range 40 {
		id := uuid.NewString()
		if _, err := log.Append(ctx, id, 0, events.Metadata{},
			&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"},
			&events.NotificationProcessing{Attempt: 1, Worker: "w"}); err != nil {
			t.Fatal(err)
		}
		recs, err := log.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, recs...)
	}

	var seqRead, idxFetched int64
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := (projections.History{}).ApplyBatch(ctx, tx, batch); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0)
			FROM pg_stat_xact_user_tables WHERE relname = 'notification_history'`).Scan(&seqRead, &idxFetched)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("applying %d events of 40 streams read %d rows sequentially and fetched %d through an index", len(batch), seqRead, idxFetched)
	if seqRead != 0 {
		t.Errorf("the batch scanned notification_history (%d rows read); want only its streams' index entries", seqRead)
	}
	var rows int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_history WHERE position > 0`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(batch) {
		t.Errorf("history holds %d of the batch's rows, want %d", rows, len(batch))
	}
}
