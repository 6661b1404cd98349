package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cursor is a place in the log's delivery order: events are delivered by the transaction that
// appended them, then by position. It is what a consumer's offset records.
type Cursor struct {
	TransactionID uint64
	Position      int64
}

// Before reports whether c comes before d in delivery order.
func (c Cursor) Before(d Cursor) bool {
	return c.TransactionID < d.TransactionID || c.TransactionID == d.TransactionID && c.Position < d.Position
}

// ReadAfter returns up to limit events after c, in delivery order, and the cursor of the last
// one (c itself when there is none). Like the projector, it reads only events whose transaction
// is older than every other transaction still open, so no event can later appear before the
// cursor. q may be the log's pool or a transaction.
func (l *Log) ReadAfter(ctx context.Context, q Querier, c Cursor, limit int) ([]Recorded, Cursor, error) {
	recs, _, next, err := l.read(ctx, q, c, nil, limit)
	return recs, next, err
}

// ReadAfterEach is ReadAfter that also returns each event's own cursor, for a consumer that may
// stop part way through what it read.
func (l *Log) ReadAfterEach(ctx context.Context, q Querier, c Cursor, limit int) ([]Recorded, []Cursor, error) {
	recs, cursors, _, err := l.read(ctx, q, c, nil, limit)
	return recs, cursors, err
}

// ReadBetween is ReadAfter that stops at upTo (included).
func (l *Log) ReadBetween(ctx context.Context, q Querier, c, upTo Cursor, limit int) ([]Recorded, Cursor, error) {
	recs, _, next, err := l.read(ctx, q, c, &upTo, limit)
	return recs, next, err
}

func (l *Log) read(ctx context.Context, q Querier, c Cursor, upTo *Cursor, limit int) ([]Recorded, []Cursor, Cursor, error) {
	if q == nil {
		q = l.db
	}
	args := []any{strconv.FormatUint(c.TransactionID, 10), c.Position, limit}
	bound := ""
	if upTo != nil {
		bound = `AND (e.transaction_id, e.global_position) <= ($4::text::xid8, $5)`
		args = append(args, strconv.FormatUint(upTo.TransactionID, 10), upTo.Position)
	}
	rows, err := q.Query(ctx, `
SELECT e.transaction_id::text AS xid, `+selectColumns+` FROM event_log e
WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2) `+bound+`
	AND e.transaction_id < (`+visibleBelow+`)
ORDER BY e.transaction_id, e.global_position
LIMIT $3`, args...)
	if err != nil {
		return nil, nil, c, fmt.Errorf("read log after %d/%d: %w", c.TransactionID, c.Position, err)
	}
	defer rows.Close()
	var (
		out     []Recorded
		cursors []Cursor
	)
	next := c
	for rows.Next() {
		var xid string
		r, err := scanRecorded(rowWithPrefix{rows, &xid})
		if err != nil {
			return nil, nil, c, fmt.Errorf("read log after %d/%d: %w", c.TransactionID, c.Position, err)
		}
		tx, err := strconv.ParseUint(xid, 10, 64)
		if err != nil {
			return nil, nil, c, fmt.Errorf("read log: transaction id %q: %w", xid, err)
		}
		out = append(out, r)
		next = Cursor{TransactionID: tx, Position: r.Position}
		cursors = append(cursors, next)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, c, fmt.Errorf("read log after %d/%d: %w", c.TransactionID, c.Position, err)
	}
	return out, cursors, next, nil
}

// visibleBelow is the transaction id below which every transaction has finished, leaving out the
// reader's own: like pg_snapshot_xmin, except that a reader that has written (and so has a
// transaction id) does not hold back its own view of the log.
const visibleBelow = `SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
	FROM pg_snapshot_xip(pg_current_snapshot()) AS x
	WHERE x <> coalesce(pg_current_xact_id_if_assigned(), '0'::xid8)`

// rowWithPrefix scans one extra leading column into prefix, then the rest as scanRecorded wants.
type rowWithPrefix struct {
	row    pgx.Row
	prefix any
}

func (r rowWithPrefix) Scan(dest ...any) error {
	return r.row.Scan(append([]any{r.prefix}, dest...)...)
}

// Remaining counts the events after c in delivery order, visible or not yet: a consumer's lag.
func (l *Log) Remaining(ctx context.Context, c Cursor) (int64, error) {
	var n int64
	err := l.db.QueryRow(ctx, `SELECT count(*) FROM event_log WHERE (transaction_id, global_position) > ($1::text::xid8, $2)`,
		strconv.FormatUint(c.TransactionID, 10), c.Position).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events after %d/%d: %w", c.TransactionID, c.Position, err)
	}
	return n, nil
}

// ConsumerCursor returns where consumer group stands in the log: the offset its last committed
// batch stored. A group that never consumed stands at the start.
func (l *Log) ConsumerCursor(ctx context.Context, q Querier, group string, forUpdate bool) (Cursor, error) {
	if q == nil {
		q = l.db
	}
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	var (
		c   Cursor
		xid string
	)
	err := q.QueryRow(ctx, `SELECT coalesce(offset_acked, 0), last_processed_transaction_id::text
		FROM event_log_offsets WHERE consumer_group = $1`+lock, group).Scan(&c.Position, &xid)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("offset of %s: %w", group, err)
	}
	if c.TransactionID, err = strconv.ParseUint(xid, 10, 64); err != nil {
		return Cursor{}, fmt.Errorf("offset of %s: transaction id %q: %w", group, xid, err)
	}
	return c, nil
}

// SetConsumerCursor stores c as consumer group's offset, creating the group if it is new, and
// clears any stop recorded for it: the group starts afresh from c.
func (l *Log) SetConsumerCursor(ctx context.Context, q Querier, group string, c Cursor) error {
	if q == nil {
		q = l.db
	}
	_, err := q.Exec(ctx, `INSERT INTO event_log_offsets (consumer_group, offset_acked, last_processed_transaction_id)
		VALUES ($1, $2, $3::text::xid8)
		ON CONFLICT (consumer_group) DO UPDATE SET offset_acked = excluded.offset_acked,
			last_processed_transaction_id = excluded.last_processed_transaction_id,
			stopped_reason = NULL, stopped_at = NULL`,
		group, c.Position, strconv.FormatUint(c.TransactionID, 10))
	if err != nil {
		return fmt.Errorf("set offset of %s: %w", group, err)
	}
	return nil
}

// StopConsumer records why consumer group stopped, or with reason "" that it runs again. q may
// be the log's pool (nil) or a transaction.
func (l *Log) StopConsumer(ctx context.Context, q Querier, group, reason string) error {
	if q == nil {
		q = l.db
	}
	var err error
	if reason == "" {
		_, err = q.Exec(ctx, `UPDATE event_log_offsets SET stopped_reason = NULL, stopped_at = NULL
			WHERE consumer_group = $1 AND stopped_reason IS NOT NULL`, group)
	} else {
		_, err = q.Exec(ctx, `UPDATE event_log_offsets SET stopped_reason = $2, stopped_at = now()
			WHERE consumer_group = $1`, group, reason)
	}
	if err != nil {
		return fmt.Errorf("record the stop of %s: %w", group, err)
	}
	return nil
}

// ConsumerStop returns why consumer group stopped and when, or "" if it has not.
func (l *Log) ConsumerStop(ctx context.Context, group string) (string, time.Time, error) {
	var (
		reason *string
		at     *time.Time
	)
	err := l.db.QueryRow(ctx, `SELECT stopped_reason, stopped_at FROM event_log_offsets WHERE consumer_group = $1`, group).Scan(&reason, &at)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && reason == nil {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("stop of %s: %w", group, err)
	}
	return *reason, *at, nil
}

// VisibleHead returns the cursor of the newest event a consumer reading now could be handed: a
// consumer that starts there is handed every event committed from then on, and none before. It
// is the zero cursor for an empty log. q may be the log's pool (nil) or a transaction that has
// not written yet.
func (l *Log) VisibleHead(ctx context.Context, q Querier) (Cursor, error) {
	if q == nil {
		q = l.db
	}
	var (
		c   Cursor
		xid string
	)
	err := q.QueryRow(ctx, `SELECT transaction_id::text, global_position FROM event_log
		WHERE transaction_id < (`+visibleBelow+`)
		ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&xid, &c.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("head of the log: %w", err)
	}
	if c.TransactionID, err = strconv.ParseUint(xid, 10, 64); err != nil {
		return Cursor{}, fmt.Errorf("head of the log: transaction id %q: %w", xid, err)
	}
	return c, nil
}
