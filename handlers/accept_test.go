package handlers_test

import (
	"context"
	"testing"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// The event and the command are written together or not at all, on the one-round-trip path too.
func TestAcceptWritesEventAndCommandTogether(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	a := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), handlers.DefaultLimits)
	req := handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi {{.n}}", Variables: map[string]any{"n": "x"}}

	count := func(table string) int {
		t.Helper()
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	got, err := a.Accept(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != herald.StatusPending || got.Version != 1 || got.Position == 0 || got.CreatedAt.IsZero() || got.Body != "hi x" {
		t.Errorf("accepted %+v: want pending at version 1 with a position, a time and the body", got.Notification)
	}
	if count("event_log") != 1 || count("outbox") != 1 {
		t.Fatalf("after one accept: %d events and %d commands, want 1 and 1", count("event_log"), count("outbox"))
	}

	// With the outbox unwritable, the event must not be written either.
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE outbox RENAME TO outbox_away`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Accept(ctx, req); err == nil {
		t.Fatal("accept with no outbox table succeeded")
	}
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE outbox_away RENAME TO outbox`); err != nil {
		t.Fatal(err)
	}
	if n := count("event_log"); n != 1 {
		t.Errorf("%d events after a failed accept, want still 1: the event was written without its command", n)
	}
}
