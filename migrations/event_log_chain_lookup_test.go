package migrations_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald/heraldtest"
)

// The chain trigger finds each event's predecessor with an index scan even where event_log has
// no statistics: a bitmap scan (the planner's choice there before migration 26) counts the index
// tuples it reads but fetches none through the index, so the index's idx_tup_fetch tells the two
// apart. The hashes are 23's.
func TestChainLookupIsAnIndexScanWithoutStatistics(t *testing.T) {
	ctx := t.Context()
	streams := chainEvents(t)
	old, p := migratedTo(t, 25)
	before := insertChain(t, ctx, old.Pool, streams)
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	db := old
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// Nothing may gather statistics while the test runs: the log stays as a new database's is.
	if _, err := conn.Exec(ctx, `ALTER TABLE event_log SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	var analyzed bool
	if err := conn.QueryRow(ctx, `SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL
		FROM pg_stat_user_tables WHERE relname = 'event_log'`).Scan(&analyzed); err != nil {
		t.Fatal(err)
	}
	if analyzed {
		t.Fatal("event_log was analyzed: the test needs a log without statistics")
	}
	fetched := func() int64 {
		t.Helper()
		// This session's counts reach the shared statistics when it next goes idle.
		if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := conn.QueryRow(ctx, `SELECT idx_tup_fetch FROM pg_stat_user_indexes
			WHERE indexrelname = 'event_log_stream_version_key'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A log the size of a few thousand notifications' (the planner's guess for the pair grows with
	// the table's pages), made of streams' first events, which look nothing up: the lookup is
	// planned after it.
	if _, err := conn.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
		SELECT gen_random_uuid(), gen_random_uuid(), 1, 'NotificationQueued',
			jsonb_build_object('recipient', 'someone@example.com', 'body', repeat('x', 200))
		FROM generate_series(1, 50000)`); err != nil {
		t.Fatal(err)
	}
	// Enough appends after each stream's first that the session's cached plan is the generic one
	// (PL/pgSQL plans the lookup with the values for its first five runs).
	const streamsN, versions = 20, 4
	start := fetched()
	for range streamsN {
		stream := uuid.New()
		for v := int64(1); v <= versions; v++ {
			if _, err := conn.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
				VALUES ($1, $2, $3, 'NotificationProcessing', '{"attempt": 1}')`, uuid.New(), stream, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := fetched()-start, int64(streamsN*(versions-1)); got != want {
		t.Errorf("the chain's lookups fetched %d rows through event_log_stream_version_key, want %d (one per append after a stream's first): the predecessor was not read with an index scan", got, want)
	}

	// The same events hash as under 23.
	again := insertChain(t, ctx, heraldtest.NewDatabase(t).Pool, streams)
	if diff := cmp.Diff(before, again); diff != "" {
		t.Errorf("hashes under 26 differ from 23's (-23 +26):\n%s", diff)
	}
}
