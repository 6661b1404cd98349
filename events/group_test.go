package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// groupResult is what one caller of Group.Append got.
type groupResult struct {
	name string
	recs []events.Recorded
	err  error
}

// holdGroup makes g's next batch wait in PostgreSQL (waiters is how many will then wait on the
// test's locks): a transaction of the test's appends version 2
// of a stream and stays open, and the returned function commits it; the append g sends meanwhile
// for that version waits on it, then finds the version taken. The appends started while it waits
// go together in the batch after it.
func holdGroup(t *testing.T, db *heraldtest.Database, log *events.Log, g *events.Group, waiters int) (release func() error, held <-chan groupResult) {
	t.Helper()
	ctx := context.Background()
	stream := uuid.NewString()
	if _, err := log.Append(ctx, stream, 0, events.Metadata{}, queued()); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := log.In(tx).Append(ctx, stream, 1, events.Metadata{}, &events.NotificationProcessing{Attempt: 1, Worker: "other"}); err != nil {
		t.Fatal(err)
	}
	out := make(chan groupResult, 1)
	go func() {
		recs, err := g.Append(ctx, stream, 1, events.Metadata{}, &events.NotificationProcessing{Attempt: 1, Worker: "w"})
		out <- groupResult{"held", recs, err}
	}()
	waitFor(t, "the first batch to wait on the open transaction", func() bool {
		var n int
		err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n >= waiters
	})
	return func() error { return tx.Commit(ctx) }, out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGroupSharesCommitsAndFailsOnlyItsConflicts: appends that arrive while a batch is on its way
// go together in the next one, one transaction for all; an append whose stream is at another
// version (the expected version wrong, or taken by the append before it in the same batch) fails
// with ErrConflict, and the others in its batch are recorded.
func TestGroupSharesCommitsAndFailsOnlyItsConflicts(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	g := events.NewGroup(db.Pool, log)
	ctx := context.Background()
	streams := make([]string, 6)
	for i := range streams {
		streams[i] = uuid.NewString()
		if _, err := log.Append(ctx, streams[i], 0, events.Metadata{}, queued()); err != nil {
			t.Fatal(err)
		}
	}
	release1, held1 := holdGroup(t, db, log, g, 1)
	release2, held2 := holdGroup(t, db, log, g, 2)

	results := make(chan groupResult, 8)
	appendTo := func(name, stream string, expected int64) {
		go func() {
			recs, err := g.Append(ctx, stream, expected, events.Metadata{Actor: name},
				&events.NotificationSent{Attempt: 1, Provider: "smtp", ProviderMessageID: name})
			results <- groupResult{name, recs, err}
		}()
	}
	for i, s := range streams {
		appendTo("ok", s, 1)
		if i == 0 {
			appendTo("twice", s, 1) // the same version as the append before it: one of them wins
		}
	}
	appendTo("wrong version", streams[1], 4)
	waitFor(t, "8 appends to wait", func() bool { return g.Waiting() == 8 })
	for _, release := range []func() error{release1, release2} {
		if err := release(); err != nil {
			t.Fatal(err)
		}
	}
	for _, held := range []<-chan groupResult{held1, held2} {
		if r := <-held; !errors.Is(r.err, events.ErrConflict) {
			t.Errorf("a held append: err = %v, want ErrConflict (its version was taken meanwhile)", r.err)
		}
	}
	var (
		recorded  []events.Recorded
		conflicts = map[string]int{}
	)
	for range 8 {
		r := <-results
		switch {
		case errors.Is(r.err, events.ErrConflict):
			conflicts[r.name]++
		case r.err != nil:
			t.Errorf("%s: %v", r.name, r.err)
		default:
			recorded = append(recorded, r.recs...)
		}
	}
	if len(recorded) != 6 || conflicts["wrong version"] != 1 || conflicts["ok"]+conflicts["twice"] != 1 {
		t.Fatalf("recorded %d appends, conflicts %v: want 6 recorded, the wrong version and one of the two to stream 0 refused",
			len(recorded), conflicts)
	}
	ids := make([]string, len(recorded))
	for i, r := range recorded {
		if r.Version != 2 || r.Position == 0 || r.Time.IsZero() {
			t.Errorf("recorded %+v: want version 2 with its position and time", r)
		}
		ids[i] = r.ID
	}
	var txs, rows int
	if err := db.Pool.QueryRow(ctx, `SELECT count(DISTINCT transaction_id), count(*) FROM event_log WHERE event_id = ANY($1::uuid[])`,
		ids).Scan(&txs, &rows); err != nil {
		t.Fatal(err)
	}
	if txs != 1 || rows != 6 {
		t.Errorf("the 6 appends are %d rows in %d transactions, want 6 in 1", rows, txs)
	}
}

// TestGroupFailureFailsOnlyItsCause: an append that fails its batch for another reason than a
// conflict (here a stream id that is no UUID) fails alone; the others of its batch are made
// again one by one and recorded.
func TestGroupFailureFailsOnlyItsCause(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	g := events.NewGroup(db.Pool, log)
	ctx := context.Background()
	good := []string{uuid.NewString(), uuid.NewString()}
	for _, s := range good {
		if _, err := log.Append(ctx, s, 0, events.Metadata{}, queued()); err != nil {
			t.Fatal(err)
		}
	}
	release1, held1 := holdGroup(t, db, log, g, 1)
	release2, held2 := holdGroup(t, db, log, g, 2)
	results := make(chan groupResult, 3)
	for _, s := range append(good, "not-a-uuid") {
		go func() {
			recs, err := g.Append(ctx, s, 1, events.Metadata{}, &events.NotificationSent{Attempt: 1, Provider: "smtp"})
			results <- groupResult{s, recs, err}
		}()
	}
	waitFor(t, "3 appends to wait", func() bool { return g.Waiting() == 3 })
	for _, release := range []func() error{release1, release2} {
		if err := release(); err != nil {
			t.Fatal(err)
		}
	}
	<-held1
	<-held2
	for range 3 {
		r := <-results
		if r.name == "not-a-uuid" {
			if r.err == nil || errors.Is(r.err, events.ErrConflict) {
				t.Errorf("append to a stream that is no UUID: err = %v, want an error that is no conflict", r.err)
			}
			continue
		}
		if r.err != nil || len(r.recs) != 1 || r.recs[0].Position == 0 {
			t.Errorf("append to %s: %v, %v: want it recorded", r.name, r.recs, r.err)
		}
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log WHERE stream_id = ANY($1::uuid[]) AND stream_version = 2`, good).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d of the 2 good appends in the log", n)
	}
}
