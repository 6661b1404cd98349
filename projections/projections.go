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

// GapError says a projection met an event that does not follow the version its read model holds
// for the event's stream: version v+2 over v, or v>1 of a stream it has no row of. The log has
// no gaps (every append names the version it follows), so the read model has lost events, or its
// offset was moved past them; applying on would build a read model that is not a fold of the log.
// An event at or below the held version is a duplicate, and applying it changes nothing.
type GapError struct {
	Projection string
	Stream     string
	// Applied is the version the read model holds for the stream, 0 for none; Version and
	// Position are the event's.
	Applied, Version, Position int64
}

func (e *GapError) Error() string {
	if e.Applied == 0 {
		return fmt.Sprintf("%s: stream %s: event at position %d is version %d, but the read model has no earlier version of the stream",
			e.Projection, e.Stream, e.Position, e.Version)
	}
	return fmt.Sprintf("%s: stream %s: event at position %d is version %d, but the read model is at version %d",
		e.Projection, e.Stream, e.Position, e.Version, e.Applied)
}

// follows checks that r comes next after version applied of its stream: it returns false for a
// duplicate (already applied) and a *GapError for a gap.
func follows(projection string, applied int64, r events.Recorded) (bool, error) {
	switch {
	case r.Version <= applied:
		return false, nil
	case r.Version == applied+1:
		return true, nil
	}
	return false, &GapError{Projection: projection, Stream: r.StreamID, Applied: applied, Version: r.Version, Position: r.Position}
}
