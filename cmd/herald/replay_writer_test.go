package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
)

// The table's summary names every status that has notifications, in life order, and no other:
// a replay of scheduled, delivered and cancelled notifications says so.
func TestReplayTableSummaryCountsEveryStatus(t *testing.T) {
	at := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		statuses []herald.Status
		want     string
	}{
		{"none", nil, "0 notifications as of 2026-12-05T13:00:00.000000Z"},
		{"every status once", herald.Statuses, "10 notifications as of 2026-12-05T13:00:00.000000Z: 1 scheduled, 1 pending, " +
			"1 processing, 1 sent, 1 delivered, 1 undelivered, 1 bounced, 1 complained, 1 failed, 1 cancelled"},
		{"some, out of order", []herald.Status{herald.StatusCancelled, herald.StatusScheduled, herald.StatusDelivered,
			herald.StatusCancelled, herald.StatusPending},
			"5 notifications as of 2026-12-05T13:00:00.000000Z: 1 scheduled, 1 pending, 1 delivered, 2 cancelled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := newReplayWriter(&buf, formatTable, at)
			for i, st := range tt.statuses {
				n := herald.Notification{ID: string(rune('a' + i)), Channel: herald.ChannelSMS, Recipient: "+14155550123", Status: st}
				if err := w.write(n); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.close(); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if got := lines[len(lines)-1]; got != tt.want {
				t.Errorf("summary %q, want %q", got, tt.want)
			}
		})
	}
}

// The replay's summary has a counter for every status, so a new status is counted, not dropped.
func TestReplayCountsKnowEveryStatus(t *testing.T) {
	var c replayCounts
	for _, s := range herald.Statuses {
		if c.count(s) == nil {
			t.Errorf("the replay summary has no counter for status %s", s)
		}
	}
}
