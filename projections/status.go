package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Status maintains notification_status: one row per notification, folded with events.Evolve.
type Status struct{}

func (Status) Name() string { return "notification_status" }

const statusColumns = `notification_id::text, channel, recipient, status, attempts, round_start, attempt_open,
	attempt_started_at, last_error, provider, provider_message_id, version, position,
	created_at, updated_at`

func scanStatus(row pgx.Row) (herald.Notification, error) {
	var (
		n       herald.Notification
		started *time.Time
	)
	err := row.Scan(&n.ID, &n.Channel, &n.Recipient, &n.Status, &n.Attempts, &n.RoundStart, &n.AttemptOpen,
		&started, &n.LastError, &n.Provider, &n.ProviderMessageID, &n.Version, &n.Position,
		&n.CreatedAt, &n.UpdatedAt)
	if started != nil {
		n.AttemptStartedAt = *started
	}
	return n, err
}

// Apply folds r into the notification's row. The row's version is the guard: an event at or
// below it has been applied already.
func (Status) Apply(ctx context.Context, tx pgx.Tx, r events.Recorded) error {
	n, err := scanStatus(tx.QueryRow(ctx,
		`SELECT `+statusColumns+` FROM notification_status WHERE notification_id = $1 FOR UPDATE`, r.StreamID))
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("status of %s: %w", r.StreamID, err)
	}
	if n.Version >= r.Version {
		return nil
	}
	e, err := r.Event()
	if err != nil {
		return fmt.Errorf("status of %s: %w", r.StreamID, err)
	}
	n = events.Evolve(n, r, e)
	var started any
	if !n.AttemptStartedAt.IsZero() {
		started = n.AttemptStartedAt
	}
	_, err = tx.Exec(ctx, `
INSERT INTO notification_status (notification_id, channel, recipient, status, attempts, attempt_open,
	attempt_started_at, last_error, provider, provider_message_id, version, position, created_at, updated_at,
	round_start)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (notification_id) DO UPDATE SET
	channel = excluded.channel, recipient = excluded.recipient, status = excluded.status,
	attempts = excluded.attempts, round_start = excluded.round_start, attempt_open = excluded.attempt_open,
	attempt_started_at = excluded.attempt_started_at, last_error = excluded.last_error,
	provider = excluded.provider, provider_message_id = excluded.provider_message_id,
	version = excluded.version, position = excluded.position, updated_at = excluded.updated_at
WHERE notification_status.version < excluded.version`,
		r.StreamID, n.Channel, n.Recipient, n.Status, n.Attempts, n.AttemptOpen, started, n.LastError,
		n.Provider, n.ProviderMessageID, n.Version, n.Position, n.CreatedAt, n.UpdatedAt, n.RoundStart)
	if err != nil {
		return fmt.Errorf("status of %s v%d: %w", r.StreamID, r.Version, err)
	}
	return nil
}
