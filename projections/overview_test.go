package projections_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// TestListFiltersAndOverview checks the listing's recipient and time filters, and the counts and
// per-minute figures of the console's overview, on read models the projector built.
func TestListFiltersAndOverview(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	reader := projections.NewReader(db.Pool, log)
	ctx := t.Context()
	project(t, db)

	sent := uuid.NewString()
	appendRetryStory(t, log, sent) // to ada@example.com, sent on the third attempt
	failed := uuid.NewString()
	if err := appendStory(ctx, log, failed, []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+15550001", Content: "Hi", Body: "Hi"},
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
		&events.NotificationFailed{Attempt: 1, Provider: "sms", Error: "400", Reason: events.ReasonPermanentError},
	}); err != nil {
		t.Fatal(err)
	}
	pending := uuid.NewString()
	if err := appendStory(ctx, log, pending, []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "bob@example.com", Content: "Hi", Body: "Hi"},
	}); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, log)

	ids := func(f herald.ListFilter) []string {
		t.Helper()
		f.Limit = 10
		list, _, err := reader.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range list {
			out = append(out, n.ID)
		}
		slices.Sort(out)
		return out
	}
	all := []string{sent, failed, pending}
	slices.Sort(all)
	now := time.Now()
	for _, tc := range []struct {
		name string
		f    herald.ListFilter
		want []string
	}{
		{"everything", herald.ListFilter{}, all},
		{"by recipient", herald.ListFilter{Recipient: "ada@example.com"}, []string{sent}},
		{"by recipient and status", herald.ListFilter{Recipient: "ada@example.com", Status: herald.StatusFailed}, nil},
		{"accepted in the last hour", herald.ListFilter{CreatedFrom: now.Add(-time.Hour), CreatedBefore: now.Add(time.Minute)}, all},
		{"accepted before an hour ago", herald.ListFilter{CreatedBefore: now.Add(-time.Hour)}, nil},
		{"accepted from a minute on", herald.ListFilter{CreatedFrom: now.Add(time.Minute)}, nil},
	} {
		if diff := cmp.Diff(tc.want, ids(tc.f)); diff != "" {
			t.Errorf("%s: listed ids (-want +got):\n%s", tc.name, diff)
		}
	}

	counts, err := reader.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := []projections.Count{
		{Channel: herald.ChannelEmail, Status: herald.StatusPending, N: 1},
		{Channel: herald.ChannelEmail, Status: herald.StatusSent, N: 1},
		{Channel: herald.ChannelSMS, Status: herald.StatusFailed, N: 1},
	}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}

	minutes, err := reader.Throughput(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(minutes) != 5 {
		t.Fatalf("Throughput(5) gave %d minutes, want 5", len(minutes))
	}
	var sentN, failedN int64
	for i, m := range minutes {
		if i > 0 && m.At.Sub(minutes[i-1].At) != time.Minute {
			t.Errorf("minute %d is %s, %s after the one before; want one minute", i, m.At, m.At.Sub(minutes[i-1].At))
		}
		sentN += m.Sent
		failedN += m.Failed
	}
	// The events were just appended: in the last minute or, across a minute's turn, the one before.
	if sentN != 1 || failedN != 1 {
		t.Errorf("the last 5 minutes show %d sent and %d failed, want 1 and 1: %+v", sentN, failedN, minutes)
	}
}
