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
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
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

// A projection that cannot start (its offset row cannot be written) does not leave the others
// running alone: the projector stops whole, says which projection is down, and starts again until
// every projection runs, so every status advances.
func TestProjectorStartsWholeOrNotAtAll(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	allow, refused := refuseOffsets(t, db, "event_log_offsets", "notification_status")

	projector := router.NewProjector(db.Pool, router.ProjectorConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50},
		quietLogger(), projections.All()...)
	heraldtest.RunInBackground(t, "projector", projector.Run)

	log := events.NewLog(db.Pool)
	streams := make([]string, 30)
	for i := range streams {
		streams[i] = uuid.NewString()
		if err := story(ctx, log, streams[i]); err != nil {
			t.Fatal(err)
		}
	}

	said := waitNotReady(t, projector.Ready, "notification_status", "refused by the test")
	t.Logf("while notification_status cannot start, the projector says: %s", said)
	heraldtest.Eventually(t, 20*time.Second, "the projector to try notification_status again", func() (bool, error) {
		return refused() >= 2, nil
	})
	allow()

	heraldtest.Eventually(t, 90*time.Second, "status and history to reach the head of the log", func() (bool, error) {
		var lagging int
		err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM (VALUES ('notification_status'), ('notification_history')) g(name)
			LEFT JOIN event_log_offsets o ON o.consumer_group = g.name
			WHERE o.offset_acked IS DISTINCT FROM (SELECT max(global_position) FROM event_log)`).Scan(&lagging)
		return lagging == 0, err
	})
	heraldtest.Eventually(t, 10*time.Second, "the projector to be ready", func() (bool, error) {
		return projector.Ready(ctx) == nil, nil
	})
	// Every notification's row in the status table is at its stream's last version.
	var current int
	err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status s
		JOIN (SELECT stream_id, max(stream_version) AS v FROM event_log GROUP BY stream_id) l
		ON l.stream_id = s.notification_id AND l.v = s.version`).Scan(&current)
	if err != nil {
		t.Fatal(err)
	}
	if current != len(streams) {
		t.Errorf("%d of %d notifications' status rows are at their stream's last version", current, len(streams))
	}
	t.Logf("notification_status's offset was refused %d times; every status advanced", refused())
}

// A projection that meets a gap in a stream's versions stops, with an error naming the stream
// and both versions, in Ready and in projections.Statuses; the other projections go on. A rebuild
// repairs the read model, and the projection resumes on its own.
func TestProjectorStopsAtAVersionGap(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	projector := router.NewProjector(db.Pool, router.ProjectorConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50, StoppedRetry: 100 * time.Millisecond},
		quietLogger(), projections.All()...)
	heraldtest.RunInBackground(t, "projector", projector.Run)
	atHead := func(group string) func() (bool, error) {
		return func() (bool, error) {
			var at bool
			err := db.Pool.QueryRow(ctx, `SELECT coalesce((SELECT offset_acked FROM event_log_offsets WHERE consumer_group = $1)
				= (SELECT max(global_position) FROM event_log), false)`, group).Scan(&at)
			return at, err
		}
	}

	broken := uuid.NewString()
	if _, err := log.Append(ctx, broken, 0, events.Metadata{},
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	heraldtest.Eventually(t, 90*time.Second, "the status projection to apply v1", atHead("notification_status"))
	// The read model loses the notification's row, as a restore from an older backup would.
	if _, err := db.Pool.Exec(ctx, `DELETE FROM notification_status WHERE notification_id = $1`, broken); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, broken, 1, events.Metadata{}, &events.NotificationProcessing{Attempt: 1, Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	later := uuid.NewString()
	if err := story(ctx, log, later); err != nil {
		t.Fatal(err)
	}

	said := waitNotReady(t, projector.Ready, "notification_status", "stopped")
	t.Logf("the projector says: %s", said)
	for _, part := range []string{broken, "version 2", "no earlier version"} {
		if !strings.Contains(said, part) {
			t.Errorf("readiness %q does not name %q", said, part)
		}
	}
	if strings.Contains(said, "notification_history") {
		t.Errorf("readiness %q names notification_history, which has no gap", said)
	}
	heraldtest.Eventually(t, 90*time.Second, "notification_history to go on to the head of the log", atHead("notification_history"))
	statuses, err := projections.Statuses(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range statuses {
		switch {
		case st.Name == "notification_status" && (!strings.Contains(st.Stopped, broken) || !strings.Contains(st.Stopped, "version 2") || st.StoppedAt.IsZero()):
			t.Errorf("status of notification_status: stopped %q at %v, want the stream and version named", st.Stopped, st.StoppedAt)
		case st.Name == "notification_history" && st.Stopped != "":
			t.Errorf("notification_history says it stopped: %q", st.Stopped)
		}
	}
	// Nothing past the gap is applied: the status projection stopped.
	var rows int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status WHERE notification_id = $1`, later).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("the status projection applied %s, past the gap", later)
	}

	report, err := projections.NewRebuilder(db.Pool, log, 100, quietLogger()).Rebuild(ctx, projections.Status{}, projections.RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !report.Swapped || report.LiveGap == "" || report.Compared {
		t.Errorf("rebuild: swapped %v, live gap %q, compared %v; want swapped, the gap reported, not compared", report.Swapped, report.LiveGap, report.Compared)
	}
	heraldtest.Eventually(t, 90*time.Second, "the projector to resume and be ready", func() (bool, error) {
		return projector.Ready(ctx) == nil, nil
	})
	heraldtest.Eventually(t, 90*time.Second, "the status projection to reach the head of the log", atHead("notification_status"))
	statuses, err = projections.Statuses(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range statuses {
		if st.Stopped != "" {
			t.Errorf("%s still says it stopped after the rebuild: %q", st.Name, st.Stopped)
		}
	}
	for id, want := range map[string]string{broken: "processing", later: ""} {
		n, _, err := log.Notification(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var status string
		var version int64
		if err := db.Pool.QueryRow(ctx, `SELECT status, version FROM notification_status WHERE notification_id = $1`, id).Scan(&status, &version); err != nil {
			t.Fatalf("status row of %s: %v", id, err)
		}
		if status != string(n.Status) || version != n.Version || want != "" && status != want {
			t.Errorf("%s: status %s v%d, want %s v%d", id, status, version, n.Status, n.Version)
		}
	}
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
		if err := relays[i].Ready(ctx); err != nil {
			t.Errorf("relay %d is not ready: %v", i, err)
		}
	}
	if active != partitions {
		t.Errorf("%d partitions were started across the two relays, want each of the %d once", active, partitions)
	}
}

// A stop recorded by an earlier run (of this process or another) is cleared once the projection
// applies a batch again: "projections status" does not go on saying it stopped.
func TestProjectorClearsAnEarlierStop(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	if err := log.SetConsumerCursor(ctx, nil, "notification_status", events.Cursor{}); err != nil {
		t.Fatal(err)
	}
	if err := log.StopConsumer(ctx, nil, "notification_status", "notification_status: a gap since repaired"); err != nil {
		t.Fatal(err)
	}
	if err := story(ctx, log, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	projector := router.NewProjector(db.Pool, router.ProjectorConfig{PollInterval: 20 * time.Millisecond}, quietLogger(), projections.All()...)
	heraldtest.RunInBackground(t, "projector", projector.Run)
	heraldtest.Eventually(t, 90*time.Second, "the recorded stop to be cleared", func() (bool, error) {
		reason, _, err := log.ConsumerStop(ctx, "notification_status")
		return reason == "", err
	})
}
