package migrations_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/migrations"
)

// Migration 17 gives the status rows already projected the priority their NotificationQueued
// records, and normal to the rows whose event records none.
func TestStatusPriorityBackfilledFromTheLog(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithTableName(migrations.Table))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 15); err != nil {
		t.Fatalf("down to 15: %v", err)
	}

	high, older := uuid.NewString(), uuid.NewString()
	for _, row := range []struct {
		stream, data string
	}{
		{high, `{"channel":"email","priority":"high"}`},
		{older, `{"channel":"email"}`},
	} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
			VALUES ($1, $2, 1, 'NotificationQueued', $3)`, uuid.New(), row.stream, row.data); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO notification_status
			(notification_id, channel, recipient, status, version, position, created_at, updated_at)
			VALUES ($1, 'email', 'a@example.com', 'pending', 1, 1, now(), now())`, row.stream); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	for stream, want := range map[string]string{high: "high", older: "normal"} {
		var got string
		if err := db.Pool.QueryRow(ctx, `SELECT priority FROM notification_status WHERE notification_id = $1`, stream).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("status row %s: priority %q, want %q", stream, got, want)
		}
	}
}
