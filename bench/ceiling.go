package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/postgres"
)

// The raw ceiling: what the same services do, through the same client libraries, for the
// simplest operations a notification is made of. This file holds the PostgreSQL half, and
// ceiling_amqp.go the RabbitMQ half; Herald's rate is set against both in the report.

// PGCeiling is what PostgreSQL did: single-row INSERTs, each its own transaction (one commit,
// one WAL flush), from Clients connections at once.
type PGCeiling struct {
	Clients    int     `json:"clients"`
	Inserts    int64   `json:"inserts"`
	Seconds    float64 `json:"seconds"`
	InsertsPer float64 `json:"inserts_per_sec"`
}

// ceilingTable is the scratch table of the PostgreSQL ceiling: a row about the size of an event.
const ceilingTable = "herald_bench_ceiling"

// ceilingRow is the ceiling's row: about the size of a NotificationQueued event's data.
const ceilingRow = `{"channel":"email","recipient":"b1@bench.herald.test","subject":"Bench","body":"Hello Ada, this is notification 1 of the bench.","variables":{"name":"Ada","n":1}}`

// measurePostgres runs single-row INSERT commits for d from each number of clients in turn, in
// a scratch table it drops afterwards.
func measurePostgres(ctx context.Context, pool *pgxpool.Pool, clients []int, d time.Duration) ([]PGCeiling, error) {
	if _, err := pool.Exec(ctx, `CREATE TABLE `+ceilingTable+` (
		id BIGSERIAL PRIMARY KEY, stream_id UUID NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), data JSONB NOT NULL)`); err != nil {
		return nil, fmt.Errorf("postgres ceiling: create table: %w", err)
	}
	defer func() { _, _ = pool.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+ceilingTable) }()
	var out []PGCeiling
	for _, c := range clients {
		p, err := insertFor(ctx, pool, c, d)
		if err != nil {
			return out, fmt.Errorf("postgres ceiling with %d clients: %w", c, err)
		}
		out = append(out, p)
	}
	return out, ctx.Err()
}

// insertFor runs single-row INSERT commits from clients connections at once for d.
func insertFor(ctx context.Context, pool *pgxpool.Pool, clients int, d time.Duration) (PGCeiling, error) {
	var (
		n     atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		first = errors.Join(first, err)
		errMu.Unlock()
	}
	start := time.Now()
	deadline := start.Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pool.Acquire(ctx)
			if err != nil {
				fail(err)
				return
			}
			defer conn.Release()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := conn.Exec(ctx, `INSERT INTO `+ceilingTable+` (stream_id, data) VALUES (gen_random_uuid(), $1)`, ceilingRow); err != nil {
					fail(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return PGCeiling{}, first
	}
	secs := time.Since(start).Seconds()
	return PGCeiling{Clients: clients, Inserts: n.Load(), Seconds: secs, InsertsPer: float64(n.Load()) / secs}, nil
}

// pgClientCounts are the client counts of the PostgreSQL ceiling: 1, 4, 16 and concurrency.
func pgClientCounts(concurrency int) []int {
	out := []int{1, 4, 16}
	if !slices.Contains(out, concurrency) {
		out = append(out, concurrency)
		slices.Sort(out)
	}
	return out
}

// newCeilingPool connects to the scratch database with enough connections for the clients.
func newCeilingPool(ctx context.Context, databaseURL string, clients []int) (*pgxpool.Pool, error) {
	return postgres.Connect(ctx, databaseURL, postgres.Options{MaxConns: slices.Max(clients), AppName: "herald-bench-ceiling"})
}
