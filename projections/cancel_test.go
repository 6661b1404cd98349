package projections_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// TestCancelledInTheReadModels: a cancelled notification is listed under status=cancelled and
// nowhere else, its history names who cancelled and why, the reconciler's look for unfinished
// notifications leaves it out, and as of an instant before the cancel it was pending.
func TestCancelledInTheReadModels(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	project(t, db)
	queued := &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"}
	cancelled, pending := uuid.NewString(), uuid.NewString()
	for _, id := range []string{cancelled, pending} {
		if _, err := log.Append(t.Context(), id, 0, events.Metadata{Actor: "apikey:shop"}, queued); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := log.Append(t.Context(), cancelled, 1, events.Metadata{Actor: "apikey:shop"},
		&events.NotificationCancelled{Actor: "apikey:shop", Reason: "withdrawn"})
	if err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, log)
	heraldtest.CheckReadModels(t, db, []string{cancelled, pending})

	r := projections.NewReader(db.Pool, log)
	list, _, err := r.List(t.Context(), herald.ListFilter{Status: herald.StatusCancelled, Limit: 10})
	if err != nil || len(list) != 1 || list[0].ID != cancelled || list[0].Status != herald.StatusCancelled {
		t.Errorf("status=cancelled lists %+v, %v; want only %s", list, err, cancelled)
	}
	list, _, err = r.List(t.Context(), herald.ListFilter{Status: herald.StatusPending, Limit: 10})
	if err != nil || len(list) != 1 || list[0].ID != pending {
		t.Errorf("status=pending lists %+v, %v; want only %s", list, err, pending)
	}
	history, err := r.History(t.Context(), cancelled)
	if err != nil || len(history) != 2 || history[1].Status != herald.StatusCancelled || history[1].Actor != "apikey:shop" || history[1].Reason != "withdrawn" {
		t.Errorf("history %+v, %v", history, err)
	}
	before, err := r.StatusAsOf(t.Context(), cancelled, recs[0].Time.Add(-time.Microsecond))
	if err != nil || before.Status != herald.StatusPending {
		t.Errorf("as of just before the cancel: %+v, %v; want pending", before, err)
	}
	ids, _, err := r.Unfinished(t.Context(), []time.Duration{0}, 10)
	if err != nil || len(ids) != 1 || ids[0] != pending {
		t.Errorf("unfinished: %v, %v; want only %s", ids, err, pending)
	}
}
