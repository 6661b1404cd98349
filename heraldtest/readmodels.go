package heraldtest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
)

// CheckReadModels fails the test unless the status and history the projections hold for each of
// ids equal a fold of its stream in db's log: the promise every projection test comes back to.
// The status leaves out the message itself (subject, body, HTML and attachments), which the projection does not keep.
func CheckReadModels(t testing.TB, db *Database, ids []string) {
	t.Helper()
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	reader := projections.NewReader(db.Pool, log)
	for _, id := range ids {
		want, recs, err := log.Notification(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := reader.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(herald.Notification{}, "Subject", "Body", "HTML", "Attachments"), cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
			t.Errorf("status of %s (-fold of the log +projection):\n%s", id, diff)
		}
		var wantHistory []herald.HistoryEntry
		for _, r := range recs {
			e, _ := r.Event()
			wantHistory = append(wantHistory, events.HistoryEntry(r, e))
		}
		history, err := reader.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantHistory, history, cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
			t.Errorf("history of %s (-log +projection):\n%s", id, diff)
		}
	}
}
