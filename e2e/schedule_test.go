package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/events"
)

// TestScheduledSendsSurviveAKill: notifications scheduled a few seconds ahead wait in
// PostgreSQL, not in a process: the process that accepted them is killed (SIGKILL) while they
// wait and another started, and every one is delivered once, not before its send_at, with its
// release in its history.
func TestScheduledSendsSurviveAKill(t *testing.T) {
	d := newDeps(t)
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}})
	const n = 5
	// Far enough ahead that the sends are accepted and the process killed before the first is
	// due, on a loaded machine too.
	first := time.Now().Add(10 * time.Second).UTC()
	type scheduled struct {
		id, recipient string
		sendAt        time.Time
	}
	var sends []scheduled
	for i := range n {
		at := first.Add(time.Duration(i) * 150 * time.Millisecond)
		recipient := fmt.Sprintf("later%d@example.net", i)
		resp, body := postJSON(t, c.API+"/api/v1/notifications/send", fmt.Sprintf(
			`{"type":"email","recipient":%q,"subject":"Later","content":"Sent at its time","send_at":%q}`,
			recipient, at.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)))
		var answer struct {
			ID     string     `json:"id"`
			Status string     `json:"status"`
			SendAt *time.Time `json:"send_at"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("send: %d %s (%v)", resp.StatusCode, body, err)
		}
		// Sent with nanoseconds, kept to the microsecond: what PostgreSQL stores of it.
		at = at.Truncate(time.Microsecond)
		if answer.Status != "scheduled" || answer.SendAt == nil || !answer.SendAt.Equal(at) {
			t.Fatalf("send answered %s, want status scheduled and send_at %s", body, at.Format(time.RFC3339Nano))
		}
		sends = append(sends, scheduled{answer.ID, recipient, at})
	}

	all := c.proc(t, "all")
	if err := all.Kill(stopTimeout); err != nil {
		t.Fatal(err)
	}
	all.judged = true
	var waiting int
	if err := d.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM scheduled_notifications`).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if waiting != n || time.Now().After(first) {
		t.Fatalf("%d scheduled rows at the kill, %s before the first send_at: want all %d still waiting", waiting, time.Until(first), n)
	}
	if got := d.SMTP.Count(); got != 0 {
		t.Fatalf("the sink has %d messages before any send_at", got)
	}

	c = startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}})
	for _, s := range sends {
		waitStatus(t, c.API, s.id, "sent", deliveryTimeout)
	}
	if got := metric(t, c.API+"/metrics", "herald_scheduler_releases_total", map[string]string{"outcome": "released"}); got != n {
		t.Errorf("herald_scheduler_releases_total{outcome=\"released\"} = %v, want %d", got, n)
	}
	for _, s := range sends {
		if got := d.SMTP.Received(s.recipient); len(got) != 1 || got[0].NotificationID != s.id {
			t.Errorf("%s: the sink received %d messages for %s, want exactly one of it", s.id, len(got), s.recipient)
		}
		hist, evs := story(t, c.API, s.id, 4)
		var types, statuses []string
		for _, h := range hist {
			types, statuses = append(types, h.Event), append(statuses, h.Status)
		}
		wantTypes := []string{events.TypeNotificationQueued, events.TypeNotificationReleased, events.TypeNotificationProcessing, events.TypeNotificationSent}
		if !slices.Equal(types, wantTypes) || !slices.Equal(statuses, []string{"scheduled", "pending", "processing", "sent"}) {
			t.Errorf("%s: history %v %v, want %v through scheduled, pending, processing, sent", s.id, types, statuses, wantTypes)
			continue
		}
		// The release, and the attempt that called the provider after it, are recorded on the
		// database's clock no earlier than send_at.
		for _, e := range evs[1:3] {
			var at time.Time
			if err := d.DB.Pool.QueryRow(context.Background(), `SELECT occurred_at FROM event_log WHERE event_id = $1`, e.ID).Scan(&at); err != nil {
				t.Fatal(err)
			}
			if at.Before(s.sendAt) {
				t.Errorf("%s: %s at %s, before its send_at %s", s.id, e.Type, at.Format(time.RFC3339Nano), s.sendAt.Format(time.RFC3339Nano))
			}
		}
		if evs[1].Metadata.Actor != "system:scheduler" {
			t.Errorf("%s: released by %q, want system:scheduler", s.id, evs[1].Metadata.Actor)
		}
	}
}
