package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/heraldtest"
)

// TestEmailBounceEndToEnd: with a bounce domain, an email leaves with a return path naming its
// notification; a Postfix DSN sent back to that address over SMTP makes the notification bounced,
// its history shows the bounce, and the operator reads the report with the CLI.
func TestEmailBounceEndToEnd(t *testing.T) {
	const domain = "bounce.e2e.test"
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listener := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := startHerald(t, heraldOpts{Commands: []string{"all"}, Env: map[string]string{
		"HERALD_BOUNCE_DOMAIN": domain,
		"HERALD_BOUNCE_ADDR":   listener,
	}})

	id := send(t, c.API, sendRequest{Type: "email", Recipient: "bob@example.net", Subject: "Your code", Content: "Hello, your code is 1234."})
	waitStatus(t, c.API, id, "sent", deliveryTimeout)
	got := c.SMTP.Received("bob@example.net")
	returnPath := "bounces+" + id + "@" + domain
	if len(got) != 1 || got[0].From != returnPath || got[0].NotificationID != id {
		t.Fatalf("the sink received %+v, want one message with envelope sender %s", got, returnPath)
	}

	fixture, err := os.ReadFile("../bounces/testdata/postfix_hard.eml")
	if err != nil {
		t.Fatal(err)
	}
	dsn := bytes.ReplaceAll(fixture, []byte("0190d5a2-7c3e-7b4a-9f10-3c5e8a1b2c4d"), []byte(id))
	if err := sendMail(listener, returnPath, dsn); err != nil {
		t.Fatalf("deliver the DSN to the bounce listener: %v", err)
	}

	var n notificationJSON
	heraldtest.Eventually(t, 15*time.Second, "notification "+id+" to be bounced", func() (bool, error) {
		n = notificationJSON{}
		if err := tryGetJSON(c.API+"/api/v1/notifications/"+id+"/status", &n); err != nil {
			return false, err
		}
		return n.Status == "bounced", fmt.Errorf("status %s", n.Status)
	})
	if !strings.HasPrefix(n.LastError, "5.1.1: 550 5.1.1") {
		t.Errorf("last error = %q, want the DSN's status and diagnostic", n.LastError)
	}
	history, evs := story(t, c.API, id, 4)
	last, lastEvent := history[len(history)-1], evs[len(evs)-1]
	if last.Event != "NotificationBounced" || last.Status != "bounced" || !strings.Contains(last.Error, "User unknown") {
		t.Errorf("last history entry = %+v, want NotificationBounced, bounced, with the diagnostic", last)
	}
	data := eventData(t, lastEvent)
	if data["kind"] != "hard" || data["reporting_mta"] != "mx1.example.net" || data["recipient"] != "bob@example.net" {
		t.Errorf("NotificationBounced data = %v, want a hard bounce from mx1.example.net for bob@example.net", data)
	}

	// The operator finds the report the event names, as it arrived.
	var shown struct {
		ID             int64  `json:"id"`
		Outcome        string `json:"outcome"`
		NotificationID string `json:"notification_id"`
		Raw            string `json:"raw"`
	}
	out := mustRunCLI(t, c, "bounces", "show", fmt.Sprint(data["report_id"]), "-o", "json")
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("herald bounces show -o json: %v\n%s", err, out)
	}
	if shown.Outcome != "hard_bounce" || shown.NotificationID != id || !strings.Contains(shown.Raw, "X-Postfix-Queue-ID: 4Xk2Lm0Qz9z9sWc") {
		t.Errorf("herald bounces show: outcome %q, notification %q, want hard_bounce for %s with the raw report", shown.Outcome, shown.NotificationID, id)
	}

	// The hard bounce put the recipient on the suppression list, naming the notification.
	var entry struct {
		Cause          string `json:"cause"`
		NotificationID string `json:"notification_id"`
		Active         bool   `json:"active"`
	}
	out = mustRunCLI(t, c, "suppressions", "show", "email", "Bob@Example.net", "-o", "json")
	if err := json.Unmarshal([]byte(out), &entry); err != nil {
		t.Fatalf("herald suppressions show -o json: %v\n%s", err, out)
	}
	if entry.Cause != "hard_bounce" || entry.NotificationID != id || !entry.Active {
		t.Fatalf("suppression of bob@example.net = %+v, want an active hard_bounce from %s", entry, id)
	}

	// The next email to that address is accepted, fails as suppressed, and reaches no server.
	again := send(t, c.API, sendRequest{Type: "email", Recipient: "Bob <bob@example.net>", Subject: "Your code", Content: "Hello again."})
	failed := waitStatus(t, c.API, again, "failed", deliveryTimeout)
	if !strings.HasPrefix(failed.LastError, "recipient suppressed (hard_bounce: 5.1.1") {
		t.Errorf("last error = %q, want the suppression named", failed.LastError)
	}
	againHistory, _ := story(t, c.API, again, 2)
	if last := againHistory[len(againHistory)-1]; last.Event != "NotificationFailed" || last.Reason != "suppressed" {
		t.Errorf("last history entry = %+v, want NotificationFailed, reason suppressed", last)
	}

	// Lifted by an operator, the recipient receives again.
	mustRunCLI(t, c, "suppressions", "remove", "email", "bob@example.net", "--reason", "mailbox restored")
	third := send(t, c.API, sendRequest{Type: "email", Recipient: "bob@example.net", Subject: "Your code", Content: "Third time."})
	waitStatus(t, c.API, third, "sent", deliveryTimeout)
	var ids []string
	for _, m := range c.SMTP.Received("bob@example.net") {
		ids = append(ids, m.NotificationID)
	}
	if len(ids) != 2 || ids[0] != id || ids[1] != third {
		t.Errorf("the sink received %v, want %s and %s only: the suppressed one must reach no server", ids, id, third)
	}
}

// sendMail delivers raw to the SMTP server at addr, from the null sender (as bounces are) to
// rcpt.
func sendMail(addr, rcpt string, raw []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(""); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
