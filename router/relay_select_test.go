package router_test

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// outboxRow is an outbox row's place in the order the relay forwards in.
type outboxRow struct {
	Tx     uint64
	Offset int64
}

func (r outboxRow) after(o outboxRow) bool {
	return r.Tx > o.Tx || r.Tx == o.Tx && r.Offset > o.Offset
}

// putOutboxRows inserts n outbox rows in the transaction tx and returns them in offset order.
func putOutboxRows(t *testing.T, tx pgx.Tx, n int) []outboxRow {
	t.Helper()
	rows, err := tx.Query(context.Background(), `
INSERT INTO outbox (uuid, payload, metadata, transaction_id)
SELECT gen_random_uuid()::text, '{"destination_topic": "email_notifications"}', '{}', pg_current_xact_id()
FROM generate_series(1, $1::int)
RETURNING transaction_id, "offset"`, n)
	if err != nil {
		t.Fatalf("put %d rows in the outbox: %v", n, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatalf("put %d rows in the outbox: %v", n, err)
	}
	slices.SortFunc(got, func(a, b outboxRow) int { return int(a.Offset - b.Offset) })
	return got
}

// putOutboxTx inserts n outbox rows in a transaction of their own.
func putOutboxTx(t *testing.T, pool *pgxpool.Pool, n int) []outboxRow {
	t.Helper()
	var rows []outboxRow
	if err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		rows = putOutboxRows(t, tx, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitOutboxVisible waits until every outbox row lies below the snapshot bound the relay reads
// under (transactions still open anywhere on the server hold it back).
func waitOutboxVisible(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	heraldtest.Eventually(t, 30*time.Second, "every outbox row below the snapshot's xmin", func() (bool, error) {
		var hidden int
		err := pool.QueryRow(context.Background(),
			`SELECT count(*) FROM outbox WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())`).Scan(&hidden)
		return err == nil && hidden == 0, fmt.Errorf("%d rows above it, error %v", hidden, err)
	})
}

// setRelayOffset sets group's offset to row.
func setRelayOffset(t *testing.T, db pgx.Tx, group string, row outboxRow) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `
INSERT INTO outbox_offsets (consumer_group, offset_acked, last_processed_transaction_id) VALUES ($1, $2, $3::text::xid8)
ON CONFLICT (consumer_group) DO UPDATE SET offset_acked = excluded.offset_acked,
	last_processed_transaction_id = excluded.last_processed_transaction_id`, group, row.Offset, fmt.Sprint(row.Tx)); err != nil {
		t.Fatalf("set the offset of %s: %v", group, err)
	}
}

// selectOutboxBatch runs the relay's batch select q in tx and returns the rows' places.
func selectOutboxBatch(ctx context.Context, tx pgx.Tx, q string, args []any) ([]outboxRow, error) {
	res, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(res, func(r pgx.CollectableRow) (outboxRow, error) {
		var (
			row               outboxRow
			uuid              string
			payload, metadata []byte
		)
		err := r.Scan(&row.Offset, &row.Tx, &uuid, &payload, &metadata)
		return row, err
	})
}

// explainedRows sums, over the plan nodes that read the table outbox, the rows they returned and
// the rows they read and threw away.
func explainedRows(t *testing.T, plan []byte) (read float64) {
	t.Helper()
	type node struct {
		Relation         string  `json:"Relation Name"`
		Rows             float64 `json:"Actual Rows"`
		Loops            float64 `json:"Actual Loops"`
		RemovedByFilter  float64 `json:"Rows Removed by Filter"`
		RemovedByRecheck float64 `json:"Rows Removed by Index Recheck"`
		Plans            []json.RawMessage
	}
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var n node
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatalf("read the plan: %v", err)
		}
		if n.Relation == "outbox" {
			read += n.Rows*n.Loops + n.RemovedByFilter + n.RemovedByRecheck
		}
		for _, p := range n.Plans {
			walk(p)
		}
	}
	var plans []struct{ Plan json.RawMessage }
	if err := json.Unmarshal(plan, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("read the plan: %v (%d plans)", err, len(plans))
	}
	walk(plans[0].Plan)
	return read
}

// A partition's batch is read by walking the outbox's key from the partition's offset and
// stops at the batch's end: the rows it reads are a few batches' worth for each partition,
// however many commands wait behind them; with 4 partitions and with the default 8, and with
// costs under which the planner, left alone, would read the whole backlog.
func TestRelaySelectReadsABatchNotTheBacklog(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	const (
		batch, k = 20, 1
		backlog  = 20_000
	)
	forwarded := putOutboxTx(t, db.Pool, 1_000)
	for range 20 {
		putOutboxTx(t, db.Pool, backlog/20)
	}
	// Every partition has forwarded half its first transaction's rows: the rest of it waits, and
	// the backlog behind it.
	offset := forwarded[len(forwarded)/2]
	waiting := backlog + len(forwarded) - len(forwarded)/2 - 1
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		for _, partitions := range []int{4, 8} {
			setRelayOffset(t, tx, fmt.Sprintf("relay-%d-of-%d", k, partitions), offset)
		}
		_, err := tx.Exec(ctx, `ANALYZE outbox`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitOutboxVisible(t, db.Pool)

	for _, partitions := range []int{4, 8} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			q, args, err := router.OutboxSelectQuery(batch, partitions, k, fmt.Sprintf("relay-%d-of-%d", k, partitions))
			if err != nil {
				t.Fatal(err)
			}
			// The relay's own transaction, begun as its batches are.
			tx, err := router.BeginOutboxWalk(ctx, db.Pool, &stdsql.TxOptions{Isolation: stdsql.LevelRepeatableRead})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			// Costs that favour reading everything at once, as the estimates of a busy outbox did
			// (a bitmap of the whole backlog, sorted): the relay's own settings must leave the
			// planner the ordered walk whatever its estimates.
			if _, err := tx.ExecContext(ctx, "SET LOCAL random_page_cost = 40"); err != nil {
				t.Fatal(err)
			}
			rows, err := tx.QueryContext(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+q, args...)
			if err != nil {
				t.Fatalf("explain the batch select: %v", err)
			}
			var plan []byte
			for rows.Next() {
				if err := rows.Scan(&plan); err != nil {
					t.Fatal(err)
				}
			}
			if err := rowsErr(rows); err != nil {
				t.Fatalf("explain the batch select: %v", err)
			}
			read := explainedRows(t, plan)

			if limit := float64(2 * batch * partitions); read > limit {
				t.Errorf("one batch of %d read %.0f outbox rows, more than %.0f, with %d rows waiting; plan:\n%s",
					batch, read, limit, waiting, plan)
			}
			t.Logf("one batch of %d, partition %d of %d, read %.0f outbox rows with %d waiting", batch, k, partitions, read, waiting)
		})
	}
}

// A partition with no offset row has forwarded nothing and is given nothing: the relay seeds
// its row before it starts. One whose offset_acked is NULL is given every row of the
// transactions after its recorded one, as the select before the index walk did.
func TestRelaySelectOfAGroupWithNoOffsetOrANullOne(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	const batch, partitions, k = 1_000, 4, 2

	putOutboxTx(t, db.Pool, 7)
	recorded := putOutboxTx(t, db.Pool, 9)
	var later []outboxRow
	for n := range 3 {
		later = append(later, putOutboxTx(t, db.Pool, 5+n)...)
	}
	waitOutboxVisible(t, db.Pool)
	var want []outboxRow
	for _, r := range later {
		if int(r.Offset%partitions) == k {
			want = append(want, r)
		}
	}

	read := func(t *testing.T, group string) []outboxRow {
		t.Helper()
		q, args, err := router.OutboxSelectQuery(batch, partitions, k, group)
		if err != nil {
			t.Fatal(err)
		}
		var rows []outboxRow
		if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			var err error
			rows, err = selectOutboxBatch(ctx, tx, q, args)
			return err
		}); err != nil {
			t.Fatalf("select a batch: %v", err)
		}
		return rows
	}

	t.Run("no row", func(t *testing.T) {
		if got := read(t, fmt.Sprintf("relay-%d-of-%d", k, partitions)); len(got) != 0 {
			t.Errorf("a group with no offset row got %d rows: %v", len(got), got)
		}
	})
	t.Run("NULL offset_acked", func(t *testing.T) {
		group := "relay-null-offset"
		if _, err := db.Pool.Exec(ctx, `
INSERT INTO outbox_offsets (consumer_group, offset_acked, last_processed_transaction_id) VALUES ($1, NULL, $2::text::xid8)`,
			group, fmt.Sprint(recorded[0].Tx)); err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Fatalf("no row of partition %d in the later transactions", k)
		}
		if diff := cmp.Diff(want, read(t, group)); diff != "" {
			t.Errorf("rows read with offset_acked NULL (-want +got):\n%s", diff)
		}
	})
}

// Read batch after batch as the subscriber does (the offset moving to each batch's last row),
// a partition gets every row of its own past its offset — the rest of the offset's transaction,
// then the later transactions — in (transaction_id, offset) order, none skipped, none twice,
// across batches that end inside a transaction and transactions whose offsets interleave.
func TestRelaySelectReadsEveryRowOnceInOrder(t *testing.T) {
	t.Parallel()
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()

	putOutboxTx(t, db.Pool, 3) // before the offset's transaction
	first := putOutboxTx(t, db.Pool, 9)
	// Two transactions whose offsets interleave: the one that started first has the lower
	// transaction id, and all its rows come before the other's.
	early, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Rollback(ctx) //nolint:errcheck // committed below
	putOutboxRows(t, early, 4)
	putOutboxTx(t, db.Pool, 5)
	putOutboxRows(t, early, 4)
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for n := range 6 {
		putOutboxTx(t, db.Pool, 1+n*3)
	}
	waitOutboxVisible(t, db.Pool)

	all, err := pgx.CollectRows(mustQuery(t, db.Pool, `SELECT transaction_id, "offset" FROM outbox`), pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatal(err)
	}
	start := first[4]
	for _, c := range []struct{ batch, partitions int }{{4, 1}, {4, 3}, {1, 2}, {50, 4}} {
		for k := range c.partitions {
			t.Run(fmt.Sprintf("batch=%d/partition=%d-of-%d", c.batch, k, c.partitions), func(t *testing.T) {
				group := fmt.Sprintf("relay-%d-of-%d", k, c.partitions)
				var want []outboxRow
				for _, r := range all {
					if r.after(start) && int(r.Offset%int64(c.partitions)) == k {
						want = append(want, r)
					}
				}
				if len(want) == 0 {
					t.Fatalf("no row of partition %d past %v", k, start)
				}
				slices.SortFunc(want, func(a, b outboxRow) int {
					if a.after(b) {
						return 1
					}
					return -1
				})
				q, args, err := router.OutboxSelectQuery(c.batch, c.partitions, k, group)
				if err != nil {
					t.Fatal(err)
				}
				if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
					setRelayOffset(t, tx, group, start)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				var got []outboxRow
				for batches := 0; ; batches++ {
					if batches > len(all) {
						t.Fatalf("still reading after %d batches: %v", batches, got)
					}
					var rows []outboxRow
					if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
						var err error
						rows, err = selectOutboxBatch(ctx, tx, q, args)
						if err != nil || len(rows) == 0 {
							return err
						}
						if len(rows) > c.batch {
							t.Fatalf("a batch of %d has %d rows", c.batch, len(rows))
						}
						setRelayOffset(t, tx, group, rows[len(rows)-1])
						return nil
					}); err != nil {
						t.Fatalf("select a batch: %v", err)
					}
					if len(rows) == 0 {
						break
					}
					got = append(got, rows...)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("rows read, in order (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func mustQuery(t *testing.T, pool *pgxpool.Pool, q string) pgx.Rows {
	t.Helper()
	rows, err := pool.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Each relay batch's transaction begins with its plan settings in the same round trip as its
// BEGIN, at the isolation level watermill-sql asks for, and the settings end with it.
func TestRelayBeginsItsBatchInOneRoundTrip(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	sent := &statementLog{} // projector_test.go
	cfg.ConnConfig.Tracer = sent
	// A server whose transactions are read only unless they say otherwise: the relay's say so.
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	before := sent.count(func(string) bool { return true })
	tx, err := router.BeginOutboxWalk(ctx, pool, &stdsql.TxOptions{Isolation: stdsql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	if n := sent.count(func(string) bool { return true }) - before; n != 1 {
		t.Errorf("beginning a batch's transaction took %d round trips, want 1", n)
	}
	show := func(q interface {
		QueryContext(context.Context, string, ...any) (sql.Rows, error)
	}) string {
		t.Helper()
		rows, err := q.QueryContext(ctx, `SELECT current_setting('enable_bitmapscan') || ' ' || current_setting('enable_seqscan')
			|| ' ' || current_setting('transaction_isolation') || ' ' || current_setting('transaction_read_only')`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var s string
		for rows.Next() {
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
		}
		if err := rowsErr(rows); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got, want := show(tx), "off off repeatable read off"; got != want {
		t.Errorf("in the batch's transaction: bitmap, seq scans, isolation and read only %q, want %q", got, want)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, want := show(sql.BeginnerFromPgx(pool)), "on on read committed on"; got != want {
		t.Errorf("after the batch's transaction, on its connection: %q, want %q", got, want)
	}
}

// rowsErr closes rows read through watermill-sql's interface, which has no Err, and returns
// the error that ended them, if the rows can say.
func rowsErr(rows sql.Rows) error {
	_ = rows.Close()
	if r, ok := rows.(interface{ Err() error }); ok {
		return r.Err()
	}
	return nil
}
