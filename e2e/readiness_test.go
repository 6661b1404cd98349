package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// /readyz covers the components, not only the services: serve's names the outbox relay, a
// projector's its projections. A second projector standing by is ready. A projection stopped at
// a gap in a stream's versions makes the projector running it answer 503, naming the stream and
// the version.
func TestReadinessNamesComponents(t *testing.T) {
	t.Parallel()
	d := newDeps(t)
	h := startHerald(t, heraldOpts{Deps: d, Commands: []string{"serve", "projector", "projector"}})
	active, standby := h.procs[1], h.procs[2]

	code, checks := readiness(t, h.API)
	if diff := cmp.Diff(map[string]string{"outbox relay": "ok", "postgres": "ok", "rabbitmq": "ok"}, checks); code != 200 || diff != "" {
		t.Errorf("serve's /readyz: %d (-want +got):\n%s", code, diff)
	}
	for _, p := range []*process{active, standby} {
		code, checks := readiness(t, p.URL)
		if diff := cmp.Diff(map[string]string{"postgres": "ok", "projector": "ok"}, checks); code != 200 || diff != "" {
			t.Errorf("projector's /readyz: %d (-want +got):\n%s", code, diff)
		}
	}

	// The status read model loses a notification's row; the next event of its stream is a gap.
	ctx := context.Background()
	log := events.NewLog(d.DB.Pool)
	id := uuid.NewString()
	if _, err := log.Append(ctx, id, 0, events.Metadata{}, &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	heraldtest.Eventually(t, 90*time.Second, "the status projection to apply the notification", func() (bool, error) {
		var n int
		err := d.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status WHERE notification_id = $1`, id).Scan(&n)
		return n == 1, err
	})
	if _, err := d.DB.Pool.Exec(ctx, `DELETE FROM notification_status WHERE notification_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, id, 1, events.Metadata{}, &events.NotificationProcessing{Attempt: 1, Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	waitReadiness(t, active.URL, 503, 90*time.Second)
	_, checks = readiness(t, active.URL)
	for _, want := range []string{"notification_status: stopped", id, "version 2"} {
		if !strings.Contains(checks["projector"], want) {
			t.Errorf("the active projector's /readyz says %q, want it to name %q", checks["projector"], want)
		}
	}
	if code, checks := readiness(t, standby.URL); code != 200 {
		t.Errorf("the standby's /readyz: %d %v, want 200: it runs nothing", code, checks)
	}
}
