package http_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/templatestore"
	"github.com/herald-notify/herald/wire"
)

// templateAPI is the stored templates' API, with API keys, over a fresh database.
type templateAPI struct {
	url   string
	pool  *pgxpool.Pool
	store *templatestore.Store
	// operator has the operate scope; reader only read, sender only send.
	operator, reader, sender http.Header
}

func newTemplateAPI(t *testing.T) *templateAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	keys := apikeys.NewStore(pool)
	store := templatestore.New(pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody}, nil, nil, nil, testLogger(t)).
		WithAuth(keys, heraldhttp.RateLimit{}).
		WithTemplates(store)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	token := func(name string, scopes ...herald.Scope) http.Header {
		_, tok, err := keys.Create(t.Context(), name, scopes, "test")
		if err != nil {
			t.Fatal(err)
		}
		return bearer(tok)
	}
	return &templateAPI{url: ts.URL, pool: db.Pool, store: store, operator: token("ops", herald.ScopeOperate),
		reader: token("auditor", herald.ScopeRead), sender: token("app", herald.ScopeSend)}
}

func (a *templateAPI) do(t *testing.T, method, path, body string) response {
	t.Helper()
	return doRequest(t, a.url, method, path, body, a.operator)
}

// written counts the templates' rows and events.
func (a *templateAPI) written(t *testing.T) [3]int {
	t.Helper()
	var n [3]int
	if err := a.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM templates), (SELECT count(*) FROM template_versions),
		(SELECT count(*) FROM event_log WHERE event_type = ANY($1))`,
		[]string{events.TypeTemplateVersionCreated, events.TypeTemplateArchived, events.TypeTemplateRestored}).Scan(&n[0], &n[1], &n[2]); err != nil {
		t.Fatal(err)
	}
	return n
}

const welcomeBody = `{"name":"welcome","channel":"email","subject":"Welcome, {{.name}}","content":"Hello {{.name}} ({{.plan}})",
	"html":"<p>Hello {{.name}}</p>","variables":[{"name":"name"},{"name":"plan","default":"free"}],"description":"sign-up"}`

func TestTemplateLifecycle(t *testing.T) {
	api := newTemplateAPI(t)
	r := api.do(t, http.MethodPost, "/api/v1/templates", welcomeBody)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := decodeJSON[wire.Template](t, r)
	if r.header.Get("Location") != "/api/v1/templates/welcome" || created.Version != 1 || created.CreatedBy != "apikey:ops" ||
		created.HTML != "<p>Hello {{.name}}</p>" || len(created.Variables) != 2 || *created.Variables[1].Default != "free" {
		t.Errorf("create answered %s (Location %q)", r.body, r.header.Get("Location"))
	}
	// The CLI prints what the API answers: one shape, one constructor.
	stored, err := api.store.Get(t.Context(), "welcome")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wire.NewTemplate(stored), created); diff != "" {
		t.Errorf("the answer differs from wire.NewTemplate (-want +got):\n%s", diff)
	}
	wantError(t, api.do(t, http.MethodPost, "/api/v1/templates", welcomeBody), http.StatusConflict, herald.ECONFLICT)

	r = api.do(t, http.MethodPost, "/api/v1/templates/welcome/versions",
		`{"subject":"Hi {{.name}}","content":"Hi {{.name}}","variables":[{"name":"name"}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("new version: %d %s", r.status, r.body)
	}
	v2 := decodeJSON[wire.Template](t, r)
	if v2.Version != 2 || v2.Channel != "email" || v2.HTML != "" || r.header.Get("Location") != "/api/v1/templates/welcome/versions/2" {
		t.Errorf("new version answered %s (Location %q)", r.body, r.header.Get("Location"))
	}
	if got := decodeJSON[wire.Template](t, api.do(t, http.MethodGet, "/api/v1/templates/welcome", "")); got.Version != 2 {
		t.Errorf("GET the template: version %d, want 2", got.Version)
	}
	v1 := decodeJSON[wire.TemplateVersion](t, api.do(t, http.MethodGet, "/api/v1/templates/welcome/versions/1", ""))
	if v1.Version != 1 || v1.Content != "Hello {{.name}} ({{.plan}})" || v1.Links.Template != "/api/v1/templates/welcome" {
		t.Errorf("version 1 = %+v", v1)
	}
	list := decodeJSON[wire.TemplateVersionList](t, api.do(t, http.MethodGet, "/api/v1/templates/welcome/versions", ""))
	if len(list.Versions) != 2 || list.Versions[0].Version != 1 || list.Versions[1].Version != 2 {
		t.Errorf("versions = %+v", list)
	}
	wantError(t, api.do(t, http.MethodGet, "/api/v1/templates/welcome/versions/3", ""), http.StatusNotFound, herald.ENOTFOUND)
	wantError(t, api.do(t, http.MethodGet, "/api/v1/templates/nope", ""), http.StatusNotFound, herald.ENOTFOUND)

	r = api.do(t, http.MethodPost, "/api/v1/templates/welcome/archive", `{"reason":"replaced"}`)
	archived := decodeJSON[wire.Template](t, r)
	if r.status != http.StatusOK || !archived.Archived || archived.ArchivedReason != "replaced" || archived.ArchivedBy != "apikey:ops" {
		t.Errorf("archive: %d %s", r.status, r.body)
	}
	e := wantError(t, api.do(t, http.MethodPost, "/api/v1/templates/welcome/versions", `{"content":"x"}`),
		http.StatusUnprocessableEntity, herald.EINVALID)
	if e.Error.Fields["name"] == "" {
		t.Errorf("a version of an archived template: fields %v, want name", e.Error.Fields)
	}
	if got := decodeJSON[wire.TemplateList](t, api.do(t, http.MethodGet, "/api/v1/templates", "")); len(got.Templates) != 0 {
		t.Errorf("the listing in use shows %+v", got.Templates)
	}
	if got := decodeJSON[wire.TemplateList](t, api.do(t, http.MethodGet, "/api/v1/templates?archived=true", "")); len(got.Templates) != 1 {
		t.Errorf("the archived listing shows %+v", got.Templates)
	}
	r = api.do(t, http.MethodPost, "/api/v1/templates/welcome/restore", `{"reason":"back"}`)
	if got := decodeJSON[wire.Template](t, r); r.status != http.StatusOK || got.Archived {
		t.Errorf("restore: %d %s", r.status, r.body)
	}

	stream := decodeJSON[wire.Stream](t, api.do(t, http.MethodGet, "/api/v1/templates/welcome/events", ""))
	var types []string
	for _, ev := range stream.Events {
		types = append(types, ev.Type+" by "+ev.Metadata.Actor)
	}
	want := []string{"TemplateVersionCreated by apikey:ops", "TemplateVersionCreated by apikey:ops",
		"TemplateArchived by apikey:ops", "TemplateRestored by apikey:ops"}
	if !slices.Equal(types, want) || stream.ID != templatestore.Stream("welcome") || stream.Links.Status != "/api/v1/templates/welcome" {
		t.Errorf("events = %v (stream %s, links %+v), want %v", types, stream.ID, stream.Links, want)
	}
}

// TestTemplateListPages: a listing pages by name with next links, and filters by channel.
func TestTemplateListPages(t *testing.T) {
	api := newTemplateAPI(t)
	for _, body := range []string{
		`{"name":"b","channel":"sms","content":"b"}`, `{"name":"a","channel":"email","content":"a"}`, `{"name":"c","channel":"sms","content":"c"}`,
	} {
		if r := api.do(t, http.MethodPost, "/api/v1/templates", body); r.status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", body, r.status, r.body)
		}
	}
	var names []string
	for path := "/api/v1/templates?channel=sms&limit=1"; path != ""; {
		page := decodeJSON[wire.TemplateList](t, api.do(t, http.MethodGet, path, ""))
		for _, tpl := range page.Templates {
			names = append(names, tpl.Name)
		}
		path = page.Next
	}
	if !slices.Equal(names, []string{"b", "c"}) {
		t.Errorf("sms templates by page: %v, want [b c]", names)
	}
}

// TestTemplateBadInput names each bad field, answers 4xx, and writes nothing.
func TestTemplateBadInput(t *testing.T) {
	api := newTemplateAPI(t)
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"no name", "POST", "/api/v1/templates", `{"channel":"sms","content":"hi"}`, 422, "name"},
		{"bad name", "POST", "/api/v1/templates", `{"name":"Hi There","channel":"sms","content":"hi"}`, 422, "name"},
		{"name with @", "POST", "/api/v1/templates", `{"name":"a@1","channel":"sms","content":"hi"}`, 422, "name"},
		{"no channel", "POST", "/api/v1/templates", `{"name":"a","content":"hi"}`, 422, "channel"},
		{"channel a number", "POST", "/api/v1/templates", `{"name":"a","channel":1,"content":"hi"}`, 422, "channel"},
		{"sms html", "POST", "/api/v1/templates", `{"name":"a","channel":"sms","content":"hi","html":"<p>"}`, 422, "html"},
		{"content does not parse", "POST", "/api/v1/templates", `{"name":"a","channel":"sms","content":"{{.x"}`, 422, "content"},
		{"undeclared variable", "POST", "/api/v1/templates", `{"name":"a","channel":"sms","content":"{{.code}}"}`, 422, "variables.code"},
		{"variables an object", "POST", "/api/v1/templates", `{"name":"a","channel":"sms","content":"hi","variables":{"x":1}}`, 422, "variables"},
		{"variable unknown key", "POST", "/api/v1/templates", `{"name":"a","channel":"sms","content":"hi","variables":[{"name":"x","value":1}]}`, 422, "variables"},
		{"unknown field", "POST", "/api/v1/templates", `{"name":"a","channel":"sms","content":"hi","body":"x"}`, 422, "body"},
		{"list channel", "GET", "/api/v1/templates?channel=fax", "", 422, "channel"},
		{"list archived", "GET", "/api/v1/templates?archived=maybe", "", 422, "archived"},
		{"list limit", "GET", "/api/v1/templates?limit=0", "", 422, "limit"},
		{"list parameter", "GET", "/api/v1/templates?sort=name", "", 422, "sort"},
		{"version number", "GET", "/api/v1/templates/a/versions/x", "", 422, "version"},
		{"archive without reason", "POST", "/api/v1/templates/a/archive", `{}`, 422, "reason"},
	} {
		r := api.do(t, tt.method, tt.path, tt.body)
		e := decodeJSON[errorResponse](t, r)
		if r.status != tt.status || e.Error.Fields[tt.field] == "" {
			t.Errorf("%s: %d %s, want %d naming %s", tt.name, r.status, r.body, tt.status, tt.field)
		}
	}
	r := api.do(t, "POST", "/api/v1/templates", `{"name":"a",`)
	wantError(t, r, http.StatusBadRequest, "malformed_json")
	r = api.do(t, "POST", "/api/v1/templates", `{"name":"a","channel":"sms","content":"`+strings.Repeat("x", apiMaxBody)+`"}`)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized body: %d %s, want 413", r.status, r.body)
	}
	if n := api.written(t); n != [3]int{} {
		t.Errorf("refused requests wrote %v", n)
	}

	if r := api.do(t, "POST", "/api/v1/templates", `{"name":"otp","channel":"sms","content":"{{.code}}","variables":[{"name":"code"}]}`); r.status != 201 {
		t.Fatalf("create otp: %d %s", r.status, r.body)
	}
	before := api.written(t)
	for _, tt := range []struct{ body, field string }{
		{`{"name":"other","content":"hi"}`, "name"},
		{`{"channel":"email","content":"hi"}`, "channel"},
		{`{"content":"{{.code}} {{.ttl}}","variables":[{"name":"code"}]}`, "variables.ttl"},
	} {
		e := wantError(t, api.do(t, "POST", "/api/v1/templates/otp/versions", tt.body), http.StatusUnprocessableEntity, herald.EINVALID)
		if e.Error.Fields[tt.field] == "" {
			t.Errorf("new version %s: fields %v, want %s", tt.body, e.Error.Fields, tt.field)
		}
	}
	if after := api.written(t); after != before {
		t.Errorf("refused versions wrote: %v, then %v", before, after)
	}
}

// TestTemplatesNeedTheOperateScope: a key to send or to read gets 403 on every route, no key
// 401, and nothing is written.
func TestTemplatesNeedTheOperateScope(t *testing.T) {
	api := newTemplateAPI(t)
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/templates", ""},
		{http.MethodPost, "/api/v1/templates", `{"name":"a","channel":"sms","content":"hi"}`},
		{http.MethodGet, "/api/v1/templates/a", ""},
		{http.MethodPost, "/api/v1/templates/a/versions", `{"content":"hi"}`},
		{http.MethodGet, "/api/v1/templates/a/versions", ""},
		{http.MethodGet, "/api/v1/templates/a/versions/1", ""},
		{http.MethodPost, "/api/v1/templates/a/archive", `{"reason":"r"}`},
		{http.MethodPost, "/api/v1/templates/a/restore", `{"reason":"r"}`},
		{http.MethodGet, "/api/v1/templates/a/events", ""},
	}
	for _, rt := range routes {
		for name, key := range map[string]http.Header{"send": api.sender, "read": api.reader} {
			e := wantError(t, doRequest(t, api.url, rt.method, rt.path, rt.body, key), http.StatusForbidden, herald.EFORBIDDEN)
			if !strings.Contains(e.Error.Message, "operate") {
				t.Errorf("%s %s with a %s key: %q, want the scope named", rt.method, rt.path, name, e.Error.Message)
			}
		}
		wantError(t, doRequest(t, api.url, rt.method, rt.path, rt.body, jsonHeader()), http.StatusUnauthorized, herald.EUNAUTHORIZED)
	}
	if n := api.written(t); n != [3]int{} {
		t.Fatalf("refused keys wrote %v", n)
	}
}
