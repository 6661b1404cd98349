package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// statementCounter counts the statements a pool's connections send.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// BenchmarkRelayBacklog measures how fast the relay forwards a standing backlog of commands to
// quorum queues, by its partition count, with the defaults' batch size, poll interval and idle
// maximum and a pool of serve's default size; then how many statements per second the relay
// sends once the outbox has been empty long enough for its polls to reach the idle maximum (each
// partition polls every second then). Run it with -benchtime=1x: an iteration is a whole backlog.
//
// With -short (the one pass that keeps it from rotting) the backlog is 1,000 and the idle window
// one second.
func BenchmarkRelayBacklog(b *testing.B) {
	backlog := 10_000
	if testing.Short() {
		backlog = 1_000
	}
	for _, partitions := range []int{4, 8, 16} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			var forwarded time.Duration
			var idle float64
			for range b.N {
				b.StopTimer()
				d, stmts := relayBacklog(b, partitions, backlog)
				forwarded += d
				idle += stmts
				b.StartTimer()
			}
			b.ReportMetric(float64(backlog*b.N)/forwarded.Seconds(), "commands/s")
			b.ReportMetric(idle/float64(b.N), "idle_statements/s")
		})
	}
}

// relayIdleMax is serve's default HERALD_RELAY_IDLE_POLL_MAX.
const relayIdleMax = time.Second

// relayBacklog puts n commands in a new outbox, runs a relay of the partitions until it has
// forwarded them all, and returns how long that took and the statements per second the idle
// relay sends afterwards.
func relayBacklog(b *testing.B, partitions, n int) (time.Duration, float64) {
	db := heraldtest.NewDatabase(b)
	amqpURL := heraldtest.NewVHost(b)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	sendCommands(b, db.Pool, n, 100)

	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 20
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()

	amqpCfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 4, PublishChannels: 4}
	topology := router.NewTopology(amqpCfg, logger)
	relay := router.NewRelay(pool, amqpCfg, router.RelayConfig{PollInterval: 50 * time.Millisecond, IdlePollMax: relayIdleMax, BatchSize: 20, Partitions: partitions}, topology, logger)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = topology.Run(runCtx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	heraldtest.Eventually(b, 30*time.Second, "the queues to be declared", func() (bool, error) {
		err := topology.Ready(ctx)
		return err == nil, err
	})

	start := time.Now()
	go func() { _ = relay.Run(runCtx); done <- struct{}{} }()
	heraldtest.Eventually(b, 10*time.Minute, "the relay to forward the backlog", func() (bool, error) {
		var left int
		err := db.Pool.QueryRow(ctx, `
SELECT count(*) FROM outbox o LEFT JOIN outbox_offsets g ON g.consumer_group = 'relay-' || (o."offset" % $1::int) || '-of-' || $1::int
WHERE g.consumer_group IS NULL OR (o.transaction_id, o."offset") > (g.last_processed_transaction_id, g.offset_acked)`, partitions).Scan(&left)
		return err == nil && left == 0, fmt.Errorf("%d commands left, error %v", left, err)
	})
	took := time.Since(start)
	if got := heraldtest.QueueDepth(b, amqpURL, router.QueueEmail); got > n {
		b.Fatalf("%d commands in RabbitMQ, more than the %d forwarded", got, n)
	}

	// The idle relay: every partition polls the empty rest of the outbox, at the idle maximum
	// once its waits have doubled up to it (50 ms to 1 s: 1.55 s).
	time.Sleep(2 * relayIdleMax)
	window := 5 * time.Second
	if testing.Short() {
		window = time.Second
	}
	from := counter.n.Load()
	time.Sleep(window)
	return took, float64(counter.n.Load()-from) / window.Seconds()
}
