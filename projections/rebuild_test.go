package projections_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// A read model damaged by hand is found out by a dry run, which changes nothing, and repaired by
// a rebuild.
func TestRebuildRepairsCorruptedTables(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	ids := stories(t, log, 40)
	project(t, db)
	waitCaughtUp(t, log)

	damage := []string{
		`UPDATE notification_status SET status = 'sent', attempts = 99 WHERE notification_id = '` + ids[0] + `'`,
		`UPDATE notification_status SET last_error = 'made up' WHERE notification_id = '` + ids[1] + `'`,
		`UPDATE notification_status SET recoveries = recoveries + 3 WHERE notification_id = '` + ids[5] + `'`,
		`DELETE FROM notification_status WHERE notification_id = '` + ids[2] + `'`,
		`INSERT INTO notification_status (notification_id, channel, recipient, status, version, position, created_at, updated_at)
			VALUES ('` + uuid.NewString() + `', 'sms', '+1', 'sent', 1, 1, now(), now())`,
		`DELETE FROM notification_history WHERE notification_id = '` + ids[3] + `' AND version = 2`,
		`UPDATE notification_history SET error = 'forged' WHERE notification_id = '` + ids[4] + `' AND version = 1`,
	}
	for _, stmt := range damage {
		if _, err := db.Pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	before := tableDump(t, db, "notification_status")

	rb := projections.NewRebuilder(db.Pool, log, 7, discard)
	status, err := projections.Named("notification_status")
	if err != nil {
		t.Fatal(err)
	}
	dry, err := rb.Rebuild(ctx, status, projections.RebuildOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.Compared || dry.Swapped || dry.Diff.Missing != 1 || dry.Diff.Extra != 1 || dry.Diff.Different != 3 {
		t.Errorf("dry run of status: swapped %v, diff %+v; want not swapped, 1 missing, 1 extra, 3 different", dry.Swapped, dry.Diff)
	}
	if diff := cmp.Diff(before, tableDump(t, db, "notification_status")); diff != "" {
		t.Errorf("the dry run changed the live table (-before +after):\n%s", diff)
	}
	assertNoTable(t, db, "notification_status_rebuild")

	for _, p := range projections.All() {
		report, err := rb.Rebuild(ctx, p, projections.RebuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !report.Swapped || !report.Compared || report.Diff.Equal() {
			t.Errorf("rebuild of %s: swapped %v, diff %+v; want swapped, with the damage found", p.Name(), report.Swapped, report.Diff)
		}
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM notification_status WHERE notification_id NOT IN (SELECT stream_id FROM event_log)`); err != nil {
		t.Fatal(err)
	}
	checkMatchesLog(t, db, ids)
	// The live projector goes on, on the new tables, from where the rebuild stopped.
	more := stories(t, log, 10)
	waitCaughtUp(t, log)
	checkMatchesLog(t, db, append(ids, more...))
}

// The services do not own the read models, yet rebuild them: the table swapped in must keep the
// live one's owner and grants, or the projector, running as the runtime role, stops at its next
// batch and the next migration cannot alter the table.
func TestRebuildKeepsOwnerAndGrants(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	runtime, err := pgxpool.New(ctx, db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runtime.Close)
	if _, err := db.Pool.Exec(ctx, `GRANT SELECT ON notification_history TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	access := func() []string {
		t.Helper()
		rows, err := db.Pool.Query(ctx, `SELECT c.relname || ' owner=' || pg_get_userbyid(c.relowner) || ' ' ||
				coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
					|| ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END, ',' ORDER BY 1)
				FROM aclexplode(c.relacl) a), '') || ' indexes=' ||
				(SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = c.relname)
			FROM pg_class c WHERE c.relname IN ('notification_status', 'notification_history') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := access()
	if !strings.Contains(strings.Join(before, " "), db.Runtime+":UPDATE") {
		t.Fatalf("the runtime role has no grants on the read models to keep: %v", before)
	}

	log := events.NewLog(db.Pool)
	ids := stories(t, log, 20)
	projectWith(t, runtime)
	waitCaughtUp(t, log)
	// A dry run, then the real thing, both as the runtime role.
	rb := projections.NewRebuilder(runtime, events.NewLog(runtime), 7, discard)
	for _, dry := range []bool{true, false} {
		for _, p := range projections.All() {
			if r, err := rb.Rebuild(ctx, p, projections.RebuildOptions{DryRun: dry}); err != nil || r.Swapped == dry {
				t.Fatalf("rebuild of %s as the runtime role, dry run %v: swapped %v, %v", p.Name(), dry, r.Swapped, err)
			}
			assertNoTable(t, db, p.TableName()+"_rebuild")
		}
	}
	if diff := cmp.Diff(before, access()); diff != "" {
		t.Errorf("owner, grants or index names of the read models changed across a rebuild (-before +after):\n%s", diff)
	}
	// The projector, running as the runtime role, goes on writing to the swapped-in tables.
	more := stories(t, log, 5)
	waitCaughtUp(t, log)
	checkMatchesLog(t, db, append(ids, more...))
}

// A live table far behind the log is not caught up just to be compared: that would hold the
// live projector paused for as long.
func TestRebuildSkipsComparingAFarBehindTable(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	const notifications = projections.MaxCompareLag/3 + 1000
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
SELECT gen_random_uuid(), s.id, v.version, v.type, v.data::jsonb
FROM (SELECT gen_random_uuid() AS id, g FROM generate_series(1, $1::int) g) s
CROSS JOIN LATERAL (VALUES
	(1, 'NotificationQueued', '{"channel":"sms","recipient":"+14155550123","content":"c","body":"b"}'),
	(2, 'NotificationProcessing', '{"attempt":1}'),
	(3, 'NotificationSent', '{"attempt":1,"provider":"p"}')) AS v(version, type, data)
ORDER BY s.g, v.version`, notifications); err != nil {
		t.Fatal(err)
	}
	log := events.NewLog(db.Pool)
	heraldtest.WaitLogVisible(t, db, 3*notifications)
	report, err := projections.NewRebuilder(db.Pool, log, 5000, discard).Rebuild(ctx, projections.Status{}, projections.RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if report.Compared || !report.Swapped || report.LiveLag != 3*notifications || report.Rows != notifications {
		t.Errorf("report %+v: want swapped, not compared, live lag %d, %d rows", report, 3*notifications, notifications)
	}
	var sent int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status WHERE status = 'sent'`).Scan(&sent); err != nil {
		t.Fatal(err)
	}
	if sent != notifications {
		t.Errorf("%d notifications sent after the rebuild, want %d", sent, notifications)
	}
}

// failing applies its projection and then fails after a number of batches.
type failing struct {
	projections.Rebuildable
	after *atomic.Int64
}

func (f failing) Into(table string) projections.Rebuildable {
	return failing{Rebuildable: f.Rebuildable.Into(table), after: f.after}
}

func (f failing) ApplyBatch(ctx context.Context, tx pgx.Tx, recs []events.Recorded) error {
	if f.after.Add(-1) < 0 {
		return errors.New("injected failure")
	}
	return f.Rebuildable.ApplyBatch(ctx, tx, recs)
}

// A rebuild that fails leaves the live table as it was, says why, and cleans up after itself.
func TestFailedRebuildLeavesLiveTable(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	stories(t, log, 30)
	project(t, db)
	waitCaughtUp(t, log)
	before := tableDump(t, db, "notification_status")

	var after atomic.Int64
	after.Store(3)
	rb := projections.NewRebuilder(db.Pool, log, 10, discard)
	_, err := rb.Rebuild(ctx, failing{Rebuildable: projections.Status{}, after: &after}, projections.RebuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("error %v, want the injected failure", err)
	}
	if diff := cmp.Diff(before, tableDump(t, db, "notification_status")); diff != "" {
		t.Errorf("the failed rebuild changed the live table (-before +after):\n%s", diff)
	}
	assertNoTable(t, db, "notification_status_rebuild")
}

func (b blocking) Into(table string) projections.Rebuildable {
	return blocking{b.Rebuildable.Into(table), b.started, b.release}
}

func (b blocking) ApplyBatch(ctx context.Context, tx pgx.Tx, recs []events.Recorded) error {
	select {
	case <-b.started:
	default:
		close(b.started)
		<-b.release
	}
	return b.Rebuildable.ApplyBatch(ctx, tx, recs)
}

func tableDump(t *testing.T, db *heraldtest.Database, table string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT t::text FROM `+table+` t ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertNoTable(t *testing.T, db *heraldtest.Database, table string) {
	t.Helper()
	var exists bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("table %s was left behind", table)
	}
}
