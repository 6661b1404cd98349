package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/herald-notify/herald/heraldtest"
)

// A work queue purged by hand while notifications wait in it has lost their commands for good:
// nothing is left in the outbox or in RabbitMQ. The reconciler finds them stalled and sends their
// commands again, and every one ends sent, once, with the recovery in its history.
func TestPurgedQueueIsReconciled(t *testing.T) {
	t.Parallel()
	d := newDeps(t)
	h := startHerald(t, heraldOpts{Deps: d, Commands: []string{"projector", "serve"},
		EnvFor: map[string]map[string]string{"serve": {
			"HERALD_RECONCILE_AFTER":    "3s",
			"HERALD_RECONCILE_INTERVAL": "200ms",
		}}})

	var (
		cases []notificationCase
		ids   []string
	)
	for i := range 4 {
		for _, c := range []notificationCase{emailCase(30 + i), smsCase(30 + i)} {
			c.correlation = fmt.Sprintf("purge-%s-%d", c.req.Type, i)
			cases = append(cases, c)
			ids = append(ids, sendCorrelated(t, h.API, c.req, c.correlation))
		}
	}
	// No worker runs: the commands wait in their queues, until someone purges them.
	waitQueueDepth(t, d.AMQPURL, queueEmail, 4, deliveryTimeout)
	waitQueueDepth(t, d.AMQPURL, queueSMS, 4, deliveryTimeout)
	heraldtest.PurgeQueue(t, d.AMQPURL, queueEmail)
	heraldtest.PurgeQueue(t, d.AMQPURL, queueSMS)
	for _, q := range []string{queueEmail, queueSMS} {
		if n := heraldtest.QueueDepth(t, d.AMQPURL, q); n != 0 {
			t.Fatalf("queue %s holds %d messages after the purge", q, n)
		}
	}

	startHerald(t, heraldOpts{Deps: d, Commands: []string{"worker"}})
	for i, id := range ids {
		c := cases[i]
		n := waitStatus(t, h.API, id, "sent", deliveryTimeout)
		if n.Attempts != 1 {
			t.Errorf("%s: sent after %d attempts, want 1", id, n.Attempts)
		}
		switch c.req.Type {
		case "email":
			if got := len(h.SMTP.Received(c.req.Recipient)); got != 1 {
				t.Errorf("%s: %d emails arrived for %s, want 1", id, got, c.req.Recipient)
			}
		case "sms":
			if got := len(h.SMS.Received(c.req.Recipient)); got != 1 {
				t.Errorf("%s: %d SMS arrived for %s, want 1", id, got, c.req.Recipient)
			}
		}

		history, evs := story(t, h.API, id, int(n.Version))
		checkStory(t, id, history, evs, c.correlation)
		var recoveries int
		for _, e := range operatorHistory(t, h.API, id) {
			if e.Event != "NotificationRecovered" {
				continue
			}
			recoveries++
			if e.Actor != "system:reconciler" || e.Status != "pending" || e.Reason == "" {
				t.Errorf("%s: recovery %+v; want by system:reconciler, pending, with a reason", id, e)
			}
		}
		if recoveries == 0 {
			t.Errorf("%s: no NotificationRecovered in its history: %+v", id, history)
		}
		if last := history[len(history)-1]; last.Event != "NotificationSent" {
			t.Errorf("%s: history ends with %s, want NotificationSent", id, last.Event)
		}
	}

	// An auditor finds every recovery in the log, with what the reconciler found.
	out := mustRunCLI(t, h, "events", "list", "--type", "NotificationRecovered")
	for _, id := range ids {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, id) {
				found = true
				if !strings.Contains(line, "NotificationRecovered") || !strings.Contains(line, "recovered by system:reconciler: pending with no event for") {
					t.Errorf("herald events list says of %s: %q", id, line)
				}
			}
		}
		if !found {
			t.Errorf("herald events list --type NotificationRecovered does not list %s:\n%s", id, out)
		}
	}
}
