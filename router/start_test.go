package router_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// refuseOffsets makes every insert into table's offsets for consumer group fail, as a
// connection that drops or a constraint would, until the returned function is called. refused
// counts the inserts refused so far.
func refuseOffsets(t *testing.T, db *heraldtest.Database, table, group string) (allow func(), refused func() int64) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `
CREATE TABLE test_refuse (consumer_group TEXT PRIMARY KEY);
CREATE SEQUENCE test_refused;
CREATE FUNCTION test_refuse_offsets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM test_refuse WHERE consumer_group = NEW.consumer_group) THEN
		PERFORM nextval('test_refused'); -- a sequence is not rolled back with the insert
		RAISE EXCEPTION 'offsets of % refused by the test', NEW.consumer_group;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER test_refuse BEFORE INSERT ON `+table+` FOR EACH ROW EXECUTE FUNCTION test_refuse_offsets();`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO test_refuse VALUES ($1)`, group); err != nil {
		t.Fatal(err)
	}
	allow = func() {
		if _, err := db.Pool.Exec(ctx, `DELETE FROM test_refuse`); err != nil {
			t.Fatal(err)
		}
	}
	refused = func() int64 {
		var n int64
		var called bool
		if err := db.Pool.QueryRow(ctx, `SELECT last_value, is_called FROM test_refused`).Scan(&n, &called); err != nil {
			t.Fatal(err)
		}
		if !called {
			return 0
		}
		return n
	}
	return allow, refused
}

// waitNotReady waits until ready names part as not running for a reason that says why, and
// returns what it said.
func waitNotReady(t *testing.T, ready func(context.Context) error, part, why string) string {
	t.Helper()
	var said string
	heraldtest.Eventually(t, 90*time.Second, "readiness to name "+part, func() (bool, error) {
		err := ready(context.Background())
		if err == nil {
			return false, nil
		}
		said = err.Error()
		for _, p := range strings.Split(said, "; ") {
			if strings.HasPrefix(p, part+": ") && strings.Contains(p, why) {
				return true, nil
			}
		}
		return false, nil
	})
	return said
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A relay partition that cannot start (its offset row cannot be written) does not leave the
// others running alone: the relay stops whole, says which partition is down, and starts again
// until every partition runs, so every command reaches RabbitMQ.
func TestRelayStartsWholeOrNotAtAll(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	allow, refused := refuseOffsets(t, db, "outbox_offsets", "relay-1-of-4")

	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 10, PublishChannels: 4}
	logger := quietLogger()
	topology := router.NewTopology(cfg, logger)
	relay := router.NewRelay(db.Pool, cfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 10, Partitions: 4}, topology, logger)
	heraldtest.RunInBackground(t, "topology", topology.Run)
	heraldtest.RunInBackground(t, "relay", relay.Run)

	const n = 40
	ids := sendCommands(t, db.Pool, n, 1)

	said := waitNotReady(t, relay.Ready, "relay-1-of-4", "refused by the test")
	t.Logf("while partition 1 cannot start, the relay says: %s", said)
	heraldtest.Eventually(t, 20*time.Second, "the relay to try partition 1 again", func() (bool, error) {
		return refused() >= 2, nil
	})
	allow()

	heraldtest.Eventually(t, 90*time.Second, "the relay to be ready", func() (bool, error) {
		err := relay.Ready(ctx)
		return err == nil, err
	})
	heraldtest.Eventually(t, 30*time.Second, "the relay to forward every command", func() (bool, error) {
		waiting, err := relay.Waiting(ctx, ids)
		return err == nil && len(waiting) == 0, fmt.Errorf("%d commands waiting, error %v", len(waiting), err)
	})
	// Every command is in RabbitMQ, once: none skipped by a partition started at another's
	// offset, none forwarded again by a run after a stop.
	want := map[string]int{}
	for _, id := range ids {
		want[id] = 1
	}
	if diff := cmp.Diff(want, takeForwarded(t, amqpURL, router.QueueEmail)); diff != "" {
		t.Errorf("commands in RabbitMQ, by notification id (-want +got):\n%s", diff)
	}
	t.Logf("partition 1's offset was refused %d times; all %d commands reached RabbitMQ once", refused(), n)
}

// logBuffer collects a logger's lines, safe to read while they are written.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Two relays over one outbox (two serve processes) share its partitions: each partition is
// forwarded by one of them, which holds its consumer group's lock, while the other stands by,
// ready and quiet. Every command reaches RabbitMQ once, and no batch fails on the other's locks.
func TestRelaysSharePartitions(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx := context.Background()
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "classic", Prefetch: 10, PublishChannels: 4}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	run := func(f func(context.Context) error) {
		done := make(chan error, 1)
		go func() { done <- f(runCtx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
	const partitions = 4
	logs := make([]*logBuffer, 2)
	relays := make([]*router.Relay, 2)
	for i := range relays {
		logs[i] = &logBuffer{}
		logger := slog.New(slog.NewTextHandler(logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
		topology := router.NewTopology(cfg, logger)
		relays[i] = router.NewRelay(db.Pool, cfg, router.RelayConfig{PollInterval: 20 * time.Millisecond, BatchSize: 10, Partitions: partitions}, topology, logger)
		run(topology.Run)
		run(relays[i].Run)
	}

	const n = 60
	outbox := router.NewOutbox(nil)
	for range n {
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			return outbox.Send(ctx, tx, commands.SendNotification{NotificationID: uuid.NewString(), Channel: herald.ChannelSMS})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("relay %d (ready: %v):\n%s", i, relays[i].Ready(ctx), l.String())
			}
		}
	})
	heraldtest.Eventually(t, 90*time.Second, "every partition to forward its commands", func() (bool, error) {
		var behind int
		err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox o LEFT JOIN outbox_offsets g
			ON g.consumer_group = 'relay-' || (o."offset" % 4) || '-of-4'
			WHERE g.consumer_group IS NULL OR (o.transaction_id, o."offset") > (g.last_processed_transaction_id, g.offset_acked)`).Scan(&behind)
		return behind == 0, err
	})
	heraldtest.Eventually(t, 10*time.Second, "RabbitMQ to hold every command", func() (bool, error) {
		return heraldtest.QueueDepth(t, amqpURL, router.QueueSMS) >= n, nil
	})
	if got := heraldtest.QueueDepth(t, amqpURL, router.QueueSMS); got != n {
		t.Errorf("RabbitMQ holds %d commands, want %d: a partition was forwarded twice", got, n)
	}

	active := 0
	for i, l := range logs {
		text := l.String()
		active += strings.Count(text, "consumer group active")
		if strings.Contains(text, "could not serialize") || strings.Contains(text, "level=WARN") || strings.Contains(text, "level=ERROR") {
			t.Errorf("relay %d logged a warning or an error:\n%s", i, text)
		}
	}
	// The standby's topology may still be connecting on a busy machine: ready within moments.
	for i := range relays {
		heraldtest.Eventually(t, 10*time.Second, fmt.Sprintf("relay %d to be ready", i), func() (bool, error) {
			err := relays[i].Ready(ctx)
			return err == nil, err
		})
	}
	if active != partitions {
		t.Errorf("%d partitions were started across the two relays, want each of the %d once", active, partitions)
	}
}
