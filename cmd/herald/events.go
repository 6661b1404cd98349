package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// eventsCommand groups the auditors' commands, which read the event log itself rather than the
// read models folded from it.
func eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read the event log: list its events, replay notifications as of an instant, verify it",
		Long: `The event log is the truth Herald's status and history are folded from. "herald events list"
streams its events in log order, filtered; "herald events replay" folds it into what each
notification's status was at an instant; "herald events verify" checks its hash chains and
signed checkpoints, and "herald events prove" writes the proof that one event is in a signed
checkpoint. All only read, in a read-only transaction, and hold one event or
notification in memory at a time however large the log is.`,
	}
	cmd.AddCommand(eventsListCommand(), eventsReplayCommand(), eventsVerifyCommand(), eventsProveCommand(), eventsExportCommand())
	return cmd
}

// eventsInstant reads a time flag: an RFC 3339 time, or a duration meaning that long before now.
func eventsInstant(flag, value string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, value); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(value); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-11-28T10:00:00Z, or a duration ago such as 90m or 24h", flag, value)
}
