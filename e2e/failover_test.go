package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/delivery/deliverytest"
	"github.com/herald-notify/herald/heraldtest"
)

// TestFailoverMovesDeliveryAndBack runs herald all with two SMTP relays: the primary behind a
// port the test closes and opens again, and a secondary, "backup". Emails keep coming while the
// primary goes away: delivery moves to the backup, the attempts record that they failed over
// from the primary, its breaker opens (herald providers status shows it), and when the primary
// is back traffic returns to it. Every notification is sent and reaches one of the relays.
func TestFailoverMovesDeliveryAndBack(t *testing.T) {
	d := newDeps(t)
	port := deliverytest.NewPort(t, d.SMTP.Addr())
	backup := deliverytest.NewSMTPSink(t)
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}, MaxAttempts: 10, Env: map[string]string{
		"HERALD_SMTP_PORT":                fmt.Sprint(port.Port()),
		"HERALD_SMTP_FAILOVER_URLS":       fmt.Sprintf("smtp://%s?tls=none&name=backup", backup.Addr()),
		"HERALD_BREAKER_FAILURES":         "3",
		"HERALD_BREAKER_TIMEOUT":          "2s",
		"HERALD_BREAKER_PUBLISH_INTERVAL": "200ms",
	}})

	type sent struct{ id, recipient string }
	var all []sent
	sendSome := func(phase string, n int) []sent {
		var out []sent
		for i := range n {
			r := fmt.Sprintf("%s-%02d@example.net", phase, i)
			out = append(out, sent{send(t, c.API, sendRequest{Type: "email", Recipient: r, Subject: "s", Content: "hello"}), r})
		}
		all = append(all, out...)
		return out
	}
	provider := func(id string) string { return waitStatus(t, c.API, id, "sent", deliveryTimeout).Provider }

	// The primary takes everything while it is up.
	for _, s := range sendSome("up", 5) {
		if p := provider(s.id); p != "smtp" {
			t.Errorf("%s sent via %s while the primary was up, want smtp", s.id, p)
		}
	}

	// The primary goes away under load: some emails are on their way when it does.
	sendSome("going", 5)
	port.Shut()
	down := sendSome("down", 15)
	var skipped bool
	for _, s := range down {
		if p := provider(s.id); p != "backup" {
			t.Errorf("%s sent via %s while the primary was down, want backup", s.id, p)
			continue
		}
		var e eventsJSON
		getJSON(t, c.API+"/api/v1/notifications/"+s.id+"/events", &e)
		for _, ev := range e.Events {
			if ev.Type != "NotificationSent" {
				continue
			}
			var data struct {
				Provider       string `json:"provider"`
				FailedOverFrom []struct {
					Provider string `json:"provider"`
					Error    string `json:"error"`
				} `json:"failed_over_from"`
			}
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				t.Fatal(err)
			}
			if len(data.FailedOverFrom) != 1 || data.FailedOverFrom[0].Provider != "smtp" {
				t.Errorf("%s: NotificationSent %s, want it to have failed over from smtp", s.id, ev.Data)
				continue
			}
			skipped = skipped || strings.Contains(data.FailedOverFrom[0].Error, "circuit breaker open")
		}
	}
	if !skipped {
		t.Error("no attempt passed the primary over with its breaker open")
	}

	// Every worker's breakers are visible from the CLI.
	heraldtest.Eventually(t, 10*time.Second, "herald providers status to show the primary failing", func() (bool, error) {
		var list struct {
			Providers []struct {
				Provider            string `json:"provider"`
				State               string `json:"state"`
				ConsecutiveFailures int    `json:"consecutive_failures"`
				LastError           string `json:"last_error"`
				Stale               bool   `json:"stale"`
			} `json:"providers"`
		}
		out := mustRunCLI(t, c, "providers", "status", "-o", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err
		}
		for _, p := range list.Providers {
			if p.Provider == "smtp" && p.State != "closed" && p.ConsecutiveFailures >= 3 && !p.Stale &&
				strings.Contains(p.LastError, "connection refused") {
				return true, nil
			}
		}
		return false, fmt.Errorf("got %s", out)
	})
	if got := metric(t, c.API+"/metrics", "herald_provider_sends_total", map[string]string{"provider": "smtp", "outcome": "skipped_open"}); got < 1 {
		t.Errorf("herald_provider_sends_total{provider=smtp,outcome=skipped_open} = %v, want at least 1", got)
	}

	// The primary comes back: once its breaker lets a trial through, traffic returns to it.
	port.Open()
	heraldtest.Eventually(t, 15*time.Second, "the primary's breaker to let a trial through", func() (bool, error) {
		state := metric(t, c.API+"/metrics", "herald_provider_breaker_state", map[string]string{"provider": "smtp"})
		return state < 2, fmt.Errorf("state %v", state)
	})
	heraldtest.Eventually(t, deliveryTimeout, "an email to go through the primary again", func() (bool, error) {
		s := sendSome("back", 1)[0]
		p := provider(s.id)
		return p == "smtp", fmt.Errorf("sent via %s", p)
	})
	for _, s := range sendSome("after", 5) {
		if p := provider(s.id); p != "smtp" {
			t.Errorf("%s sent via %s after the primary came back, want smtp", s.id, p)
		}
	}

	// Nothing lost: every notification is sent, and reached one relay or the other.
	for _, s := range all {
		waitStatus(t, c.API, s.id, "sent", deliveryTimeout)
		if got := len(d.SMTP.Received(s.recipient)) + len(backup.Received(s.recipient)); got < 1 {
			t.Errorf("%s (%s) reached no relay", s.id, s.recipient)
		}
	}
	t.Logf("%d notifications: %d through the primary, %d through the backup", len(all), d.SMTP.Count(), backup.Count())
}
