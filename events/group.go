package events

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Batcher sends pgx batches: a *pgxpool.Pool.
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Group appends the one-event appends of concurrent callers in shared commits (group commit):
// while one batch of appends is on its way to PostgreSQL, the appends that arrive wait, and go
// together in the next, one implicit transaction and one commit for all of them. Nothing waits
// for company: an append that finds no batch on its way goes at once.
//
// Each append keeps its own expected-version check, and a conflict fails only that append: the
// insert skips a taken version (ON CONFLICT DO NOTHING) instead of raising, so it aborts nobody
// else's. Should a shared batch fail all the same, each of its appends is made again alone, so
// that no append fails for another's fault.
type Group struct {
	db  Batcher
	log *Log

	mu       sync.Mutex
	queue    []*groupAppend
	inFlight int
}

// groupInFlight is how many batches a Group sends at once. With one, every append would wait for
// the batch before it, and the appends' own work (each insert's trigger) would run in one
// backend at a time; two keep most of the sharing and half of that wait.
const groupInFlight = 2

// NewGroup returns a group appending to log through db, both on the same database.
func NewGroup(db Batcher, log *Log) *Group { return &Group{db: db, log: log} }

// groupAppend is one caller's append, waiting in a Group.
type groupAppend struct {
	eventRow
	err error
	// lead is closed to make this append's caller send the next batch (handed says it was);
	// done when the append was sent.
	lead, done chan struct{}
	handed     bool
}

// appendOneGroupSQL is appendOneSQL whose insert of a version another writer took meanwhile
// inserts nothing instead of failing the transaction it shares.
const appendOneGroupSQL = `
INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
SELECT $3, $1, $2 + 1, $4, $5::jsonb, $6::jsonb
WHERE (SELECT coalesce(max(stream_version), 0) FROM event_log WHERE stream_id = $1) = $2
ON CONFLICT ON CONSTRAINT event_log_stream_version_key DO NOTHING
RETURNING global_position, occurred_at`

// Append is Log.Append, sharing its commit with the appends of other callers when they come
// together. Several events in one call are appended by the log alone.
func (g *Group) Append(ctx context.Context, stream string, expected int64, md Metadata, evs ...Event) ([]Recorded, error) {
	if len(evs) != 1 {
		return g.log.Append(ctx, stream, expected, md, evs...)
	}
	a, err := newGroupAppend(stream, expected, md, evs[0])
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.queue = append(g.queue, a)
	lead := g.inFlight < groupInFlight
	if lead {
		g.inFlight++
	}
	g.mu.Unlock()
	if !lead {
		// Wait without regard to ctx: the append may be on its way already, and its caller must
		// learn whether it was recorded. The batch is bounded by its sender's context.
		select {
		case <-a.done:
			return a.result()
		case <-a.lead:
		}
	}
	g.flush(ctx)
	<-a.done
	return a.result()
}

func newGroupAppend(stream string, expected int64, md Metadata, e Event) (*groupAppend, error) {
	row, err := encodeOne(stream, expected+1, md, e)
	if err != nil {
		return nil, err
	}
	return &groupAppend{eventRow: row, lead: make(chan struct{}), done: make(chan struct{})}, nil
}

func (a *groupAppend) result() ([]Recorded, error) {
	if a.err != nil {
		return nil, a.err
	}
	return []Recorded{a.rec}, nil
}

// flush sends every append waiting, as one batch, then hands its turn to the first append that
// arrived meanwhile, if any. The batch may be empty: another batch took the waiting appends,
// this caller's among them, since it was handed the turn.
func (g *Group) flush(ctx context.Context) {
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()

	if len(batch) > 0 {
		g.send(ctx, batch)
	}
	for _, a := range batch {
		close(a.done)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	for _, next := range g.queue {
		if !next.handed {
			next.handed = true
			close(next.lead)
			return
		}
	}
	g.inFlight--
}

// send appends batch in one implicit transaction, and each of its appends alone should that fail.
func (g *Group) send(ctx context.Context, batch []*groupAppend) {
	b := &pgx.Batch{}
	for _, a := range batch {
		b.Queue(appendOneGroupSQL, a.args()...).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&a.rec.Position, &a.rec.Time)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				// Its own conflict: the others' appends go on.
				a.err = conflict(a.rec.StreamID, a.expected())
			case err != nil:
				return appendError(a.rec.StreamID, a.expected(), err)
			}
			return nil
		})
	}
	err := g.db.SendBatch(ctx, b).Close()
	if err == nil {
		return
	}
	if len(batch) == 1 {
		batch[0].err = err
		return
	}
	// A batch that failed wrote none of its appends (an error rolls its implicit transaction
	// back): each is made again alone, so that only the one at fault fails.
	for _, a := range batch {
		var recs []Recorded
		recs, a.err = g.log.appendRow(ctx, a.eventRow)
		if a.err == nil {
			a.rec = recs[0]
		}
	}
}
