package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// outboxSelects records when the relay's select on the outbox (the only statement that reads
// pg_snapshot_xmin on its pool) ended, on a pool of the test's own.
type outboxSelects struct {
	mu    sync.Mutex
	times []time.Time
	ended chan struct{} // closed, and replaced, when a select ends; nil until asked for
}

func (s *outboxSelects) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "pg_snapshot_xmin") {
		return context.WithValue(ctx, outboxSelectKey{}, true)
	}
	return ctx
}

func (s *outboxSelects) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(outboxSelectKey{}) == nil {
		return
	}
	s.mu.Lock()
	s.times = append(s.times, time.Now())
	if s.ended != nil {
		close(s.ended)
		s.ended = nil
	}
	s.mu.Unlock()
}

// next returns a channel closed when the next select ends.
func (s *outboxSelects) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended == nil {
		s.ended = make(chan struct{})
	}
	return s.ended
}

// outboxSelectKey marks the context of a select on the outbox.
type outboxSelectKey struct{}

// count returns how many selects ended since from.
func (s *outboxSelects) count(from time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.times {
		if !t.Before(from) {
			n++
		}
	}
	return n
}

// lastGap returns how many selects ended, the time the last one did, and the time between the
// last two.
func (s *outboxSelects) lastGap() (int, time.Time, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.times)
	switch n {
	case 0:
		return 0, time.Time{}, 0
	case 1:
		return 1, s.times[0], 0
	}
	return n, s.times[n-1], s.times[n-1].Sub(s.times[n-2])
}

// firstAfter returns when the first select that ended after from ended, and whether one did.
func (s *outboxSelects) firstAfter(from time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.times {
		if t.After(from) {
			return t, true
		}
	}
	return time.Time{}, false
}

// wakeRelay is a relay of its own database and vhost whose selects on the outbox are recorded.
type wakeRelay struct {
	db      *heraldtest.Database
	amqpURL string
	relay   *router.Relay
	selects *outboxSelects
	stop    func() time.Duration // stops the relay and returns how long that took
}

// startWakeRelay runs a relay of cfg on a new database and vhost, over a pool whose outbox
// selects are recorded, and returns once every partition runs.
func startWakeRelay(t *testing.T, cfg router.RelayConfig) *wakeRelay {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)

	pcfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	selects := &outboxSelects{}
	pcfg.ConnConfig.Tracer = selects
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	amqpCfg := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 1, PublishChannels: 2}
	topology := router.NewTopology(amqpCfg, logger)
	relay := router.NewRelay(pool, amqpCfg, cfg, topology, logger)
	runCtx, cancel := context.WithCancel(ctx)
	topoDone, relayDone := make(chan struct{}), make(chan struct{})
	go func() { _ = topology.Run(runCtx); close(topoDone) }()
	go func() { _ = relay.Run(runCtx); close(relayDone) }()
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			<-relayDone
			took = time.Since(start)
			<-topoDone
		})
		return took
	}
	t.Cleanup(func() { stop() })
	heraldtest.Eventually(t, 30*time.Second, "every partition of the relay to run", func() (bool, error) {
		err := relay.Ready(ctx)
		return err == nil && topology.Ready(ctx) == nil, err
	})
	return &wakeRelay{db: db, amqpURL: amqpURL, relay: relay, selects: selects, stop: stop}
}

// waitIdle waits until the relay's last two selects are at least gap apart: its partition (one)
// has found nothing for a while and waits its longest.
func (w *wakeRelay) waitIdle(t *testing.T, gap time.Duration) {
	t.Helper()
	heraldtest.Eventually(t, 30*time.Second, fmt.Sprintf("two selects %s apart", gap), func() (bool, error) {
		_, _, last := w.selects.lastGap()
		return last >= gap, fmt.Errorf("last gap %s", last)
	})
}

// justAfter is how soon after a select on the outbox justAfterSelect returns: small beside the
// idle waits the tests measure (seconds), so that a command written then comes at the start of
// the partition's wait, and large beside how late a loaded machine wakes a goroutine.
const justAfter = 50 * time.Millisecond

// justAfterSelect returns once a select on the outbox has just ended: the partition has begun its
// wait, and a command written now is seen at its next select. It is woken by the select's end
// rather than polling for it, and a moment missed costs a whole idle wait, so a loaded machine
// gets the room of justAfter.
func (w *wakeRelay) justAfterSelect(t *testing.T) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case <-w.selects.next():
		case <-deadline.C:
			t.Fatal("timed out waiting for a select on the outbox to have just ended")
		}
		if _, at, _ := w.selects.lastGap(); time.Since(at) < justAfter {
			return
		}
		// Missed its moment: wait for the next.
	}
}

// forwardedAfter sends a command through outbox, wakes its relay when wake, and returns how long
// after the commit the command reached RabbitMQ, and how long after the commit the relay's first
// select on the outbox since then ended.
func (w *wakeRelay) forwardedAfter(t *testing.T, outbox *router.Outbox, wake bool) (took, looked time.Duration) {
	t.Helper()
	ctx := context.Background()
	ch := heraldtest.AMQPChannel(t, w.amqpURL)
	deliveries, err := ch.Consume(router.QueueEmail, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", router.QueueEmail, err)
	}
	w.justAfterSelect(t)
	id := uuid.NewString()
	if err := pgx.BeginFunc(ctx, w.db.Pool, func(tx pgx.Tx) error {
		return outbox.Send(ctx, tx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail})
	}); err != nil {
		t.Fatalf("put a command in the outbox: %v", err)
	}
	committed := time.Now()
	if wake {
		outbox.Wake()
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case d := <-deliveries:
			var cmd commands.SendNotification
			if err := json.Unmarshal(d.Body, &cmd); err != nil {
				t.Fatalf("read a command: %v", err)
			}
			if cmd.NotificationID == id {
				took := time.Since(committed)
				_ = ch.Close()
				// The command was forwarded by a select that ended after the commit.
				at, _ := w.selects.firstAfter(committed)
				return took, at.Sub(committed)
			}
		case <-timeout:
			t.Fatalf("command %s not forwarded within 30s", id)
		}
	}
}

// An idle relay's partitions wait longer and longer between selects, up to IdlePollMax: over a
// few seconds of an empty outbox they select far less often than every poll interval each.
func TestRelayIdlePollsBackOff(t *testing.T) {
	t.Parallel()
	const (
		partitions = 4
		poll       = 20 * time.Millisecond
		window     = 3 * time.Second
	)
	w := startWakeRelay(t, router.RelayConfig{PollInterval: poll, IdlePollMax: time.Second, BatchSize: 10, Partitions: partitions})
	from := time.Now()
	time.Sleep(window) // the window measured, not a wait for a condition
	got := w.selects.count(from)
	constant := int(partitions * window / poll)
	t.Logf("%d selects on the empty outbox in %s by %d partitions (a constant poll: about %d)", got, window, partitions, constant)
	if got > constant/5 {
		t.Errorf("%d selects on the empty outbox in %s; want at most %d, a fifth of a constant poll's %d", got, window, constant/5, constant)
	}
	if got < partitions {
		t.Errorf("%d selects in %s: the partitions do not poll at all", got, window)
	}
}

// After a long idle, a command whose writer wakes the relay is looked for at once, not at the
// partition's next select, which is IdlePollMax away, and forwarded.
//
// What is checked is when the partition selects again: whether that select already sees the
// command is PostgreSQL's to say. A transaction open anywhere on the server (another package's
// tests, in CI) keeps the command below the outbox's visibility bound (pg_snapshot_xmin) for a
// while, and the partition then looks again poll, 2·poll, 4·poll… later: measured with -race
// beside three busy loops on two cores, 3 of 8 woken commands were forwarded 1.35–1.5 s after
// their commit, each after a select 5–20 ms after it that found nothing.
func TestRelayWokenAfterIdle(t *testing.T) {
	t.Parallel()
	const idleMax = 2 * time.Second
	signal := router.NewOutboxSignal()
	w := startWakeRelay(t, router.RelayConfig{PollInterval: 20 * time.Millisecond, IdlePollMax: idleMax, BatchSize: 10, Partitions: 1, Wake: signal})
	w.waitIdle(t, idleMax*9/10)
	took, looked := w.forwardedAfter(t, router.NewOutbox(nil).WithSignal(signal), true)
	t.Logf("woken after the idle: selected %s and forwarded %s after the commit", looked, took)
	// Half the idle maximum: far from the next select without a wake-up, about idleMax after the
	// last, and room for the wake-up and the select on a loaded machine.
	if limit := idleMax / 2; looked > limit {
		t.Errorf("the woken partition selected %s after the commit; want under %s (the idle maximum is %s)", looked, limit, idleMax)
	}
}

// A command written without a wake-up — by another process, whose relay does not hold its
// partition — is looked for at the partition's next select, within the idle maximum, and
// forwarded.
//
// As for a woken command, what is checked is when the partition selects again, not when the
// command arrives: a transaction open anywhere on the server keeps the command below the outbox's
// visibility bound (pg_snapshot_xmin), and the select that finds nothing puts the next one
// another idle maximum away. A transaction held open elsewhere from before the commit to 2.5 s
// after it had the command forwarded 4 s after its commit, by the second select. A partition
// whose idle waits kept doubling past IdlePollMax selected 10 s after the commit, which this
// still catches.
func TestRelayUnwokenCommandWithinIdleMax(t *testing.T) {
	t.Parallel()
	const idleMax = 2 * time.Second
	signal := router.NewOutboxSignal()
	w := startWakeRelay(t, router.RelayConfig{PollInterval: 20 * time.Millisecond, IdlePollMax: idleMax, BatchSize: 10, Partitions: 1, Wake: signal})
	w.waitIdle(t, idleMax*9/10)
	took, looked := w.forwardedAfter(t, router.NewOutbox(nil), false)
	t.Logf("not woken: selected %s and forwarded %s after the commit", looked, took)
	// The commit came just after a select, so the next is due about idleMax after it; a second of
	// room for a loaded machine is still far below a wait that doubled past the idle maximum.
	if limit := idleMax + time.Second; looked > limit {
		t.Errorf("the partition selected %s after a command was written without a wake-up; want within %s (the idle maximum is %s)", looked, limit, idleMax)
	}
}

// A partition waiting for a wake-up stops at once when the relay stops, not at the end of its
// wait.
func TestRelayStopsDuringIdleWait(t *testing.T) {
	t.Parallel()
	const idleMax = 30 * time.Second
	w := startWakeRelay(t, router.RelayConfig{PollInterval: 100 * time.Millisecond, IdlePollMax: idleMax, BatchSize: 10, Partitions: 1,
		Wake: router.NewOutboxSignal()})
	// Waits of 100, 200, 400, 800 ms and 1.6 s, then 3.2 s: the partition is in a long wait.
	w.waitIdle(t, 1500*time.Millisecond)
	// The stop includes closing the publisher; 5 s is room for that on a loaded machine and still
	// far below the next select, up to 30 s away.
	if took, limit := w.stop(), 5*time.Second; took > limit {
		t.Errorf("the relay took %s to stop while its partitions waited for a wake-up; want under %s", took, limit)
	}
}
