package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
)

// Rebuilder builds read models afresh from the log, beside the live ones, and swaps them in
// while the projector and the API keep running.
//
// A rebuild creates <table>_rebuild like the live table, applies the whole log to it in batches
// (each its own short transaction), and then, in one transaction: takes the projection's offset
// row — which pauses the live projector between two of its batches — brings both tables to the
// same point of the log, compares them, and (unless it is a dry run) drops the live table, renames
// the rebuilt one and its indexes into its place, and sets the offset to where the rebuilt table
// stands. The live projector resumes from that offset on the new table: nothing is applied twice
// or skipped. API reads wait only for the drop and renames, milliseconds. Any failure before the
// commit leaves the live table as it was.
type Rebuilder struct {
	db     *pgxpool.Pool
	log    *events.Log
	batch  int
	logger *slog.Logger
}

// NewRebuilder returns a rebuilder over the database pool connects to, reading batch events at
// a time.
func NewRebuilder(pool *pgxpool.Pool, log *events.Log, batch int, logger *slog.Logger) *Rebuilder {
	if batch <= 0 {
		batch = 5000
	}
	return &Rebuilder{db: pool, log: log, batch: batch, logger: logger}
}

// Progress is how far a rebuild has come.
type Progress struct {
	Projection string
	// Applied counts the events applied to the rebuilt table so far; Position is the last one's.
	Applied  int64
	Position int64
	// Head is the newest position in the log when the rebuild started (it grows meanwhile).
	Head    int64
	Elapsed time.Duration
}

// RebuildOptions tune one rebuild.
type RebuildOptions struct {
	// DryRun builds and compares, but does not swap: the live table stays.
	DryRun bool
	// Progress, if set, is called after each batch.
	Progress func(Progress)
}

// Diff compares a rebuilt table with the live one at the same point of the log.
type Diff struct {
	// Missing rows are in the rebuilt table and not in the live one; Extra the reverse;
	// Different rows have the same key and other values.
	Missing, Extra, Different int64
	// Samples name a few of the rows in each group, by key.
	MissingKeys, ExtraKeys, DifferentKeys []string
}

// Equal reports whether the two tables held the same rows.
func (d Diff) Equal() bool { return d.Missing == 0 && d.Extra == 0 && d.Different == 0 }

// Report says what a rebuild did.
type Report struct {
	Projection string
	Events     int64
	Rows       int64
	Position   int64
	Duration   time.Duration
	// Compared says whether Diff was computed: the live table is compared only when it is
	// within MaxCompareLag events of the rebuilt one, so that the live projector is not held
	// paused while the comparison first catches it up. LiveLag is how far behind it was.
	Compared bool
	LiveLag  int64
	// LiveGap, when the live table met a gap in a stream's versions on its way to the rebuilt
	// one's position (see GapError), says where; the two are not compared then.
	LiveGap string
	Diff    Diff
	Swapped bool
}

// MaxCompareLag bounds how many events the live table may be behind for the two to be compared.
const MaxCompareLag = 50_000

// ErrRebuildRunning is returned when another rebuild of the same projection holds its lock.
var ErrRebuildRunning = errors.New("another rebuild of this projection is running")

// Rebuild rebuilds p from the start of the log. On error the live table is untouched and the
// rebuilt one is dropped.
func (b *Rebuilder) Rebuild(ctx context.Context, p Rebuildable, opts RebuildOptions) (Report, error) {
	start := time.Now()
	live := p.TableName()
	shadow := live + "_rebuild"
	report := Report{Projection: p.Name()}

	// One rebuild per projection at a time, held on a connection of its own for the duration.
	lockConn, err := b.db.Acquire(ctx)
	if err != nil {
		return report, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	defer lockConn.Release()
	var locked bool
	if err := lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey(p.Name())).Scan(&locked); err != nil {
		return report, fmt.Errorf("rebuild %s: lock: %w", p.Name(), err)
	}
	if !locked {
		return report, fmt.Errorf("rebuild %s: %w", p.Name(), ErrRebuildRunning)
	}
	defer func() {
		_, _ = lockConn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey(p.Name()))
	}()

	// The tables' DDL runs in functions that lend the owner's rights for exactly this
	// (migrations/00007_rebuild_access.sql): Herald's services do not own the read models.
	if _, err := b.db.Exec(ctx, `SELECT create_rebuild_table($1)`, live); err != nil {
		return report, fmt.Errorf("rebuild %s: create %s: %w", p.Name(), shadow, err)
	}
	swapped := false
	defer func() {
		if !swapped {
			if _, err := b.db.Exec(context.WithoutCancel(ctx), `SELECT drop_rebuild_table($1)`, live); err != nil {
				b.logger.Warn("could not drop the rebuilt table", "table", shadow, "error", err)
			}
		}
	}()

	head, err := b.log.Head(ctx)
	if err != nil {
		return report, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	into := p.Into(shadow)
	var cursor events.Cursor
	for {
		var n int
		err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
			recs, next, err := b.log.ReadAfter(ctx, tx, cursor, b.batch)
			if err != nil {
				return err
			}
			if err := into.ApplyBatch(ctx, tx, recs); err != nil {
				return err
			}
			n, cursor = len(recs), next
			return nil
		})
		if err != nil {
			return report, fmt.Errorf("rebuild %s at position %d: %w", p.Name(), cursor.Position, err)
		}
		report.Events += int64(n)
		if opts.Progress != nil {
			opts.Progress(Progress{Projection: p.Name(), Applied: report.Events, Position: cursor.Position, Head: head, Elapsed: time.Since(start)})
		}
		if n < b.batch {
			break // caught up with what is visible; the last stretch is done under the lock
		}
	}

	err = pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		// Pause the live projector: it takes this row at the start of each batch.
		liveAt, err := b.pauseProjector(ctx, tx, p.Name())
		if err != nil {
			return err
		}
		// Bring the rebuilt table to the head of the log...
		n, at, err := b.catchUp(ctx, tx, into, cursor, nil)
		if err != nil {
			return err
		}
		report.Events += int64(n)
		cursor = at
		// ...and the live one to the same point (no further: writers go on appending), so the
		// two are compared like for like. In a dry run this is rolled back with the rest; in a
		// swap the live table is dropped anyway.
		if report.LiveLag, err = b.log.Remaining(ctx, liveAt); err != nil {
			return err
		}
		if report.LiveLag <= MaxCompareLag {
			_, _, err := b.catchUp(ctx, tx, p, liveAt, &cursor)
			var gap *GapError
			switch {
			case errors.As(err, &gap):
				// The live table lost events: that is what this rebuild repairs. It cannot be
				// brought to the cursor, so it is not compared.
				report.LiveGap = gap.Error()
			case err != nil:
				return err
			default:
				if report.Diff, err = compare(ctx, tx, live, shadow, p.Key()); err != nil {
					return err
				}
				report.Compared = true
			}
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+shadow).Scan(&report.Rows); err != nil {
			return fmt.Errorf("count %s: %w", shadow, err)
		}
		if opts.DryRun {
			return errDryRun
		}
		if _, err := tx.Exec(ctx, `SELECT swap_rebuild_table($1)`, live); err != nil {
			return fmt.Errorf("swap %s into %s: %w", shadow, live, err)
		}
		return b.log.SetConsumerCursor(ctx, tx, p.Name(), cursor)
	})
	report.Position = cursor.Position
	report.Duration = time.Since(start)
	switch {
	case errors.Is(err, errDryRun):
		return report, nil
	case err != nil:
		return report, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	swapped = true
	report.Swapped = true
	return report, nil
}

var errDryRun = errors.New("dry run: rolled back")

// pauseProjector locks the projection's offset row, creating it if the projector never ran, and
// returns where the live projector stands.
func (b *Rebuilder) pauseProjector(ctx context.Context, tx pgx.Tx, group string) (events.Cursor, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO event_log_offsets (consumer_group, offset_acked, last_processed_transaction_id)
		VALUES ($1, 0, '0') ON CONFLICT DO NOTHING`, group); err != nil {
		return events.Cursor{}, fmt.Errorf("offset of %s: %w", group, err)
	}
	return b.log.ConsumerCursor(ctx, tx, group, true)
}

// catchUp applies to p every event after from that is visible, up to upTo if it is set, in
// batches, inside tx.
func (b *Rebuilder) catchUp(ctx context.Context, tx pgx.Tx, p Rebuildable, from events.Cursor, upTo *events.Cursor) (int, events.Cursor, error) {
	total := 0
	for {
		var (
			recs []events.Recorded
			next events.Cursor
			err  error
		)
		if upTo != nil {
			recs, next, err = b.log.ReadBetween(ctx, tx, from, *upTo, b.batch)
		} else {
			recs, next, err = b.log.ReadAfter(ctx, tx, from, b.batch)
		}
		if err != nil {
			return total, from, err
		}
		if err := p.ApplyBatch(ctx, tx, recs); err != nil {
			return total, from, err
		}
		total += len(recs)
		from = next
		if len(recs) < b.batch {
			return total, from, nil
		}
	}
}

// compare counts the rows that differ between two tables of the same shape, by key.
func compare(ctx context.Context, tx pgx.Tx, live, shadow string, key []string) (Diff, error) {
	var d Diff
	on := make([]string, len(key))
	keyText := make([]string, len(key))
	for i, k := range key {
		on[i] = fmt.Sprintf("l.%s = s.%s", k, k)
		keyText[i] = fmt.Sprintf("coalesce(l.%s, s.%s)::text", k, k)
	}
	q := fmt.Sprintf(`
SELECT CASE WHEN l.%[1]s IS NULL THEN 'missing' WHEN s.%[1]s IS NULL THEN 'extra' ELSE 'different' END, %[2]s
FROM %[3]s l FULL OUTER JOIN %[4]s s ON %[5]s
WHERE l.%[1]s IS NULL OR s.%[1]s IS NULL OR ROW(l.*) IS DISTINCT FROM ROW(s.*)`,
		key[0], strings.Join(keyText, ` || '/' || `), live, shadow, strings.Join(on, " AND "))
	rows, err := tx.Query(ctx, q)
	if err != nil {
		return d, fmt.Errorf("compare %s with %s: %w", live, shadow, err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, k string
		if err := rows.Scan(&kind, &k); err != nil {
			return d, fmt.Errorf("compare %s with %s: %w", live, shadow, err)
		}
		switch kind {
		case "missing":
			d.Missing++
			d.MissingKeys = sample(d.MissingKeys, k)
		case "extra":
			d.Extra++
			d.ExtraKeys = sample(d.ExtraKeys, k)
		default:
			d.Different++
			d.DifferentKeys = sample(d.DifferentKeys, k)
		}
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("compare %s with %s: %w", live, shadow, err)
	}
	return d, nil
}

func sample(keys []string, k string) []string {
	if len(keys) < 5 {
		return append(keys, k)
	}
	return keys
}

func lockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("herald rebuild " + name))
	return int64(h.Sum64() >> 1)
}

// ProjectionStatus is where a projection stands in the log.
type ProjectionStatus struct {
	Name     string
	Position int64
	Head     int64
	// Lag counts the events the projection has yet to apply.
	Lag int64
	// Stopped, when the projection stopped at a gap in a stream's versions (see GapError), says
	// where, and StoppedAt when; a rebuild clears it.
	Stopped   string
	StoppedAt time.Time
}

// Statuses reports where every projection stands.
func Statuses(ctx context.Context, log *events.Log) ([]ProjectionStatus, error) {
	head, err := log.Head(ctx)
	if err != nil {
		return nil, err
	}
	var out []ProjectionStatus
	for _, p := range All() {
		c, err := log.ConsumerCursor(ctx, nil, p.Name(), false)
		if err != nil {
			return nil, err
		}
		lag, err := log.Remaining(ctx, c)
		if err != nil {
			return nil, err
		}
		stopped, at, err := log.ConsumerStop(ctx, p.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, ProjectionStatus{Name: p.Name(), Position: c.Position, Head: head, Lag: lag, Stopped: stopped, StoppedAt: at})
	}
	return out, nil
}
