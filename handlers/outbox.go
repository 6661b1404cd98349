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
