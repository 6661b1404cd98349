package http_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/suppressions"
)

// suppressionAPI is the suppression list's API, with API keys, over a fresh database.
type suppressionAPI struct {
	url  string
	pool *pgxpool.Pool
	// operator has the operate scope; reader only read, sender only send.
	operator, reader, sender http.Header
}

func newSuppressionAPI(t *testing.T) *suppressionAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	keys := apikeys.NewStore(pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody}, nil, nil, nil, testLogger(t)).
		WithAuth(keys, heraldhttp.RateLimit{}).
		WithSuppressions(suppressions.New(pool))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	token := func(name string, scopes ...herald.Scope) http.Header {
		_, tok, err := keys.Create(t.Context(), name, scopes, "test")
		if err != nil {
			t.Fatal(err)
		}
		return bearer(tok)
	}
	return &suppressionAPI{url: ts.URL, pool: db.Pool, operator: token("ops", herald.ScopeOperate),
		reader: token("auditor", herald.ScopeRead), sender: token("app", herald.ScopeSend)}
}

// do sends a request as the operator.
func (a *suppressionAPI) do(t *testing.T, method, path, body string) response {
	t.Helper()
	return doRequest(t, a.url, method, path, body, a.operator)
}

// written counts what the list has written: its rows and its events.
func (a *suppressionAPI) written(t *testing.T) (rows, evs int) {
	t.Helper()
	if err := a.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM suppressions),
		(SELECT count(*) FROM event_log WHERE event_type = ANY($1))`,
		[]string{events.TypeRecipientSuppressed, events.TypeRecipientUnsuppressed}).Scan(&rows, &evs); err != nil {
		t.Fatal(err)
	}
	return rows, evs
}

// suppressionAnswer is an entry as the API shows it.
type suppressionAnswer struct {
	Channel   string     `json:"channel"`
	Recipient string     `json:"recipient"`
	Cause     string     `json:"cause"`
	Reason    string     `json:"reason"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	RemovedAt *time.Time `json:"removed_at"`
	Active    bool       `json:"active"`
	Version   int64      `json:"version"`
	Links     struct {
		Self   string `json:"self"`
		Events string `json:"events"`
	} `json:"links"`
}

type suppressionListAnswer struct {
	Suppressions []suppressionAnswer `json:"suppressions"`
	NextCursor   string              `json:"next_cursor"`
	Next         string              `json:"next"`
}

// add posts body and requires a 201 with the entry and its link.
func (a *suppressionAPI) add(t *testing.T, body string) suppressionAnswer {
	t.Helper()
	r := a.do(t, http.MethodPost, "/api/v1/suppressions", body)
	if r.status != http.StatusCreated {
		t.Fatalf("add %s: %d %s", body, r.status, r.body)
	}
	s := decodeJSON[suppressionAnswer](t, r)
	if r.header.Get("Location") != s.Links.Self || s.Links.Events != s.Links.Self+"/events" {
		t.Fatalf("add answered %s (Location %q): want the entry's links", r.body, r.header.Get("Location"))
	}
	return s
}

// recipients lists the recipients of a page, in order.
func recipients(l suppressionListAnswer) []string {
	out := []string{}
	for _, s := range l.Suppressions {
		out = append(out, s.Channel+":"+s.Recipient)
	}
	return out
}

func TestSuppressionLifecycle(t *testing.T) {
	api := newSuppressionAPI(t)
	start := time.Now()
	ann := api.add(t, `{"channel":"email","recipient":"Ann Lee <Ann@Example.com>","reason":"asked by phone"}`)
	if ann.Recipient != "ann@example.com" || ann.Cause != events.SuppressedManual || ann.Reason != "asked by phone" ||
		ann.CreatedBy != "apikey:ops" || !ann.Active || ann.ExpiresAt != nil || ann.Version != 1 ||
		ann.Links.Self != "/api/v1/suppressions/email/ann@example.com" {
		t.Errorf("added %+v: want ann@example.com, manual, by apikey:ops, holding for good", ann)
	}
	sms := api.add(t, `{"channel":"sms","recipient":"+14155550123","reason":"holiday","expires_in":"720h"}`)
	if sms.ExpiresAt == nil || sms.ExpiresAt.Before(start.Add(720*time.Hour).Add(-time.Second)) || sms.ExpiresAt.After(time.Now().Add(720*time.Hour)) ||
		sms.Links.Self != "/api/v1/suppressions/sms/%2B14155550123" {
		t.Errorf("added %+v: want an expiry 720h from now, and + escaped in the link", sms)
	}
	bob := api.add(t, `{"channel":"email","recipient":"bob@example.com","reason":"legal hold","expires_at":"2099-01-01T00:00:00+01:00"}`)
	if bob.ExpiresAt == nil || !bob.ExpiresAt.Equal(time.Date(2098, 12, 31, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("added %+v: want it to expire at 2098-12-31T23:00:00Z", bob)
	}

	r := api.do(t, http.MethodGet, "/api/v1/suppressions", "")
	if got := recipients(decodeJSON[suppressionListAnswer](t, r)); !cmp.Equal(got, []string{"email:ann@example.com", "email:bob@example.com", "sms:+14155550123"}) {
		t.Errorf("list: %s", r.body)
	}

	// The recipient in the path: + escaped or literal, never a space; any spelling of an address.
	for _, path := range []string{sms.Links.Self, "/api/v1/suppressions/sms/+14155550123", "/api/v1/suppressions/email/ANN%40example.com"} {
		r := api.do(t, http.MethodGet, path, "")
		got := decodeJSON[suppressionAnswer](t, r)
		if r.status != http.StatusOK || !got.Active || (got.Recipient != "+14155550123" && got.Recipient != "ann@example.com") {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	wantError(t, api.do(t, http.MethodGet, "/api/v1/suppressions/email/nobody@example.com", ""), http.StatusNotFound, herald.ENOTFOUND)
	wantError(t, api.do(t, http.MethodGet, "/api/v1/suppressions/email/nobody@example.com/events", ""), http.StatusNotFound, herald.ENOTFOUND)

	// Lifted with the reason in the body, then with it in the query.
	r = api.do(t, http.MethodDelete, ann.Links.Self, `{"reason":"mailbox fixed"}`)
	lifted := decodeJSON[suppressionAnswer](t, r)
	if r.status != http.StatusOK || lifted.Active || lifted.RemovedAt == nil || lifted.Version != 2 {
		t.Errorf("DELETE %s: %d %s; want the lifted entry", ann.Links.Self, r.status, r.body)
	}
	wantError(t, api.do(t, http.MethodDelete, ann.Links.Self, `{"reason":"again"}`), http.StatusNotFound, herald.ENOTFOUND)
	r = api.do(t, http.MethodDelete, sms.Links.Self+"?reason="+url.QueryEscape("back from holiday"), "")
	if got := decodeJSON[suppressionAnswer](t, r); r.status != http.StatusOK || got.Active || got.Recipient != "+14155550123" {
		t.Errorf("DELETE %s?reason=: %d %s", sms.Links.Self, r.status, r.body)
	}

	r = api.do(t, http.MethodGet, "/api/v1/suppressions", "")
	if got := recipients(decodeJSON[suppressionListAnswer](t, r)); !cmp.Equal(got, []string{"email:bob@example.com"}) {
		t.Errorf("list after the removals: %s; want bob's only", r.body)
	}
	r = api.do(t, http.MethodGet, "/api/v1/suppressions?all=true&channel=email", "")
	if got := recipients(decodeJSON[suppressionListAnswer](t, r)); !cmp.Equal(got, []string{"email:ann@example.com", "email:bob@example.com"}) {
		t.Errorf("list ?all=true&channel=email: %s", r.body)
	}

	// The stream: both changes, by the key, with their reasons.
	r = api.do(t, http.MethodGet, ann.Links.Events, "")
	stream := decodeJSON[struct {
		ID     string `json:"id"`
		Events []struct {
			Type     string          `json:"type"`
			Version  int64           `json:"version"`
			Data     map[string]any  `json:"data"`
			Metadata events.Metadata `json:"metadata"`
		} `json:"events"`
		Links struct {
			Status string `json:"status"`
			Events string `json:"events"`
		} `json:"links"`
	}](t, r)
	if len(stream.Events) != 2 || stream.ID != suppressions.Stream(herald.ChannelEmail, "ann@example.com") ||
		stream.Events[0].Type != events.TypeRecipientSuppressed || stream.Events[1].Type != events.TypeRecipientUnsuppressed ||
		stream.Events[1].Data["reason"] != "mailbox fixed" || stream.Links.Status != ann.Links.Self || stream.Links.Events != ann.Links.Events {
		t.Fatalf("events of ann's entry: %s", r.body)
	}
	for _, e := range stream.Events {
		if e.Metadata.Actor != "apikey:ops" {
			t.Errorf("event %s recorded by %q, want apikey:ops", e.Type, e.Metadata.Actor)
		}
	}
}

func TestSuppressionListPages(t *testing.T) {
	api := newSuppressionAPI(t)
	for _, r := range []string{"c@example.com", "a@example.com", "b@example.com"} {
		api.add(t, `{"channel":"email","recipient":"`+r+`","reason":"test"}`)
	}
	api.add(t, `{"channel":"sms","recipient":"+14155550123","reason":"test"}`)
	var got []string
	path := "/api/v1/suppressions?limit=2&channel=email"
	for pages := 0; path != ""; pages++ {
		if pages > 3 {
			t.Fatalf("more pages than entries: %v", got)
		}
		page := decodeJSON[suppressionListAnswer](t, api.do(t, http.MethodGet, path, ""))
		got = append(got, recipients(page)...)
		if (page.Next == "") != (page.NextCursor == "") || (page.Next != "" && !strings.Contains(page.Next, "channel=email")) {
			t.Errorf("page %d: next %q, next_cursor %q: want both or neither, keeping the filter", pages, page.Next, page.NextCursor)
		}
		path = page.Next
	}
	if want := []string{"email:a@example.com", "email:b@example.com", "email:c@example.com"}; !cmp.Equal(got, want) {
		t.Errorf("pages gave %v, want %v", got, want)
	}
}

// TestSuppressionsRefuseBadInput: each bad request names its field, and nothing is written.
func TestSuppressionsRefuseBadInput(t *testing.T) {
	api := newSuppressionAPI(t)
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"no reason", "POST", "", `{"channel":"email","recipient":"a@example.com"}`, 422, "reason"},
		{"blank reason", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"  "}`, 422, "reason"},
		{"no recipient", "POST", "", `{"channel":"email","reason":"r"}`, 422, "recipient"},
		{"no reason, and a bad number", "POST", "", `{"channel":"sms","recipient":"4155550123"}`, 422, "recipient"},
		{"a bad duration, and a blank reason", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":" ","expires_in":"30d"}`, 422, "reason"},
		{"unknown channel", "POST", "", `{"channel":"fax","recipient":"a@example.com","reason":"r"}`, 422, "channel"},
		{"bad email", "POST", "", `{"channel":"email","recipient":"not-an-address","reason":"r"}`, 422, "recipient"},
		{"bad number", "POST", "", `{"channel":"sms","recipient":"555","reason":"r"}`, 422, "recipient"},
		{"both expiries", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"r","expires_at":"2099-01-01T00:00:00Z","expires_in":"1h"}`, 422, "expires_in"},
		{"expiry past", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"r","expires_at":"2001-01-01T00:00:00Z"}`, 422, "expires_at"},
		{"expiry not a time", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"r","expires_at":"tomorrow"}`, 422, "expires_at"},
		{"expires_in not a duration", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"r","expires_in":"30d"}`, 422, "expires_in"},
		{"expires_in negative", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"r","expires_in":"-1h"}`, 422, "expires_in"},
		{"expires_in a number", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"r","expires_in":3600}`, 422, "expires_in"},
		{"unknown field", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"r","cause":"hard_bounce"}`, 422, "cause"},
		{"malformed", "POST", "", `{"channel":"email",`, 400, ""},
		{"too large", "POST", "", `{"channel":"email","recipient":"a@example.com","reason":"` + strings.Repeat("x", apiMaxBody) + `"}`, 413, ""},
		{"list channel", "GET", "?channel=fax", "", 422, "channel"},
		{"list cause", "GET", "?cause=spite", "", 422, "cause"},
		{"list all", "GET", "?all=maybe", "", 422, "all"},
		{"list limit", "GET", "?limit=0", "", 422, "limit"},
		{"list limit too big", "GET", "?limit=5000", "", 422, "limit"},
		{"list cursor", "GET", "?cursor=xyz", "", 422, "cursor"},
		{"list unknown", "GET", "?status=active", "", 422, "status"},
		{"show channel", "GET", "/fax/a@example.com", "", 422, "channel"},
		{"show recipient", "GET", "/sms/555", "", 422, "recipient"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := api.do(t, tt.method, "/api/v1/suppressions"+tt.path, tt.body)
			code := map[int]string{400: "malformed_json", 413: "too_large", 422: herald.EINVALID}[tt.status]
			e := wantError(t, r, tt.status, code)
			if tt.field != "" && e.Error.Fields[tt.field] == "" {
				t.Errorf("%s: fields %v, want %s named", r.body, e.Error.Fields, tt.field)
			}
		})
	}
	if rows, evs := api.written(t); rows != 0 || evs != 0 {
		t.Fatalf("refused requests wrote %d rows and %d events", rows, evs)
	}

	// A removal without a reason, or with two, lifts nothing.
	sup := api.add(t, `{"channel":"sms","recipient":"+14155550123","reason":"r"}`)
	for _, tt := range []struct{ path, body, field string }{
		{sup.Links.Self, "", "reason"},
		{sup.Links.Self, `{"reason":" "}`, "reason"},
		{sup.Links.Self + "?reason=a", `{"reason":"b"}`, "reason"},
		{sup.Links.Self + "?why=a", "", "why"},
		{sup.Links.Self, `{"reason":"a","actor":"ann"}`, "actor"},
	} {
		e := wantError(t, api.do(t, http.MethodDelete, tt.path, tt.body), http.StatusUnprocessableEntity, herald.EINVALID)
		if e.Error.Fields[tt.field] == "" {
			t.Errorf("DELETE %s %s: fields %v, want %s named", tt.path, tt.body, e.Error.Fields, tt.field)
		}
	}
	if rows, evs := api.written(t); rows != 1 || evs != 1 {
		t.Errorf("refused removals wrote: %d rows and %d events, want the one addition", rows, evs)
	}
	if got := decodeJSON[suppressionAnswer](t, api.do(t, http.MethodGet, sup.Links.Self, "")); !got.Active {
		t.Error("a refused removal lifted the suppression")
	}
	// The reason given both ways, the same: taken.
	r := api.do(t, http.MethodDelete, sup.Links.Self+"?reason=done", `{"reason":"done"}`)
	if got := decodeJSON[suppressionAnswer](t, r); r.status != http.StatusOK || got.Active {
		t.Errorf("DELETE with the same reason in the query and the body: %d %s", r.status, r.body)
	}
}

// TestSuppressionsNeedTheOperateScope: a key to send or to read gets 403 on every route, no key
// 401, and nothing is written.
func TestSuppressionsNeedTheOperateScope(t *testing.T) {
	api := newSuppressionAPI(t)
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/suppressions", ""},
		{http.MethodPost, "/api/v1/suppressions", `{"channel":"email","recipient":"a@example.com","reason":"r"}`},
		{http.MethodGet, "/api/v1/suppressions/email/a@example.com", ""},
		{http.MethodGet, "/api/v1/suppressions/email/a@example.com/events", ""},
		{http.MethodDelete, "/api/v1/suppressions/email/a@example.com", `{"reason":"r"}`},
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
	if rows, evs := api.written(t); rows != 0 || evs != 0 {
		t.Fatalf("refused keys wrote %d rows and %d events", rows, evs)
	}
}
