package migrations_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/migrations"
)

// Migration 20 seals the events recorded before it into their streams' chains, in version order
// whatever order they were inserted in, so that the log verifies; and it refuses a stream with a
// gap rather than seal it.
func TestChainSealsTheEventsAlreadyRecorded(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithTableName(migrations.Table))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 19); err != nil {
		t.Fatalf("down to 19: %v", err)
	}
	a, b := uuid.NewString(), uuid.NewString()
	for _, row := range []struct {
		stream  string
		version int
	}{{a, 1}, {b, 1}, {a, 2}, {b, 2}, {a, 3}} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
			VALUES ($1, $2, $3, 'NotificationProcessing', $4, '{"actor": "ops"}')`, uuid.New(), row.stream, row.version,
			`{"attempt": `+string(rune('0'+row.version))+`}`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	rep, err := ledger.Verify(ctx, db.Pool, ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify after sealing: %v", err)
	}
	if rep.Events != 5 || rep.Streams != 2 {
		t.Errorf("verified %d events of %d streams, want 5 of 2", rep.Events, rep.Streams)
	}

	// A log with a gap cannot be sealed: the migration fails, and leaves nothing half done.
	if _, err := p.DownTo(ctx, 19); err != nil {
		t.Fatalf("down to 19: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
		VALUES ($1, $2, 5, 'NotificationSent', '{}')`, uuid.New(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err == nil {
		t.Fatal("a stream jumping from version 3 to 5 was sealed")
	}
	var hasHash bool
	if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM information_schema.columns
		WHERE table_name = 'event_log' AND column_name = 'hash')`).Scan(&hasHash); err != nil {
		t.Fatal(err)
	}
	if hasHash {
		t.Error("the failed migration left event_log.hash behind")
	}
}

// Migrating below 20 would drop the signed checkpoints: it is refused while there are any, and
// the checkpoints stay.
func TestChainDownRefusesWhileCheckpointsExist(t *testing.T) {
	db, p := migratedTo(t, 20)
	ctx := t.Context()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO checkpoints VALUES (1, 1, '1', 1, sha256(''), '', 'k', '', now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 19); err == nil {
		t.Fatal("migrated down to 19 with a checkpoint in the database")
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM checkpoints`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d checkpoints after the refused down migration (%v), want 1", n, err)
	}
}
