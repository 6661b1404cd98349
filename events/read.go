package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
)

// Filter selects events of the log for reading. Its zero value selects every event.
type Filter struct {
	// Stream, if set, is the one stream whose events are read: a notification's or a webhook
	// endpoint's.
	Stream string
	// Types, if any, are the event types read (see Types).
	Types []string
	// FromPosition and ToPosition bound the global positions read, both inclusive; 0 leaves
	// that end open.
	FromPosition, ToPosition int64
	// Since and Until bound the times the events occurred, both inclusive; the zero time
	// leaves that end open.
	Since, Until time.Time
	// Limit is the most events read; 0 reads them all.
	Limit int
}

// Validate returns an EINVALID *herald.Error naming each field of f that cannot select
// anything sensible, or nil. The field names are the snake_case forms of Filter's fields, with
// "type" for Types.
func (f Filter) Validate() error {
	fields := map[string]string{}
	if f.Stream != "" {
		if _, err := uuid.Parse(f.Stream); err != nil {
			fields["stream"] = fmt.Sprintf("%q is not a stream id (a UUID such as 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e)", f.Stream)
		}
	}
	var unknown []string
	for _, t := range f.Types {
		if !slices.Contains(Types, t) {
			unknown = append(unknown, fmt.Sprintf("%q", t))
		}
	}
	if len(unknown) > 0 {
		what := "unknown event type "
		if len(unknown) > 1 {
			what = "unknown event types "
		}
		fields["type"] = what + strings.Join(unknown, ", ") + "; the log holds " + strings.Join(Types, ", ")
	}
	switch {
	case f.FromPosition < 0:
		fields["from_position"] = fmt.Sprintf("%d: positions start at 1", f.FromPosition)
	case f.ToPosition < 0:
		fields["to_position"] = fmt.Sprintf("%d: positions start at 1", f.ToPosition)
	case f.ToPosition > 0 && f.FromPosition > f.ToPosition:
		fields["from_position"] = fmt.Sprintf("%d is past the end of the range, %d", f.FromPosition, f.ToPosition)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Since.After(f.Until) {
		fields["since"] = fmt.Sprintf("%s is after the end of the range, %s",
			f.Since.UTC().Format(time.RFC3339Nano), f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit < 0 {
		fields["limit"] = fmt.Sprintf("%d: want 0 (no limit) or more", f.Limit)
	}
	if len(fields) > 0 {
		return herald.Invalid("the event filter is invalid", fields)
	}
	return nil
}

// where returns f's conditions as SQL and their arguments. f must be valid.
func (f Filter) where() (string, []any) {
	var (
		conds []string
		args  []any
	)
	cond := func(sql string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(sql, len(args)))
	}
	if f.Stream != "" {
		cond("stream_id = $%d", uuid.MustParse(f.Stream).String())
	}
	if len(f.Types) > 0 {
		cond("event_type = ANY($%d)", f.Types)
	}
	if f.FromPosition > 0 {
		cond("global_position >= $%d", f.FromPosition)
	}
	if f.ToPosition > 0 {
		cond("global_position <= $%d", f.ToPosition)
	}
	if !f.Since.IsZero() {
		cond("occurred_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		cond("occurred_at <= $%d", f.Until)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Scan calls fn with each event f selects, in global position order, one at a time: however
// large the log, it holds one event in memory. It fails with EINVALID, before querying, when f
// is invalid (see Filter.Validate). An error from fn stops the scan and is returned as it is.
//
// The scan runs in a READ ONLY transaction, so the database itself refuses any write made in
// it. Such a transaction takes no transaction id, so however long the scan runs it does not hold
// back the log's consumers, which wait only for transactions that have one. (Its snapshot does
// hold back VACUUM's horizon while it runs, as any query's does.) The log must be over a pool or
// a connection (not Log.In a transaction).
func (l *Log) Scan(ctx context.Context, f Filter, fn func(Recorded) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	where, args := f.where()
	q := `SELECT ` + selectColumns + ` FROM event_log` + where + ` ORDER BY global_position`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	return l.readOnly(ctx, "scan the log", func(tx pgx.Tx) error {
		return queryEach(ctx, tx, q, args, func(r Recorded) error {
			if err := fn(r); err != nil {
				return errCallback{err}
			}
			return nil
		})
	})
}

// errCallback marks an error returned by a caller's function, so it is handed back unwrapped.
type errCallback struct{ err error }

func (e errCallback) Error() string { return e.err.Error() }

// queryEach runs q in tx and calls fn with each row as it arrives, holding no other; fn's error
// stops it and is returned as it is.
func queryEach(ctx context.Context, tx pgx.Tx, q string, args []any, fn func(Recorded) error) error {
	// Stopping early cancels the query: closing the rows would otherwise read, and throw away,
	// the rest of what may be the whole log. The cancelled connection is not reused.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecorded(rows)
		if err != nil {
			cancel()
			return err
		}
		if err := fn(r); err != nil {
			cancel()
			return err
		}
	}
	return rows.Err()
}

// readOnlyBeginner is what a read-only transaction is begun from: a *pgxpool.Pool or a *pgx.Conn.
type readOnlyBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// readOnly runs fn in a READ ONLY transaction. what names the operation in errors; errors from
// the caller's function (errCallback) come back unwrapped.
func (l *Log) readOnly(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	b, ok := l.db.(readOnlyBeginner)
	if !ok {
		return fmt.Errorf("%s: the log must be over a pool or a connection to read in a read-only transaction, not %T", what, l.db)
	}
	err := pgx.BeginTxFunc(ctx, b, pgx.TxOptions{AccessMode: pgx.ReadOnly}, fn)
	var cb errCallback
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cb):
		return cb.err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// LoadUntil returns the part of stream that had happened by at (inclusive), in version order:
// its events from version 1 up to the last one that occurred at or before at. An event is
// recorded with the database server's clock when it is appended; should that clock ever step back,
// a later version could carry an earlier time, and the stream is cut at the first event after at
// rather than skip over it.
func (l *Log) LoadUntil(ctx context.Context, stream string, at time.Time) ([]Recorded, error) {
	recs, err := l.loadWhere(ctx, stream, `WHERE stream_id = $1 AND occurred_at <= $2 ORDER BY stream_version`, stream, at)
	if err != nil {
		return nil, err
	}
	for i, r := range recs {
		if r.Version != int64(i+1) {
			return recs[:i], nil
		}
	}
	return recs, nil
}

// NotificationAsOf folds the part of stream that had happened by at into the notification it
// described then, and returns that part too. It fails with ENOTFOUND when the notification did
// not exist yet at at; an at in the future gives its current state.
func (l *Log) NotificationAsOf(ctx context.Context, stream string, at time.Time) (herald.Notification, []Recorded, error) {
	recs, err := l.LoadUntil(ctx, stream, at)
	if err != nil {
		return herald.Notification{}, nil, err
	}
	if !IsNotificationStream(recs) {
		return herald.Notification{}, nil, herald.Errorf(herald.ENOTFOUND, "notification %s did not exist at %s",
			stream, at.UTC().Format(time.RFC3339Nano))
	}
	n, err := Fold(recs)
	return n, recs, err
}

// ScanStreamsAsOf calls fn with every notification that existed at at, as it was then, in
// notification id order (for UUIDv7 ids, roughly the order they were accepted). It folds one
// stream at a time as the rows arrive, ordered by the (stream_id, stream_version) key, so it
// holds one notification in memory however large the log. Each stream is cut as LoadUntil cuts
// it. It reads in a READ ONLY transaction, as Scan does; an error from fn stops it and is
// returned as it is.
func (l *Log) ScanStreamsAsOf(ctx context.Context, at time.Time, fn func(herald.Notification) error) error {
	// Qualified: a bare stream_id would name the text column selectColumns outputs, whose order
	// no index provides, and every replay would sort the log.
	const q = `SELECT ` + selectColumns + ` FROM event_log WHERE occurred_at <= $1
ORDER BY event_log.stream_id, event_log.stream_version`
	return l.readOnly(ctx, "replay the log", func(tx pgx.Tx) error {
		var (
			stream string
			n      herald.Notification
			next   int64 // the version that continues stream; past a gap, none does
		)
		flush := func() error {
			if n.ID == "" {
				return nil // no stream yet, or a webhook endpoint's
			}
			if err := fn(n); err != nil {
				return errCallback{err}
			}
			return nil
		}
		err := queryEach(ctx, tx, q, []any{at}, func(r Recorded) error {
			if r.StreamID != stream {
				if err := flush(); err != nil {
					return err
				}
				stream, n, next = r.StreamID, herald.Notification{}, 1
			}
			if r.Version != next {
				// A gap: this stream's story as of at ends before it.
				next = -1
				return nil
			}
			e, err := r.Event()
			if err != nil {
				return fmt.Errorf("replay %s v%d: %w", r.StreamID, r.Version, err)
			}
			n = Evolve(n, r, e)
			next++
			return nil
		})
		if err != nil {
			return err
		}
		return flush()
	})
}
