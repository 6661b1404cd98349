package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/harness"
)

// What a notification costs the services is counted by the services themselves: the scratch
// database's pg_stat_database and pg_stat_user_tables, and the scratch vhost's message stats
// in RabbitMQ's management API, read before and after a run and divided by what it delivered.
// Both are counted late: a PostgreSQL backend reports its counts at most once a second, and
// RabbitMQ's channels every collect_statistics_interval (5 s by default). A snapshot therefore
// waits until the counts it needs have stopped moving.

// CostReport is what one notification cost the services, for Herald's run and for the
// skeleton's, counted alike so that they can be compared.
type CostReport struct {
	Herald   *CostFigures `json:"herald,omitempty"`
	Skeleton *CostFigures `json:"skeleton,omitempty"`
}

// CostFigures is one run's counts, per delivered notification, with the totals they come from.
type CostFigures struct {
	// Notifications is what the figures are divided by: the notifications delivered.
	Notifications int64 `json:"notifications"`
	// Seconds is the time between the two snapshots, idle time around the load included.
	Seconds float64 `json:"seconds"`
	// Commits and Rollbacks are transactions in the scratch database, read-only ones included
	// (an empty poll is a commit too). IdleCommitsPerSec is the rate of commits while nothing was
	// sent, just before the load (Herald only): times Seconds, it is the share of Commits that
	// polling would have cost anyway.
	Commits           float64 `json:"commits_per_notification"`
	Rollbacks         float64 `json:"rollbacks_per_notification"`
	IdleCommitsPerSec float64 `json:"idle_commits_per_sec,omitempty"`
	// BenchCommits is the bench's own queries on the database during the window (counting the
	// outcome), left out of Commits.
	BenchCommits int64 `json:"bench_commits_excluded,omitempty"`
	// Rows written are tuples inserted, updated and deleted; RowsFetched is tuples fetched by
	// index scans, the bench's own reads included.
	RowsInserted float64 `json:"rows_inserted_per_notification"`
	RowsUpdated  float64 `json:"rows_updated_per_notification"`
	RowsDeleted  float64 `json:"rows_deleted_per_notification"`
	RowsWritten  float64 `json:"rows_written_per_notification"`
	RowsFetched  float64 `json:"rows_fetched_per_notification"`
	// Tables is the rows written per notification in each table that was written, most first.
	Tables []TableCost `json:"rows_written_by_table"`
	// Statements is the statements executed (calls in pg_stat_statements, one round trip each
	// unless pipelined), when pg_stat_statements is loaded; StatementsNote says why not if not.
	Statements     *float64        `json:"statements_per_notification,omitempty"`
	StatementsNote string          `json:"statements_note,omitempty"`
	TopStatements  []StatementCost `json:"top_statements,omitempty"`
	// AMQP operations in the scratch vhost: messages published, confirmed to a publisher,
	// delivered (or got), acknowledged, redelivered and returned unroutable.
	Publishes    float64 `json:"amqp_publishes_per_notification"`
	Confirms     float64 `json:"amqp_confirms_per_notification"`
	Deliveries   float64 `json:"amqp_deliveries_per_notification"`
	Acks         float64 `json:"amqp_acks_per_notification"`
	Redeliveries float64 `json:"amqp_redeliveries_per_notification"`
	Unroutable   float64 `json:"amqp_returned_unroutable_per_notification"`
	// CPU is the machine's busy CPU time per notification, in milliseconds, over the same window
	// as the counts (Seconds), split by whose it was (cpu.go); CPUSeconds is the totals it
	// divides. Absent when the CPU was not read.
	CPU        *CPUSplit `json:"cpu_ms_per_notification,omitempty"`
	CPUSeconds *CPUSplit `json:"cpu_seconds,omitempty"`
	// IdleCPUPerSec is the CPU, in milliseconds per second, by the same groups, over the same
	// stretch as IdleCommitsPerSec (nothing sent, just before the window's load; for the
	// skeleton, before it starts). IdleCPU is that rate times Seconds per notification: the share
	// of CPU that the window would have cost with nothing sent (Herald's idle polling, the
	// services' and the bench's settling).
	IdleCPUPerSec *CPUSplit `json:"idle_cpu_ms_per_sec,omitempty"`
	IdleCPU       *CPUSplit `json:"idle_cpu_ms_per_notification,omitempty"`
	// Totals is the raw differences the figures above divide.
	Totals CostCounts `json:"totals"`
	// Error says what could not be counted; the figures are then absent or partial.
	Error string `json:"error,omitempty"`
}

// TableCost is the rows written to one table per notification.
type TableCost struct {
	Table       string  `json:"table"`
	RowsWritten float64 `json:"rows_written_per_notification"`
}

// StatementCost is one statement's calls per notification.
type StatementCost struct {
	Query string  `json:"query"`
	Calls float64 `json:"calls_per_notification"`
}

// CostCounts is what the services counted, or the difference of two such counts.
type CostCounts struct {
	Commits      int64 `json:"commits"`
	Rollbacks    int64 `json:"rollbacks"`
	RowsInserted int64 `json:"rows_inserted"`
	RowsUpdated  int64 `json:"rows_updated"`
	RowsDeleted  int64 `json:"rows_deleted"`
	RowsFetched  int64 `json:"rows_fetched"`
	// Statements is -1 when pg_stat_statements is not loaded.
	Statements   int64 `json:"statements"`
	Publishes    int64 `json:"amqp_publishes"`
	Confirms     int64 `json:"amqp_confirms"`
	Deliveries   int64 `json:"amqp_deliveries"`
	Acks         int64 `json:"amqp_acks"`
	Redeliveries int64 `json:"amqp_redeliveries"`
	Unroutable   int64 `json:"amqp_returned_unroutable"`
}

// costSnapshot is the counts at one moment, with the writes by table and calls by statement.
type costSnapshot struct {
	at time.Time
	// queries is the meter's own queries before this snapshot: each is a commit.
	queries    int64
	counts     CostCounts
	tables     map[string]int64
	statements map[string]int64
	// cpu is the machine's and the accounted processes' CPU time, read as the snapshot starts.
	cpu *cpuSnapshot
}

// costDiff is what the services counted between two snapshots, less the bench's own commits
// (benchCommits, and the meter's own queries), as figures per notification. Tables and statements are listed most first (then by name), at
// most topN of each.
func costDiff(before, after costSnapshot, notifications, benchCommits int64) *CostFigures {
	b, a := before.counts, after.counts
	benchCommits += after.queries - before.queries
	d := CostCounts{
		Commits: a.Commits - b.Commits - benchCommits, Rollbacks: a.Rollbacks - b.Rollbacks,
		RowsInserted: a.RowsInserted - b.RowsInserted, RowsUpdated: a.RowsUpdated - b.RowsUpdated,
		RowsDeleted: a.RowsDeleted - b.RowsDeleted, RowsFetched: a.RowsFetched - b.RowsFetched,
		Statements: -1,
		Publishes:  a.Publishes - b.Publishes, Confirms: a.Confirms - b.Confirms, Deliveries: a.Deliveries - b.Deliveries,
		Acks: a.Acks - b.Acks, Redeliveries: a.Redeliveries - b.Redeliveries, Unroutable: a.Unroutable - b.Unroutable,
	}
	f := &CostFigures{Notifications: notifications, Seconds: after.at.Sub(before.at).Seconds(), BenchCommits: benchCommits, Tables: []TableCost{}}
	if b.Statements >= 0 && a.Statements >= 0 {
		d.Statements = a.Statements - b.Statements
	} else {
		f.StatementsNote = "pg_stat_statements not loaded"
	}
	f.Totals = d
	if before.cpu != nil && after.cpu != nil {
		f.CPUSeconds = cpuDiff(before.cpu, after.cpu)
	}
	if notifications <= 0 {
		f.Error = "nothing was delivered: no cost per notification"
		return f
	}
	per := func(v int64) float64 { return float64(v) / float64(notifications) }
	f.Commits, f.Rollbacks = per(d.Commits), per(d.Rollbacks)
	f.RowsInserted, f.RowsUpdated, f.RowsDeleted = per(d.RowsInserted), per(d.RowsUpdated), per(d.RowsDeleted)
	f.RowsWritten = per(d.RowsInserted + d.RowsUpdated + d.RowsDeleted)
	f.RowsFetched = per(d.RowsFetched)
	f.Publishes, f.Confirms, f.Deliveries = per(d.Publishes), per(d.Confirms), per(d.Deliveries)
	f.Acks, f.Redeliveries, f.Unroutable = per(d.Acks), per(d.Redeliveries), per(d.Unroutable)
	if f.CPUSeconds != nil {
		ms := f.CPUSeconds.scaled(1000 / float64(notifications))
		f.CPU = &ms
	}
	for _, e := range topDiffs(before.tables, after.tables, topTables) {
		f.Tables = append(f.Tables, TableCost{Table: e.name, RowsWritten: per(e.n)})
	}
	if d.Statements >= 0 {
		s := per(d.Statements)
		f.Statements = &s
		for _, e := range topDiffs(before.statements, after.statements, topStatements) {
			f.TopStatements = append(f.TopStatements, StatementCost{Query: e.name, Calls: per(e.n)})
		}
	}
	return f
}

const (
	topTables     = 12
	topStatements = 8
)

type namedCount struct {
	name string
	n    int64
}

// topDiffs is after less before for each name that grew, most first, at most n of them.
func topDiffs(before, after map[string]int64, n int) []namedCount {
	var out []namedCount
	for name, v := range after {
		if d := v - before[name]; d > 0 {
			out = append(out, namedCount{name, d})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].name < out[j].name
	})
	return out[:min(n, len(out))]
}

// costMeter reads the counts of one scratch database and vhost.
type costMeter struct {
	pool  *pgxpool.Pool
	api   string // the management API's URL, with credentials
	vhost string
	// statements is set when pg_stat_statements is loaded and installed in the database.
	statements bool
	// queries counts the meter's own queries (each a commit), to leave them out.
	queries int64
	// heraldPIDs are Herald's processes, whose CPU each snapshot reads with the bench's and the
	// services' (serving dbName); none while the skeleton runs.
	heraldPIDs []int
	dbName     string
}

// newCostMeter counts what happens in the scratch database and vhost. It installs
// pg_stat_statements in the database when the server loads it, and counts without it otherwise.
func newCostMeter(ctx context.Context, s *scratch, api string) *costMeter {
	m := &costMeter{pool: s.Pool, api: api, vhost: s.Name, dbName: s.Name}
	var preload string
	if err := s.Pool.QueryRow(ctx, `SELECT current_setting('shared_preload_libraries')`).Scan(&preload); err == nil &&
		strings.Contains(preload, "pg_stat_statements") {
		_, err := s.Pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
		m.statements = err == nil
	}
	return m
}

// Counts are late (see above): a snapshot waits until they have stopped moving for settleFor,
// but no longer than settleMax. A PostgreSQL backend that goes idle with counts not yet
// reported reports them after 10 s (PGSTAT_IDLE_INTERVAL), and RabbitMQ's channels report every
// 5 s: 11 s without a change covers both.
const (
	settleFor   = 11 * time.Second
	settleMax   = 45 * time.Second
	settleEvery = 500 * time.Millisecond
)

// idleRate is what happened per second while the AMQP counts stood still.
type idleRate struct {
	// commitsPerSec is the commits per second, the meter's own left out.
	commitsPerSec float64
	// cpuPerSec is the CPU by group, in milliseconds per second; nil when unknown.
	cpuPerSec *CPUSplit
}

// idleBetween is the rate of commits and of CPU from first to last, two snapshots between
// which nothing was sent.
func idleBetween(first, last costSnapshot) idleRate {
	var idle idleRate
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return idle
	}
	idle.commitsPerSec = max(0, float64(last.counts.Commits-first.counts.Commits-(last.queries-first.queries))/secs)
	if first.cpu != nil && last.cpu != nil {
		perSec := cpuDiff(first.cpu, last.cpu).scaled(1000 / secs)
		idle.cpuPerSec = &perSec
	}
	return idle
}

// withIdle records on f what the window would have cost with nothing sent, at the rates idle.
func (f *CostFigures) withIdle(idle idleRate, commits bool) {
	if commits {
		f.IdleCommitsPerSec = idle.commitsPerSec
	}
	if idle.cpuPerSec == nil {
		return
	}
	f.IdleCPUPerSec = idle.cpuPerSec
	if f.Notifications > 0 && f.CPU != nil {
		perNotification := idle.cpuPerSec.scaled(f.Seconds / float64(f.Notifications))
		f.IdleCPU = &perNotification
	}
}

// settled takes a snapshot once the AMQP counts have not changed for settleFor, or after
// settleMax with a warning. It also returns the rates of commits and CPU seen meanwhile: with
// Herald idle, what its polling costs.
func (m *costMeter) settled(ctx context.Context) (costSnapshot, idleRate, error) {
	first, err := m.snapshot(ctx)
	if err != nil {
		return costSnapshot{}, idleRate{}, err
	}
	last, stableSince := first, first.at
	for {
		if last.at.Sub(stableSince) >= settleFor {
			break
		}
		if last.at.Sub(first.at) >= settleMax {
			return last, idleRate{}, fmt.Errorf("the services' counts were still moving after %s: the cost figures are a lower bound", settleMax)
		}
		sleep(ctx, settleEvery)
		if ctx.Err() != nil {
			return last, idleRate{}, ctx.Err()
		}
		next, err := m.snapshot(ctx)
		if err != nil {
			return last, idleRate{}, err
		}
		if moving(last.counts, next.counts) {
			first, stableSince = next, next.at
		}
		last = next
	}
	return last, idleBetween(first, last), nil
}

// moving says whether an AMQP count changed between two snapshots. PostgreSQL's counts are not
// watched: Herald's processes commit even when idle (every poll), and a backend's late counts
// arrive within settleFor of its last work anyway.
func moving(a, b CostCounts) bool {
	return a.Publishes != b.Publishes || a.Confirms != b.Confirms || a.Deliveries != b.Deliveries || a.Acks != b.Acks ||
		a.Redeliveries != b.Redeliveries || a.Unroutable != b.Unroutable
}

// snapshot reads the counts once.
func (m *costMeter) snapshot(ctx context.Context) (costSnapshot, error) {
	s := costSnapshot{at: time.Now(), queries: m.queries, tables: map[string]int64{}, statements: map[string]int64{}, counts: CostCounts{Statements: -1},
		cpu: takeCPUSnapshot(m.heraldPIDs, m.dbName)}
	c := &s.counts
	m.queries++
	// The statistics a transaction reads are cached until it ends: each read is its own.
	rows, err := m.pool.Query(ctx, `
SELECT '', xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched
	FROM pg_stat_database WHERE datname = current_database()
UNION ALL
SELECT relname, 0, 0, n_tup_ins, n_tup_upd, n_tup_del, 0 FROM pg_stat_user_tables`)
	if err != nil {
		return s, fmt.Errorf("read pg_stat_database: %w", err)
	}
	for rows.Next() {
		var (
			table                                      string
			commits, rollbacks, ins, upd, del, fetched int64
		)
		if err := rows.Scan(&table, &commits, &rollbacks, &ins, &upd, &del, &fetched); err != nil {
			rows.Close()
			return s, fmt.Errorf("read pg_stat_database: %w", err)
		}
		if table == "" {
			c.Commits, c.Rollbacks, c.RowsInserted, c.RowsUpdated, c.RowsDeleted, c.RowsFetched = commits, rollbacks, ins, upd, del, fetched
		} else if w := ins + upd + del; w > 0 {
			s.tables[table] = w
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read pg_stat_database: %w", err)
	}
	if m.statements {
		m.queries++
		if err := m.readStatements(ctx, &s); err != nil {
			return s, err
		}
	}
	var vh struct {
		Stats struct {
			Publish          int64 `json:"publish"`
			Confirm          int64 `json:"confirm"`
			DeliverGet       int64 `json:"deliver_get"`
			Ack              int64 `json:"ack"`
			Redeliver        int64 `json:"redeliver"`
			ReturnUnroutable int64 `json:"return_unroutable"`
		} `json:"message_stats"`
	}
	if err := harness.RabbitAPI(ctx, m.api, "GET", "/api/vhosts/"+url.PathEscape(m.vhost), "", &vh); err != nil {
		return s, fmt.Errorf("read the vhost's message stats: %w", err)
	}
	st := vh.Stats
	c.Publishes, c.Confirms, c.Deliveries, c.Acks, c.Redeliveries, c.Unroutable = st.Publish, st.Confirm, st.DeliverGet, st.Ack, st.Redeliver, st.ReturnUnroutable
	return s, nil
}

func (m *costMeter) readStatements(ctx context.Context, s *costSnapshot) error {
	rows, err := m.pool.Query(ctx, `SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 100), sum(calls)::bigint
	FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY 1`)
	if err != nil {
		return fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	s.counts.Statements = 0
	for rows.Next() {
		var (
			q string
			n int64
		)
		if err := rows.Scan(&q, &n); err != nil {
			return fmt.Errorf("read pg_stat_statements: %w", err)
		}
		s.statements[q] += n
		s.counts.Statements += n
	}
	return rows.Err()
}

// countCost takes the snapshot after a run, once the counts have settled, and returns the
// figures since before (whose own error, if any, is beforeErr).
func countCost(ctx context.Context, meter *costMeter, before costSnapshot, beforeErr error, delivered, benchCommits int64) *CostFigures {
	if before.at.IsZero() {
		return &CostFigures{Tables: []TableCost{}, StatementsNote: "not counted", Error: fmt.Sprintf("count before the run: %v", beforeErr)}
	}
	var (
		after costSnapshot
		err   error
	)
	if ctx.Err() != nil {
		// Interrupted: what was done is worth reporting, but not worth waiting for.
		readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if after, err = meter.snapshot(readCtx); err != nil {
			after = costSnapshot{}
		} else {
			err = errors.New("interrupted: counted without waiting for the late counts, a lower bound")
		}
	} else {
		after, _, err = meter.settled(ctx)
	}
	if after.at.IsZero() {
		return &CostFigures{Tables: []TableCost{}, StatementsNote: "not counted", Error: fmt.Sprintf("count after the run: %v", err)}
	}
	f := costDiff(before, after, delivered, benchCommits)
	if err := errors.Join(beforeErr, err); err != nil {
		f.Error = strings.TrimPrefix(f.Error+"; "+err.Error(), "; ")
	}
	return f
}

// costFigures is what Herald's run cost the services since before, counted while Herald is
// still up (a closed channel's last counts may never reach the management API) and idle.
func (r *runner) costFigures(ctx context.Context, meter *costMeter, before costSnapshot, idle idleRate, beforeErr error, say func(string, ...any)) *CostFigures {
	say("counting what the services did during the load (their counts arrive late)")
	f := countCost(ctx, meter, before, beforeErr, r.acceptedDelivered.Load(), r.benchQueries.Load())
	f.withIdle(idle, true)
	return f
}
