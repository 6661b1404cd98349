package router_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

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
