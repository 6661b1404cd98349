package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/heraldtest"
)

// tokenPattern finds a token in what a command printed.
var tokenPattern = regexp.MustCompile(regexp.QuoteMeta(apikeys.TokenPrefix) + `[A-Za-z0-9_-]{20,}`)

// keyOutput is a key as `herald apikeys ... -o json` prints it.
type keyOutput struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	RevokedAt *time.Time `json:"revoked_at"`
	Token     string     `json:"token"`
}

func apikeysDatabase(t *testing.T) *heraldtest.Database {
	t.Helper()
	commandSettings(t)
	return heraldtest.NewDatabase(t)
}

// authenticates fails the test unless token is a live key named name with scopes.
func authenticates(t *testing.T, db *heraldtest.Database, token, name string, scopes ...herald.Scope) {
	t.Helper()
	p, err := apikeys.NewStore(db.Pool).Authenticate(t.Context(), token)
	if err != nil {
		t.Fatalf("the printed key does not authenticate: %v", err)
	}
	if p.Name != name || !cmp.Equal(p.Scopes, scopes) {
		t.Errorf("the printed key is %q with %v, want %q with %v", p.Name, p.Scopes, name, scopes)
	}
}

func TestAPIKeysCreatePrintsTheTokenOnce(t *testing.T) {
	db := apikeysDatabase(t)
	out := mustRunHerald(t, "apikeys", "create", "--name", "billing", "--scopes", "send, read,send", "--database-url", db.URL)
	tokens := tokenPattern.FindAllString(out, -1)
	if len(tokens) != 1 {
		t.Fatalf("create printed %d tokens, want 1:\n%s", len(tokens), out)
	}
	if !strings.Contains(out, `"billing"`) || !strings.Contains(out, "send,read") {
		t.Errorf("create does not say which key it made and with which scopes:\n%s", out)
	}
	authenticates(t, db, tokens[0], "billing", herald.ScopeSend, herald.ScopeRead)

	out = mustRunHerald(t, "apikeys", "create", "--name", "ops", "--scopes", "operate,read", "--created-by", "ci-bot",
		"-o", "json", "--database-url", db.URL)
	var k keyOutput
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatalf("create -o json printed %q: %v", out, err)
	}
	want := keyOutput{ID: k.ID, Name: "ops", Prefix: k.Prefix, Scopes: []string{"operate", "read"}, CreatedAt: k.CreatedAt,
		CreatedBy: "ci-bot", Token: k.Token}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("create -o json (-want +got):\n%s", diff)
	}
	if k.ID == "" || k.CreatedAt.IsZero() || !strings.HasPrefix(k.Token, apikeys.TokenPrefix) || !strings.HasPrefix(k.Token, k.Prefix) {
		t.Errorf("create -o json: id %q, created_at %v, token %q, prefix %q", k.ID, k.CreatedAt, k.Token, k.Prefix)
	}
	authenticates(t, db, k.Token, "ops", herald.ScopeOperate, herald.ScopeRead)

	// Without --created-by, the creator is the OS user.
	out = mustRunHerald(t, "apikeys", "create", "--name", "mine", "--scopes", "read", "-o", "json", "--database-url", db.URL)
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatal(err)
	}
	if k.CreatedBy == "" {
		t.Errorf("a key created without --created-by records no creator")
	}
}

// createKeys creates a key for each "name:scopes" with apikeys create -o json, and returns them
// as printed.
func createKeys(t *testing.T, db *heraldtest.Database, keys ...string) []keyOutput {
	t.Helper()
	var created []keyOutput
	for _, key := range keys {
		name, scopes, _ := strings.Cut(key, ":")
		out := mustRunHerald(t, "apikeys", "create", "-o", "json", "--database-url", db.URL, "--name", name, "--scopes", scopes)
		var k keyOutput
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			t.Fatal(err)
		}
		created = append(created, k)
	}
	return created
}

// listKeys runs apikeys list -o json with args, failing the test if it prints a token.
func listKeys(t *testing.T, db *heraldtest.Database, args ...string) []keyOutput {
	t.Helper()
	out := mustRunHerald(t, append([]string{"apikeys", "list", "-o", "json", "--database-url", db.URL}, args...)...)
	if m := tokenPattern.FindAllString(out, -1); len(m) > 0 || strings.Contains(out, `"token"`) {
		t.Errorf("list printed a token:\n%s", out)
	}
	var keys []keyOutput
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("list -o json printed %q: %v", out, err)
	}
	return keys
}

// withoutToken is keys as list shows them: never with their token.
func withoutToken(keys ...keyOutput) []keyOutput {
	var out []keyOutput
	for _, k := range keys {
		k.Token = ""
		out = append(out, k)
	}
	return out
}

func TestAPIKeysListAndRevoke(t *testing.T) {
	db := apikeysDatabase(t)
	created := createKeys(t, db, "first:send", "second:read", "third:send,read,operate")
	listJSON := func(args ...string) []keyOutput { t.Helper(); return listKeys(t, db, args...) }
	if diff := cmp.Diff(withoutToken(created...), listJSON()); diff != "" {
		t.Errorf("list -o json (-want +got):\n%s", diff)
	}

	table := mustRunHerald(t, "apikeys", "list", "--database-url", db.URL)
	for _, k := range created {
		if strings.Contains(table, k.Token) || !strings.Contains(table, k.Name) || !strings.Contains(table, k.ID) {
			t.Errorf("list table: want %s and its id, and never its token:\n%s", k.Name, table)
		}
	}
	if tokenPattern.MatchString(table) {
		t.Errorf("list table printed a token:\n%s", table)
	}

	// Revoke by name, then by id as JSON.
	out := mustRunHerald(t, "apikeys", "revoke", "second", "--database-url", db.URL)
	if !strings.Contains(out, "second") || !strings.Contains(out, created[1].ID) {
		t.Errorf("revoke does not say which key it revoked:\n%s", out)
	}
	out = mustRunHerald(t, "apikeys", "revoke", created[0].ID, "-o", "json", "--database-url", db.URL)
	var revoked keyOutput
	if err := json.Unmarshal([]byte(out), &revoked); err != nil {
		t.Fatalf("revoke -o json printed %q: %v", out, err)
	}
	if revoked.Name != "first" || revoked.RevokedAt == nil || revoked.Token != "" {
		t.Errorf("revoke -o json: %+v, want first, revoked, no token", revoked)
	}
	for _, k := range created[:2] {
		if _, err := apikeys.NewStore(db.Pool).Authenticate(t.Context(), k.Token); herald.ErrorCode(err) != herald.EUNAUTHORIZED {
			t.Errorf("revoked key %s: %v, want %s", k.Name, err, herald.EUNAUTHORIZED)
		}
	}
	authenticates(t, db, created[2].Token, "third", herald.ScopeSend, herald.ScopeRead, herald.ScopeOperate)

	if got := listJSON(); len(got) != 1 || got[0].Name != "third" {
		t.Errorf("list after revoking two: %+v, want third alone", got)
	}
	all := listJSON("--all")
	var names []string
	for _, k := range all {
		names = append(names, k.Name)
		if (k.RevokedAt != nil) != (k.Name != "third") {
			t.Errorf("list --all: %s revoked at %v", k.Name, k.RevokedAt)
		}
	}
	if diff := cmp.Diff([]string{"first", "second", "third"}, names); diff != "" {
		t.Errorf("list --all (-want +got):\n%s", diff)
	}
	if table := mustRunHerald(t, "apikeys", "list", "--all", "--database-url", db.URL); !strings.Contains(table, "second") {
		t.Errorf("list --all table does not show the revoked key:\n%s", table)
	}
}

func TestAPIKeysRefuse(t *testing.T) {
	db := apikeysDatabase(t)
	mustRunHerald(t, "apikeys", "create", "--name", "taken", "--scopes", "read", "--database-url", db.URL)
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"duplicate name", []string{"create", "--name", "taken", "--scopes", "send"}, "taken"},
		{"bad name", []string{"create", "--name", "no spaces please", "--scopes", "send"}, "name"},
		{"empty name", []string{"create", "--name", "", "--scopes", "send"}, "name"},
		{"unknown scope", []string{"create", "--name", "k", "--scopes", "send,root"}, "root"},
		{"scope in another case", []string{"create", "--name", "k", "--scopes", "Send"}, "Send"},
		{"no scope", []string{"create", "--name", "k", "--scopes", " , "}, "scope"},
		{"empty scopes", []string{"create", "--name", "k", "--scopes", ""}, "scope"},
		{"missing --name", []string{"create", "--scopes", "send"}, "name"},
		{"missing --scopes", []string{"create", "--name", "k"}, "scopes"},
		{"create with an argument", []string{"create", "k", "--name", "k", "--scopes", "send"}, "k"},
		{"bad output", []string{"create", "--name", "k", "--scopes", "send", "-o", "yaml"}, "yaml"},
		{"revoke unknown", []string{"revoke", "nobody"}, "nobody"},
		{"revoke unknown id", []string{"revoke", "00000000-0000-0000-0000-000000000000"}, "00000000-0000-0000-0000-000000000000"},
		{"revoke nothing", []string{"revoke"}, "arg"},
		{"revoke two", []string{"revoke", "taken", "other"}, "arg"},
		{"list with an argument", []string{"list", "taken"}, "taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"apikeys"}, tt.args...), "--database-url", db.URL)
			out, err := runHerald(t, args...)
			if err == nil {
				t.Fatalf("herald %s succeeded, want an error; printed:\n%s", strings.Join(args, " "), out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if tokenPattern.MatchString(out) {
				t.Errorf("a failed command printed a token:\n%s", out)
			}
		})
	}
	keys, err := apikeys.NewStore(db.Pool).List(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Name != "taken" || keys[0].RevokedAt != nil {
		t.Errorf("keys after the refusals: %+v, want taken alone, not revoked", keys)
	}
}
