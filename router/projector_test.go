package router_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

const projectorApp = "herald-projector-under-test"

// counter is a projection that counts how often each event is applied: any event applied twice,
// or skipped, shows. It is not idempotent on purpose.
type counter struct{}

func (counter) Name() string                          { return "test_counter" }
func (counter) TableName() string                     { return "test_applied" }
func (c counter) Into(string) projections.Rebuildable { return c }
func (counter) Key() []string                         { return []string{"position"} }
func (c counter) Apply(ctx context.Context, tx pgx.Tx, r events.Recorded) error {
	return c.ApplyBatch(ctx, tx, []events.Recorded{r})
}

func (counter) ApplyBatch(ctx context.Context, tx pgx.Tx, recs []events.Recorded) error {
	for _, r := range recs {
		if _, err := tx.Exec(ctx, `INSERT INTO test_applied (position, n) VALUES ($1, 1)
			ON CONFLICT (position) DO UPDATE SET n = test_applied.n + 1`, r.Position); err != nil {
			return err
		}
	}
	return nil
}

// flaky applies its projection, then fails the first application of some batches: the writes
// are done when the error comes, as when a statement after them fails.
type flaky struct {
	projections.Rebuildable
	failed sync.Map
	rate   float64
	fails  atomic.Int64
}

var errInjected = errors.New("injected failure")

func (f *flaky) ApplyBatch(ctx context.Context, tx pgx.Tx, recs []events.Recorded) error {
	if err := f.Rebuildable.ApplyBatch(ctx, tx, recs); err != nil {
		return err
	}
	if _, seen := f.failed.LoadOrStore(recs[0].Position, true); !seen && rand.Float64() < f.rate {
		f.fails.Add(1)
		return errInjected
	}
	return nil
}

// story appends a random but valid story for one notification.
func story(ctx context.Context, log *events.Log, stream string) error {
	ch := herald.ChannelEmail
	if rand.IntN(2) == 0 {
		ch = herald.ChannelSMS
	}
	evs := []events.Event{&events.NotificationQueued{Channel: ch, Recipient: "r-" + stream, Content: "c", Body: "b"}}
	attempts := 1 + rand.IntN(3)
	for a := 1; a <= attempts; a++ {
		evs = append(evs, &events.NotificationProcessing{Attempt: a, Worker: "w"})
		switch {
		case a < attempts:
			evs = append(evs, &events.DeliveryAttemptFailed{Attempt: a, Provider: "p", Error: fmt.Sprintf("try %d failed", a)})
		case rand.IntN(4) == 0:
			evs = append(evs, &events.NotificationFailed{Attempt: a, Provider: "p", Error: "550", Reason: events.ReasonPermanentError})
		case rand.IntN(5) > 0:
			evs = append(evs, &events.NotificationSent{Attempt: a, Provider: "p", ProviderMessageID: "id-" + stream})
		}
	}
	// Append in steps, as the API and workers do, each in its own transaction.
	for v := 0; v < len(evs); {
		n := 1 + rand.IntN(2)
		if v+n > len(evs) {
			n = len(evs) - v
		}
		if _, err := log.Append(ctx, stream, int64(v), events.Metadata{}, evs[v:v+n]...); err != nil {
			return err
		}
		v += n
	}
	return nil
}

// The projector applies every event exactly once, although handlers fail after writing and
// PostgreSQL drops its connections mid-batch, and its read models equal a fold of the log.
func TestProjectorExactlyOnceUnderFaults(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE test_applied (position BIGINT PRIMARY KEY, n INT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = projectorApp
	projPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(projPool.Close)

	projs := []*flaky{
		{Rebuildable: projections.Status{}, rate: 0.3},
		{Rebuildable: projections.History{}, rate: 0.3},
		{Rebuildable: counter{}, rate: 0.3},
	}
	var list []projections.Rebuildable
	for _, p := range projs {
		list = append(list, p)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	projector := router.NewProjector(projPool, router.ProjectorConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50}, logger, list...)
	heraldtest.RunInBackground(t, "projector", projector.Run)

	log := events.NewLog(db.Pool)
	const notifications = 150
	var (
		wg         sync.WaitGroup
		streams    = make([]string, notifications)
		appendErrs = make(chan error, notifications)
	)
	for i := range streams {
		streams[i] = uuid.NewString()
	}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < notifications; i += 4 {
				if err := story(ctx, log, streams[i]); err != nil {
					appendErrs <- err
				}
			}
		}()
	}
	// Meanwhile PostgreSQL drops the projector's connections, three times.
	kills, killed := 0, 0
	for kills < 3 {
		time.Sleep(150 * time.Millisecond)
		var n int
		err := db.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND datname = current_database()`, projectorApp).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		kills++
		killed += n
	}
	wg.Wait()
	close(appendErrs)
	for err := range appendErrs {
		t.Fatalf("append: %v", err)
	}

	var total int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	heraldtest.Eventually(t, 60*time.Second, "the counter projection to reach the head of the log", func() (bool, error) {
		var applied int
		err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_applied`).Scan(&applied)
		return applied == total, err
	})
	heraldtest.Eventually(t, 30*time.Second, "status and history to reach the head of the log", func() (bool, error) {
		var caughtUp int
		err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log_offsets o
			WHERE o.consumer_group IN ('notification_status', 'notification_history')
			AND o.offset_acked = (SELECT global_position FROM event_log ORDER BY transaction_id DESC, global_position DESC LIMIT 1)`).Scan(&caughtUp)
		return caughtUp == 2, err
	})

	var twice int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_applied WHERE n <> 1`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice != 0 {
		t.Errorf("%d of %d events were applied more than once", twice, total)
	}
	var injected int64
	for _, p := range projs {
		injected += p.fails.Load()
	}
	if injected == 0 {
		t.Error("no failure was injected: the test proved nothing about redelivery")
	}
	if killed == 0 {
		t.Error("no projector connection was terminated: the test proved nothing about crashes")
	}
	t.Logf("%d events, %d injected failures, %d projector connections terminated", total, injected, killed)

	heraldtest.CheckReadModels(t, db, streams)
}

// The projector's statements are planned for their arguments every time, never with a generic
// plan: PostgreSQL settles on a generic plan for a prepared statement after a few executions, and
// one chosen while the tables were small stays wherever nothing ANALYZEs them again (autovacuum
// off), however large they grow.
func TestProjectorNeverPlansGenerically(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every batch on one connection, whose prepared statements are inspected below
	sent := &statementLog{}
	cfg.ConnConfig.Tracer = sent
	projPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer projPool.Close()

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	projector := router.NewProjector(projPool, router.ProjectorConfig{PollInterval: 5 * time.Millisecond, BatchSize: 3},
		logger, projections.Status{}, projections.History{})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- projector.Run(runCtx) }()

	log := events.NewLog(db.Pool)
	for range 10 {
		if err := story(ctx, log, uuid.NewString()); err != nil {
			t.Fatal(err)
		}
	}
	heraldtest.Eventually(t, 30*time.Second, "status and history to reach the head of the log", func() (bool, error) {
		// Both groups must have joined (their offset rows exist): without rows, nothing lags.
		var caughtUp int
		err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log_offsets o
			WHERE o.offset_acked = (SELECT max(global_position) FROM event_log)`).Scan(&caughtUp)
		return caughtUp == 2, err
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("projector: %v", err)
	}

	// The setting travels with each batch's BEGIN, in the same round trip, never in one of its own.
	isBegin := func(q string) bool { return strings.HasPrefix(strings.ToUpper(q), "BEGIN") }
	begins, without, alone := sent.count(func(q string) bool {
		return isBegin(q) && strings.Contains(q, "plan_cache_mode = force_custom_plan")
	}), sent.count(func(q string) bool {
		return isBegin(q) && !strings.Contains(q, "plan_cache_mode")
	}), sent.count(func(q string) bool {
		return !isBegin(q) && strings.Contains(q, "plan_cache_mode")
	})
	t.Logf("%d batches begun with the setting, %d without, %d statements sending it alone", begins, without, alone)
	if begins == 0 || without != 0 || alone != 0 {
		t.Errorf("%d transactions began with the plan setting, %d without it, and %d statements sent it apart; want every one with it and none apart",
			begins, without, alone)
	}

	var generic, custom, statements int64
	err = projPool.QueryRow(ctx, `SELECT count(*), coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
		FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared_statements%'`).Scan(&statements, &generic, &custom)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d prepared statements: %d generic plans, %d custom plans", statements, generic, custom)
	if statements == 0 || custom < 5*statements {
		t.Fatalf("%d prepared statements planned %d times: the test did not run enough batches to show anything", statements, custom)
	}
	if generic != 0 {
		rows, _ := projPool.Query(ctx, `SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements
			WHERE generic_plans > 0 AND statement NOT LIKE '%pg_prepared_statements%'`)
		for rows.Next() {
			var g, c int64
			var stmt string
			_ = rows.Scan(&g, &c, &stmt)
			t.Logf("%d generic, %d custom: %s", g, c, stmt)
		}
		rows.Close()
		t.Errorf("the projector's statements used a generic plan %d times; want 0", generic)
	}
}

// statementLog records the SQL of every query a pool sends.
type statementLog struct {
	mu   sync.Mutex
	sqls []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	l.sqls = append(l.sqls, strings.TrimSpace(d.SQL))
	l.mu.Unlock()
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (l *statementLog) count(match func(string) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, q := range l.sqls {
		if match(q) {
			n++
		}
	}
	return n
}
