package heraldtest

import (
	"context"
	"sync/atomic"

	"github.com/herald-notify/herald/events"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs statements: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx. It is events.Querier, the
// interface the code under test takes.
type Querier = events.Querier

// QueryCounter runs statements on a real database and counts them, so that a test can say what a
// path costs in queries.
type QueryCounter struct {
	db Querier
	n  atomic.Int64
}

var _ Querier = (*QueryCounter)(nil)

// CountQueries returns a counter over db.
func CountQueries(db Querier) *QueryCounter { return &QueryCounter{db: db} }

// Count returns how many statements ran through c.
func (c *QueryCounter) Count() int64 { return c.n.Load() }

// Exec counts the statement and runs it.
func (c *QueryCounter) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.n.Add(1)
	return c.db.Exec(ctx, sql, args...)
}

// Query counts the statement and runs it.
func (c *QueryCounter) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.n.Add(1)
	return c.db.Query(ctx, sql, args...)
}

// QueryRow counts the statement and runs it.
func (c *QueryCounter) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.n.Add(1)
	return c.db.QueryRow(ctx, sql, args...)
}
