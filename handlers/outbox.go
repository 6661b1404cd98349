package handlers

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/commands"
)

// Outbox stores a command inside a database transaction; a relay hands it to the workers once the
// transaction commits, so the command exists exactly when the event that caused it does.
type Outbox interface {
	Send(ctx context.Context, tx pgx.Tx, cmd commands.SendNotification) error
}

// BatchOutbox is an outbox that can also queue a command in a pgx batch (see router.Outbox).
type BatchOutbox interface {
	Queue(ctx context.Context, b *pgx.Batch, cmd commands.SendNotification) error
}

// Beginner starts database transactions: a *pgxpool.Pool.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// batcher sends pgx batches: a *pgxpool.Pool.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// OutboxWaker is an outbox that can tell the relay of this process that a transaction that
// stored commands through it has committed, so that the relay forwards them at once rather than
// at its next poll (see router.Outbox). Wake never blocks. A writer calls it after the commit,
// never before: the relay does not see uncommitted commands.
type OutboxWaker interface {
	Wake()
}

// wakeRelay wakes outbox's relay when outbox can; the relay's poll finds the commands otherwise.
func wakeRelay(outbox any) {
	if w, ok := outbox.(OutboxWaker); ok {
		w.Wake()
	}
}
