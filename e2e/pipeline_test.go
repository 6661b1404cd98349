package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// notificationCase is one notification a test sends and what should arrive at its sink.
type notificationCase struct {
	req         sendRequest
	correlation string // X-Correlation-ID sent with it, or ""
	wantBody    string
	wantSubject string // email only
}

// emailCase builds the i-th email of a batch from a template and its variables.
func emailCase(i int) notificationCase {
	name := fmt.Sprintf("User %02d", i)
	order := 1000 + i
	express := i%3 == 0
	items := []any{fmt.Sprintf("item-%d", i), "gift card"}
	when := "ships this week"
	if express {
		when = "ships tomorrow"
	}
	return notificationCase{
		req: sendRequest{
			Type:      "email",
			Recipient: fmt.Sprintf("%s <user%02d@example.com>", name, i),
			Subject:   "Order {{.order}} for {{.name}}",
			Content:   "Hello {{.name}}, order #{{.order}} {{if .express}}ships tomorrow{{else}}ships this week{{end}}.\nItems:{{range .items}} [{{.}}]{{end}}\nCode {{upper .code}}",
			Variables: map[string]any{"name": name, "order": order, "express": express, "items": items, "code": fmt.Sprintf("ab%dc", i)},
		},
		correlation: fmt.Sprintf("e2e-email-%02d", i),
		wantBody:    fmt.Sprintf("Hello %s, order #%d %s.\nItems: [item-%d] [gift card]\nCode AB%dC", name, order, when, i, i),
		wantSubject: fmt.Sprintf("Order %d for %s", order, name),
	}
}

// smsCase builds the i-th SMS of a batch from a template and its variables.
func smsCase(i int) notificationCase {
	vars := map[string]any{"name": fmt.Sprintf("Sam%d", i), "code": 4000 + i}
	sign := "Thanks"
	if i%2 == 1 {
		sign = fmt.Sprintf("Team %d", i)
		vars["sign"] = sign
	}
	return notificationCase{
		req: sendRequest{
			Type:      "sms",
			Recipient: fmt.Sprintf("+1415555%04d", i),
			Content:   `{{.name}}: your code is {{.code}}. {{default "Thanks" .sign}}`,
			Variables: vars,
		},
		wantBody: fmt.Sprintf("Sam%d: your code is %d. %s", i, 4000+i, sign),
	}
}

// address is the bare address of an email recipient, "Name <addr>" or "addr".
func address(recipient string) string {
	if i := strings.LastIndexByte(recipient, '<'); i >= 0 {
		return strings.TrimSuffix(recipient[i+1:], ">")
	}
	return recipient
}

// checkDelivered asserts that the notification id (sent as c) arrived at its sink exactly once,
// rendered, and tied to its id; and that its status, history and events say it was sent on the
// first attempt.
func checkDelivered(t *testing.T, h *cluster, id string, c notificationCase) {
	t.Helper()
	// The sink has the message before the worker records it as sent.
	n := waitStatus(t, h.API, id, "sent", deliveryTimeout)
	var providerMessageID string
	switch c.req.Type {
	case "email":
		got := h.SMTP.Received(c.req.Recipient)
		if len(got) != 1 {
			t.Errorf("%s: %d emails arrived for %s, want exactly 1", id, len(got), c.req.Recipient)
			return
		}
		m := got[0]
		if want := "<" + id + "@" + messageDomain + ">"; m.Header.Get("Message-Id") != want {
			t.Errorf("%s: Message-ID %q, want %q", id, m.Header.Get("Message-Id"), want)
		}
		if m.NotificationID != id {
			t.Errorf("%s: X-Herald-Notification-Id %q", id, m.NotificationID)
		}
		// The last line of a mail ends with a line break, which the content did not have.
		if body := strings.TrimSuffix(m.Body, "\n"); body != c.wantBody {
			t.Errorf("%s: body (-want +got):\n%s", id, cmp.Diff(c.wantBody, body))
		}
		if m.Subject != c.wantSubject {
			t.Errorf("%s: subject %q, want %q", id, m.Subject, c.wantSubject)
		}
		if len(m.To) != 1 || !strings.EqualFold(address(m.To[0]), address(c.req.Recipient)) {
			t.Errorf("%s: envelope recipients %q, want only %q", id, m.To, address(c.req.Recipient))
		}
		providerMessageID = m.MessageID
	case "sms":
		got := h.SMS.Received(c.req.Recipient)
		if len(got) != 1 {
			t.Errorf("%s: %d SMS arrived for %s, want exactly 1", id, len(got), c.req.Recipient)
			return
		}
		m := got[0]
		if m.IdempotencyToken != id {
			t.Errorf("%s: idempotency token %q, want the notification id", id, m.IdempotencyToken)
		}
		if m.Body != c.wantBody {
			t.Errorf("%s: body %q, want %q", id, m.Body, c.wantBody)
		}
		if m.From != smsFrom {
			t.Errorf("%s: from %q, want %q", id, m.From, smsFrom)
		}
		providerMessageID = m.SID
	}
	provider := map[string]string{"email": "smtp", "sms": "http-sms"}[c.req.Type]

	want := notificationJSON{
		ID: id, Type: c.req.Type, Recipient: c.req.Recipient, Status: "sent", Attempts: 1,
		Provider: provider, ProviderMessageID: providerMessageID, Version: 3,
	}
	if diff := cmp.Diff(want, n, cmpopts.IgnoreFields(notificationJSON{}, "Links")); diff != "" {
		t.Errorf("%s: status (-want +got):\n%s", id, diff)
	}

	history, evs := story(t, h.API, id, 3)
	wantHistory := []historyEntry{
		{Version: 1, Event: "NotificationQueued", Status: "pending"},
		{Version: 2, Event: "NotificationProcessing", Status: "processing", Attempt: 1},
		{Version: 3, Event: "NotificationSent", Status: "sent", Attempt: 1, Provider: provider, ProviderMessageID: providerMessageID},
	}
	if diff := cmp.Diff(wantHistory, history, cmpopts.IgnoreFields(historyEntry{}, "Position")); diff != "" {
		t.Errorf("%s: history (-want +got):\n%s", id, diff)
	}
	checkStory(t, id, history, evs, c.correlation)
}

// Separate API, worker and projector processes carry 20 emails and 20 SMS from the API to the
// sinks, each exactly once and rendered, and status, history and events agree on how.
func TestPipelineSeparateProcesses(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"worker", "projector", "serve"}})

	var cases []notificationCase
	for i := range 20 {
		cases = append(cases, emailCase(i), smsCase(i))
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = sendCorrelated(t, h.API, c.req, c.correlation)
	}
	for _, id := range ids {
		waitStatus(t, h.API, id, "sent", deliveryTimeout)
	}
	for i, c := range cases {
		checkDelivered(t, h, ids[i], c)
	}
	if n := h.SMTP.Count(); n != 20 {
		t.Errorf("SMTP sink accepted %d emails, want 20", n)
	}
	if n := h.SMS.Count(); n != 20 {
		t.Errorf("SMS sink accepted %d messages, want 20", n)
	}
	checkRunsAsRuntimeRole(t, h)
}

// checkRunsAsRuntimeRole fails the test unless every connection Herald's processes hold to their
// database is the runtime role's, which cannot alter the log, rather than its owner's.
func checkRunsAsRuntimeRole(t *testing.T, h *cluster) {
	t.Helper()
	rows, err := h.DB.Pool.Query(context.Background(), `SELECT usename::text, count(*) FROM pg_stat_activity
		WHERE datname = $1 AND application_name = 'herald' GROUP BY 1`, h.DB.Name)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]int{}
	for rows.Next() {
		var user string
		var n int
		if err := rows.Scan(&user, &n); err != nil {
			t.Fatal(err)
		}
		users[user] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[h.DB.Runtime] == 0 {
		t.Errorf("Herald's connections by user: %v; want all of them as the runtime role %s", users, h.DB.Runtime)
	}
}

// `herald all` runs the whole pipeline in one process, and stops cleanly on SIGTERM.
func TestAllInOneProcess(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"all"}})

	var cases []notificationCase
	for i := range 6 {
		cases = append(cases, emailCase(i), smsCase(i))
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = sendCorrelated(t, h.API, c.req, c.correlation)
	}
	for i, c := range cases {
		checkDelivered(t, h, ids[i], c)
	}

	p := h.proc(t, "all")
	took := p.shutdown(t)
	t.Logf("herald all stopped in %s", took)
	if log := p.Output(); !strings.Contains(log, `"msg":"shutting down"`) {
		t.Errorf("herald all did not log that it was shutting down")
	}
}
