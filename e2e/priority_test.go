package e2e_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
)

// Through the real processes: a priority reaches the log, a high-priority email that fails for
// good is parked from its own lane, and an operator's requeue sends it back to that lane, which
// delivers it. Low and normal ones are delivered from theirs.
func TestPriorityLanesThroughTheProcesses(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"worker", "projector", "serve"}, MaxAttempts: 2})
	const urgent = "urgent@example.com"
	h.SMTP.AlwaysFail(urgent, 550)
	highID := send(t, h.API, sendRequest{Type: "email", Recipient: urgent, Content: "Your code is 4242", Priority: "high"})
	lowID := send(t, h.API, sendRequest{Type: "email", Recipient: "later@example.com", Content: "News", Priority: "low"})
	normalID := send(t, h.API, sendRequest{Type: "sms", Recipient: "+14155550199", Content: "Hi"})
	shown := map[string]string{
		lowID:    waitStatus(t, h.API, lowID, "sent", deliveryTimeout).Priority,
		normalID: waitStatus(t, h.API, normalID, "sent", deliveryTimeout).Priority,
		highID:   waitStatus(t, h.API, highID, "failed", deliveryTimeout).Priority,
	}
	if want := map[string]string{lowID: "low", normalID: "", highID: "high"}; !maps.Equal(shown, want) {
		t.Errorf("the status shows priorities %v, want %v", shown, want)
	}
	waitQueueDepth(t, h.AMQPURL, queuePoison, 1, 15*time.Second)

	for id, want := range map[string]any{highID: "high", lowID: "low", normalID: nil} {
		_, evs := story(t, h.API, id, 1)
		if got := eventData(t, evs[0])["priority"]; got != want {
			t.Errorf("%s: NotificationQueued priority %v, want %v", id, got, want)
		}
	}
	parked := mustRunCLI(t, h, "poison", "show", highID)
	for _, want := range []string{"send_email_high", queueEmail + "_high"} {
		if !strings.Contains(parked, want) {
			t.Errorf("poison show does not say the command came from the high lane (%q):\n%s", want, parked)
		}
	}

	h.SMTP.FailTimes(urgent, 0, 550)
	mustRunCLI(t, h, "poison", "requeue", highID, "--actor", "ops", "--reason", "fixed")
	// Failed until the projector reaches the requeue (version 4); from there on failed would be
	// a new failure.
	waitVersion(t, h.API, highID, 4)
	waitStatus(t, h.API, highID, "sent", deliveryTimeout)
	if n := len(h.SMTP.Received(urgent)); n != 1 {
		t.Errorf("the SMTP server took %d emails for %s, want 1", n, urgent)
	}
	for _, q := range workQueues {
		if n := heraldtest.QueueDepth(t, h.AMQPURL, q); n != 0 {
			t.Errorf("queue %s holds %d commands after everything was delivered", q, n)
		}
	}
}
