package e2e_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/heraldtest"
)

// stays checks cond again and again for d and fails the test the first time it does not hold. It
// is for the claims that something does not happen, which no single look can prove.
func stays(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := cond(); err != nil {
			t.Fatalf("%s stopped holding: %v", what, err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// subscriberMetric sums the worker's watermill subscriber counter for messages acked or nacked.
func subscriberMetric(t *testing.T, worker *process, acked string) float64 {
	t.Helper()
	return metric(t, worker.URL+"/metrics", "herald_subscriber_messages_received_total", map[string]string{"acked": acked})
}

// A SendNotification command delivered again after its notification was sent — as RabbitMQ does
// after a lost acknowledgement — is acknowledged without sending anything or recording anything.
func TestRedeliveredCommandDoesNotResend(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"worker", "projector", "serve"}})
	worker := h.proc(t, "worker")

	email, sms := emailCase(1), smsCase(2)
	emailID := sendCorrelated(t, h.API, email.req, email.correlation)
	smsID := send(t, h.API, sms.req)
	checkDelivered(t, h, emailID, email)
	checkDelivered(t, h, smsID, sms)
	// The worker acknowledges a command after recording its outcome; wait for both.
	heraldtest.Eventually(t, 10*time.Second, "the worker to acknowledge both commands", func() (bool, error) {
		n := subscriberMetric(t, worker, "acked")
		return n == 2, fmt.Errorf("%v acknowledged", n)
	})

	publishCommand(t, h.AMQPURL, queueEmail, sendCommand{NotificationID: emailID, Channel: "email"})
	publishCommand(t, h.AMQPURL, queueSMS, sendCommand{NotificationID: smsID, Channel: "sms"})

	heraldtest.Eventually(t, 15*time.Second, "the worker to acknowledge the redelivered commands", func() (bool, error) {
		n := subscriberMetric(t, worker, "acked")
		return n >= 4, fmt.Errorf("%v acknowledged", n)
	})
	waitQueueDepth(t, h.AMQPURL, queueEmail, 0, 10*time.Second)
	waitQueueDepth(t, h.AMQPURL, queueSMS, 0, 10*time.Second)

	unchanged := func() error {
		if n := len(h.SMTP.Received(email.req.Recipient)); n != 1 {
			return fmt.Errorf("%d emails for %s", n, email.req.Recipient)
		}
		if n := len(h.SMS.Received(sms.req.Recipient)); n != 1 {
			return fmt.Errorf("%d SMS for %s", n, sms.req.Recipient)
		}
		for _, q := range workQueues {
			if n := heraldtest.QueueDepth(t, h.AMQPURL, q); n != 0 {
				return fmt.Errorf("queue %s holds %d messages", q, n)
			}
		}
		if n := subscriberMetric(t, worker, "acked"); n != 4 {
			return fmt.Errorf("the worker acknowledged %v commands, want 4", n)
		}
		if n := subscriberMetric(t, worker, "nacked"); n != 0 {
			return fmt.Errorf("the worker rejected %v commands, want none", n)
		}
		return nil
	}
	stays(t, time.Second, "one message per notification and nothing queued", unchanged)

	for _, id := range []string{emailID, smsID} {
		var e eventsJSON
		getJSON(t, h.API+"/api/v1/notifications/"+id+"/events", &e)
		var types []string
		for _, ev := range e.Events {
			types = append(types, ev.Type)
		}
		if diff := cmp.Diff([]string{"NotificationQueued", "NotificationProcessing", "NotificationSent"}, types); diff != "" {
			t.Errorf("%s: events after the redelivery (-want +got):\n%s", id, diff)
		}
		if n := waitStatus(t, h.API, id, "sent", time.Second); n.Attempts != 1 || n.Version != 3 {
			t.Errorf("%s: status after the redelivery %+v, want sent on attempt 1 at version 3", id, n)
		}
	}

	// Stopped, the worker hands back anything it still holds unacknowledged.
	worker.shutdown(t)
	for _, q := range append(slices.Clone(workQueues), queuePoison) {
		if n := heraldtest.QueueDepth(t, h.AMQPURL, q); n != 0 {
			t.Errorf("queue %s holds %d messages after the worker stopped, want none", q, n)
		}
	}
}

// A command RabbitMQ hands out a second time, because the consumer that had it went away without
// acknowledging it (a worker that crashed), is still delivered.
func TestRequeuedCommandIsDelivered(t *testing.T) {
	t.Parallel()
	d := newDeps(t)
	h := startHerald(t, heraldOpts{Deps: d, Commands: []string{"projector", "serve"}})

	c := emailCase(7)
	id := sendCorrelated(t, h.API, c.req, c.correlation)
	waitQueueDepth(t, d.AMQPURL, queueEmail, 1, 15*time.Second)
	// A consumer takes the command and vanishes without acknowledging it.
	if ids := peekCommands(t, d.AMQPURL, queueEmail); !cmp.Equal(ids, []string{id}) {
		t.Fatalf("%s holds commands for %v, want only %s", queueEmail, ids, id)
	}
	waitQueueDepth(t, d.AMQPURL, queueEmail, 1, 5*time.Second)

	startHerald(t, heraldOpts{Deps: d, Commands: []string{"worker"}})
	waitStatus(t, h.API, id, "sent", 15*time.Second)
	checkDelivered(t, h, id, c)
	waitQueueDepth(t, d.AMQPURL, queueEmail, 0, 10*time.Second)
}
