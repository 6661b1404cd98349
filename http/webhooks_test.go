package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/webhooks"
)

// webhookAPI is the webhook endpoints' API, with API keys, over a fresh database; its endpoints
// may be plain http on loopback, so that a test receiver can be one.
type webhookAPI struct {
	url  string
	pool *pgxpool.Pool
	db   *heraldtest.Database
	// operator has the operate scope; reader only read.
	operator, reader http.Header
}

// newWebhookAPI serves the webhook endpoints' API over a fresh database, with an operator's and a
// reader's key.
func newWebhookAPI(t *testing.T) *webhookAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	policy := webhooks.Policy{AllowPrivate: true, AllowHTTP: true}
	endpoints := webhooks.NewEndpoints(db.Pool, policy)
	sender := webhooks.NewSender(db.Pool, endpoints, webhooks.SenderConfig{
		Client: webhooks.NewClient(policy, webhooks.ClientOptions{Timeout: 5 * time.Second, ConnectTimeout: 2 * time.Second}),
	})
	keys := apikeys.NewStore(db.Pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody}, nil, nil, nil, testLogger(t)).
		WithAuth(keys, heraldhttp.RateLimit{}).
		WithWebhooks(endpoints, webhooks.NewReplayJobs(t.Context(), sender, 2))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	token := func(name string, scopes ...herald.Scope) http.Header {
		_, tok, err := keys.Create(t.Context(), name, scopes, "test")
		if err != nil {
			t.Fatal(err)
		}
		return bearer(tok)
	}
	return &webhookAPI{url: ts.URL, pool: db.Pool, db: db,
		operator: token("ops", herald.ScopeOperate), reader: token("auditor", herald.ScopeRead)}
}

// do sends a request as the operator.
func (a *webhookAPI) do(t *testing.T, method, path, body string) response {
	t.Helper()
	return doRequest(t, a.url, method, path, body, a.operator)
}

// endpointAnswer is an endpoint as the API shows it; Secret is set only where one is shown.
type endpointAnswer struct {
	ID                       string     `json:"id"`
	URL                      string     `json:"url"`
	Description              string     `json:"description"`
	EventTypes               []string   `json:"event_types"`
	AllEvents                bool       `json:"all_events"`
	Enabled                  bool       `json:"enabled"`
	DisabledReason           string     `json:"disabled_reason"`
	Version                  int64      `json:"version"`
	CreatedBy                string     `json:"created_by"`
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until"`
	RetriesPending           *int64     `json:"retries_pending"`
	Secret                   string     `json:"secret"`
	Links                    struct {
		Self       string `json:"self"`
		Deliveries string `json:"deliveries"`
		Events     string `json:"events"`
	} `json:"links"`
}

// noSecret fails the test if r shows any secret.
func noSecret(t *testing.T, what string, r response) {
	t.Helper()
	if strings.Contains(string(r.body), "whsec_") || strings.Contains(string(r.body), `"secret"`) {
		t.Errorf("%s shows a secret: %s", what, r.body)
	}
}

// create registers an endpoint with body and requires a 201 with a secret.
func (a *webhookAPI) create(t *testing.T, body string) endpointAnswer {
	t.Helper()
	r := a.do(t, http.MethodPost, "/api/v1/webhooks", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", body, r.status, r.body)
	}
	e := decodeJSON[endpointAnswer](t, r)
	if !strings.HasPrefix(e.Secret, "whsec_") || r.header.Get("Location") != e.Links.Self || e.Links.Self != "/api/v1/webhooks/"+e.ID {
		t.Fatalf("create answered %s (Location %q): want the secret and the endpoint's link", r.body, r.header.Get("Location"))
	}
	return e
}

// count counts the rows of table.
func (a *webhookAPI) count(t *testing.T, table string) int {
	t.Helper()
	return countRows(t, a.pool, table)
}

func TestWebhookEndpointLifecycle(t *testing.T) {
	api := newWebhookAPI(t)
	created := api.create(t, `{"url":"https://hooks.example.com/herald","description":"billing"}`)
	if !created.AllEvents || created.EventTypes == nil || len(created.EventTypes) != 0 || !created.Enabled ||
		created.Version != 1 || created.CreatedBy != "apikey:ops" || created.Description != "billing" {
		t.Errorf("created %+v: want all events ([] and all_events), enabled, version 1, by apikey:ops", created)
	}
	narrow := api.create(t, `{"url":"https://hooks.example.com/sent","event_types":["NotificationSent","NotificationFailed"]}`)
	if narrow.AllEvents || !cmp.Equal(narrow.EventTypes, []string{"NotificationSent", "NotificationFailed"}) {
		t.Errorf("created %+v: want the two types, not all", narrow)
	}
	if all := api.create(t, `{"url":"https://hooks.example.com/all","event_types":["all"]}`); !all.AllEvents || len(all.EventTypes) != 0 {
		t.Errorf(`["all"] gave %+v, want every type`, all)
	}

	r := api.do(t, http.MethodGet, "/api/v1/webhooks", "")
	noSecret(t, "the list", r)
	list := decodeJSON[struct{ Endpoints []endpointAnswer }](t, r)
	if len(list.Endpoints) != 3 || list.Endpoints[0].ID != created.ID || list.Endpoints[1].ID != narrow.ID {
		t.Errorf("list: %s", r.body)
	}
	r = api.do(t, http.MethodGet, created.Links.Self, "")
	noSecret(t, "an endpoint", r)
	if got := decodeJSON[endpointAnswer](t, r); got.RetriesPending == nil || *got.RetriesPending != 0 || got.URL != created.URL {
		t.Errorf("GET %s = %s, want it with retries_pending 0", created.Links.Self, r.body)
	}

	r = api.do(t, http.MethodPatch, created.Links.Self, `{"url":"https://hooks.example.com/v2","event_types":["NotificationSent"],"description":""}`)
	noSecret(t, "an update", r)
	got := decodeJSON[endpointAnswer](t, r)
	if r.status != http.StatusOK || got.URL != "https://hooks.example.com/v2" || got.AllEvents || got.Description != "" || got.Version != 2 {
		t.Errorf("update: %d %s", r.status, r.body)
	}
	r = api.do(t, http.MethodPatch, created.Links.Self, `{"enabled":false,"reason":"receiver down for maintenance"}`)
	if got := decodeJSON[endpointAnswer](t, r); got.Enabled || !strings.Contains(got.DisabledReason, "receiver down for maintenance") {
		t.Errorf("disable: %d %s", r.status, r.body)
	}
	r = api.do(t, http.MethodPatch, created.Links.Self, `{"enabled":true}`)
	if got := decodeJSON[endpointAnswer](t, r); !got.Enabled || got.DisabledReason != "" || got.Version != 4 {
		t.Errorf("enable: %d %s", r.status, r.body)
	}

	r = api.do(t, http.MethodPost, created.Links.Self+"/rotate-secret", "")
	rotated := decodeJSON[endpointAnswer](t, r)
	if r.status != http.StatusOK || !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.Secret == created.Secret || rotated.PreviousSecretValidUntil == nil {
		t.Errorf("rotate: %d %s; want a new secret, and the old one's end", r.status, r.body)
	}
	for _, path := range []string{"/api/v1/webhooks", created.Links.Self, created.Links.Events} {
		r := api.do(t, http.MethodGet, path, "")
		noSecret(t, path, r)
		if strings.Contains(string(r.body), rotated.Secret[6:]) || strings.Contains(string(r.body), created.Secret[6:]) {
			t.Errorf("GET %s shows a secret: %s", path, r.body)
		}
	}

	if r := api.do(t, http.MethodDelete, created.Links.Self, ""); r.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	wantError(t, api.do(t, http.MethodGet, created.Links.Self, ""), http.StatusNotFound, herald.ENOTFOUND)
	wantError(t, api.do(t, http.MethodDelete, created.Links.Self, ""), http.StatusNotFound, herald.ENOTFOUND)

	// The stream outlives the endpoint: every change, by whom.
	r = api.do(t, http.MethodGet, created.Links.Events, "")
	stream := decodeJSON[struct {
		ID     string `json:"id"`
		Events []struct {
			Type     string          `json:"type"`
			Version  int64           `json:"version"`
			Metadata events.Metadata `json:"metadata"`
		} `json:"events"`
	}](t, r)
	var types []string
	for i, e := range stream.Events {
		types = append(types, e.Type)
		if e.Metadata.Actor != "apikey:ops" || e.Version != int64(i+1) {
			t.Errorf("event %d: %+v, want version %d by apikey:ops", i, e, i+1)
		}
	}
	want := []string{events.TypeWebhookEndpointCreated, events.TypeWebhookEndpointUpdated, events.TypeWebhookEndpointDisabled,
		events.TypeWebhookEndpointEnabled, events.TypeWebhookEndpointSecretRotated, events.TypeWebhookEndpointDeleted}
	if stream.ID != created.ID || !cmp.Equal(types, want) {
		t.Errorf("events of the endpoint: %s; want %v", r.body, want)
	}
	wantError(t, api.do(t, http.MethodGet, "/api/v1/webhooks/"+uuid.NewString()+"/events", ""), http.StatusNotFound, herald.ENOTFOUND)
}

func TestWebhookEndpointsNeedTheOperateScope(t *testing.T) {
	api := newWebhookAPI(t)
	e := api.create(t, `{"url":"https://hooks.example.com/a"}`)
	before := api.count(t, "event_log")
	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/webhooks", ""},
		{http.MethodPost, "/api/v1/webhooks", `{"url":"https://hooks.example.com/b"}`},
		{http.MethodGet, e.Links.Self, ""},
		{http.MethodPatch, e.Links.Self, `{"enabled":false}`},
		{http.MethodDelete, e.Links.Self, ""},
		{http.MethodPost, e.Links.Self + "/rotate-secret", ""},
		{http.MethodGet, e.Links.Deliveries, ""},
		{http.MethodGet, e.Links.Events, ""},
		{http.MethodPost, e.Links.Self + "/replay", `{"from_position":1}`},
	} {
		r := doRequest(t, api.url, req.method, req.path, req.body, api.reader)
		wantError(t, r, http.StatusForbidden, herald.EFORBIDDEN)
		noSecret(t, req.method+" "+req.path+" with a read-only key", r)
		r = doRequest(t, api.url, req.method, req.path, req.body, jsonHeader())
		wantError(t, r, http.StatusUnauthorized, herald.EUNAUTHORIZED)
	}
	if n := api.count(t, "event_log"); n != before {
		t.Errorf("refused requests wrote %d events", n-before)
	}
	if n := api.count(t, "webhook_endpoints"); n != 1 {
		t.Errorf("%d endpoints after refused requests, want 1", n)
	}
}

func TestWebhookEndpointRejections(t *testing.T) {
	api := newWebhookAPI(t)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		fields     []string
	}{
		{"no url", `{"description":"x"}`, 422, herald.EINVALID, []string{"url"}},
		{"not http", `{"url":"ftp://hooks.example.com/a"}`, 422, herald.EINVALID, []string{"url"}},
		{"credentials in the url", `{"url":"https://user:pw@hooks.example.com/a"}`, 422, herald.EINVALID, []string{"url"}},
		{"unknown type", `{"url":"https://hooks.example.com/a","event_types":["NotificationSent","Nope"]}`, 422, herald.EINVALID, []string{"event_types"}},
		{"an endpoint's own type", `{"url":"https://hooks.example.com/a","event_types":["WebhookEndpointCreated"]}`, 422, herald.EINVALID, []string{"event_types"}},
		{"all with others", `{"url":"https://hooks.example.com/a","event_types":["all","NotificationSent"]}`, 422, herald.EINVALID, []string{"event_types"}},
		{"types as a string", `{"url":"https://hooks.example.com/a","event_types":"all"}`, 422, herald.EINVALID, []string{"event_types"}},
		{"url as a number", `{"url":42}`, 422, herald.EINVALID, []string{"url"}},
		{"unknown field", `{"url":"https://hooks.example.com/a","secret":"whsec_mine"}`, 422, herald.EINVALID, []string{"secret"}},
		{"url twice", `{"url":"https://hooks.example.com/a","url":"https://hooks.example.com/b"}`, 422, herald.EINVALID, []string{"url"}},
		{"long description", `{"url":"https://hooks.example.com/a","description":"` + strings.Repeat("x", webhooks.MaxDescription+1) + `"}`, 422, herald.EINVALID, []string{"description"}},
		{"not json", `{"url":`, 400, "malformed_json", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := wantError(t, api.do(t, http.MethodPost, "/api/v1/webhooks", tc.body), tc.status, tc.code)
			for _, f := range tc.fields {
				if e.Error.Fields[f] == "" {
					t.Errorf("fields %v do not name %s", e.Error.Fields, f)
				}
			}
		})
	}
	if n, m := api.count(t, "webhook_endpoints"), api.count(t, "event_log"); n != 0 || m != 0 {
		t.Fatalf("rejected creations wrote %d endpoints and %d events", n, m)
	}

	e := api.create(t, `{"url":"https://hooks.example.com/a"}`)
	r := api.do(t, http.MethodPost, "/api/v1/webhooks", `{"url":"https://hooks.example.com/a","description":"again"}`)
	if wantError(t, r, http.StatusConflict, herald.ECONFLICT).Error.Fields["url"] == "" {
		t.Errorf("duplicate: %s, want the url named", r.body)
	}
	noSecret(t, "a refused duplicate", r)
	other := api.create(t, `{"url":"https://hooks.example.com/b"}`)
	wantError(t, api.do(t, http.MethodPatch, other.Links.Self, `{"url":"https://hooks.example.com/a"}`), http.StatusConflict, herald.ECONFLICT)

	for _, tc := range []struct{ name, body string }{
		{"reason without disabling", `{"reason":"why"}`},
		{"reason while enabling", `{"enabled":true,"reason":"why"}`},
		{"nothing", `{}`},
		{"enabled as a string", `{"enabled":"no"}`},
		{"a bad url with a good change", `{"description":"new","url":"http://"}`},
		{"an unknown field", `{"enabled":false,"cause":"x"}`},
	} {
		wantError(t, api.do(t, http.MethodPatch, e.Links.Self, tc.body), http.StatusUnprocessableEntity, herald.EINVALID)
	}
	wantError(t, api.do(t, http.MethodPatch, "/api/v1/webhooks/"+uuid.NewString(), `{"enabled":false}`), http.StatusNotFound, herald.ENOTFOUND)
	wantError(t, api.do(t, http.MethodPatch, "/api/v1/webhooks/not-an-id", `{"enabled":false}`), http.StatusNotFound, herald.ENOTFOUND)
	wantError(t, api.do(t, http.MethodPost, e.Links.Self+"/rotate-secret", `{"x":1}`), http.StatusUnprocessableEntity, herald.EINVALID)
	if n := api.count(t, "event_log"); n != 2 {
		t.Errorf("%d events after refused changes, want the 2 creations", n)
	}
	if got := decodeJSON[endpointAnswer](t, api.do(t, http.MethodGet, e.Links.Self, "")); got.Version != 1 || !got.Enabled {
		t.Errorf("after refused changes the endpoint is %+v", got)
	}
}

// receiver is a webhook receiver on loopback that answers 500 to the events of one notification.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	fail   string
}

// newReceiver starts a receiver that answers 500 to the bodies that mention fail ("" for none).
func newReceiver(t *testing.T, fail string) *receiver {
	t.Helper()
	rc := &receiver{fail: fail}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, string(b))
		rc.mu.Unlock()
		if rc.fail != "" && strings.Contains(string(b), rc.fail) {
			http.Error(w, "not today", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// received counts the requests the receiver got.
func (rc *receiver) received() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.bodies)
}

// queue appends a NotificationQueued for each of n new notifications and returns their ids.
func queue(t *testing.T, db *heraldtest.Database, n int) []string {
	t.Helper()
	log := events.NewLog(db.Pool)
	var ids []string
	for i := 0; i < n; i++ {
		id := uuid.NewString()
		if _, err := log.Append(context.Background(), id, 0, events.Metadata{},
			&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// replayJob is a replay job as the API shows it.
type replayJob struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Progress struct {
		Matched int64 `json:"matched"`
	} `json:"progress"`
	Report *struct {
		Matched, Sent, Failed int64
		DryRun                bool `json:"dry_run"`
	} `json:"report"`
	Links struct {
		Self string `json:"self"`
	} `json:"links"`
}

// replay starts a replay with body and waits for it to end.
func (a *webhookAPI) replay(t *testing.T, e endpointAnswer, body string) replayJob {
	t.Helper()
	r := a.do(t, http.MethodPost, e.Links.Self+"/replay", body)
	if r.status != http.StatusAccepted {
		t.Fatalf("replay %s: %d %s", body, r.status, r.body)
	}
	job := decodeJSON[replayJob](t, r)
	if r.header.Get("Location") != job.Links.Self || job.Links.Self != e.Links.Self+"/replays/"+job.ID {
		t.Fatalf("replay answered %s, Location %q", r.body, r.header.Get("Location"))
	}
	heraldtest.Eventually(t, 30*time.Second, "the replay to end", func() (bool, error) {
		job = decodeJSON[replayJob](t, a.do(t, http.MethodGet, job.Links.Self, ""))
		return job.State != webhooks.ReplayRunning, nil
	})
	if job.State != webhooks.ReplaySucceeded || job.Report == nil {
		t.Fatalf("replay ended %+v", job)
	}
	return job
}

// attemptsPage is a page of deliveries as the API shows it.
type attemptsPage struct {
	Attempts []struct {
		ID             int64  `json:"id"`
		EndpointID     string `json:"endpoint_id"`
		EventType      string `json:"event_type"`
		NotificationID string `json:"notification_id"`
		Trigger        string `json:"trigger"`
		StatusCode     *int   `json:"status_code"`
		Succeeded      bool   `json:"succeeded"`
		Error          string `json:"error"`
	} `json:"attempts"`
	NextBefore int64  `json:"next_before"`
	Next       string `json:"next"`
}

func TestWebhookReplayAndDeliveries(t *testing.T) {
	api := newWebhookAPI(t)
	ids := queue(t, api.db, 3)
	heraldtest.WaitLogVisible(t, api.db, 3)
	rc := newReceiver(t, ids[1])
	e := api.create(t, `{"url":"`+rc.URL+`/hook","event_types":["NotificationQueued"]}`)

	wantError(t, api.do(t, http.MethodPost, e.Links.Self+"/replay", `{"dry_run":true}`), http.StatusUnprocessableEntity, herald.EINVALID)
	wantError(t, api.do(t, http.MethodPost, e.Links.Self+"/replay", `{"from_position":-1}`), http.StatusUnprocessableEntity, herald.EINVALID)
	wantError(t, api.do(t, http.MethodPost, e.Links.Self+"/replay", `{"from_position":1,"types":["Nope"]}`), http.StatusUnprocessableEntity, herald.EINVALID)
	wantError(t, api.do(t, http.MethodPost, e.Links.Self+"/replay", `{"since":"yesterday"}`), http.StatusUnprocessableEntity, herald.EINVALID)
	wantError(t, api.do(t, http.MethodPost, "/api/v1/webhooks/"+uuid.NewString()+"/replay", `{"from_position":1}`), http.StatusNotFound, herald.ENOTFOUND)
	wantError(t, api.do(t, http.MethodGet, e.Links.Self+"/replays/"+uuid.NewString(), ""), http.StatusNotFound, herald.ENOTFOUND)

	dry := api.replay(t, e, `{"from_position":1,"dry_run":true}`)
	if dry.Report.Matched != 3 || dry.Report.Sent != 0 || !dry.Report.DryRun || rc.received() != 0 {
		t.Fatalf("dry run: %+v, receiver got %d; want 3 matched and nothing sent", dry.Report, rc.received())
	}
	page := decodeJSON[attemptsPage](t, api.do(t, http.MethodGet, e.Links.Deliveries, ""))
	if len(page.Attempts) != 0 || page.Attempts == nil {
		t.Fatalf("deliveries after a dry run: %+v, want []", page)
	}

	job := api.replay(t, e, `{"since":"2000-01-01T00:00:00Z"}`)
	if job.Report.Matched != 3 || job.Report.Sent != 2 || job.Report.Failed != 1 || rc.received() != 3 {
		t.Fatalf("replay: %+v, receiver got %d; want 3 matched, 2 sent, 1 failed", job.Report, rc.received())
	}

	page = decodeJSON[attemptsPage](t, api.do(t, http.MethodGet, e.Links.Deliveries+"?limit=2", ""))
	if len(page.Attempts) != 2 || page.NextBefore != page.Attempts[1].ID || page.Next == "" {
		t.Fatalf("first page: %+v", page)
	}
	rest := decodeJSON[attemptsPage](t, api.do(t, http.MethodGet, page.Next, ""))
	if len(rest.Attempts) != 1 || rest.Next != "" || rest.NextBefore != 0 || rest.Attempts[0].ID >= page.Attempts[1].ID {
		t.Fatalf("second page (%s): %+v", page.Next, rest)
	}
	for _, a := range append(page.Attempts, rest.Attempts...) {
		if a.Trigger != webhooks.TriggerReplay || a.EndpointID != e.ID || a.EventType != "NotificationQueued" || a.StatusCode == nil {
			t.Errorf("attempt %+v", a)
		}
	}
	failed := decodeJSON[attemptsPage](t, api.do(t, http.MethodGet, e.Links.Deliveries+"?failed=true", ""))
	if len(failed.Attempts) != 1 || failed.Attempts[0].NotificationID != ids[1] || *failed.Attempts[0].StatusCode != 500 ||
		failed.Attempts[0].Succeeded || failed.Attempts[0].Error == "" {
		t.Errorf("failed deliveries: %+v, want the one of %s, answered 500", failed, ids[1])
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?before=-1", "?failed=maybe", "?page=2"} {
		wantError(t, api.do(t, http.MethodGet, e.Links.Deliveries+q, ""), http.StatusUnprocessableEntity, herald.EINVALID)
	}
	wantError(t, api.do(t, http.MethodGet, "/api/v1/webhooks/"+uuid.NewString()+"/deliveries", ""), http.StatusNotFound, herald.ENOTFOUND)
	// The failed one waits for its retry; the endpoint says so.
	if got := decodeJSON[endpointAnswer](t, api.do(t, http.MethodGet, e.Links.Self, "")); got.RetriesPending == nil || *got.RetriesPending != 1 {
		t.Errorf("retries pending: %v, want 1", got.RetriesPending)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(rc.bodies[0]), &body); err != nil || body["type"] != "NotificationQueued" {
		t.Errorf("the receiver got %s", rc.bodies[0])
	}
}
