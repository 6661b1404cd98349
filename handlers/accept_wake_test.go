package handlers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// wakeRecorder is the router's outbox that records, at each wake-up, how many commands another
// connection sees in the outbox: a relay woken before the commit would find nothing.
type wakeRecorder struct {
	*router.Outbox
	db      *heraldtest.Database
	t       *testing.T
	visible []int
}

func (w *wakeRecorder) Wake() {
	var n int
	if err := w.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		w.t.Errorf("count the outbox at a wake-up: %v", err)
	}
	w.visible = append(w.visible, n)
}

// An accept that writes a command wakes the relay once it is committed, on the one-round-trip
// path and on the transaction path; one that writes no command — scheduled, replayed, refused —
// does not.
func TestAcceptWakesTheRelayAfterCommit(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	w := &wakeRecorder{Outbox: router.NewOutbox(nil), db: db, t: t}
	a := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), w, handlers.DefaultLimits)
	req := func(key string, at *time.Time) handlers.SendRequest {
		return handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi", IdempotencyKey: key, SendAt: at}
	}
	later := time.Now().Add(time.Hour)
	for _, step := range []struct {
		name    string
		req     handlers.SendRequest
		refused bool
		want    []int // commands visible at each wake-up so far
	}{
		{"one round trip", req("", nil), false, []int{1}},
		{"transaction, with a key", req("key-1", nil), false, []int{1, 2}},
		{"replayed by its key", req("key-1", nil), false, []int{1, 2}},
		{"scheduled, one round trip", req("", &later), false, []int{1, 2}},
		{"scheduled, transaction", req("key-2", &later), false, []int{1, 2}},
		{"refused", handlers.SendRequest{Type: "sms", Recipient: "nobody", Content: "hi"}, true, []int{1, 2}},
	} {
		_, err := a.Accept(ctx, step.req)
		if (err != nil) != step.refused {
			t.Fatalf("%s: accept: %v", step.name, err)
		}
		if !slices.Equal(w.visible, step.want) {
			t.Fatalf("%s: commands visible at each wake-up %v; want %v", step.name, w.visible, step.want)
		}
	}
}
