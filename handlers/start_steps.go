package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/suppressions"
)

// Conns lends the connections of a pool: a *pgxpool.Pool.
type Conns interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// BatchStore is a Store that can also queue its read and its append in a pgx batch (see
// events.Log).
type BatchStore interface {
	// QueueNotificationNow queues NotificationNow's read; ENOTFOUND fails the batch.
	QueueNotificationNow(b *pgx.Batch, stream string) *events.Folded
	// QueueAppendAll queues Append's insert; ECONFLICT wrapping events.ErrConflict fails the
	// batch when the stream moved on.
	QueueAppendAll(b *pgx.Batch, stream string, expected int64, md events.Metadata, evs ...events.Event) ([]events.Recorded, error)
}

// BatchSuppressions is a suppression list that can also queue its lookup in a pgx batch (see
// suppressions.Store).
type BatchSuppressions interface {
	QueueLookup(b *pgx.Batch, channel herald.Channel, recipient string) *suppressions.Found
}

var (
	_ BatchStore        = (*events.Log)(nil)
	_ BatchSuppressions = (*suppressions.Store)(nil)
)

// WithConns returns a copy of d that starts each attempt in one transaction on one of conns'
// connections: the read of the stream, the suppression lookup and the append of
// NotificationProcessing commit once instead of three times, with no more round trips (BEGIN
// travels with the read, COMMIT with the append). It applies when d's store is a BatchStore and
// its suppression list, if it has one, a BatchSuppressions; otherwise each step commits alone.
func (d *Deliverer) WithConns(conns Conns) *Deliverer {
	c := *d
	c.conns = conns
	return &c
}

// startSteps are the reads and the write that start an attempt (Deliverer.start), in order:
// read, lookup (none, once, or again after a wait for the rate limit), append; end, always, last.
type startSteps interface {
	// begin makes the next step open the transaction that append commits, if none is open:
	// steps from then on see and write in one transaction.
	begin()
	// read folds the notification's stream, with the database's clock read by the same statement.
	read(ctx context.Context, stream string) (herald.Notification, time.Time, error)
	// lookup asks the suppression list, if there is one, about n's recipient; its errors say
	// that they come from the list.
	lookup(ctx context.Context, n herald.Notification) (suppressions.Suppression, bool, error)
	// append appends evs after version expected of stream, and commits.
	append(ctx context.Context, stream string, expected int64, md events.Metadata, evs []events.Event) ([]events.Recorded, error)
	// end rolls back what append did not commit and gives back the connection. It is called
	// before any other work that needs one of the pool's connections, so that a full pool
	// cannot wait for itself.
	end(ctx context.Context)
}

// steps returns how d's next start talks to PostgreSQL.
func (d *Deliverer) steps() startSteps {
	store, ok := d.store.(BatchStore)
	list, ok2 := d.suppressions.(BatchSuppressions)
	if d.conns == nil || !ok || (d.suppressions != nil && !ok2) {
		return autocommitSteps{d: d}
	}
	return &txSteps{conns: d.conns, store: store, list: list}
}

// autocommitSteps run each step as a statement of its own, committed alone.
type autocommitSteps struct{ d *Deliverer }

func (s autocommitSteps) begin() {}

func (s autocommitSteps) read(ctx context.Context, stream string) (herald.Notification, time.Time, error) {
	return s.d.store.NotificationNow(ctx, stream)
}

func (s autocommitSteps) lookup(ctx context.Context, n herald.Notification) (suppressions.Suppression, bool, error) {
	return s.d.suppressed(ctx, n)
}

func (s autocommitSteps) append(ctx context.Context, stream string, expected int64, md events.Metadata, evs []events.Event) ([]events.Recorded, error) {
	return s.d.store.Append(ctx, stream, expected, md, evs...)
}

func (s autocommitSteps) end(context.Context) {}

// txSteps run the steps from begin on as one transaction on one connection, held from the step
// that opens it to the append that commits it. Before begin, each step is a batch of its own on
// whichever connection the pool lends. The transaction is READ COMMITTED, as autocommit is: each
// statement sees what committed before it, so the lookup sees a suppression added since the
// read, and the append's version check is what settles a race with another worker.
type txSteps struct {
	conns Conns
	store BatchStore
	list  BatchSuppressions // nil: no suppression list
	conn  *pgxpool.Conn     // held while the transaction is open
	// opening: the next step sends BEGIN; open: BEGIN was sent and nothing committed yet.
	opening, open bool
}

func (t *txSteps) begin() {
	if !t.open {
		t.opening = true
	}
}

func (t *txSteps) read(ctx context.Context, stream string) (herald.Notification, time.Time, error) {
	b := t.batch()
	f := t.store.QueueNotificationNow(b, stream)
	if err := t.send(ctx, b); err != nil {
		return herald.Notification{}, time.Time{}, err
	}
	return f.Notification, f.Now, nil
}

func (t *txSteps) lookup(ctx context.Context, n herald.Notification) (suppressions.Suppression, bool, error) {
	if t.list == nil {
		return suppressions.Suppression{}, false, nil
	}
	b := t.batch()
	f := t.list.QueueLookup(b, n.Channel, n.Recipient)
	if err := t.send(ctx, b); err != nil {
		return suppressions.Suppression{}, false, fmt.Errorf("ask the suppression list: %w", err)
	}
	return f.Suppression, f.Holds, nil
}

func (t *txSteps) append(ctx context.Context, stream string, expected int64, md events.Metadata, evs []events.Event) ([]events.Recorded, error) {
	// Nothing follows the append: a transaction that no step opened yet would hold the append
	// alone, which the batch's own implicit transaction does.
	t.opening = false
	b := &pgx.Batch{}
	recs, err := t.store.QueueAppendAll(b, stream, expected, md, evs...)
	if err != nil {
		return nil, err
	}
	if t.open {
		// A conflict inserts nothing and fails no statement: the COMMIT ends a transaction that
		// wrote nothing. A failed insert skips it, and end rolls back.
		b.Queue("COMMIT")
	}
	if err := t.send(ctx, b); err != nil {
		return nil, err
	}
	return recs, nil
}

// batch is a step's batch: it opens the transaction when begin asked for it.
func (t *txSteps) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if t.opening {
		b.Queue("BEGIN")
		t.opening, t.open = false, true
	}
	return b
}

// send sends b on the transaction's connection when one is open, and gives the connection back
// when none is left open.
func (t *txSteps) send(ctx context.Context, b *pgx.Batch) error {
	if t.conn == nil {
		conn, err := t.conns.Acquire(ctx)
		if err != nil {
			t.open = false
			return err
		}
		t.conn = conn
	}
	err := t.conn.SendBatch(ctx, b).Close()
	if t.conn.Conn().PgConn().TxStatus() == 'I' {
		t.open = false
		t.conn.Release()
		t.conn = nil
	}
	return err
}

func (t *txSteps) end(ctx context.Context) {
	t.opening = false
	if t.conn == nil {
		return
	}
	if t.conn.Conn().PgConn().TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		// The pool closes a connection it gets back inside a transaction: a failed rollback
		// costs a connection, nothing else.
		_, _ = t.conn.Exec(ctx, "ROLLBACK")
		cancel()
	}
	t.open = false
	t.conn.Release()
	t.conn = nil
}
