package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

func eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read the event log: list its events, or replay notifications as of an instant",
		Long: `The event log is the truth Herald's status and history are folded from. "herald events list"
streams its events in log order, filtered; "herald events replay" folds it into what each
notification's status was at an instant. Both only read, in a read-only transaction, and hold
one event or notification in memory at a time however large the log is.`,
	}
	cmd.AddCommand(eventsListCommand(), eventsReplayCommand())
	return cmd
}

// The formats of events list and events replay.
const (
	eventsFormatTable = "table"
	eventsFormatJSONL = "jsonl"
	eventsFormatJSON  = "json"
)

func eventsCheckFormat(format string) error {
	switch format {
	case eventsFormatTable, eventsFormatJSONL, eventsFormatJSON:
		return nil
	}
	return fmt.Errorf("--output %q: want table, jsonl or json", format)
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

// eventsCLIError turns an error for the caller into one that names flags: an EINVALID error's
// fields are the snake_case names of the flags that set them.
func eventsCLIError(err error) error {
	switch herald.ErrorCode(err) {
	case herald.EINVALID:
		fields := herald.ErrorFields(err)
		if len(fields) == 0 {
			return errors.New(herald.ErrorMessage(err))
		}
		var msgs []string
		for name, msg := range fields {
			msgs = append(msgs, "--"+strings.ReplaceAll(name, "_", "-")+": "+msg)
		}
		slices.Sort(msgs)
		return errors.New(strings.Join(msgs, "; "))
	case herald.ENOTFOUND:
		return errors.New(herald.ErrorMessage(err))
	}
	return err
}

func eventsPool(ctx context.Context, db dbConfig, logs logConfig) (*pgxpool.Pool, error) {
	logger, err := logs.logger()
	if err != nil {
		return nil, err
	}
	return db.cliPool(ctx, logger)
}

// eventsFlushEvery is how many rows are written between flushes: the table's columns are aligned
// within each such block, and output reaches a reader of a pipe while the scan goes on.
const eventsFlushEvery = 500

func eventsListCommand() *cobra.Command {
	var (
		db       dbConfig
		logs     logConfig
		stream   string
		types    []string
		from, to int64
		since    string
		until    string
		limit    int
		format   string
	)
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "Stream events of the log in log order, filtered, as a table, JSON lines or JSON",
		Long: `list writes the log's events in global position order, as they are read: however large the
log, it holds one event in memory, and output starts at once. It only reads, in a read-only
transaction, which takes no transaction id and so does not hold back the projector however
long it runs.

Filters combine (all must hold); every bound is inclusive:
  --stream ID                  one notification's events
  --type T                     events of type T (repeat, or separate with commas); types are
                               ` + strings.Join(events.Types, ", ") + `
  --from-position, --to-position   a range of global positions; 0 leaves that end open
  --since, --until             a range of times the events occurred: an RFC 3339 time
                               (2026-11-28T10:00:00Z), or a duration ago ("90m": 90 minutes
                               before now; "24h" a day)
  --limit N                    stop after N events; 0, the default, is no limit

Formats (-o):
  table   aligned columns: position, time (UTC), stream, version, type, actor, and a summary
          of the event's data. Columns are aligned in blocks of 500 rows.
  jsonl   one event per line: {"id", "stream_id", "version", "position", "type", "time",
          "data", "metadata"}
  json    one array of those objects, written as it is read

An error after output began leaves it incomplete (a json array stays unclosed) and exits
non-zero; an invalid flag is reported before anything is read.`,
		Example: `  herald events list --stream 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e
  herald events list --type DeliveryAttemptFailed,NotificationFailed --since 24h -o jsonl
  herald events list --from-position 1000 --limit 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := eventsCheckFormat(format); err != nil {
				return err
			}
			now := time.Now()
			f := events.Filter{Stream: stream, FromPosition: from, ToPosition: to, Limit: limit}
			for _, t := range types {
				f.Types = append(f.Types, strings.TrimSpace(t))
			}
			var errs []error
			if since != "" {
				t, err := eventsInstant("since", since, now)
				errs = append(errs, err)
				f.Since = t
			}
			if until != "" {
				t, err := eventsInstant("until", until, now)
				errs = append(errs, err)
				f.Until = t
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			if err := f.Validate(); err != nil {
				return eventsCLIError(err)
			}

			ctx := cmd.Context()
			pool, err := eventsPool(ctx, db, logs)
			if err != nil {
				return err
			}
			defer pool.Close()
			out := newEventsListWriter(cmd.OutOrStdout(), format)
			if err := events.NewLog(pool).Scan(ctx, f, out.write); err != nil {
				return eventsCLIError(err)
			}
			return out.close()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&stream, "stream", "", "only the events of this notification id")
	fs.StringSliceVar(&types, "type", nil, "only events of these types (repeat, or separate with commas)")
	fs.Int64Var(&from, "from-position", 0, "first global position to read; 0: the start of the log")
	fs.Int64Var(&to, "to-position", 0, "last global position to read; 0: the end of the log")
	fs.StringVar(&since, "since", "", `only events that occurred at or after this time: RFC 3339, or a duration ago ("90m")`)
	fs.StringVar(&until, "until", "", `only events that occurred at or before this time: RFC 3339, or a duration ago ("90m")`)
	fs.IntVar(&limit, "limit", 0, "stop after this many events; 0: no limit")
	fs.StringVarP(&format, "output", "o", eventsFormatTable, "output format: table, jsonl or json")
	markArguments(fs, "stream", "type", "from-position", "to-position", "since", "until", "limit", "output")
	s := newSettings(cmd)
	db.register(s, false)
	logs.register(s)
	return cmd
}

// eventsListWriter writes events as they arrive, in one of the formats, holding none of them.
type eventsListWriter struct {
	format string
	buf    *bufio.Writer
	table  *tabwriter.Writer
	rows   int
}

func newEventsListWriter(w io.Writer, format string) *eventsListWriter {
	out := &eventsListWriter{format: format, buf: bufio.NewWriter(w)}
	if format == eventsFormatTable {
		out.table = tabwriter.NewWriter(out.buf, 0, 4, 2, ' ', 0)
	}
	return out
}

// eventJSON is an event as list writes it.
type eventJSON struct {
	ID       string          `json:"id"`
	StreamID string          `json:"stream_id"`
	Version  int64           `json:"version"`
	Position int64           `json:"position"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata events.Metadata `json:"metadata"`
}

const eventsTableHeader = "POSITION\tTIME\tSTREAM\tVERSION\tTYPE\tACTOR\tDATA\n"

func (o *eventsListWriter) write(r events.Recorded) error {
	var err error
	switch o.format {
	case eventsFormatTable:
		if o.rows == 0 {
			if _, err := io.WriteString(o.table, eventsTableHeader); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(o.table, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Position, eventsTime(r.Time), r.StreamID,
			r.Version, eventsCell(r.Type, 40), eventsCell(cmp.Or(r.Metadata.Actor, "-"), 40), eventsCell(eventsDataSummary(r), 100))
	case eventsFormatJSONL:
		err = eventsWriteLine(o.buf, eventJSONOf(r))
	case eventsFormatJSON:
		sep := ",\n"
		if o.rows == 0 {
			sep = "[\n"
		}
		if _, err := o.buf.WriteString(sep); err != nil {
			return err
		}
		err = eventsWriteCompact(o.buf, eventJSONOf(r))
	}
	if err != nil {
		return err
	}
	o.rows++
	if o.rows%eventsFlushEvery == 0 {
		return o.flush()
	}
	return nil
}

func (o *eventsListWriter) flush() error {
	if o.table != nil {
		if err := o.table.Flush(); err != nil {
			return err
		}
	}
	return o.buf.Flush()
}

// close ends the output of a scan that completed.
func (o *eventsListWriter) close() error {
	switch {
	case o.format == eventsFormatTable && o.rows == 0:
		if _, err := io.WriteString(o.table, eventsTableHeader); err != nil {
			return err
		}
	case o.format == eventsFormatJSON && o.rows == 0:
		if _, err := o.buf.WriteString("[]\n"); err != nil {
			return err
		}
	case o.format == eventsFormatJSON:
		if _, err := o.buf.WriteString("\n]\n"); err != nil {
			return err
		}
	}
	return o.flush()
}

func eventJSONOf(r events.Recorded) eventJSON {
	return eventJSON{ID: r.ID, StreamID: r.StreamID, Version: r.Version, Position: r.Position, Type: r.Type,
		Time: r.Time.UTC(), Data: r.Data, Metadata: r.Metadata}
}

// eventsWriteCompact writes v as compact JSON, without escaping <, > and & (message ids have them).
func eventsWriteCompact(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return err
}

func eventsWriteLine(w io.Writer, v any) error {
	if err := eventsWriteCompact(w, v); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func eventsWriteIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// eventsTime renders a time in UTC with the log's microseconds, at a fixed width.
func eventsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// eventsCell makes s safe for one table cell: control characters (a tab would shift every
// column after it) become spaces, and it is cut to at most max characters.
func eventsCell(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}

// eventsDataSummary says in a few words what an event records.
func eventsDataSummary(r events.Recorded) string {
	e, err := r.Event()
	if err != nil {
		return "unreadable data: " + err.Error()
	}
	via := func(provider string) string {
		if provider == "" {
			return ""
		}
		return " via " + provider
	}
	switch e := e.(type) {
	case *events.NotificationQueued:
		s := fmt.Sprintf("%s to %s", e.Channel, e.Recipient)
		if e.RenderedSubject != "" {
			s += fmt.Sprintf(": %q", e.RenderedSubject)
		}
		return s
	case *events.NotificationProcessing:
		if e.Worker != "" {
			return fmt.Sprintf("attempt %d by %s", e.Attempt, e.Worker)
		}
		return fmt.Sprintf("attempt %d", e.Attempt)
	case *events.NotificationSent:
		s := fmt.Sprintf("attempt %d sent%s", e.Attempt, via(e.Provider))
		if e.ProviderMessageID != "" {
			s += ", id " + e.ProviderMessageID
		}
		return s
	case *events.DeliveryAttemptFailed:
		return fmt.Sprintf("attempt %d failed%s: %s", e.Attempt, via(e.Provider), e.Error)
	case *events.NotificationFailed:
		return fmt.Sprintf("attempt %d failed for good (%s)%s: %s", e.Attempt, e.Reason, via(e.Provider), e.Error)
	case *events.NotificationRequeued:
		return fmt.Sprintf("requeued by %s after %d attempts: %s", e.Actor, e.Attempts, cmp.Or(e.Reason, "no reason given"))
	case *events.NotificationDiscarded:
		return fmt.Sprintf("discarded by %s: %s", e.Actor, e.Reason)
	case *events.NotificationRecovered:
		return fmt.Sprintf("recovered by %s: %s", e.Actor, e.Reason)
	}
	return ""
}

func eventsReplayCommand() *cobra.Command {
	var (
		db     dbConfig
		logs   logConfig
		asOf   string
		stream string
		format string
	)
	cmd := &cobra.Command{
		Use:   "replay --as-of T [--stream ID]",
		Short: "Fold the log into what notifications' status was at an instant",
		Long: `replay answers what Herald would have said at an instant, from the event log alone (never
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

Notification objects have the fields of the API's status: id, type, recipient, status,
attempts, last_error, provider, provider_message_id, version, created_at, updated_at; and
position, the place in the log of the last event folded in.`,
		Example: `  herald events replay --as-of 2026-11-28T10:00:00Z --stream 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e
  herald events replay --as-of 24h -o jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := eventsCheckFormat(format); err != nil {
				return err
			}
			if asOf == "" {
				return errors.New("--as-of: required: the instant to replay to, an RFC 3339 time such as 2026-11-28T10:00:00Z, or a duration ago such as 24h")
			}
			at, err := eventsInstant("as-of", asOf, time.Now())
			if err != nil {
				return err
			}
			if stream != "" {
				id, err := uuid.Parse(stream)
				if err != nil {
					return fmt.Errorf("--stream %q: not a notification id (a UUID such as 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e)", stream)
				}
				stream = id.String()
			}

			ctx := cmd.Context()
			pool, err := eventsPool(ctx, db, logs)
			if err != nil {
				return err
			}
			defer pool.Close()
			log := events.NewLog(pool)
			if stream != "" {
				n, recs, err := log.NotificationAsOf(ctx, stream, at)
				if err != nil {
					return eventsCLIError(err)
				}
				return writeReplayedNotification(cmd.OutOrStdout(), format, at, n, recs)
			}
			out := newReplayWriter(cmd.OutOrStdout(), format, at)
			if err := log.ScanStreamsAsOf(ctx, at, out.write); err != nil {
				return eventsCLIError(err)
			}
			return out.close()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&asOf, "as-of", "", `the instant to replay to: RFC 3339, or a duration ago ("24h"); required`)
	fs.StringVar(&stream, "stream", "", "replay only this notification id, with its history")
	fs.StringVarP(&format, "output", "o", eventsFormatTable, "output format: table, jsonl or json")
	markArguments(fs, "as-of", "stream", "output")
	s := newSettings(cmd)
	db.register(s, false)
	logs.register(s)
	return cmd
}

// replayedJSON is a notification as replay writes it: the API's status fields, and its position.
type replayedJSON struct {
	ID                string    `json:"id"`
	Type              string    `json:"type"`
	Recipient         string    `json:"recipient"`
	Status            string    `json:"status"`
	Attempts          int       `json:"attempts"`
	LastError         string    `json:"last_error,omitempty"`
	Provider          string    `json:"provider,omitempty"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	Version           int64     `json:"version"`
	Position          int64     `json:"position"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

func replayedJSONOf(n herald.Notification) replayedJSON {
	return replayedJSON{
		ID: n.ID, Type: string(n.Channel), Recipient: n.Recipient, Status: string(n.Status), Attempts: n.Attempts,
		LastError: n.LastError, Provider: n.Provider, ProviderMessageID: n.ProviderMessageID,
		Version: n.Version, Position: n.Position, CreatedAt: n.CreatedAt.UTC(), UpdatedAt: n.UpdatedAt.UTC(),
	}
}

// replayedHistoryJSON is a history entry as replay writes it, with the API's history fields.
type replayedHistoryJSON struct {
	Version           int64     `json:"version"`
	Position          int64     `json:"position"`
	Event             string    `json:"event"`
	Status            string    `json:"status"`
	Attempt           int       `json:"attempt,omitempty"`
	Provider          string    `json:"provider,omitempty"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	Error             string    `json:"error,omitempty"`
	Reason            string    `json:"reason,omitempty"`
	Actor             string    `json:"actor,omitempty"`
	At                time.Time `json:"at"`
}

func writeReplayedNotification(w io.Writer, format string, at time.Time, n herald.Notification, recs []events.Recorded) error {
	history := make([]herald.HistoryEntry, 0, len(recs))
	for _, r := range recs {
		e, err := r.Event()
		if err != nil {
			return fmt.Errorf("history of %s v%d: %w", r.StreamID, r.Version, err)
		}
		history = append(history, events.HistoryEntry(r, e))
	}
	if format != eventsFormatTable {
		out := struct {
			AsOf         time.Time             `json:"as_of"`
			Notification replayedJSON          `json:"notification"`
			History      []replayedHistoryJSON `json:"history"`
		}{AsOf: at.UTC(), Notification: replayedJSONOf(n), History: make([]replayedHistoryJSON, 0, len(history))}
		for _, h := range history {
			out.History = append(out.History, replayedHistoryJSON{
				Version: h.Version, Position: h.Position, Event: h.Event, Status: string(h.Status),
				Attempt: h.Attempt, Provider: h.Provider, ProviderMessageID: h.ProviderMessageID,
				Error: h.Error, Reason: h.Reason, Actor: h.Actor, At: h.At.UTC(),
			})
		}
		if format == eventsFormatJSONL {
			return eventsWriteLine(w, out)
		}
		return eventsWriteIndented(w, out)
	}

	buf := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(buf, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "notification\t%s\n", n.ID)
	fmt.Fprintf(tw, "as of\t%s\n", eventsTime(at))
	fmt.Fprintf(tw, "type\t%s\n", n.Channel)
	fmt.Fprintf(tw, "recipient\t%s\n", eventsCell(n.Recipient, 200))
	fmt.Fprintf(tw, "status\t%s\n", n.Status)
	fmt.Fprintf(tw, "attempts\t%d\n", n.Attempts)
	fmt.Fprintf(tw, "last error\t%s\n", eventsCell(cmp.Or(n.LastError, "-"), 200))
	fmt.Fprintf(tw, "provider\t%s\n", eventsCell(cmp.Or(n.Provider, "-"), 100))
	if n.ProviderMessageID != "" {
		fmt.Fprintf(tw, "provider message id\t%s\n", eventsCell(n.ProviderMessageID, 200))
	}
	fmt.Fprintf(tw, "version\t%d (position %d)\n", n.Version, n.Position)
	fmt.Fprintf(tw, "created\t%s\n", eventsTime(n.CreatedAt))
	fmt.Fprintf(tw, "updated\t%s\n", eventsTime(n.UpdatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(buf)
	tw = tabwriter.NewWriter(buf, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "VERSION\tAT\tEVENT\tSTATUS\tATTEMPT\tACTOR\tDETAIL\n")
	for _, h := range history {
		attempt := "-"
		if h.Attempt > 0 {
			attempt = fmt.Sprint(h.Attempt)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Version, eventsTime(h.At), h.Event, h.Status, attempt,
			eventsCell(cmp.Or(h.Actor, "-"), 40), eventsCell(replayHistoryDetail(h), 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return buf.Flush()
}

func replayHistoryDetail(h herald.HistoryEntry) string {
	var parts []string
	if h.Provider != "" {
		parts = append(parts, "via "+h.Provider)
	}
	if h.ProviderMessageID != "" {
		parts = append(parts, "id "+h.ProviderMessageID)
	}
	if h.Reason != "" {
		parts = append(parts, "reason "+h.Reason)
	}
	if h.Error != "" {
		parts = append(parts, "error: "+h.Error)
	}
	return cmp.Or(strings.Join(parts, ", "), "-")
}

// replayCounts counts notifications per status, in life order.
type replayCounts struct {
	Pending    int `json:"pending"`
	Processing int `json:"processing"`
	Sent       int `json:"sent"`
	Failed     int `json:"failed"`
}

func (c *replayCounts) add(s herald.Status) {
	switch s {
	case herald.StatusPending:
		c.Pending++
	case herald.StatusProcessing:
		c.Processing++
	case herald.StatusSent:
		c.Sent++
	case herald.StatusFailed:
		c.Failed++
	}
}

type replaySummary struct {
	AsOf     time.Time    `json:"as_of,omitzero"`
	Total    int          `json:"total"`
	ByStatus replayCounts `json:"by_status"`
}

// replayWriter writes notifications as they are folded, in one of the formats, and the summary
// at the end.
type replayWriter struct {
	format  string
	at      time.Time
	buf     *bufio.Writer
	table   *tabwriter.Writer
	summary replaySummary
}

func newReplayWriter(w io.Writer, format string, at time.Time) *replayWriter {
	out := &replayWriter{format: format, at: at.UTC(), buf: bufio.NewWriter(w)}
	if format == eventsFormatTable {
		out.table = tabwriter.NewWriter(out.buf, 0, 4, 2, ' ', 0)
	}
	return out
}

const replayTableHeader = "ID\tTYPE\tRECIPIENT\tSTATUS\tATTEMPTS\tVERSION\tUPDATED\tLAST ERROR\n"

func (o *replayWriter) write(n herald.Notification) error {
	var err error
	switch o.format {
	case eventsFormatTable:
		if o.summary.Total == 0 {
			if _, err := io.WriteString(o.table, replayTableHeader); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(o.table, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", n.ID, n.Channel, eventsCell(n.Recipient, 60),
			n.Status, n.Attempts, n.Version, eventsTime(n.UpdatedAt), eventsCell(cmp.Or(n.LastError, "-"), 80))
	case eventsFormatJSONL:
		err = eventsWriteLine(o.buf, replayedJSONOf(n))
	case eventsFormatJSON:
		sep := ",\n"
		if o.summary.Total == 0 {
			sep = "\n"
			if err := o.openJSON(); err != nil {
				return err
			}
		}
		if _, err := o.buf.WriteString(sep); err != nil {
			return err
		}
		err = eventsWriteCompact(o.buf, replayedJSONOf(n))
	}
	if err != nil {
		return err
	}
	o.summary.Total++
	o.summary.ByStatus.add(n.Status)
	if o.summary.Total%eventsFlushEvery == 0 {
		if o.table != nil {
			if err := o.table.Flush(); err != nil {
				return err
			}
		}
		return o.buf.Flush()
	}
	return nil
}

// openJSON begins the json format's object. It is written with the first notification, or at
// the end of a replay that found none, so a replay that fails at once writes nothing.
func (o *replayWriter) openJSON() error {
	at, err := json.Marshal(o.at)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.buf, `{"as_of":%s,"notifications":[`, at)
	return err
}

// close ends the output of a replay that completed, with its summary.
func (o *replayWriter) close() error {
	switch o.format {
	case eventsFormatTable:
		if o.summary.Total == 0 {
			if _, err := io.WriteString(o.table, replayTableHeader); err != nil {
				return err
			}
		}
		if err := o.table.Flush(); err != nil {
			return err
		}
		c := o.summary.ByStatus
		if _, err := fmt.Fprintf(o.buf, "%d notifications as of %s: %d pending, %d processing, %d sent, %d failed\n",
			o.summary.Total, eventsTime(o.at), c.Pending, c.Processing, c.Sent, c.Failed); err != nil {
			return err
		}
	case eventsFormatJSONL:
		s := o.summary
		s.AsOf = o.at
		if err := eventsWriteLine(o.buf, struct {
			Summary replaySummary `json:"summary"`
		}{s}); err != nil {
			return err
		}
	case eventsFormatJSON:
		end := "\n"
		if o.summary.Total == 0 {
			end = ""
			if err := o.openJSON(); err != nil {
				return err
			}
		}
		if _, err := o.buf.WriteString(end); err != nil {
			return err
		}
		if _, err := o.buf.WriteString(`],"summary":`); err != nil {
			return err
		}
		if err := eventsWriteCompact(o.buf, o.summary); err != nil {
			return err
		}
		if _, err := o.buf.WriteString("}\n"); err != nil {
			return err
		}
	}
	return o.buf.Flush()
}
