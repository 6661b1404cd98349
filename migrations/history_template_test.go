package migrations_test

import (
	"testing"

	"github.com/google/uuid"
)

// Migration 15 gives the history rows already projected the template their NotificationQueued
// names, and leaves every other row without one.
func TestHistoryTemplateBackfilledFromTheLog(t *testing.T) {
	db, p := migratedTo(t, 14)
	ctx := t.Context()

	byName, inline := uuid.NewString(), uuid.NewString()
	for _, row := range []struct {
		stream  string
		version int
		typ     string
		data    string
	}{
		{byName, 1, "NotificationQueued", `{"template":{"name":"welcome","version":3}}`},
		{byName, 2, "NotificationProcessing", `{"attempt":1}`},
		{inline, 1, "NotificationQueued", `{"body":"hi"}`},
	} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
			VALUES ($1, $2, $3, $4, $5)`, uuid.New(), row.stream, row.version, row.typ, row.data); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO notification_history
			(notification_id, version, position, event_type, status, occurred_at)
			VALUES ($1, $2, $2, $3, 'pending', now())`, row.stream, row.version, row.typ); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	for _, tt := range []struct {
		stream  string
		version int
		want    string
	}{{byName, 1, "welcome@3"}, {byName, 2, ""}, {inline, 1, ""}} {
		var got string
		if err := db.Pool.QueryRow(ctx, `SELECT template FROM notification_history WHERE notification_id = $1 AND version = $2`,
			tt.stream, tt.version).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("history row %s v%d: template %q, want %q", tt.stream, tt.version, got, tt.want)
		}
	}
}
