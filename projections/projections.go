// Package projections owns the read models derived from the event log — notification_status (where
// each notification is now) and notification_history (every step of its story) — and the queries
// the API answers from them. A projection applies each event exactly once, in log order, inside
// the transaction that also stores the projector's offset; applying an event again is a no-op, so
// a redelivered batch cannot count anything twice.
package projections

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/events"
)

// Projection maintains one read model from the log.
type Projection interface {
	// Name is the projection's stable name: its consumer group on the log. Renaming one makes it
	// start again from the beginning of the log.
	Name() string
	// Apply brings the read model up to date with r, inside tx. Applying an event that is already
	// reflected changes nothing.
	Apply(ctx context.Context, tx pgx.Tx, r events.Recorded) error
}

// All returns Herald's projections.
func All() []Projection { return []Projection{Status{}, History{}} }
