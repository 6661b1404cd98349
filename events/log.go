package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-notify/herald"
)

// Querier runs statements: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Log is the append-only event log in PostgreSQL (table event_log). The database refuses UPDATE,
// DELETE and TRUNCATE on it; appends are checked against the stream's expected version.
type Log struct {
	db Querier
}

// NewLog returns the log stored in db.
func NewLog(db Querier) *Log { return &Log{db: db} }

// In returns the log as seen from inside tx, so an append commits or rolls back with the rest of
// the transaction's work.
func (l *Log) In(tx pgx.Tx) *Log { return &Log{db: tx} }

// ErrConflict is wrapped by the errors Append returns when the stream is not at the expected
// version: another writer appended first. Reload the stream and decide again.
var ErrConflict = errors.New("stream changed since it was read")

// appendSQL inserts the versions in order: the log's chain trigger links each to the one inserted
// before it by the same statement (migrations/00020_event_log_chain.sql).
const appendSQL = `
INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
SELECT e.event_id, $1, e.version, e.event_type, e.data::jsonb, $3
FROM unnest($4::uuid[], $5::bigint[], $6::text[], $7::text[]) AS e(event_id, version, event_type, data)
WHERE (SELECT coalesce(max(stream_version), 0) FROM event_log WHERE stream_id = $1) = $2
ORDER BY e.version
RETURNING event_id::text, stream_version, global_position, occurred_at`

// Append adds evs to stream after version expected (0 for a new stream) and returns them as
// recorded. It fails with an ECONFLICT *herald.Error wrapping ErrConflict when the stream is at
// another version, and leaves the log unchanged.
func (l *Log) Append(ctx context.Context, stream string, expected int64, md Metadata, evs ...Event) ([]Recorded, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	if len(evs) == 1 {
		return l.appendOne(ctx, stream, expected, md, evs[0])
	}
	meta, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("append %s v%d: metadata: %w", stream, expected+1, err)
	}
	b, err := newAppendBatch(stream, expected, md, evs)
	if err != nil {
		return nil, err
	}
	rows, err := l.db.Query(ctx, appendSQL, stream, expected, meta, b.ids, b.versions, b.types, b.data)
	if err != nil {
		return nil, appendError(stream, expected, err)
	}
	n, err := b.scan(rows, stream, expected)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, conflict(stream, expected)
	}
	return b.out, nil
}

// appendBatch is what Append sends for several events, one array per column of appendSQL, and
// the events as they will be recorded once the database has given them positions and times.
type appendBatch struct {
	ids, types, data []string
	versions         []int64
	out              []Recorded
	// byID finds an event in out by the id the database returns it with.
	byID map[string]int
}

// newAppendBatch gives each of evs an id and its version after expected, and encodes it.
func newAppendBatch(stream string, expected int64, md Metadata, evs []Event) (*appendBatch, error) {
	b := &appendBatch{
		ids:      make([]string, len(evs)),
		types:    make([]string, len(evs)),
		data:     make([]string, len(evs)),
		versions: make([]int64, len(evs)),
		out:      make([]Recorded, len(evs)),
		byID:     make(map[string]int, len(evs)),
	}
	for i, e := range evs {
		r, err := newRecorded(stream, expected+int64(i)+1, md, e)
		if err != nil {
			return nil, err
		}
		b.ids[i], b.versions[i], b.types[i], b.data[i] = r.ID, r.Version, r.Type, string(r.Data)
		b.byID[r.ID] = i
		b.out[i] = r
	}
	return b, nil
}

// scan reads the positions and times appendSQL returns into b.out and says how many events were
// inserted: none when the stream was not at version expected.
func (b *appendBatch) scan(rows pgx.Rows, stream string, expected int64) (int, error) {
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			id       string
			version  int64
			position int64
			at       time.Time
		)
		if err := rows.Scan(&id, &version, &position, &at); err != nil {
			return 0, fmt.Errorf("append %s v%d: %w", stream, expected+1, err)
		}
		i := b.byID[id]
		b.out[i].Position, b.out[i].Time = position, at
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, appendError(stream, expected, err)
	}
	return n, nil
}

const appendOneSQL = `
INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
SELECT $3, $1, $2 + 1, $4, $5::jsonb, $6::jsonb
WHERE (SELECT coalesce(max(stream_version), 0) FROM event_log WHERE stream_id = $1) = $2
RETURNING global_position, occurred_at`

// appendOne is Append of one event, the common case (a worker records an attempt's start, then
// its outcome), without the arrays a batch needs.
func (l *Log) appendOne(ctx context.Context, stream string, expected int64, md Metadata, e Event) ([]Recorded, error) {
	row, err := encodeOne(stream, expected+1, md, e)
	if err != nil {
		return nil, err
	}
	return l.appendRow(ctx, row)
}

// appendRow inserts row after the version before it of its stream.
func (l *Log) appendRow(ctx context.Context, row eventRow) ([]Recorded, error) {
	r, expected := row.rec, row.expected()
	err := l.db.QueryRow(ctx, appendOneSQL, row.args()...).Scan(&r.Position, &r.Time)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, conflict(r.StreamID, expected)
	}
	if err != nil {
		return nil, appendError(r.StreamID, expected, err)
	}
	return []Recorded{r}, nil
}

// eventRow is one event's row of event_log as a one-event append inserts it: the event as it
// will be recorded once the database has given it a position and a time, and its data and
// metadata encoded for the insert. Every one-event append encodes with encodeOne, so that a row
// is written alike whichever way it is appended.
type eventRow struct {
	rec        Recorded
	data, meta string
}

// encodeOne gives e an id and encodes it, with md, as the given version of stream.
func encodeOne(stream string, version int64, md Metadata, e Event) (eventRow, error) {
	meta, err := json.Marshal(md)
	if err != nil {
		return eventRow{}, fmt.Errorf("append %s v%d: metadata: %w", stream, version, err)
	}
	r, err := newRecorded(stream, version, md, e)
	if err != nil {
		return eventRow{}, err
	}
	return eventRow{rec: r, data: string(r.Data), meta: string(meta)}, nil
}

// newRecorded gives e an id and encodes its data, as the given version of stream: the event as it
// will be recorded, less the position and time the database gives it.
func newRecorded(stream string, version int64, md Metadata, e Event) (Recorded, error) {
	data, err := encodeData(e)
	if err != nil {
		return Recorded{}, fmt.Errorf("append %s v%d: encode %s: %w", stream, version, e.EventType(), err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Recorded{}, fmt.Errorf("append %s: event id: %w", stream, err)
	}
	return Recorded{ID: id.String(), StreamID: stream, Version: version, Type: e.EventType(), Data: data, Metadata: md}, nil
}

// expected is the version the row's stream must be at for the row to be appended.
func (row eventRow) expected() int64 { return row.rec.Version - 1 }

// args are the arguments of appendOneSQL (and appendOneGroupSQL) that insert the row.
func (row eventRow) args() []any {
	return []any{row.rec.StreamID, row.expected(), row.rec.ID, row.rec.Type, row.data, row.meta}
}

// QueueStart queues, in b, the append of e as version 1 of a new stream, and returns the event as
// it will be recorded: its position and time are filled in when b has run. A stream that exists
// already fails the batch with ECONFLICT (ErrConflict), and with it everything queued beside it:
// a batch runs as one implicit transaction.
func (l *Log) QueueStart(b *pgx.Batch, stream string, md Metadata, e Event) (*Recorded, error) {
	enc, err := encodeOne(stream, 1, md, e)
	if err != nil {
		return nil, err
	}
	r := &enc.rec
	b.Queue(`INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
		VALUES ($1, $2, 1, $3, $4::jsonb, $5::jsonb) RETURNING global_position, occurred_at`,
		r.ID, stream, r.Type, enc.data, enc.meta).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&r.Position, &r.Time); err != nil {
			return appendError(stream, 0, err)
		}
		return nil
	})
	return r, nil
}

// QueueAppend queues, in b, the append of e to stream after version expected, and returns the
// event as it will be recorded: its position and time are filled in when b has run. A stream at
// another version fails b with ECONFLICT (ErrConflict), as Append does.
func (l *Log) QueueAppend(b *pgx.Batch, stream string, expected int64, md Metadata, e Event) (*Recorded, error) {
	r := &Recorded{}
	if err := queueAppendOne(b, stream, expected, md, e, r); err != nil {
		return nil, err
	}
	return r, nil
}

// queueAppendOne is QueueAppend recording into r, which b fills in when it runs.
func queueAppendOne(b *pgx.Batch, stream string, expected int64, md Metadata, e Event, r *Recorded) error {
	enc, err := encodeOne(stream, expected+1, md, e)
	if err != nil {
		return err
	}
	*r = enc.rec
	b.Queue(appendOneSQL, enc.args()...).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&r.Position, &r.Time)
		if errors.Is(err, pgx.ErrNoRows) {
			return conflict(stream, expected)
		}
		if err != nil {
			return appendError(stream, expected, err)
		}
		return nil
	})
	return nil
}

// conflict is the error of an append to stream that found it past version expected.
func conflict(stream string, expected int64) error {
	return &herald.Error{
		Code:    herald.ECONFLICT,
		Message: fmt.Sprintf("notification %s is no longer at version %d", stream, expected),
		Err:     ErrConflict,
	}
}

func appendError(stream string, expected int64, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "event_log_stream_version_key" {
		return &herald.Error{
			Code:    herald.ECONFLICT,
			Message: fmt.Sprintf("notification %s is no longer at version %d", stream, expected),
			Err:     fmt.Errorf("%w: %w", ErrConflict, err),
		}
	}
	return fmt.Errorf("append %s v%d: %w", stream, expected+1, err)
}

const selectColumns = `event_id::text, stream_id::text, stream_version, global_position, event_type, occurred_at, data, metadata`

// foldColumns are selectColumns with a NotificationQueued's templates left out (QueuedTemplateKeys):
// what a fold needs of it, the renderings, without the rest of an HTML email's event.
var foldColumns = strings.Replace(selectColumns, "occurred_at, data,", "occurred_at, CASE WHEN event_type = '"+
	TypeNotificationQueued+"' THEN data - '{"+strings.Join(QueuedTemplateKeys, ",")+"}'::text[] ELSE data END,", 1)

// scanRecorded scans a row of selectColumns, followed by the columns extra scans into.
func scanRecorded(row pgx.Row, extra ...any) (Recorded, error) {
	var (
		r    Recorded
		data []byte
		meta []byte
	)
	dest := append([]any{&r.ID, &r.StreamID, &r.Version, &r.Position, &r.Type, &r.Time, &data, &meta}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Recorded{}, err
	}
	r.Data = data
	if len(meta) > 0 {
		if err := json.Unmarshal(meta, &r.Metadata); err != nil {
			return Recorded{}, fmt.Errorf("metadata of %s v%d: %w", r.StreamID, r.Version, err)
		}
	}
	return r, nil
}

// Load returns stream's events in version order; an unknown stream has none.
func (l *Log) Load(ctx context.Context, stream string) ([]Recorded, error) {
	return l.loadWhere(ctx, stream, `WHERE stream_id = $1 ORDER BY stream_version`, stream)
}

func (l *Log) loadWhere(ctx context.Context, stream, where string, args ...any) ([]Recorded, error) {
	rows, err := l.db.Query(ctx, `SELECT `+selectColumns+` FROM event_log `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recorded, error) { return scanRecorded(row) })
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	return recs, nil
}

// Notification folds stream into the notification it describes. It fails with ENOTFOUND when the
// stream has no events.
func (l *Log) Notification(ctx context.Context, stream string) (herald.Notification, []Recorded, error) {
	recs, err := l.Load(ctx, stream)
	if err != nil {
		return herald.Notification{}, nil, err
	}
	if !IsNotificationStream(recs) {
		return herald.Notification{}, nil, herald.Errorf(herald.ENOTFOUND, "no notification %s", stream)
	}
	n, err := Fold(recs)
	return n, recs, err
}

// NotificationNow is Notification together with the database's clock, read by the statement that
// reads the stream. The events' times are the database's (occurred_at is stamped on insert), so
// their age is judged against this clock and never against the reader's own, which may be ahead
// or behind.
func (l *Log) NotificationNow(ctx context.Context, stream string) (herald.Notification, time.Time, error) {
	n, _, now, err := l.NotificationEventsNow(ctx, stream)
	return n, now, err
}

// NotificationEventsNow is NotificationNow that also returns the stream's events: one read gives
// the fold, the events and the database's clock. As the fold needs them, NotificationQueued's
// data lacks its templates (QueuedTemplateKeys).
func (l *Log) NotificationEventsNow(ctx context.Context, stream string) (herald.Notification, []Recorded, time.Time, error) {
	rows, err := l.db.Query(ctx, notificationNowSQL, stream)
	if err != nil {
		return herald.Notification{}, nil, time.Time{}, fmt.Errorf("load %s: %w", stream, err)
	}
	return foldNow(rows, stream)
}

// notificationNowSQL reads a stream for a fold, with the database's clock.
var notificationNowSQL = `SELECT ` + foldColumns + `, statement_timestamp() FROM event_log
	WHERE stream_id = $1 ORDER BY stream_version`

// foldNow folds the rows of notificationNowSQL.
func foldNow(rows pgx.Rows, stream string) (herald.Notification, []Recorded, time.Time, error) {
	var now time.Time
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recorded, error) { return scanRecorded(row, &now) })
	if err != nil {
		return herald.Notification{}, nil, time.Time{}, fmt.Errorf("load %s: %w", stream, err)
	}
	if !IsNotificationStream(recs) {
		return herald.Notification{}, nil, time.Time{}, herald.Errorf(herald.ENOTFOUND, "no notification %s", stream)
	}
	n, err := Fold(recs)
	return n, recs, now, err
}

// IsNotificationStream reports whether recs is a notification's stream: one that NotificationQueued
// opens. An unknown stream has no events; a webhook endpoint's opens with its own.
func IsNotificationStream(recs []Recorded) bool {
	return len(recs) > 0 && recs[0].Type == TypeNotificationQueued
}

// Head returns the position of the newest event in the log, 0 when it is empty.
func (l *Log) Head(ctx context.Context) (int64, error) {
	var head int64
	if err := l.db.QueryRow(ctx, `SELECT coalesce(max(global_position), 0) FROM event_log`).Scan(&head); err != nil {
		return 0, fmt.Errorf("log head: %w", err)
	}
	return head, nil
}

// AtPositions returns the events at positions, by position; a position that holds none is left
// out.
func (l *Log) AtPositions(ctx context.Context, positions []int64) (map[int64]Recorded, error) {
	recs, err := l.loadWhere(ctx, "positions", `WHERE global_position = ANY($1)`, positions)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Recorded, len(recs))
	for _, r := range recs {
		out[r.Position] = r
	}
	return out, nil
}

// encodeData encodes an event's data without escaping <, > and & as \u003c and the like, which
// json.Marshal does for JSON bound for HTML pages: the log is not one, PostgreSQL reads both
// spellings the same, and an HTML email's templates and rendering would grow by a fifth.
func encodeData(e Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Folded is a notification's stream read in a pgx batch (QueueNotificationNow), filled in once
// the batch has run: the fold and the database's clock, read with it.
type Folded struct {
	Notification herald.Notification
	Now          time.Time
}

// QueueNotificationNow queues, in b, NotificationNow's read of stream. Its result is in the
// Folded it returns once b has run; a stream with no notification fails b with ENOTFOUND.
func (l *Log) QueueNotificationNow(b *pgx.Batch, stream string) *Folded {
	f := &Folded{}
	b.Queue(notificationNowSQL, stream).Query(func(rows pgx.Rows) error {
		n, _, now, err := foldNow(rows, stream)
		f.Notification, f.Now = n, now
		return err
	})
	return f
}

// QueueAppendAll queues, in b, Append's insert of evs after version expected, and returns them as
// they will be recorded: their positions and times are filled in when b has run. A stream at
// another version fails b with ECONFLICT (ErrConflict), and inserts none of them.
func (l *Log) QueueAppendAll(b *pgx.Batch, stream string, expected int64, md Metadata, evs ...Event) ([]Recorded, error) {
	if len(evs) == 1 {
		// The common case, one event, without the arrays a batch of them needs.
		out := make([]Recorded, 1)
		if err := queueAppendOne(b, stream, expected, md, evs[0], &out[0]); err != nil {
			return nil, err
		}
		return out, nil
	}
	meta, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("append %s v%d: metadata: %w", stream, expected+1, err)
	}
	ab, err := newAppendBatch(stream, expected, md, evs)
	if err != nil {
		return nil, err
	}
	b.Queue(appendSQL, stream, expected, meta, ab.ids, ab.versions, ab.types, ab.data).Query(func(rows pgx.Rows) error {
		n, err := ab.scan(rows, stream, expected)
		if err != nil {
			return err
		}
		if n == 0 {
			return conflict(stream, expected)
		}
		return nil
	})
	return ab.out, nil
}
