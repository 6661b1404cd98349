package e2e_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/herald-notify/herald/heraldtest"
)

// Queue names Herald's users and dashboards know.
const (
	queueEmail  = "email_notifications"
	queueSMS    = "sms_notifications"
	queuePoison = "poison_notifications"
)

// workQueues are every lane of every channel: the normal lanes above, and the priority lanes
// beside them. A check that nothing is left to deliver looks at all of them.
var workQueues = []string{queueEmail + "_high", queueEmail, queueEmail + "_low", queueSMS + "_high", queueSMS, queueSMS + "_low"}

// historyShape is what the failure tests compare of a history entry: errors are checked apart,
// by what they contain.
type historyShape struct {
	Event    string
	Status   string
	Attempt  int
	Provider string
}

func shapes(history []historyEntry) []historyShape {
	out := make([]historyShape, len(history))
	for i, h := range history {
		out[i] = historyShape{Event: h.Event, Status: h.Status, Attempt: h.Attempt, Provider: h.Provider}
	}
	return out
}

// attemptsThenOutcome is the history of a notification whose attempts 1..n-1 failed with a
// transient error and whose attempt n ended with final, "NotificationSent" or
// "NotificationFailed".
func attemptsThenOutcome(provider string, n int, final string) []historyShape {
	out := []historyShape{{Event: "NotificationQueued", Status: "pending"}}
	for a := 1; a <= n; a++ {
		out = append(out, historyShape{Event: "NotificationProcessing", Status: "processing", Attempt: a})
		if a < n {
			out = append(out, historyShape{Event: "DeliveryAttemptFailed", Status: "processing", Attempt: a, Provider: provider})
		}
	}
	status := map[string]string{"NotificationSent": "sent", "NotificationFailed": "failed"}[final]
	return append(out, historyShape{Event: final, Status: status, Attempt: n, Provider: provider})
}

// checkErrors asserts that every failed attempt in history carries an error mentioning code.
func checkErrors(t *testing.T, id string, history []historyEntry, code string) {
	t.Helper()
	for _, h := range history {
		switch h.Event {
		case "DeliveryAttemptFailed", "NotificationFailed":
			if !strings.Contains(h.Error, code) {
				t.Errorf("%s v%d %s: error %q does not mention %s", id, h.Version, h.Event, h.Error, code)
			}
		default:
			if h.Error != "" {
				t.Errorf("%s v%d %s: error %q on an entry that is not a failure", id, h.Version, h.Event, h.Error)
			}
		}
	}
}

// A recipient whose server refuses twice with a temporary error gets the message on the third
// attempt, once; every failed attempt is in the history with its error.
func TestTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"worker", "projector", "serve"}, MaxAttempts: 3})
	const (
		email = "flaky@example.com"
		phone = "+14155550451"
	)
	h.SMTP.FailTimes(email, 2, 451)
	h.SMS.FailTimes(phone, 2, 503)

	cases := []struct {
		req      sendRequest
		provider string
		code     string
		attempts func() int
		received func() int
	}{
		{
			req:      sendRequest{Type: "email", Recipient: email, Content: "Hello {{.who}}", Variables: map[string]any{"who": "you"}},
			provider: "smtp", code: "451",
			attempts: func() int { return h.SMTP.Attempts(email) },
			received: func() int { return len(h.SMTP.Received(email)) },
		},
		{
			req:      sendRequest{Type: "sms", Recipient: phone, Content: "Code {{.code}}", Variables: map[string]any{"code": 99}},
			provider: "http-sms", code: "503",
			attempts: func() int { return h.SMS.Attempts(phone) },
			received: func() int { return len(h.SMS.Received(phone)) },
		},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = send(t, h.API, c.req)
	}
	for i, c := range cases {
		id := ids[i]
		n := waitStatus(t, h.API, id, "sent", deliveryTimeout)
		if n.Attempts != 3 || n.LastError != "" || n.Provider != c.provider {
			t.Errorf("%s: status %+v, want sent by %s after 3 attempts with no error left", id, n, c.provider)
		}
		history, evs := story(t, h.API, id, 7)
		if diff := cmp.Diff(attemptsThenOutcome(c.provider, 3, "NotificationSent"), shapes(history)); diff != "" {
			t.Errorf("%s: history (-want +got):\n%s", id, diff)
		}
		checkErrors(t, id, history, c.code)
		checkStory(t, id, history, evs, "")
		if got := c.attempts(); got != 3 {
			t.Errorf("%s: the sink saw %d attempts, want 3", id, got)
		}
		if got := c.received(); got != 1 {
			t.Errorf("%s: the sink accepted %d messages, want 1", id, got)
		}
	}
}

// A permanent refusal fails a notification at once; a temporary one that never ends fails it when
// its attempts run out. Both are parked in the poison queue, once, and the work queues drain.
func TestPermanentAndExhaustedFailures(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"worker", "projector", "serve"}, MaxAttempts: 3})
	const (
		email = "nobody@example.com"
		phone = "+14155550503"
	)
	h.SMTP.AlwaysFail(email, 550)
	h.SMS.AlwaysFail(phone, 503)

	emailID := send(t, h.API, sendRequest{Type: "email", Recipient: email, Content: "Hello {{.who}}", Variables: map[string]any{"who": "nobody"}})
	smsID := send(t, h.API, sendRequest{Type: "sms", Recipient: phone, Content: "Never arrives"})

	n := waitStatus(t, h.API, emailID, "failed", deliveryTimeout)
	if n.Attempts != 1 || n.Provider != "smtp" || !strings.Contains(n.LastError, "550") {
		t.Errorf("%s: status %+v, want failed by smtp after 1 attempt with a 550 error", emailID, n)
	}
	history, evs := story(t, h.API, emailID, 3)
	if diff := cmp.Diff(attemptsThenOutcome("smtp", 1, "NotificationFailed"), shapes(history)); diff != "" {
		t.Errorf("%s: history (-want +got):\n%s", emailID, diff)
	}
	checkErrors(t, emailID, history, "550")
	checkStory(t, emailID, history, evs, "")
	if len(evs) > 0 {
		if reason := eventData(t, evs[len(evs)-1])["reason"]; reason != "permanent_error" {
			t.Errorf("%s: NotificationFailed reason %v, want permanent_error", emailID, reason)
		}
	}

	n = waitStatus(t, h.API, smsID, "failed", deliveryTimeout)
	if n.Attempts != 3 || n.Provider != "http-sms" || !strings.Contains(n.LastError, "503") {
		t.Errorf("%s: status %+v, want failed by http-sms after 3 attempts with a 503 error", smsID, n)
	}
	history, evs = story(t, h.API, smsID, 7)
	if diff := cmp.Diff(attemptsThenOutcome("http-sms", 3, "NotificationFailed"), shapes(history)); diff != "" {
		t.Errorf("%s: history (-want +got):\n%s", smsID, diff)
	}
	checkErrors(t, smsID, history, "503")
	checkStory(t, smsID, history, evs, "")
	if len(evs) > 0 {
		if reason := eventData(t, evs[len(evs)-1])["reason"]; reason != "attempts_exhausted" {
			t.Errorf("%s: NotificationFailed reason %v, want attempts_exhausted", smsID, reason)
		}
	}

	if got := h.SMTP.Attempts(email); got != 1 {
		t.Errorf("the SMTP sink saw %d attempts for the refused address, want 1: a permanent error is not retried", got)
	}
	if got := h.SMS.Attempts(phone); got != 3 {
		t.Errorf("the SMS sink saw %d attempts, want 3", got)
	}
	if got := h.SMTP.Count() + h.SMS.Count(); got != 0 {
		t.Errorf("the sinks accepted %d messages, want none", got)
	}

	// A worker that stops finishes what it holds and hands back what it has not acknowledged, so
	// afterwards the queues show everything that is left.
	h.proc(t, "worker").shutdown(t)
	for _, q := range workQueues {
		if n := heraldtest.QueueDepth(t, h.AMQPURL, q); n != 0 {
			t.Errorf("queue %s holds %d commands after the notifications failed, want none", q, n)
		}
	}
	got := peekCommands(t, h.AMQPURL, queuePoison)
	if !cmp.Equal(got, []string{emailID, smsID}, cmpopts.SortSlices(func(a, b string) bool { return a < b })) {
		t.Errorf("poison queue holds commands for %q, want one each for %s and %s", got, emailID, smsID)
	}
	if n := heraldtest.QueueDepth(t, h.AMQPURL, queuePoison); n != 2 {
		t.Errorf("poison queue holds %d messages after it was inspected, want 2", n)
	}
}
