// Package projections owns the read models derived from the event log — notification_status (where
// each notification is now) and notification_history (every step of its story) — the queries the
// API answers from them, and their rebuild. A projection applies each event exactly once, in log
// order, inside the transaction that also stores the projector's offset; applying an event again
// is a no-op, so a redelivered batch cannot count anything twice.
package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/events"
)

// Projection maintains one read model from the log.
type Projection interface {
	// Name is the projection's stable name: its consumer group on the log, and its table.
	// Renaming one makes it start again from the beginning of the log.
	Name() string
	// Apply brings the read model up to date with r, inside tx. Applying an event that is already
	// reflected changes nothing.
	Apply(ctx context.Context, tx pgx.Tx, r events.Recorded) error
}

// Rebuildable is a projection that can be built afresh beside its live table and swapped in.
type Rebuildable interface {
	Projection
	// TableName is the table the projection writes to.
	TableName() string
	// Into returns the same projection writing to table.
	Into(table string) Rebuildable
	// ApplyBatch applies recs, in delivery order, as Apply would one by one.
	ApplyBatch(ctx context.Context, tx pgx.Tx, recs []events.Recorded) error
	// Key lists the columns that identify a row, to compare two builds.
	Key() []string
}

// All returns Herald's projections.
func All() []Rebuildable { return []Rebuildable{Status{}, History{}} }

// Named returns the projection called name.
func Named(name string) (Rebuildable, error) {
	var names []string
	for _, p := range All() {
		if p.Name() == name {
			return p, nil
		}
		names = append(names, p.Name())
	}
	return nil, fmt.Errorf("no projection %q: the projections are %v", name, names)
}
