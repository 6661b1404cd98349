package migrations_test

import (
	"maps"
	"testing"

	"github.com/google/uuid"
)

// Migration 8 gives the status rows already projected the recoveries in a row that the log
// shows up to each row's version, as a rebuild would.
func TestRecoveriesBackfilledFromTheLog(t *testing.T) {
	db, p := migratedTo(t, 7)
	ctx := t.Context()

	const q, rec, proc = "NotificationQueued", "NotificationRecovered", "NotificationProcessing"
	streams := []struct {
		types     []string
		projected int64 // the row's version
		want      int
	}{
		{types: []string{q}, projected: 1, want: 0},
		{types: []string{q, rec, rec}, projected: 3, want: 2},
		{types: []string{q, rec, proc}, projected: 3, want: 0},
		{types: []string{q, proc, rec}, projected: 3, want: 1},
		{types: []string{q, rec, rec, rec}, projected: 2, want: 1}, // the read model lags
	}
	want := map[string]int{}
	for _, s := range streams {
		id := uuid.NewString()
		want[id] = s.want
		for v, typ := range s.types {
			if _, err := db.Pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
				VALUES ($1, $2, $3, $4, '{}')`, uuid.New(), id, v+1, typ); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO notification_status
			(notification_id, channel, recipient, status, version, position, created_at, updated_at)
			VALUES ($1, 'email', 'a@example.com', 'pending', $2, $2, now(), now())`, id, s.projected); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	got := map[string]int{}
	rows, err := db.Pool.Query(ctx, `SELECT notification_id::text, recoveries FROM notification_status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(want, got) {
		t.Errorf("recoveries after migration 8 = %v, want %v", got, want)
	}
}
