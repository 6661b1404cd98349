package events_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// BenchmarkAppend measures one append of one event, with its version check, as a worker makes
// it: its own transaction, a commit each.
func BenchmarkAppend(b *testing.B) {
	db := heraldtest.NewDatabase(b)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	stream := uuid.NewString()
	if _, err := log.Append(ctx, stream, 0, events.Metadata{}, queued()); err != nil {
		b.Fatal(err)
	}
	v := int64(1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := log.Append(ctx, stream, v, events.Metadata{Actor: "bench"}, &events.NotificationProcessing{Attempt: int(v), Worker: "w"}); err != nil {
			b.Fatal(err)
		}
		v++
	}
}

// BenchmarkLoad measures reading and folding a notification's stream, as a worker does first.
func BenchmarkLoad(b *testing.B) {
	db := heraldtest.NewDatabase(b)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	stream := uuid.NewString()
	if _, err := log.Append(ctx, stream, 0, events.Metadata{}, queued(),
		&events.NotificationProcessing{Attempt: 1}, &events.DeliveryAttemptFailed{Attempt: 1, Error: "503"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		n, _, err := log.Notification(ctx, stream)
		if err != nil || n.Status != herald.StatusProcessing {
			b.Fatal(n, err)
		}
	}
}
