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
func (r *Reader) Throughput(ctx context.Context, minutes int) ([]Minute, error) {
	sent, failed := events.TypeNotificationSent, events.TypeNotificationFailed
	rows, err := r.db.Query(ctx, `
WITH span AS (
	SELECT generate_series(date_trunc('minute', now()) - ($1 - 1) * interval '1 minute',
		date_trunc('minute', now()), interval '1 minute') AS minute
)
SELECT span.minute,
	count(*) FILTER (WHERE h.event_type = $2),
	count(*) FILTER (WHERE h.event_type = $3)
FROM span LEFT JOIN notification_history h
	ON h.occurred_at >= span.minute AND h.occurred_at < span.minute + interval '1 minute'
	AND h.event_type IN ($2, $3)
GROUP BY span.minute ORDER BY span.minute`, minutes, sent, failed)
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
