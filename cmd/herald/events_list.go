package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/wire"
)

// eventsListLong is the help of events list. (A variable: it lists the event types.)
var eventsListLong = `list writes the log's events in global position order, as they are read: however large the
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
non-zero; an invalid flag is reported before anything is read.`

// eventsListFlags are the flags of events list: which events, and how to print them.
type eventsListFlags struct {
	cli          cliDB
	stream       string
	types        []string
	from, to     int64
	since, until string
	limit        int
	format       *format
}

// eventsListCommand lets an auditor read the log itself, filtered, however large it is.
func eventsListCommand() *cobra.Command {
	var f eventsListFlags
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "Stream events of the log in log order, filtered, as a table, JSON lines or JSON",
		Long:  eventsListLong,
		Example: `  herald events list --stream 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e
  herald events list --type DeliveryAttemptFailed,NotificationFailed --since 24h -o jsonl
  herald events list --from-position 1000 --limit 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.stream, "stream", "", "only the events of this stream: a notification's id, or a webhook endpoint's")
	fs.StringSliceVar(&f.types, "type", nil, "only events of these types (repeat, or separate with commas)")
	fs.Int64Var(&f.from, "from-position", 0, "first global position to read; 0: the start of the log")
	fs.Int64Var(&f.to, "to-position", 0, "last global position to read; 0: the end of the log")
	fs.StringVar(&f.since, "since", "", `only events that occurred at or after this time: RFC 3339, or a duration ago ("90m")`)
	fs.StringVar(&f.until, "until", "", `only events that occurred at or before this time: RFC 3339, or a duration ago ("90m")`)
	fs.IntVar(&f.limit, "limit", 0, "stop after this many events; 0: no limit")
	f.format = registerFormat(fs, formatTable, formatJSONL, formatJSON)
	markArguments(fs, "stream", "type", "from-position", "to-position", "since", "until", "limit")
	f.cli.register(newSettings(cmd))
	return cmd
}

// run checks the filter, then streams the events it selects.
func (f eventsListFlags) run(cmd *cobra.Command) error {
	filter, err := f.filter(time.Now())
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	pool, _, err := f.cli.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	out := newEventsListWriter(cmd.OutOrStdout(), *f.format)
	if err := events.NewLog(pool).Scan(ctx, filter, out.write); err != nil {
		return cliError(err, fieldsAsFlags)
	}
	return out.close()
}

// filter is the events.Filter the flags ask for, checked, its errors naming the flags.
func (f eventsListFlags) filter(now time.Time) (events.Filter, error) {
	filter := events.Filter{Stream: f.stream, FromPosition: f.from, ToPosition: f.to, Limit: f.limit}
	for _, t := range f.types {
		filter.Types = append(filter.Types, strings.TrimSpace(t))
	}
	var errs []error
	if f.since != "" {
		t, err := eventsInstant("since", f.since, now)
		errs = append(errs, err)
		filter.Since = t
	}
	if f.until != "" {
		t, err := eventsInstant("until", f.until, now)
		errs = append(errs, err)
		filter.Until = t
	}
	if err := errors.Join(errs...); err != nil {
		return filter, err
	}
	return filter, cliError(filter.Validate(), fieldsAsFlags)
}

// eventsListWriter writes events as they arrive, in one of the formats, holding none of them.
type eventsListWriter struct{ stream }

// newEventsListWriter returns a writer of events to w in format.
func newEventsListWriter(w io.Writer, f format) *eventsListWriter {
	return &eventsListWriter{newStream(w, f)}
}

// eventsTableHeader heads the table of events; it is written even when no event matched.
const eventsTableHeader = "POSITION\tTIME\tSTREAM\tVERSION\tTYPE\tACTOR\tDATA\n"

// write prints one event.
func (o *eventsListWriter) write(r events.Recorded) error {
	var err error
	switch o.format {
	case formatTable:
		if o.rows == 0 {
			if _, err := io.WriteString(o.table, eventsTableHeader); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(o.table, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Position, logTime(r.Time), r.StreamID,
			r.Version, cell(r.Type, 40), cell(orDash(r.Metadata.Actor), 40), cell(eventsDataSummary(r), 100))
	case formatJSONL:
		err = writeJSONLine(o.buf, wire.NewEvent(r))
	case formatJSON:
		sep := ",\n"
		if o.rows == 0 {
			sep = "[\n"
		}
		if _, err := o.buf.WriteString(sep); err != nil {
			return err
		}
		err = encodeJSON(o.buf, wire.NewEvent(r), "", "")
	}
	if err != nil {
		return err
	}
	return o.row()
}

// close ends the output of a scan that completed.
func (o *eventsListWriter) close() error {
	switch {
	case o.format == formatTable && o.rows == 0:
		if _, err := io.WriteString(o.table, eventsTableHeader); err != nil {
			return err
		}
	case o.format == formatJSON && o.rows == 0:
		if _, err := o.buf.WriteString("[]\n"); err != nil {
			return err
		}
	case o.format == formatJSON:
		if _, err := o.buf.WriteString("\n]\n"); err != nil {
			return err
		}
	}
	return o.flush()
}
