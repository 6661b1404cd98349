package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/heraldtest"
)

// cliResult is how a `herald` command run by a test ended.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the herald binary with args against the cluster's database and RabbitMQ (and
// nothing else of the test's HERALD_* variables), and returns what it printed and its exit code.
func runCLI(t *testing.T, c *cluster, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HERALD_DATABASE_URL="+c.DB.RuntimeURL, "HERALD_AMQP_URL="+c.AMQPURL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("herald %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// mustRunCLI runs herald with args and fails the test unless it exits 0.
func mustRunCLI(t *testing.T, c *cluster, args ...string) string {
	t.Helper()
	res := runCLI(t, c, args...)
	if res.code != 0 {
		t.Fatalf("herald %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res.stdout
}

// parkedListJSON is `herald poison list -o json`, as GET /api/v1/poison answers it too.
type parkedListJSON struct {
	Parked []struct {
		ID        string     `json:"id"`
		Type      string     `json:"type"`
		Recipient string     `json:"recipient"`
		Status    string     `json:"status"`
		Reason    string     `json:"reason"`
		Error     string     `json:"error"`
		Attempts  int        `json:"attempts"`
		FailedAt  *time.Time `json:"failed_at"`
		Stale     bool       `json:"stale"`
		MessageID string     `json:"message_id"`
	} `json:"parked"`
	NextCursor string `json:"next_cursor"`
}

// operatorEntry is a history entry with the fields operator actions fill in.
type operatorEntry struct {
	Event   string `json:"event"`
	Status  string `json:"status"`
	Attempt int    `json:"attempt"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason"`
}

func operatorHistory(t *testing.T, baseURL, id string) []operatorEntry {
	t.Helper()
	var h struct {
		History []operatorEntry `json:"history"`
	}
	getJSON(t, baseURL+"/api/v1/notifications/"+id+"/history", &h)
	return h.History
}

// A notification whose gateway refused every attempt is failed and parked; `herald poison list`
// shows it; once the gateway is fixed, `herald poison requeue` sends it for a new round, which
// delivers it: sent, with the requeue and the new attempt in its history. Another one is
// discarded over HTTP and stays failed. Through all of it, the poison queue's depth is what
// RabbitMQ reports.
func TestPoisonRequeueAndDiscard(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"worker", "projector", "serve"}, MaxAttempts: 2})
	const (
		phone = "+14155550777"
		email = "gone@example.com"
	)
	h.SMS.AlwaysFail(phone, 503)
	h.SMTP.AlwaysFail(email, 550)
	smsID := send(t, h.API, sendRequest{Type: "sms", Recipient: phone, Content: "Your code is 4242"})
	emailID := send(t, h.API, sendRequest{Type: "email", Recipient: email, Content: "Goodbye"})
	waitStatus(t, h.API, smsID, "failed", deliveryTimeout)
	waitStatus(t, h.API, emailID, "failed", deliveryTimeout)
	waitQueueDepth(t, h.AMQPURL, queuePoison, 2, 15*time.Second)

	var list parkedListJSON
	if err := json.Unmarshal([]byte(mustRunCLI(t, h, "poison", "list", "-o", "json")), &list); err != nil {
		t.Fatalf("poison list -o json: %v", err)
	}
	found := false
	for _, p := range list.Parked {
		if p.ID != smsID {
			continue
		}
		found = true
		if p.Type != "sms" || p.Recipient != phone || p.Status != "failed" || p.Reason != "attempts_exhausted" ||
			!strings.Contains(p.Error, "503") || p.Attempts != 2 || p.FailedAt == nil || p.Stale || p.MessageID == "" {
			t.Errorf("poison list shows the SMS as %+v; want failed after 2 attempts, attempts_exhausted with a 503, when, and its message", p)
		}
	}
	if !found || len(list.Parked) != 2 {
		t.Fatalf("poison list shows %+v; want both failed notifications, %s among them", list.Parked, smsID)
	}
	// A page at a time: the CLI's pages are the API's, and together they hold both, once.
	var first, second, api parkedListJSON
	if err := json.Unmarshal([]byte(mustRunCLI(t, h, "poison", "list", "--limit", "1", "-o", "json")), &first); err != nil {
		t.Fatalf("poison list --limit 1 -o json: %v", err)
	}
	if len(first.Parked) != 1 || first.NextCursor == "" {
		t.Fatalf("poison list --limit 1 shows %+v; want one message and a cursor", first)
	}
	if err := json.Unmarshal([]byte(mustRunCLI(t, h, "poison", "list", "--limit", "1", "--cursor", first.NextCursor, "-o", "json")), &second); err != nil {
		t.Fatalf("poison list --cursor -o json: %v", err)
	}
	if len(second.Parked) != 1 || second.NextCursor != "" || second.Parked[0].ID == first.Parked[0].ID {
		t.Errorf("poison list --cursor shows %+v after %+v; want the other message and no cursor", second, first)
	}
	getJSON(t, h.API+"/api/v1/poison?limit=1", &api)
	if len(api.Parked) != 1 || api.Parked[0].MessageID != first.Parked[0].MessageID || api.NextCursor != first.NextCursor {
		t.Errorf("GET /api/v1/poison?limit=1 = %+v; want what the CLI showed, %+v", api, first)
	}
	// Listing takes nothing away.
	waitQueueDepth(t, h.AMQPURL, queuePoison, 2, 10*time.Second)
	table := mustRunCLI(t, h, "poison", "list", "--type", "sms")
	if !strings.Contains(table, "RECIPIENT") || !strings.Contains(table, smsID) || strings.Contains(table, emailID) {
		t.Errorf("poison list --type sms:\n%s\nwant a table with the SMS and not the email", table)
	}
	shown := mustRunCLI(t, h, "poison", "show", smsID)
	for _, want := range []string{"parked because:", "send_sms", "NotificationFailed", `"notification_id":"` + smsID + `"`} {
		if !strings.Contains(shown, want) {
			t.Errorf("poison show does not mention %q:\n%s", want, shown)
		}
	}

	// The gateway is fixed: a new round delivers the SMS.
	h.SMS.FailTimes(phone, 0, 503)
	var requeued struct {
		Results []struct {
			ID      string `json:"id"`
			Action  string `json:"action"`
			Status  string `json:"status"`
			Removed int    `json:"removed"`
		} `json:"results"`
	}
	out := mustRunCLI(t, h, "poison", "requeue", smsID, "--actor", "ops", "--reason", "fixed", "-o", "json")
	if err := json.Unmarshal([]byte(out), &requeued); err != nil {
		t.Fatalf("poison requeue -o json: %v\n%s", err, out)
	}
	if len(requeued.Results) != 1 || requeued.Results[0].ID != smsID || requeued.Results[0].Action != "requeued" || requeued.Results[0].Removed != 1 {
		t.Errorf("poison requeue answered %s, want %s requeued with its one message removed", out, smsID)
	}
	waitQueueDepth(t, h.AMQPURL, queuePoison, 1, 10*time.Second)
	// The status says failed until the projector reaches the requeue (version 6); from there on
	// failed would be a new failure.
	waitVersion(t, h.API, smsID, 6)
	n := waitStatus(t, h.API, smsID, "sent", deliveryTimeout)
	if n.Attempts != 3 {
		t.Errorf("the requeued SMS was sent after %d attempts, want 3 (two failed, then one more)", n.Attempts)
	}
	history, evs := story(t, h.API, smsID, 8)
	checkStory(t, smsID, history, evs, "")
	got := operatorHistory(t, h.API, smsID)
	if len(got) >= 3 {
		got = got[len(got)-3:]
	}
	for i := 1; i < len(got); i++ {
		// Workers sign as worker:host/pid; the operator's name is checked exactly below.
		if !strings.HasPrefix(got[i].Actor, "worker:") {
			t.Errorf("%s %s by %q, want a worker", smsID, got[i].Event, got[i].Actor)
		}
		got[i].Actor = ""
	}
	want := []operatorEntry{
		{Event: "NotificationRequeued", Status: "pending", Actor: "ops", Reason: "fixed"},
		{Event: "NotificationProcessing", Status: "processing", Attempt: 3},
		{Event: "NotificationSent", Status: "sent", Attempt: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the end of %s's history (-want +got):\n%s", smsID, diff)
	}
	if got := len(h.SMS.Received(phone)); got != 1 {
		t.Errorf("the gateway accepted %d messages for %s, want 1", got, phone)
	}

	// The email is given up on, over HTTP.
	resp, body := postJSON(t, h.API+"/api/v1/poison/"+emailID+"/discard", `{"actor":"ops","reason":"address gone"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"action":"discarded"`) {
		t.Fatalf("POST discard: %s %s, want 200 discarded", resp.Status, body)
	}
	waitQueueDepth(t, h.AMQPURL, queuePoison, 0, 10*time.Second)
	heraldtest.Eventually(t, 15*time.Second, "the email's history to end with NotificationDiscarded by ops", func() (bool, error) {
		hist := operatorHistory(t, h.API, emailID)
		last := hist[len(hist)-1]
		want := operatorEntry{Event: "NotificationDiscarded", Status: "failed", Actor: "ops via apikey:e2e", Reason: "address gone"}
		return last == want, fmt.Errorf("it ends with %+v", last)
	})
	if n := waitStatus(t, h.API, emailID, "failed", 5*time.Second); n.Attempts != 1 {
		t.Errorf("the discarded email shows %d attempts, want its 1", n.Attempts)
	}

	// Nothing left to act on: refused, and nothing changes.
	res := runCLI(t, h, "poison", "requeue", smsID, "--actor", "ops")
	if res.code == 0 || !strings.Contains(res.stderr, "is sent, not failed") {
		t.Errorf("requeue of a sent notification: exit %d, stderr %q; want non-zero, saying it is sent", res.code, res.stderr)
	}
	resp, body = postJSON(t, h.API+"/api/v1/poison/"+emailID+"/discard", `{"reason":"again"}`)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("second discard: %s %s, want 409", resp.Status, body)
	}
}

// Bad arguments are refused with a clear message and a non-zero exit, before anything is done.
func TestPoisonCLIRefusesBadArguments(t *testing.T) {
	t.Parallel()
	h := &cluster{deps: newDeps(t)}
	id := "0190a0b1-7c3e-7def-8123-456789abcdef"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"poison", "requeue"}, "name the notifications"},
		{[]string{"poison", "requeue", "--all", id}, "not both"},
		{[]string{"poison", "requeue", "12345"}, "not a notification id"},
		{[]string{"poison", "requeue", "--all", "--type", "fax"}, `unknown channel "fax"`},
		{[]string{"poison", "discard", id}, "needs --reason"},
		{[]string{"poison", "list", "-o", "yaml"}, "want table or json"},
	}
	for _, tt := range tests {
		res := runCLI(t, h, tt.args...)
		if res.code == 0 || !strings.Contains(res.stderr, tt.want) {
			t.Errorf("herald %s: exit %d, stderr %q; want non-zero, mentioning %q", strings.Join(tt.args, " "), res.code, res.stderr, tt.want)
		}
		if res.stdout != "" {
			t.Errorf("herald %s printed %q to stdout; want nothing", strings.Join(tt.args, " "), res.stdout)
		}
	}
	// Without a worker or serve having run, there is no poison queue to work.
	res := runCLI(t, h, "poison", "list")
	if res.code == 0 || !strings.Contains(res.stderr, "poison queue not declared yet") {
		t.Errorf("poison list before any worker ran: exit %d, stderr %q; want non-zero, saying the queue is not declared yet", res.code, res.stderr)
	}
}

func postJSON(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitVersion waits until the status of notification id has reached stream version v.
func waitVersion(t *testing.T, baseURL, id string, v int64) {
	t.Helper()
	heraldtest.Eventually(t, 15*time.Second, fmt.Sprintf("the status of %s to reach version %d", id, v), func() (bool, error) {
		var n notificationJSON
		if err := tryGetJSON(baseURL+"/api/v1/notifications/"+id+"/status", &n); err != nil {
			return false, err
		}
		return n.Version >= v, fmt.Errorf("at version %d, %s", n.Version, n.Status)
	})
}
