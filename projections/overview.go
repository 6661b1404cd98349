package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Count is how many notifications of one channel are in one status.
type Count struct {
	Channel herald.Channel
	Status  herald.Status
	N       int64
}

// Counts returns how many notifications the status read model holds, by channel and status.
// It counts every row: fine for an operator's overview, not for a hot path.
func (r *Reader) Counts(ctx context.Context) ([]Count, error) {
	rows, err := r.db.Query(ctx, `SELECT channel, status, count(*) FROM notification_status
		GROUP BY channel, status ORDER BY channel, status`)
	if err != nil {
		return nil, fmt.Errorf("count notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Count, error) {
		var c Count
		err := row.Scan(&c.Channel, &c.Status, &c.N)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count notifications: %w", err)
	}
	return out, nil
}

// Minute is how many notifications were sent and how many failed for good in one minute.
type Minute struct {
	At     time.Time
	Sent   int64
	Failed int64
}

// Throughput returns the last minutes, oldest first, each with the notifications the history
// read model shows sent and failed in it; every minute is there, counted 0 when nothing happened.
// It reads only the rows of those minutes, through notification_history_type_occurred_idx: the
// cost follows the last hour's traffic, not the history's length.
func (r *Reader) Throughput(ctx context.Context, minutes int) ([]Minute, error) {
	sent, failed := events.TypeNotificationSent, events.TypeNotificationFailed
	rows, err := r.db.Query(ctx, throughputQuery, minutes, sent, failed)
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Minute, error) {
		var m Minute
		err := row.Scan(&m.At, &m.Sent, &m.Failed)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	return out, nil
}

// throughputQuery counts $2 (sent) and $3 (failed) events per minute of the last $1 minutes. The
// range on occurred_at, with the event types, is what the index serves; generate_series then adds
// the minutes without any.
const throughputQuery = `
WITH counted AS (
	SELECT date_trunc('minute', occurred_at) AS minute,
		count(*) FILTER (WHERE event_type = $2) AS sent,
		count(*) FILTER (WHERE event_type = $3) AS failed
	FROM notification_history
	WHERE event_type IN ($2, $3)
		AND occurred_at >= date_trunc('minute', now()) - ($1 - 1) * interval '1 minute'
	GROUP BY 1
)
SELECT span.minute, coalesce(counted.sent, 0), coalesce(counted.failed, 0)
FROM generate_series(date_trunc('minute', now()) - ($1 - 1) * interval '1 minute',
	date_trunc('minute', now()), interval '1 minute') AS span(minute)
LEFT JOIN counted ON counted.minute = span.minute
ORDER BY span.minute`
