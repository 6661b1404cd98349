package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/suppressions"
	"github.com/herald-notify/herald/wire"
)

// suppressionsCLI runs herald suppressions against a scratch database.
type suppressionsCLI struct {
	db *heraldtest.Database
}

func newSuppressionsCLI(t *testing.T) *suppressionsCLI {
	t.Helper()
	commandSettings(t)
	return &suppressionsCLI{db: heraldtest.NewDatabase(t)}
}

// run runs herald suppressions with args on the scratch database.
func (c *suppressionsCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runHerald(t, append(append([]string{"suppressions"}, args...), "--database-url", c.db.URL)...)
}

// must runs herald suppressions with args and fails the test if it fails.
func (c *suppressionsCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("herald suppressions %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// written counts the list's rows and its events.
func (c *suppressionsCLI) written(t *testing.T) (rows, evs int) {
	t.Helper()
	if err := c.db.Pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM suppressions),
		(SELECT count(*) FROM event_log WHERE event_type = ANY($1))`,
		[]string{events.TypeRecipientSuppressed, events.TypeRecipientUnsuppressed}).Scan(&rows, &evs); err != nil {
		t.Fatal(err)
	}
	return rows, evs
}

func TestSuppressionsAddListShowRemove(t *testing.T) {
	c := newSuppressionsCLI(t)
	me, err := poisonActor("")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	var ann wire.Suppression
	decodeOutput(t, c.must(t, "add", "email", "Ann Lee <Ann@Example.com>", "--reason", "asked by phone", "--expires-in", "720h", "-o", "json"), &ann)
	if ann.Recipient != "ann@example.com" || ann.Cause != events.SuppressedManual || ann.CreatedBy != me || !ann.Active ||
		ann.ExpiresAt == nil || ann.ExpiresAt.Before(before.Add(720*time.Hour).Add(-time.Second)) || ann.Links.Self != "/api/v1/suppressions/email/ann@example.com" {
		t.Errorf("add -o json: %+v; want ann@example.com, manual, by %s, expiring in 720h", ann, me)
	}
	long := "the customer called to say that this address belongs to a former employee and must not receive anything"
	out := c.must(t, "add", "sms", "+14155550123", "--reason", long, "--expires-at", "2099-01-01T00:00:00Z", "--actor", "ann")
	if !strings.Contains(out, "Suppressed sms +14155550123 (until 2099-01-01T00:00:00Z)") || !strings.Contains(out, long) {
		t.Errorf("add printed:\n%s", out)
	}

	table := c.must(t, "list")
	for _, want := range []string{"CHANNEL", "RECIPIENT", "CAUSE", "SINCE", "EXPIRES", "REASON", "ann@example.com", "+14155550123", "manual",
		"2099-01-01T00:00:00Z", "asked by phone", "the customer called"} {
		if !strings.Contains(table, want) {
			t.Errorf("list does not show %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, long) || !strings.Contains(table, "…") {
		t.Errorf("list shows the long reason whole, want it cut:\n%s", table)
	}
	var page wire.SuppressionList
	decodeOutput(t, c.must(t, "list", "--channel", "sms", "-o", "json"), &page)
	if len(page.Suppressions) != 1 || page.Suppressions[0].Recipient != "+14155550123" || page.Suppressions[0].CreatedBy != "ann" ||
		page.Suppressions[0].Links.Self != "/api/v1/suppressions/sms/%2B14155550123" {
		t.Errorf("list --channel sms -o json: %+v", page)
	}
	decodeOutput(t, c.must(t, "list", "--limit", "1", "-o", "json"), &page)
	if len(page.Suppressions) != 1 || page.NextCursor == "" {
		t.Fatalf("list --limit 1 -o json: %+v, want one entry and a cursor", page)
	}
	out = c.must(t, "list", "--limit", "1")
	if !strings.Contains(out, "--cursor "+page.NextCursor) {
		t.Errorf("list --limit 1 does not give the next page's cursor:\n%s", out)
	}
	var second wire.SuppressionList
	decodeOutput(t, c.must(t, "list", "--limit", "1", "--cursor", page.NextCursor, "-o", "json"), &second)
	if len(second.Suppressions) != 1 || second.Suppressions[0].Channel != "sms" || second.NextCursor != "" {
		t.Errorf("the second page: %+v, want the sms entry and no more", second)
	}

	out = c.must(t, "remove", "email", "ANN@example.com", "--reason", "mailbox fixed")
	if !strings.Contains(out, "Lifted the suppression of email ann@example.com") || !strings.Contains(out, "removed") {
		t.Errorf("remove printed:\n%s", out)
	}
	if _, err := c.run(t, "remove", "email", "ann@example.com", "--reason", "again"); err == nil || !strings.Contains(err.Error(), "not suppressed") {
		t.Errorf("a second remove: %v, want it refused as not suppressed", err)
	}
	if out := c.must(t, "list"); strings.Contains(out, "ann@example.com") {
		t.Errorf("list shows a lifted entry:\n%s", out)
	}
	if out := c.must(t, "list", "--all"); !strings.Contains(out, "STATE") || !strings.Contains(squeezeSpaces(out), "email ann@example.com removed manual") {
		t.Errorf("list --all does not show the lifted entry as removed:\n%s", out)
	}

	show := c.must(t, "show", "email", "ann@example.com")
	for _, want := range []string{"State", "removed", "History:", me, events.TypeRecipientSuppressed, events.TypeRecipientUnsuppressed,
		"email ann@example.com suppressed (manual: asked by phone) until", "email ann@example.com no longer suppressed: mailbox fixed"} {
		if !strings.Contains(show, want) {
			t.Errorf("show does not show %q:\n%s", want, show)
		}
	}
	var shown wire.Suppression
	decodeOutput(t, c.must(t, "show", "email", "ann@example.com", "-o", "json"), &shown)
	if shown.Active || shown.RemovedAt == nil || shown.Version != 2 {
		t.Errorf("show -o json: %+v, want the removed entry at version 2", shown)
	}

	// -o json prints what the API's constructors make of the entry: the same JSON.
	store := suppressions.New(c.db.Pool)
	s, err := store.Get(t.Context(), herald.ChannelSMS, "+14155550123")
	if err != nil {
		t.Fatal(err)
	}
	var cli wire.Suppression
	decodeOutput(t, c.must(t, "show", "sms", "+14155550123", "-o", "json"), &cli)
	if diff := cmp.Diff(wire.NewSuppression(s), cli); diff != "" {
		t.Errorf("show -o json differs from the API's shape (-api +cli):\n%s", diff)
	}
}

// TestSuppressionsRefuseBadInputAndWriteNothing: each mistake names what to fix.
func TestSuppressionsRefuseBadInputAndWriteNothing(t *testing.T) {
	c := newSuppressionsCLI(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "email", "a@example.com"}, `"reason" not set`},
		{[]string{"add", "email", "a@example.com", "--reason", " "}, "--reason: is required"},
		{[]string{"add", "fax", "a@example.com", "--reason", "r"}, "CHANNEL: unknown channel"},
		{[]string{"add", "email", "not-an-address", "--reason", "r"}, "RECIPIENT:"},
		{[]string{"add", "sms", "555", "--reason", "r"}, "RECIPIENT:"},
		{[]string{"add", "email", "a@example.com", "--reason", "r", "--expires-in", "-1h"}, "--expires-in: must be a positive duration"},
		{[]string{"add", "email", "a@example.com", "--reason", "r", "--expires-in", "0s"}, "--expires-in: must be a positive duration"},
		{[]string{"add", "email", "a@example.com", "--reason", "r", "--expires-in", "30d"}, "expires-in"},
		{[]string{"add", "email", "a@example.com", "--reason", "r", "--expires-at", "tomorrow"}, "--expires-at: \"tomorrow\" is not an RFC 3339 time"},
		{[]string{"add", "email", "a@example.com", "--reason", "r", "--expires-at", "2001-01-01T00:00:00Z"}, "--expires-at: must be in the future"},
		{[]string{"add", "email", "a@example.com", "--reason", "r", "--expires-at", "2099-01-01T00:00:00Z", "--expires-in", "1h"}, "not both"},
		{[]string{"add", "email"}, "accepts 2 arg(s)"},
		{[]string{"remove", "email", "a@example.com"}, `"reason" not set`},
		{[]string{"remove", "email", "a@example.com", "--reason", "r"}, "not suppressed"},
		{[]string{"show", "email", "a@example.com"}, "not suppressed"},
		{[]string{"show", "fax", "a@example.com"}, "CHANNEL: unknown channel"},
		{[]string{"list", "--channel", "fax"}, "--channel: unknown channel"},
		{[]string{"list", "--cause", "spite"}, "--cause: unknown cause"},
		{[]string{"list", "--limit", "0"}, "--limit: must be a whole number from 1 to 1000"},
		{[]string{"list", "--cursor", "xyz"}, "--cursor: is not a cursor"},
		{[]string{"list", "-o", "yaml"}, "want table or json"},
	} {
		_, err := c.run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("herald suppressions %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	if rows, evs := c.written(t); rows != 0 || evs != 0 {
		t.Errorf("refused commands wrote %d rows and %d events", rows, evs)
	}
}

func TestSuppressionsHelpHasExamples(t *testing.T) {
	commandSettings(t)
	out := mustRunHerald(t, "suppressions", "--help")
	for _, want := range []string{"list", "add CHANNEL RECIPIENT", "remove", "show", "hard bounce", "opted out", "--actor", "/api/v1/suppressions"} {
		if !strings.Contains(out, want) {
			t.Errorf("herald suppressions --help does not say %q:\n%s", want, out)
		}
	}
	for _, sub := range []string{"list", "add", "remove", "show"} {
		out := mustRunHerald(t, "suppressions", sub, "--help")
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "herald suppressions "+sub+" ") {
			t.Errorf("herald suppressions %s --help has no example of itself:\n%s", sub, out)
		}
	}
}

// TestServeAndAllServeTheSuppressionList: herald serve and herald all answer the suppression
// list's API, with the JSON the CLI prints for the same entry; what the API adds, the CLI shows
// with the API key as its actor.
func TestServeAndAllServeTheSuppressionList(t *testing.T) {
	for _, process := range []string{"serve", "all"} {
		t.Run(process, func(t *testing.T) {
			c := newSuppressionsCLI(t)
			_, token, err := apikeys.NewStore(c.db.Pool).Create(t.Context(), "ops", []herald.Scope{herald.ScopeOperate}, "test")
			if err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			// RabbitMQ out of reach: the API answers without it.
			spawnHerald(t, map[string]string{"HERALD_DATABASE_URL": c.db.URL, "HERALD_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
				"HERALD_HTTP_ADDR": addr}, process)
			base := "http://" + addr
			call := func(method, path, body string) (int, string) {
				req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, err.Error()
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			heraldtest.Eventually(t, 60*time.Second, "herald "+process+" to answer", func() (bool, error) {
				code, body := call(http.MethodGet, "/api/v1/suppressions", "")
				return code == http.StatusOK, fmt.Errorf("last answer: %d %s", code, body)
			})

			c.must(t, "add", "sms", "+14155550123", "--reason", "from the shell", "--actor", "ann")
			code, body := call(http.MethodGet, "/api/v1/suppressions/sms/%2B14155550123", "")
			var fromAPI wire.Suppression
			decodeOutput(t, body, &fromAPI)
			var fromCLI wire.Suppression
			decodeOutput(t, c.must(t, "show", "sms", "+14155550123", "-o", "json"), &fromCLI)
			if diff := cmp.Diff(fromCLI, fromAPI); code != http.StatusOK || diff != "" {
				t.Errorf("GET the entry: %d; the API and the CLI differ (-cli +api):\n%s", code, diff)
			}

			if code, body := call(http.MethodPost, "/api/v1/suppressions", `{"channel":"email","recipient":"bob@example.com","reason":"from the API"}`); code != http.StatusCreated {
				t.Fatalf("POST: %d %s", code, body)
			}
			if show := c.must(t, "show", "email", "bob@example.com"); !strings.Contains(show, "by apikey:ops") || !strings.Contains(show, "from the API") {
				t.Errorf("show of the entry the API added:\n%s", show)
			}
		})
	}
}
