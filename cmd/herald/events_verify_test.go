package main

import (
	"testing"
	"time"

	"github.com/herald-notify/herald/ledger"
)

// The progress line and the summary give a rate only over enough time and events to mean one:
// not the first microseconds' billions, nor a tiny log's zero per hour.
func TestVerifyRateFormatting(t *testing.T) {
	for _, tc := range []struct {
		name           string
		events         int64
		elapsed        time.Duration
		progress, rate string
	}{
		{"nothing yet", 0, 0, "verifying: 0 events", ""},
		{"a tiny log", 3, 2 * time.Millisecond, "verifying: 3 events", ""},
		{"one event", 1, time.Second, "verifying: 1 event", ""},
		{"a first tick, many events, no time", 5000, 300 * time.Nanosecond, "verifying: 5000 events", ""},
		{"few events over a long time", 999, time.Hour, "verifying: 999 events", ""},
		{"enough of both", 150000, time.Second, "verifying: 150000 events, 150000 events/s", ": 150000 events/s"},
		{"at the minimums", ledger.MinRateEvents, ledger.MinRateElapsed, "verifying: 1000 events, 10000 events/s", ": 10000 events/s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := ledger.VerifyReport{Events: tc.events, Elapsed: tc.elapsed}
			if got := progressText(rep); got != tc.progress {
				t.Errorf("progressText = %q, want %q", got, tc.progress)
			}
			if got := rateSuffix(rep); got != tc.rate {
				t.Errorf("rateSuffix = %q, want %q", got, tc.rate)
			}
		})
	}
}
