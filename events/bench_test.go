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

// story is one notification's events as a worker and an operator record them: every kind of
// event Evolve treats differently, with the records they were read as.
func story() ([]events.Recorded, []events.Event) {
	evs := []events.Event{
		queued(),
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"},
		&events.NotificationProcessing{Attempt: 2, Worker: "w"},
		&events.NotificationFailed{Attempt: 2, Provider: "smtp", Error: "550 no such user", Reason: events.ReasonPermanentError},
		&events.NotificationDiscarded{Actor: "ops", Reason: "gone"},
		&events.NotificationRequeued{Actor: "ops", Attempts: 2},
		&events.NotificationRecovered{Actor: "system:reconciler", Reason: "stalled", Status: herald.StatusPending},
		&events.NotificationProcessing{Attempt: 3, Worker: "w"},
		&events.NotificationSent{Attempt: 3, Provider: "smtp", ProviderMessageID: "<m@example.com>"},
	}
	recs := make([]events.Recorded, len(evs))
	for i, e := range evs {
		recs[i] = events.Recorded{StreamID: "s", Version: int64(i + 1), Position: int64(i + 1), Type: e.EventType()}
	}
	return recs, evs
}

// BenchmarkEvolve measures folding decoded events into a notification, as the status projection
// and the worker do for each event; reported per event.
func BenchmarkEvolve(b *testing.B) {
	recs, evs := story()
	var n herald.Notification
	for b.Loop() {
		n = herald.Notification{}
		for i, e := range evs {
			n = events.Evolve(n, recs[i], e)
		}
	}
	if n.Status != herald.StatusSent {
		b.Fatal(n.Status)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

// BenchmarkHistoryEntry measures describing decoded events for the history read model, per event.
func BenchmarkHistoryEntry(b *testing.B) {
	recs, evs := story()
	var h herald.HistoryEntry
	for b.Loop() {
		for i, e := range evs {
			h = events.HistoryEntry(recs[i], e)
		}
	}
	if h.Status != herald.StatusSent {
		b.Fatal(h.Status)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
