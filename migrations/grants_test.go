package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/migrations"
)

// runtimeConn connects to db as the role Herald's services run as, until the test ends.
func runtimeConn(t *testing.T, db *heraldtest.Database) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), db.RuntimeURL)
	if err != nil {
		t.Fatalf("connect as the runtime role: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestRuntimeRoleCannotRewriteTheLog connects as the role Herald's services run as and tries
// every way of rewriting the log: each must be refused by PostgreSQL's privileges — not merely
// by the log's triggers, which the table's owner could disable.
func TestRuntimeRoleCannotRewriteTheLog(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	conn := runtimeConn(t, db)

	// What the services need works.
	if _, err := conn.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
		VALUES ($1, $2, 1, 'NotificationQueued', '{}')`, uuid.New(), uuid.New()); err != nil {
		t.Fatalf("append as the runtime role: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM event_log`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("read the log as the runtime role: %d rows, %v", n, err)
	}

	for _, stmt := range []string{
		`UPDATE event_log SET event_type = 'Forged'`,
		`DELETE FROM event_log`,
		`TRUNCATE event_log`,
		`ALTER TABLE event_log DISABLE TRIGGER ALL`,
		`ALTER TABLE event_log DISABLE TRIGGER event_log_no_update_delete`,
		`DROP TABLE event_log`,
		`DROP TABLE event_log CASCADE`,
		`ALTER TABLE event_log OWNER TO ` + pgx.Identifier{db.Runtime}.Sanitize(),
		`DROP TRIGGER event_log_no_truncate ON event_log`,
		`CREATE OR REPLACE FUNCTION event_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		// The DDL lent for rebuilding read models does not reach the log.
		`SELECT create_rebuild_table('event_log')`,
		`SELECT swap_rebuild_table('event_log')`,
		`SELECT drop_rebuild_table('event_log')`,
		`SELECT swap_rebuild_table('public.event_log')`,
		// A stored template's versions are what sends by name render: they are never changed.
		`UPDATE template_versions SET content = 'forged'`,
		`DELETE FROM template_versions`,
		`TRUNCATE template_versions`,
		// A checkpoint is appended only through checkpoint_append.
		`INSERT INTO checkpoints VALUES (1, 1, '1', 1, sha256(''), '', 'k', '', now())`,
		`UPDATE checkpoints SET root = sha256('x')`,
		`DELETE FROM checkpoints`,
		`TRUNCATE checkpoints`,
		`ALTER TABLE checkpoints DISABLE TRIGGER USER`,
		// The stored subtree roots are appended by the sealer, never rewritten.
		`UPDATE merkle_subtrees SET root = sha256('x')`,
		`DELETE FROM merkle_subtrees`,
		`TRUNCATE merkle_subtrees`,
		`ALTER TABLE merkle_subtrees DISABLE TRIGGER USER`,
		`ALTER TABLE event_log ALTER COLUMN global_position SET DEFAULT 1`,
		// The log's identity, signed into every checkpoint, is the migration's alone.
		`UPDATE log_identity SET id = gen_random_uuid()`,
		`DELETE FROM log_identity`,
		`INSERT INTO log_identity (id, one) VALUES (gen_random_uuid(), true)`,
	} {
		_, err := conn.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || strings.Contains(pgErr.Message, "append-only") {
			t.Errorf("%s as the runtime role: got %v, want a privilege error from PostgreSQL itself", stmt, err)
		}
	}

	// Whatever place in the log the client asks for, the event takes the next one: this
	// transaction's id and the sequence's next number.
	var pos int64
	var xidChosen bool
	if err := conn.QueryRow(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, global_position, transaction_id)
		VALUES ($1, $2, 1, 'NotificationQueued', '{}', 1, '3'::xid8) RETURNING global_position, transaction_id = '3'::xid8`,
		uuid.New(), uuid.New()).Scan(&pos, &xidChosen); err != nil {
		t.Fatalf("append choosing the position: %v", err)
	}
	if pos <= 1 || xidChosen {
		t.Errorf("an append asking for position 1 and transaction 3 got position %d (chosen transaction: %v), want the next position and its own transaction", pos, xidChosen)
	}
	var next int64
	if err := conn.QueryRow(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
		VALUES ($1, $2, 1, 'NotificationQueued', '{}') RETURNING global_position`, uuid.New(), uuid.New()).Scan(&next); err != nil || next != pos+1 {
		t.Errorf("the next append took position %d (%v), want %d: one number a row", next, err, pos+1)
	}

	// checkpoint_append takes the next seq only, and never a smaller tree.
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT checkpoint_append(1, 2, '1', 1, sha256(''), '', 'k', '', now())`).Scan(&ok); err != nil || !ok {
		t.Fatalf("checkpoint_append of seq 1: %v, %v", ok, err)
	}
	if err := conn.QueryRow(ctx, `SELECT checkpoint_append(1, 3, '1', 1, sha256(''), '', 'k', '', now())`).Scan(&ok); err != nil || ok {
		t.Errorf("checkpoint_append of seq 1 again: %v, %v; want false, written already", ok, err)
	}
	for _, stmt := range []string{`SELECT checkpoint_append(3, 3, '1', 1, sha256(''), '', 'k', '', now())`,
		`SELECT checkpoint_append(2, 1, '1', 1, sha256(''), '', 'k', '', now())`} {
		if _, err := conn.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "checkpoints:") {
			t.Errorf("%s: %v, want it refused", stmt, err)
		}
	}

	// The sealer appends subtree roots, the same one twice without an error (a backfill racing
	// another sealer's), and reads them back.
	for range 2 {
		if _, err := conn.Exec(ctx, `INSERT INTO merkle_subtrees (level, idx, root, last_transaction_id, last_position)
			VALUES (10, 0, sha256(''), '1', 1) ON CONFLICT DO NOTHING`); err != nil {
			t.Fatalf("append a subtree root as the runtime role: %v", err)
		}
	}
	var subtrees int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM merkle_subtrees`).Scan(&subtrees); err != nil || subtrees != 1 {
		t.Errorf("subtree roots read as the runtime role: %d, %v; want 1", subtrees, err)
	}

	// Nor does a temporary table named like a read model fool them.
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE notification_status_rebuild (x int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT swap_rebuild_table('notification_status')`); err == nil || !strings.Contains(err.Error(), "temporary table") {
		t.Errorf("swap with a temporary table in the way: %v, want a refusal", err)
	}

	// The log is as it was, triggers and all.
	var rows, enabled int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM event_log WHERE event_type = 'NotificationQueued') - 2,
		(SELECT count(*) FROM pg_trigger WHERE tgrelid = 'event_log'::regclass AND NOT tgisinternal AND tgenabled = 'O')`).Scan(&rows, &enabled); err != nil {
		t.Fatal(err)
	}
	// Refusing UPDATE/DELETE, TRUNCATE, and the hash chain's.
	if rows != 1 || enabled != 3 {
		t.Errorf("after the attempts: %d events (want 1), %d enabled triggers (want 3)", rows, enabled)
	}
}

// TestRuntimeRoleKeepsWorkingTables checks the runtime role may change what the services change:
// the outbox, the read models, the offsets and the API keys — and never the schema version.
func TestRuntimeRoleKeepsWorkingTables(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	conn := runtimeConn(t, db)
	for _, stmt := range []string{
		`INSERT INTO event_log_offsets VALUES ('g', 0, '0')`,
		`UPDATE event_log_offsets SET offset_acked = 1`,
		`INSERT INTO outbox (uuid, payload, metadata, transaction_id) VALUES ('u', '{}', '{}', pg_current_xact_id())`,
		`DELETE FROM outbox`,
		`DELETE FROM notification_status`,
		`UPDATE notification_history SET error = ''`,
		`UPDATE api_keys SET revoked_at = now() WHERE false`,
		`DELETE FROM idempotency_keys`,
		`SELECT max(version_id) FROM ` + migrations.Table,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Errorf("%s as the runtime role: %v", stmt, err)
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM `+migrations.Table); err == nil {
		t.Errorf("the runtime role may change the schema version")
	}
}

// TestGrantRuntimeRefusesAnOwner refuses to call a role that owns the log (or may act as its
// owner) a runtime role: grants cannot take an owner's powers away.
func TestGrantRuntimeRefusesAnOwner(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	var owner string
	if err := db.Pool.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if err := migrations.GrantRuntime(ctx, db.Pool, owner); !errors.Is(err, migrations.ErrRoleOwnsLog) {
		t.Errorf("GrantRuntime(the owner) = %v, want ErrRoleOwnsLog", err)
	}
	if err := migrations.GrantRuntime(ctx, db.Pool, db.Runtime+"_missing"); !errors.Is(err, migrations.ErrNoRole) {
		t.Errorf("GrantRuntime(a missing role) = %v, want ErrNoRole", err)
	}
	// Run again, it grants the same.
	if err := migrations.GrantRuntime(ctx, db.Pool, db.Runtime); err != nil {
		t.Fatalf("GrantRuntime again: %v", err)
	}
	var ok bool
	if err := db.Pool.QueryRow(ctx, `SELECT has_table_privilege($1, 'event_log', 'SELECT, INSERT')
		AND NOT has_table_privilege($1, 'event_log', 'UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')`, db.Runtime).Scan(&ok); err != nil || !ok {
		t.Errorf("privileges on event_log after a second grant: ok=%v err=%v", ok, err)
	}
}

// Several processes starting with --migrate grant the runtime role at once; none of them may
// fail on the others' catalogue updates ("tuple concurrently updated").
func TestGrantRuntimeConcurrently(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	const n = 6
	for round := range 5 {
		errs := make(chan error, n)
		for range n {
			go func() { errs <- migrations.GrantRuntime(ctx, db.Pool, db.Runtime) }()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: GrantRuntime beside %d others: %v", round, n-1, err)
			}
		}
	}
}

// Migrations are numbered 1, 2, 3, … with none missing and none twice: goose refuses to apply
// one older than a database's newest, so a gap filled later would stop every upgraded database.
func TestMigrationsAreNumberedInARow(t *testing.T) {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	want := 1
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			t.Fatalf("%s: no number: %v", e.Name(), err)
		}
		if n != want {
			t.Fatalf("%s is number %d, want %d: numbers must follow each other", e.Name(), n, want)
		}
		want++
	}
}
