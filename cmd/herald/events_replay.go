package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/wire"
)

// eventsReplayLong is the help of events replay.
const eventsReplayLong = `replay answers what Herald would have said at an instant, from the event log alone (never
from the read models): each notification's status, attempts, last error and provider as they
were after the last of its events that occurred at or before --as-of.

--as-of is an RFC 3339 time (2026-11-28T10:00:00Z), or a duration ago ("90m": 90 minutes before
now). An instant in the future gives the current state.

With --stream ID, one notification: its state at the instant and its history up to it. It is an
error if the notification did not exist yet then.
  table   the state, then the history as a table
  json    {"as_of", "notification": {...}, "history": [...]}, indented
  jsonl   the same object on one line

Without --stream, every notification that existed at the instant, streamed in id order (for
Herald's time-ordered ids, roughly the order they were accepted), one in memory at a time:
  table   one row per notification, then a summary line of counts per status
  json    {"as_of", "notifications": [...], "summary": {"total", "by_status": {...}}}; the
          notifications are written as they are folded, the summary closes the object
  jsonl   one notification per line; the last line is {"summary": {"as_of", "total",
          "by_status": {...}}}, written only when the replay completed — a stream without
          it was cut short

Notification objects are the API's answer to GET /api/v1/notifications/{id}/status?as_of=T:
id, type, recipient, status, attempts, last_error, provider, provider_message_id, version,
position (the place in the log of the last event folded in), created_at, updated_at, as_of and
links. History entries are the API's history entries.`

// eventsReplayFlags are the flags of events replay: the instant, which notifications, and how
// to print them.
type eventsReplayFlags struct {
	cli    cliDB
	asOf   string
	stream string
	format *format
}

// eventsReplayCommand lets an auditor see what Herald would have said at an instant, from the
// log alone.
func eventsReplayCommand() *cobra.Command {
	var f eventsReplayFlags
	cmd := &cobra.Command{
		Use:   "replay --as-of T [--stream ID]",
		Short: "Fold the log into what notifications' status was at an instant",
		Long:  eventsReplayLong,
		Example: `  herald events replay --as-of 2026-11-28T10:00:00Z --stream 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e
  herald events replay --as-of 24h -o jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.asOf, "as-of", "", `the instant to replay to: RFC 3339, or a duration ago ("24h"); required`)
	fs.StringVar(&f.stream, "stream", "", "replay only this notification id, with its history")
	f.format = registerFormat(fs, formatTable, formatJSONL, formatJSON)
	markArguments(fs, "as-of", "stream")
	f.cli.register(newSettings(cmd))
	return cmd
}

// run checks the flags, then replays one notification or streams them all.
func (f eventsReplayFlags) run(cmd *cobra.Command) error {
	at, stream, err := f.parse(time.Now())
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	pool, _, err := f.cli.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := events.NewLog(pool)
	if stream != "" {
		n, recs, err := log.NotificationAsOf(ctx, stream, at)
		if err != nil {
			return cliError(err, fieldsAsFlags)
		}
		return writeReplayedNotification(cmd.OutOrStdout(), *f.format, at, n, recs)
	}
	out := newReplayWriter(cmd.OutOrStdout(), *f.format, at)
	if err := log.ScanStreamsAsOf(ctx, at, out.write); err != nil {
		return cliError(err, fieldsAsFlags)
	}
	return out.close()
}

// parse returns the instant to replay to and the notification id asked for, if any, in its
// canonical form.
func (f eventsReplayFlags) parse(now time.Time) (time.Time, string, error) {
	if f.asOf == "" {
		return time.Time{}, "", errors.New("--as-of: required: the instant to replay to, an RFC 3339 time such as 2026-11-28T10:00:00Z, or a duration ago such as 24h")
	}
	at, err := eventsInstant("as-of", f.asOf, now)
	if err != nil || f.stream == "" {
		return at, "", err
	}
	id, err := uuid.Parse(f.stream)
	if err != nil {
		return at, "", fmt.Errorf("--stream %q: not a notification id (a UUID such as 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e)", f.stream)
	}
	return at, id.String(), nil
}

// writeReplayedNotification prints one notification as it was at, with its history up to then.
func writeReplayedNotification(w io.Writer, f format, at time.Time, n herald.Notification, recs []events.Recorded) error {
	history := make([]herald.HistoryEntry, 0, len(recs))
	for _, r := range recs {
		e, err := r.Event()
		if err != nil {
			return fmt.Errorf("history of %s v%d: %w", r.StreamID, r.Version, err)
		}
		history = append(history, events.HistoryEntry(r, e))
	}
	if f == formatTable {
		return printNotification(w, n, at, history)
	}
	// The notification is the API's answer to GET /api/v1/notifications/{id}/status?as_of=, its
	// history the API's history up to the instant.
	out := struct {
		AsOf         time.Time           `json:"as_of"`
		Notification wire.Notification   `json:"notification"`
		History      []wire.HistoryEntry `json:"history"`
	}{AsOf: at.UTC(), Notification: wire.NewNotificationAsOf(n, at), History: wire.NewHistoryEntries(history)}
	if f == formatJSONL {
		return writeJSONLine(w, out)
	}
	return writeJSON(w, out)
}
