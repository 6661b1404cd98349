package templatestore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/templatestore"
)

// TestNotificationReadersLeaveTemplatesOut: with template events in the log among a
// notification's, the read models, the status and history readers and the as-of answers know
// the notification alone.
func TestNotificationReadersLeaveTemplatesOut(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	store := templatestore.New(db.Pool)

	id := uuid.Must(uuid.NewV7()).String()
	for v, e := range []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi", Body: "Hi"},
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
		&events.NotificationSent{Attempt: 1, Provider: "smtp"},
	} {
		if _, err := log.Append(ctx, id, int64(v), events.Metadata{Actor: "test"}, e); err != nil {
			t.Fatal(err)
		}
		if v == 1 {
			if _, err := store.Create(ctx, "welcome", welcome(), "ops"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := store.Archive(ctx, "welcome", "replaced", "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Restore(ctx, "welcome", "back", "ops"); err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, db, 6)
	recs, _, err := log.ReadAfter(ctx, nil, events.Cursor{}, 100)
	if err != nil || len(recs) != 6 {
		t.Fatalf("read %d events (%v), want 6", len(recs), err)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, p := range projections.All() {
		if err := p.ApplyBatch(ctx, tx, recs); err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("notification_status has %d rows (%v), want 1", rows, err)
	}
	heraldtest.CheckReadModels(t, db, []string{id})

	stream := templatestore.Stream("welcome")
	reader := projections.NewReader(db.Pool, log)
	if _, err := reader.Status(ctx, stream); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("status of a template's stream: %v, want not found", err)
	}
	if _, _, err := log.NotificationAsOf(ctx, stream, time.Now()); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("as-of answer for a template's stream: %v, want not found", err)
	}
	var asOf []string
	if err := log.ScanStreamsAsOf(ctx, time.Now(), func(n herald.Notification) error { asOf = append(asOf, n.ID); return nil }); err != nil ||
		len(asOf) != 1 || asOf[0] != id {
		t.Errorf("the as-of listing has %v (%v), want only %s", asOf, err, id)
	}
}
