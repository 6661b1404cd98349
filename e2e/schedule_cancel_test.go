package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// TestScheduledCancelledAcrossARestart is the client's view of control over delivery: emails and
// SMS scheduled a few seconds ahead, a third of them cancelled while they wait (by id and by
// idempotency key), Herald killed and started again before they come due. What reaches the
// sinks is exactly what was not cancelled, once each; the cancelled stay cancelled, never
// released; the API says so for each.
func TestScheduledCancelledAcrossARestart(t *testing.T) {
	d := newDeps(t)
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}})
	const n = 30
	// Far enough ahead that the 30 sends and 10 cancels are done and the process killed before
	// any is due, on a loaded machine too.
	sendAt := time.Now().Add(15 * time.Second).UTC().Format(time.RFC3339Nano)
	type sent struct {
		id, recipient, channel string
		cancelled              bool
	}
	var sends []sent
	for i := range n {
		s := sent{channel: "email", recipient: fmt.Sprintf("sched%d@example.net", i)}
		body := fmt.Sprintf(`{"type":"email","recipient":%q,"subject":"Later","content":"At its time","send_at":%q}`, s.recipient, sendAt)
		if i%2 == 1 {
			s.channel, s.recipient = "sms", fmt.Sprintf("+1415555%04d", i)
			body = fmt.Sprintf(`{"type":"sms","recipient":%q,"content":"At its time","send_at":%q}`, s.recipient, sendAt)
		}
		answer := sendBodyWithKey(t, c.API, body, fmt.Sprintf("sched-%d", i))
		if answer.Status != "scheduled" {
			t.Fatalf("send %d: status %q, want scheduled", i, answer.Status)
		}
		s.id = answer.ID
		sends = append(sends, s)
	}
	for i := range sends {
		if i%3 != 0 {
			continue
		}
		path, body := "/api/v1/notifications/"+sends[i].id+"/cancel", `{"reason":"plans changed"}`
		if i%2 == 0 {
			path, body = "/api/v1/notifications/cancel", fmt.Sprintf(`{"idempotency_key":"sched-%d"}`, i)
		}
		if a := postCancel(t, c.API, path, body); a.code != http.StatusOK || a.status != "cancelled" {
			t.Fatalf("cancel %d: %d %s, want 200 cancelled", i, a.code, a.body)
		}
		sends[i].cancelled = true
	}

	all := c.proc(t, "all")
	if err := all.Kill(stopTimeout); err != nil {
		t.Fatal(err)
	}
	all.judged = true
	if got := d.SMTP.Count() + d.SMS.Count(); got != 0 {
		t.Fatalf("the sinks hold %d messages before send_at", got)
	}
	c = startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}})

	for _, s := range sends {
		if !s.cancelled {
			waitStatus(t, c.API, s.id, "sent", deliveryTimeout)
		}
	}
	// Every row is gone once the cancelled ones came due and were dropped.
	heraldtest.Eventually(t, 15*time.Second, "the schedule to be empty", func() (bool, error) {
		var waiting int
		if err := d.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM scheduled_notifications`).Scan(&waiting); err != nil {
			return false, err
		}
		return waiting == 0, fmt.Errorf("%d rows waiting", waiting)
	})
	for _, s := range sends {
		var got int
		if s.channel == "email" {
			got = len(d.SMTP.Received(s.recipient))
		} else {
			got = len(d.SMS.Received(s.recipient))
		}
		want := 1
		if s.cancelled {
			want = 0
		}
		if got != want {
			t.Errorf("%s %s (cancelled %v): the sink received %d, want %d", s.channel, s.id, s.cancelled, got, want)
		}
		if !s.cancelled {
			continue
		}
		hist, _ := story(t, c.API, s.id, 2)
		if last := hist[len(hist)-1]; len(hist) != 2 || last.Event != events.TypeNotificationCancelled || last.Status != "cancelled" {
			t.Errorf("%s: history %+v, want queued then cancelled, and nothing after", s.id, hist)
		}
	}
}
