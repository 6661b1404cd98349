package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/events"
)

// History maintains notification_history: one row per event, keyed by stream and version, so a
// second application of an event finds its row already there.
type History struct{}

func (History) Name() string { return "notification_history" }

func (History) Apply(ctx context.Context, tx pgx.Tx, r events.Recorded) error {
	e, err := r.Event()
	if err != nil {
		return fmt.Errorf("history of %s: %w", r.StreamID, err)
	}
	h := events.HistoryEntry(r, e)
	_, err = tx.Exec(ctx, `
INSERT INTO notification_history (notification_id, version, position, event_type, status, attempt,
	provider, provider_message_id, error, occurred_at, reason, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (notification_id, version) DO NOTHING`,
		r.StreamID, h.Version, h.Position, h.Event, h.Status, h.Attempt, h.Provider, h.ProviderMessageID,
		h.Error, h.At, h.Reason, h.Actor)
	if err != nil {
		return fmt.Errorf("history of %s v%d: %w", r.StreamID, r.Version, err)
	}
	return nil
}
