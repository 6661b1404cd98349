package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// secretPattern finds a webhook signing secret in what a command printed.
var secretPattern = regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{20,}`)

// endpointOutput is an endpoint as `herald webhooks … -o json` prints it.
type endpointOutput struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Description    string   `json:"description"`
	EventTypes     []string `json:"event_types"`
	AllEvents      bool     `json:"all_events"`
	Enabled        bool     `json:"enabled"`
	DisabledReason string   `json:"disabled_reason"`
	Version        int64    `json:"version"`
	CreatedBy      string   `json:"created_by"`
	RetriesPending *int64   `json:"retries_pending"`
	Secret         string   `json:"secret"`
}

// webhooksCLI runs herald webhooks against a scratch database.
type webhooksCLI struct {
	db *heraldtest.Database
}

// newWebhooksCLI is the webhooks commands over a fresh database, without the caller's HERALD_*.
func newWebhooksCLI(t *testing.T) *webhooksCLI {
	t.Helper()
	commandSettings(t)
	return &webhooksCLI{db: heraldtest.NewDatabase(t)}
}

// run runs herald webhooks with args on the scratch database.
func (c *webhooksCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runHerald(t, append(append([]string{"webhooks"}, args...), "--database-url", c.db.URL)...)
}

// must runs herald webhooks with args and fails the test if it fails.
func (c *webhooksCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("herald webhooks %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// mustNotShowSecrets runs args and fails the test if they print a secret.
func (c *webhooksCLI) mustNotShowSecrets(t *testing.T, args ...string) string {
	t.Helper()
	out := c.must(t, args...)
	if secretPattern.MatchString(out) || strings.Contains(out, `"secret"`) {
		t.Errorf("herald webhooks %s printed a secret:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// create registers an endpoint with -o json and returns it as printed.
func (c *webhooksCLI) create(t *testing.T, args ...string) endpointOutput {
	t.Helper()
	var e endpointOutput
	decodeOutput(t, c.must(t, append([]string{"create", "-o", "json"}, args...)...), &e)
	return e
}

// count counts the rows of table.
func (c *webhooksCLI) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := c.db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// decodeOutput parses what a command printed as JSON into into.
func decodeOutput(t *testing.T, out string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("output is not the JSON expected: %v\n%s", err, out)
	}
}

func TestWebhooksCreatePrintsTheSecretOnce(t *testing.T) {
	c := newWebhooksCLI(t)
	out := c.must(t, "create", "--url", "https://hooks.example.com/a", "--description", "billing", "--actor", "ann")
	secrets := secretPattern.FindAllString(out, -1)
	if len(secrets) != 1 || !strings.Contains(out, "will not be shown again") || !strings.Contains(out, "all event types") {
		t.Fatalf("create printed %d secrets, want 1 with a word to store it:\n%s", len(secrets), out)
	}
	var list struct{ Endpoints []endpointOutput }
	decodeOutput(t, c.mustNotShowSecrets(t, "list", "-o", "json"), &list)
	if len(list.Endpoints) != 1 || !strings.Contains(out, list.Endpoints[0].ID) || list.Endpoints[0].CreatedBy != "ann" ||
		!list.Endpoints[0].AllEvents || list.Endpoints[0].EventTypes == nil {
		t.Fatalf("list -o json: %+v, want the endpoint create named, by ann, for all events", list)
	}
	id := list.Endpoints[0].ID

	e := c.create(t, "--url", "https://hooks.example.com/b", "--events", "NotificationSent, NotificationFailed")
	if !strings.HasPrefix(e.Secret, "whsec_") || e.Secret == secrets[0] || e.AllEvents || len(e.EventTypes) != 2 || e.CreatedBy == "" {
		t.Errorf("create -o json: %+v; want a new secret, two event types, and the OS user as creator", e)
	}

	table := c.mustNotShowSecrets(t, "list")
	for _, want := range []string{id, e.ID, "https://hooks.example.com/a", "NotificationSent, NotificationFailed", "billing"} {
		if !strings.Contains(table, want) {
			t.Errorf("list does not show %q:\n%s", want, table)
		}
	}
	show := c.mustNotShowSecrets(t, "show", id)
	for _, want := range []string{id, "History:", "ann", events.TypeWebhookEndpointCreated, "endpoint https://hooks.example.com/a", "Retries pending"} {
		if !strings.Contains(show, want) {
			t.Errorf("show does not show %q:\n%s", want, show)
		}
	}
	var shown endpointOutput
	decodeOutput(t, c.mustNotShowSecrets(t, "show", id, "-o", "json"), &shown)
	if shown.ID != id || shown.RetriesPending == nil || *shown.RetriesPending != 0 {
		t.Errorf("show -o json: %+v, want retries_pending 0", shown)
	}
}

func TestWebhooksRefuseBadInputAndWriteNothing(t *testing.T) {
	c := newWebhooksCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--url", "ftp://hooks.example.com/a"}, "--url:"},
		{[]string{"create", "--url", "http://hooks.example.com/a"}, "--url:"},
		{[]string{"create", "--url", "https://127.0.0.1/a"}, "--url:"},
		{[]string{"create", "--url", "https://hooks.example.com/a", "--events", "NotificationSent,Nope"}, `--events: unknown event type "Nope"`},
		{[]string{"create"}, `"url" not set`},
		{[]string{"show", uuid.NewString()}, "no webhook endpoint"},
		{[]string{"disable", "not-an-id"}, "no webhook endpoint"},
	} {
		out, err := c.run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("herald webhooks %s: %v, want an error saying %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
	if n, m := c.count(t, "webhook_endpoints"), c.count(t, "event_log"); n != 0 || m != 0 {
		t.Fatalf("refused commands wrote %d endpoints and %d events", n, m)
	}

	e := c.create(t, "--url", "https://hooks.example.com/a")
	out, err := c.run(t, "create", "--url", "https://hooks.example.com/a")
	if err == nil || !strings.Contains(err.Error(), "exists already") || secretPattern.MatchString(out) {
		t.Errorf("a duplicate URL: %v\n%s", err, out)
	}
	if _, err := c.run(t, "update", e.ID); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Errorf("update without a change: %v", err)
	}
	if _, err := c.run(t, "update", e.ID, "--url", "https://hooks.example.com/b", "--events", "Nope"); err == nil || !strings.Contains(err.Error(), "--events") {
		t.Errorf("update with a bad type: %v", err)
	}
	if n, m := c.count(t, "webhook_endpoints"), c.count(t, "event_log"); n != 1 || m != 1 {
		t.Errorf("after refusals: %d endpoints and %d events, want the one creation", n, m)
	}
}

func TestWebhooksChangesAreEventsWithTheActor(t *testing.T) {
	c := newWebhooksCLI(t)
	e := c.create(t, "--url", "https://hooks.example.com/a", "--actor", "ann")
	var got endpointOutput
	decodeOutput(t, c.must(t, "update", e.ID, "--events", "NotificationSent", "--description", "sent only", "--actor", "bob", "-o", "json"), &got)
	if got.AllEvents || got.Description != "sent only" || got.Version != 2 {
		t.Errorf("update -o json: %+v", got)
	}
	out := c.mustNotShowSecrets(t, "disable", e.ID, "--reason", "receiver moving", "--actor", "cat")
	if !strings.Contains(out, "Disabled") || !strings.Contains(out, "receiver moving") {
		t.Errorf("disable printed:\n%s", out)
	}
	c.mustNotShowSecrets(t, "enable", e.ID, "--actor", "dan")
	out = c.must(t, "rotate-secret", e.ID, "--actor", "eve")
	if s := secretPattern.FindAllString(out, -1); len(s) != 1 || s[0] == e.Secret || !strings.Contains(out, "will not be shown again") {
		t.Errorf("rotate-secret printed %d secrets, want one new one:\n%s", len(s), out)
	}
	c.must(t, "delete", e.ID, "--actor", "fay")
	if _, err := c.run(t, "show", e.ID); err == nil {
		t.Errorf("show of a deleted endpoint succeeded")
	}

	out = mustRunHerald(t, "events", "list", "--stream", e.ID, "-o", "jsonl", "--database-url", c.db.URL)
	type line struct {
		Type     string          `json:"type"`
		Metadata events.Metadata `json:"metadata"`
	}
	var got2 []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l line
		decodeOutput(t, sc.Text(), &l)
		got2 = append(got2, l.Type+" by "+l.Metadata.Actor)
	}
	want := []string{
		events.TypeWebhookEndpointCreated + " by ann", events.TypeWebhookEndpointUpdated + " by bob",
		events.TypeWebhookEndpointDisabled + " by cat", events.TypeWebhookEndpointEnabled + " by dan",
		events.TypeWebhookEndpointSecretRotated + " by eve", events.TypeWebhookEndpointDeleted + " by fay",
	}
	if strings.Join(got2, "\n") != strings.Join(want, "\n") {
		t.Errorf("the endpoint's stream:\n%s\nwant:\n%s", strings.Join(got2, "\n"), strings.Join(want, "\n"))
	}
	if secretPattern.MatchString(out) {
		t.Errorf("the log holds a secret:\n%s", out)
	}
}

func TestWebhooksReplayAndDeliveries(t *testing.T) {
	c := newWebhooksCLI(t)
	log := events.NewLog(c.db.Pool)
	var ids []string
	for i := 0; i < 3; i++ {
		id := uuid.NewString()
		if _, err := log.Append(context.Background(), id, 0, events.Metadata{},
			&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	heraldtest.WaitLogVisible(t, c.db, 3)
	var received atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		received.Add(1)
		if strings.Contains(string(b), ids[2]) {
			http.Error(w, "no", http.StatusBadGateway)
		}
	}))
	t.Cleanup(rc.Close)
	loopback := []string{"--webhook-allow-private", "--webhook-allow-http"}
	e := c.create(t, append([]string{"--url", rc.URL + "/hook"}, loopback...)...)

	replay := func(args ...string) (string, error) {
		return c.run(t, append(append([]string{"replay", e.ID, "--progress", "none"}, loopback...), args...)...)
	}
	if _, err := replay(); err == nil || !strings.Contains(err.Error(), "--from-position") || !strings.Contains(err.Error(), "--since") {
		t.Errorf("replay with no start: %v, want it to name --from-position and --since", err)
	}
	if _, err := replay("--from-position", "1", "--types", "Nope"); err == nil || !strings.Contains(err.Error(), "--types") {
		t.Errorf("replay of an unknown type: %v", err)
	}
	out, err := replay("--from-position", "1", "--dry-run")
	if err != nil || !strings.Contains(out, "Dry run: 3 events") || received.Load() != 0 {
		t.Fatalf("replay --dry-run: %v, the receiver got %d:\n%s", err, received.Load(), out)
	}
	if n := c.count(t, "webhook_attempts"); n != 0 {
		t.Fatalf("a dry run recorded %d attempts", n)
	}

	out, err = replay("--since", "1h", "-o", "json")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	var rep struct{ Matched, Sent, Failed int64 }
	decodeOutput(t, out, &rep)
	if rep.Matched != 3 || rep.Sent != 2 || rep.Failed != 1 || received.Load() != 3 {
		t.Fatalf("replay -o json: %+v, receiver got %d; want 3 matched, 2 sent, 1 failed", rep, received.Load())
	}
	out, err = replay("--from-position", "2", "--types", "NotificationQueued")
	if err != nil || !strings.Contains(out, "2 events matched, 1 sent, 1 failed") || !strings.Contains(out, "--failed") {
		t.Errorf("replay summary: %v\n%s", err, out)
	}

	var page struct {
		Attempts []struct {
			ID             int64  `json:"id"`
			NotificationID string `json:"notification_id"`
			Trigger        string `json:"trigger"`
			StatusCode     *int   `json:"status_code"`
			Succeeded      bool   `json:"succeeded"`
		} `json:"attempts"`
		NextBefore int64 `json:"next_before"`
	}
	decodeOutput(t, c.must(t, "deliveries", e.ID, "-o", "json"), &page)
	if len(page.Attempts) != 5 || page.NextBefore != 0 || page.Attempts[0].ID < page.Attempts[4].ID {
		t.Fatalf("deliveries -o json: %+v, want 5 attempts, newest first", page)
	}
	decodeOutput(t, c.must(t, "deliveries", e.ID, "--failed", "-o", "json"), &page)
	if len(page.Attempts) != 2 || page.Attempts[0].NotificationID != ids[2] || *page.Attempts[0].StatusCode != 502 || page.Attempts[0].Trigger != "replay" {
		t.Errorf("deliveries --failed: %+v, want the two of %s, answered 502", page, ids[2])
	}
	out = c.must(t, "deliveries", e.ID, "--limit", "2")
	if !strings.Contains(out, "NOTIFICATION") || !strings.Contains(out, "502") || !strings.Contains(out, "--before") {
		t.Errorf("deliveries --limit 2 (a table with a next page):\n%s", out)
	}
	if lines := strings.Count(c.must(t, "deliveries", e.ID, "-o", "jsonl"), "\n"); lines != 5 {
		t.Errorf("deliveries -o jsonl printed %d lines, want 5", lines)
	}
	if _, err := c.run(t, "deliveries", e.ID, "--limit", "0"); err == nil || !strings.Contains(err.Error(), "--limit") {
		t.Errorf("deliveries --limit 0: %v", err)
	}
	out = c.mustNotShowSecrets(t, "show", e.ID)
	if !strings.Contains(out, "Retries pending  1") {
		t.Errorf("show does not count the retry pending:\n%s", out)
	}
}
