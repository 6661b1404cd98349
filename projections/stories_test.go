package projections_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// story appends a valid story for one notification, in steps, as the API and workers do.
func story(ctx context.Context, log *events.Log, stream string) error {
	queued := &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b",
		Priority: []herald.Priority{"", herald.PriorityHigh, herald.PriorityLow}[rand.IntN(3)]}
	evs := []events.Event{queued}
	if rand.IntN(4) == 0 {
		// Scheduled: released, or still waiting for its time.
		at := time.Now().Add(time.Duration(rand.IntN(3600)) * time.Second)
		queued.SendAt = &at
		if rand.IntN(3) == 0 {
			return appendStory(ctx, log, stream, evs)
		}
		evs = append(evs, &events.NotificationReleased{SendAt: at})
	}
	if rand.IntN(4) == 0 {
		evs = append(evs, &events.NotificationRecovered{Actor: "system:reconciler", Reason: "lost", Status: herald.StatusPending})
	}
	attempts := 1 + rand.IntN(3)
	if rand.IntN(6) == 0 {
		// Stuck: no worker ever takes it, the reconciler recovers it again and again.
		attempts = 0
		evs = append(evs, &events.NotificationRecovered{Actor: "system:reconciler", Reason: "lost again", Status: herald.StatusPending})
	}
	cancelled := &events.NotificationCancelled{Actor: "apikey:shop", Reason: "withdrawn"}
	if attempts == 0 && rand.IntN(2) == 0 {
		// Called off while it waited.
		evs = append(evs, cancelled)
	}
attempts:
	for a := 1; a <= attempts; a++ {
		evs = append(evs, &events.NotificationProcessing{Attempt: a, Worker: "w"})
		switch {
		case a < attempts && rand.IntN(5) == 0:
			// Called off between attempts.
			evs = append(evs, &events.DeliveryAttemptFailed{Attempt: a, Provider: "p", Error: fmt.Sprintf("try %d", a)}, cancelled)
			break attempts
		case a < attempts:
			evs = append(evs, &events.DeliveryAttemptFailed{Attempt: a, Provider: "p", Error: fmt.Sprintf("try %d", a)})
		case rand.IntN(3) == 0:
			evs = append(evs, &events.NotificationFailed{Attempt: a, Provider: "p", Error: "550", Reason: events.ReasonPermanentError},
				&events.NotificationRequeued{Actor: "ops", Reason: "retry", Attempts: a})
		default:
			evs = append(evs, &events.NotificationSent{Attempt: a, Provider: "p", ProviderMessageID: "m-" + stream})
		}
	}
	return appendStory(ctx, log, stream, evs)
}

// appendStory appends evs to stream one at a time.
func appendStory(ctx context.Context, log *events.Log, stream string, evs []events.Event) error {
	for v := 0; v < len(evs); v++ {
		md := events.Metadata{Actor: "test"}
		if _, err := log.Append(ctx, stream, int64(v), md, evs[v]); err != nil {
			return err
		}
	}
	return nil
}

func stories(t *testing.T, log *events.Log, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		if err := story(context.Background(), log, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// project runs the live projector until the test ends.
func project(t *testing.T, db *heraldtest.Database) {
	t.Helper()
	projectWith(t, db.Pool)
}

// projectWith runs the live projector on pool until the test ends.
func projectWith(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	p := router.NewProjector(pool, router.ProjectorConfig{PollInterval: 20 * time.Millisecond, BatchSize: 100}, discard, projections.All()...)
	heraldtest.RunInBackground(t, "projector", p.Run)
}

func waitCaughtUp(t *testing.T, log *events.Log) {
	t.Helper()
	heraldtest.Eventually(t, 30*time.Second, "the projections to catch up with the log", func() (bool, error) {
		statuses, err := projections.Statuses(context.Background(), log)
		if err != nil {
			return false, err
		}
		for _, s := range statuses {
			if s.Lag != 0 {
				return false, fmt.Errorf("%s lags by %d", s.Name, s.Lag)
			}
		}
		return true, nil
	})
}

// checkMatchesLog checks the read models against a fold of the log for ids, and that they hold
// one status row per stream and one history row per event, nothing else.
func checkMatchesLog(t *testing.T, db *heraldtest.Database, ids []string) {
	t.Helper()
	ctx := context.Background()
	heraldtest.CheckReadModels(t, db, ids)
	var rows, streams, entries, evs int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM notification_status), (SELECT count(DISTINCT stream_id) FROM event_log),
		(SELECT count(*) FROM notification_history), (SELECT count(*) FROM event_log)`).Scan(&rows, &streams, &entries, &evs); err != nil {
		t.Fatal(err)
	}
	if rows != streams || entries != evs {
		t.Errorf("%d status rows for %d streams, %d history rows for %d events", rows, streams, entries, evs)
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
