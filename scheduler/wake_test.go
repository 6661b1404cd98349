package scheduler_test

import (
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/scheduler"
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
	w.visible = append(w.visible, count(w.t, w.db, `SELECT count(*) FROM outbox`))
}

// A round that releases notifications wakes the relay once, after its commit; a round that
// releases nothing does not.
func TestReleaseWakesTheRelayAfterCommit(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	acc := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), handlers.DefaultLimits)
	// Due far enough ahead that three accepts and the first round fit before it on a loaded
	// machine; the Eventually below waits for it.
	schedule(t, acc, 3, time.Now().Add(3*time.Second), 0)
	w := &wakeRecorder{Outbox: router.NewOutbox(nil), db: db, t: t}
	s := scheduler.New(db.Pool, w, quiet)

	if rep, err := s.Release(t.Context()); err != nil || len(rep.Released) != 0 {
		t.Fatalf("release before the send_at: %d released, %v; want none", len(rep.Released), err)
	}
	if len(w.visible) != 0 {
		t.Fatalf("a round that released nothing woke the relay %d times", len(w.visible))
	}
	heraldtest.Eventually(t, 10*time.Second, "the notifications to be released", func() (bool, error) {
		rep, err := s.Release(t.Context())
		return err == nil && len(rep.Released) > 0, err
	})
	if want := []int{3}; !slices.Equal(w.visible, want) {
		t.Errorf("commands visible at each wake-up %v; want %v", w.visible, want)
	}
}
