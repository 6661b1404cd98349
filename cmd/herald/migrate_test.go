package main

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/heraldtest"
)

// `herald migrate` connects as the owner and grants the user of --database-url what the services
// need, and no more, whatever that role held before.
func TestMigrateGrantsTheRuntimeRole(t *testing.T) {
	commandSettings(t)
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	role := pgx.Identifier{db.Runtime}.Sanitize()
	// A role that lost its grants, and was once given one it must not have.
	if _, err := db.Pool.Exec(ctx, `REVOKE ALL ON ALL TABLES IN SCHEMA public FROM `+role+`;
		GRANT UPDATE, TRUNCATE ON event_log TO `+role); err != nil {
		t.Fatal(err)
	}

	mustRunHerald(t, "migrate", "--database-url", db.RuntimeURL, "--migrate-database-url", db.URL)

	privileges := []struct {
		table, privilege string
		want             bool
	}{
		{"event_log", "SELECT", true},
		{"event_log", "INSERT", true},
		{"event_log", "UPDATE", false},
		{"event_log", "DELETE", false},
		{"event_log", "TRUNCATE", false},
		{"event_log", "TRIGGER", false},
		{"outbox", "DELETE", true},
		{"event_log_offsets", "UPDATE", true},
		{"notification_status", "INSERT", true},
		{"notification_history", "DELETE", true},
		{"api_keys", "UPDATE", true},
		{"idempotency_keys", "DELETE", true},
		{"herald_schema_migrations", "SELECT", true},
		{"herald_schema_migrations", "INSERT", false},
	}
	for _, p := range privileges {
		var got bool
		if err := db.Pool.QueryRow(ctx, `SELECT has_table_privilege($1, $2, $3)`, db.Runtime, p.table, p.privilege).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != p.want {
			t.Errorf("%s on %s after herald migrate: %v, want %v", p.privilege, p.table, got, p.want)
		}
	}

	// The services start as that role: the schema check reads the version table.
	if _, err := runHerald(t, "migrate", "status", "--database-url", db.RuntimeURL, "--migrate-database-url", db.URL); err != nil {
		t.Errorf("migrate status: %v", err)
	}
	if _, err := runHerald(t, "projections", "status", "--database-url", db.RuntimeURL); err != nil {
		t.Errorf("projections status as the runtime role: %v", err)
	}
	// One role for everything is still allowed (there is nothing to grant).
	if _, err := runHerald(t, "migrate", "--database-url", db.URL); err != nil {
		t.Errorf("migrate with one role: %v", err)
	}
}
