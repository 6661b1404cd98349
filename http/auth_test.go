package http_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/ratelimit"
	"github.com/herald-notify/herald/router"
)

// The API with authentication runs over the real key store, acceptor, reader and operator; only
// the poison queue is in memory.

type authAPI struct {
	url    string
	pool   *pgxpool.Pool
	log    *events.Log
	keys   *apikeys.Store
	parked *memoryParked
}

// newAuthAPI serves the API with WithAuth over a fresh database, limiting each key to limit.
func newAuthAPI(t *testing.T, limit heraldhttp.RateLimit) *authAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	return serveAuthAPI(t, db.Pool, limit)
}

// serveAuthAPI serves the API with WithAuth over pool, with a key store of its own (an empty
// cache), as a newly started process would.
func serveAuthAPI(t *testing.T, pool *pgxpool.Pool, limit heraldhttp.RateLimit) *authAPI {
	t.Helper()
	log := events.NewLog(pool)
	parked := &memoryParked{}
	keys := apikeys.NewStore(pool)
	limit = sharedKeyLimit(t, pool, limit)
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: apiMaxBody, Metrics: prometheus.NewRegistry()},
		handlers.NewAcceptor(pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(pool, log),
		[]heraldhttp.Check{{Name: "postgres", Ready: pool.Ping}},
		testLogger(t),
	).WithOperator(handlers.NewOperator(pool, log, router.NewOutbox(nil), parked)).WithAuth(keys, limit)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &authAPI{url: ts.URL, pool: pool, log: log, keys: keys, parked: parked}
}

// sharedKeyLimit is limit with a limiter of its own over pool, as a newly started process has,
// when it limits API keys.
func sharedKeyLimit(t testing.TB, pool *pgxpool.Pool, limit heraldhttp.RateLimit) heraldhttp.RateLimit {
	if limit.Requests > 0 && limit.Keys == nil {
		limit.Keys = ratelimit.NewKeys(pool, ratelimit.KeyLimit{Requests: limit.Requests, Window: limit.Window}, nil,
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	return limit
}

// key creates an API key with scopes and returns its token.
func (a *authAPI) key(t *testing.T, name string, scopes ...herald.Scope) string {
	t.Helper()
	_, token, err := a.keys.Create(t.Context(), name, scopes, "test")
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
}

const authEmail = `{"type":"email","recipient":"ada@example.com","subject":"Hi {{.name}}","content":"Hello {{.name}}!","variables":{"name":"Ada"}}`

// wantError checks an error answer: status, JSON body with code.
func wantError(t *testing.T, r response, status int, code string) errorResponse {
	t.Helper()
	e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
	if r.status != status || e.Error.Code != code {
		t.Errorf("answer %d %s, want %d with code %s", r.status, r.body, status, code)
	}
	return e
}

func TestRequestsWithoutAValidKeyAre401(t *testing.T) {
	api := newAuthAPI(t, heraldhttp.RateLimit{})
	valid := api.key(t, "valid", herald.Scopes...)
	revoked := api.key(t, "revoked", herald.Scopes...)
	if _, err := api.keys.Revoke(t.Context(), "revoked"); err != nil {
		t.Fatal(err)
	}
	// A store that never saw the key before it was revoked: another process, or this one after
	// the cache time.
	fresh := serveAuthAPI(t, api.pool, heraldhttp.RateLimit{})
	id := uuid.NewString()

	headers := map[string]http.Header{
		"no key":                 {},
		"empty Authorization":    {"Authorization": {""}},
		"Basic":                  {"Authorization": {"Basic dXNlcjpwYXNz"}},
		"Bearer without a key":   {"Authorization": {"Bearer"}},
		"Bearer and blanks":      {"Authorization": {"Bearer    "}},
		"key without a scheme":   {"Authorization": {valid}},
		"other scheme, valid":    {"Authorization": {"Token " + valid}},
		"unknown key":            {"Authorization": {"Bearer " + apikeys.TokenPrefix + strings.Repeat("x", 43)}},
		"not a key":              {"Authorization": {"Bearer let-me-in"}},
		"revoked key":            {"Authorization": {"Bearer " + revoked}},
		"unknown X-API-Key":      {"X-Api-Key": {apikeys.TokenPrefix + "nope"}},
		"revoked X-API-Key":      {"X-Api-Key": {revoked}},
		"bad Authorization wins": {"Authorization": {"Basic dXNlcjpwYXNz"}, "X-Api-Key": {valid}},
	}
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/notifications/send", authEmail},
		{http.MethodGet, "/api/v1/notifications", ""},
		{http.MethodGet, "/api/v1/notifications/" + id + "/status", ""},
		{http.MethodGet, "/api/v1/notifications/" + id + "/history", ""},
		{http.MethodGet, "/api/v1/notifications/" + id + "/events", ""},
		{http.MethodGet, "/api/v1/poison", ""},
		{http.MethodPost, "/api/v1/poison/" + id + "/requeue", `{"actor":"a"}`},
	}
	for name, header := range headers {
		for _, rt := range routes {
			t.Run(name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				h := header.Clone()
				h.Set("Content-Type", "application/json")
				r := doRequest(t, fresh.url, rt.method, rt.path, rt.body, h)
				wantError(t, r, http.StatusUnauthorized, herald.EUNAUTHORIZED)
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
				}
			})
		}
	}
	if n := countRows(t, api.pool, "event_log"); n != 0 {
		t.Errorf("%d events written by refused requests, want none", n)
	}
}

func TestKeyInEitherHeader(t *testing.T) {
	api := newAuthAPI(t, heraldhttp.RateLimit{})
	token := api.key(t, "both", herald.ScopeSend, herald.ScopeRead)
	for name, h := range map[string]http.Header{
		"Bearer":                 {"Authorization": {"Bearer " + token}},
		"bearer in lower case":   {"Authorization": {"bearer " + token}},
		"Bearer with blanks":     {"Authorization": {"Bearer  " + token + " "}},
		"X-API-Key":              {"X-Api-Key": {token}},
		"X-API-Key in any case":  {"x-api-key": {token}},
		"both, the same key":     {"Authorization": {"Bearer " + token}, "X-Api-Key": {token}},
		"Bearer and a wrong one": {"Authorization": {"Bearer " + token}, "X-Api-Key": {"junk"}},
	} {
		t.Run(name, func(t *testing.T) {
			n, _ := api.send(t, authEmail, h)
			r := doRequest(t, api.url, http.MethodGet, "/api/v1/notifications/"+n.ID+"/events", "", h)
			if r.status != http.StatusOK {
				t.Errorf("GET events: %d %s, want 200", r.status, r.body)
			}
		})
	}
}

// send posts body with header (which carries the key) and requires 202.
func (a *authAPI) send(t *testing.T, body string, header http.Header) (notificationResponse, response) {
	t.Helper()
	h := jsonHeader()
	for name, values := range header {
		h[http.CanonicalHeaderKey(name)] = values
	}
	r := doRequest(t, a.url, http.MethodPost, "/api/v1/notifications/send", body, h)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST send: %d %s, want 202", r.status, r.body)
	}
	return decodeJSON[notificationResponse](t, r), r
}

func TestScopes(t *testing.T) {
	api := newAuthAPI(t, heraldhttp.RateLimit{})
	all := api.key(t, "all", herald.Scopes...)
	keys := map[string]string{
		"send":    api.key(t, "send-only", herald.ScopeSend),
		"read":    api.key(t, "read-only", herald.ScopeRead),
		"operate": api.key(t, "operate-only", herald.ScopeOperate),
		"all":     all,
	}
	n, _ := api.send(t, authEmail, bearer(all))
	failed := (&poisonAPI{url: api.url, log: api.log, parked: api.parked}).notification(t, herald.ChannelSMS, "+14155550123", true, failedTwice...)
	asOf := rfc3339(time.Now().Add(time.Hour))

	routes := []struct {
		name, method, path, body string
		scope                    string
		okStatus                 int // the answer to a key with the scope
	}{
		{"send", http.MethodPost, "/api/v1/notifications/send", authEmail, "send", http.StatusAccepted},
		{"list", http.MethodGet, "/api/v1/notifications?limit=5", "", "read", http.StatusOK},
		{"status", http.MethodGet, "/api/v1/notifications/" + n.ID + "/status", "", "read", http.StatusOK},
		{"status as of", http.MethodGet, "/api/v1/notifications/" + n.ID + "/status?as_of=" + asOf, "", "read", http.StatusOK},
		{"history", http.MethodGet, "/api/v1/notifications/" + n.ID + "/history", "", "read", http.StatusOK},
		{"events", http.MethodGet, "/api/v1/notifications/" + n.ID + "/events", "", "read", http.StatusOK},
		{"unknown status", http.MethodGet, "/api/v1/notifications/" + uuid.NewString() + "/status", "", "read", http.StatusNotFound},
		{"poison list", http.MethodGet, "/api/v1/poison", "", "operate", http.StatusOK},
		{"requeue a pending one", http.MethodPost, "/api/v1/poison/" + n.ID + "/requeue", "", "operate", http.StatusConflict},
		{"discard a pending one", http.MethodPost, "/api/v1/poison/" + n.ID + "/discard", `{"reason":"r"}`, "operate", http.StatusConflict},
	}
	for keyName, token := range keys {
		for _, rt := range routes {
			t.Run(keyName+" "+rt.name, func(t *testing.T) {
				before := countRows(t, api.pool, "event_log")
				r := doRequest(t, api.url, rt.method, rt.path, rt.body, bearer(token))
				if keyName == rt.scope || keyName == "all" {
					if r.status != rt.okStatus {
						t.Errorf("%s %s with the %s scope: %d %s, want %d", rt.method, rt.path, rt.scope, r.status, r.body, rt.okStatus)
					}
					return
				}
				e := wantError(t, r, http.StatusForbidden, herald.EFORBIDDEN)
				if !strings.Contains(e.Error.Message, rt.scope) {
					t.Errorf("403 message %q does not name the scope %q", e.Error.Message, rt.scope)
				}
				if after := countRows(t, api.pool, "event_log"); after != before {
					t.Errorf("a forbidden request wrote %d events", after-before)
				}
			})
		}
	}
	if api.parked.count() != 1 {
		t.Errorf("%d parked messages, want the one of %s untouched", api.parked.count(), failed)
	}
}

func rfc3339(at time.Time) string { return at.UTC().Format(time.RFC3339) }

func TestHealthAndMetricsStayOpen(t *testing.T) {
	api := newAuthAPI(t, heraldhttp.RateLimit{Requests: 1, Window: time.Minute})
	token := api.key(t, "k", herald.ScopeRead)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for name, h := range map[string]http.Header{
			"no key":     nil,
			"a bad key":  {"Authorization": {"Bearer nope"}},
			"a good key": {"Authorization": {"Bearer " + token}},
		} {
			// Repeated beyond the rate limit: probes are not limited either.
			for i := range 3 {
				r := doRequest(t, api.url, http.MethodGet, path, "", h)
				if r.status != http.StatusOK {
					t.Errorf("GET %s with %s (%d): %d %s, want 200", path, name, i, r.status, r.body)
				}
			}
		}
	}
}

func TestRateLimitPerKey(t *testing.T) {
	const limit = 3
	// A long window: the bucket earns a request back every window/limit (3.3 s), so a burst
	// slowed by a loaded machine is not refilled while it runs.
	const window = 10 * time.Second
	api := newAuthAPI(t, heraldhttp.RateLimit{Requests: limit, Window: window})
	busy := api.key(t, "busy", herald.ScopeRead, herald.ScopeSend)
	calm := api.key(t, "calm", herald.ScopeRead)
	list := func(token string) response {
		return doRequest(t, api.url, http.MethodGet, "/api/v1/notifications", "", bearer(token))
	}

	// Requests without a valid key are refused before they count.
	for range 2 * limit {
		if r := doRequest(t, api.url, http.MethodGet, "/api/v1/notifications", "", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("no key: %d, want 401", r.status)
		}
	}

	// A burst: the key is allowed limit requests within the window, then refused.
	var limited response
	start := time.Now()
	for i := 0; ; i++ {
		r := list(busy)
		if r.status == http.StatusTooManyRequests {
			limited = r
			if i < limit {
				t.Errorf("limited after %d requests, want %d allowed", i, limit)
			}
			break
		}
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
		if i > 2*limit {
			t.Fatalf("%d requests in %s and no 429", i+1, time.Since(start))
		}
	}
	e := wantError(t, limited, http.StatusTooManyRequests, herald.ERATELIMITED)
	if e.Error.Message == "" {
		t.Errorf("429 without a message")
	}
	retry, err := strconv.Atoi(limited.header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 60 {
		t.Errorf("Retry-After = %q, want a number of seconds from 1", limited.header.Get("Retry-After"))
	}
	// Every route counts against the same key: a send is refused too, and writes nothing.
	limitedAt := time.Now()
	r := doRequest(t, api.url, http.MethodPost, "/api/v1/notifications/send", authEmail, bearer(busy))
	switch {
	case r.status == http.StatusTooManyRequests:
		if n := countRows(t, api.pool, "event_log"); n != 0 {
			t.Errorf("a rate-limited send wrote %d events", n)
		}
	case time.Since(limitedAt) < 300*time.Millisecond:
		t.Errorf("a send right after the 429: %d %s, want 429 too", r.status, r.body)
	}

	// Another key is not limited by the first one's burst.
	for i := range limit {
		if r := list(calm); r.status != http.StatusOK {
			t.Errorf("the other key's request %d: %d %s, want 200", i, r.status, r.body)
		}
	}

	// Once the window has passed, the busy key may send again.
	heraldtest.Eventually(t, window+5*time.Second, "the busy key to be let through again", func() (bool, error) {
		r := list(busy)
		return r.status == http.StatusOK, nil
	})
}

// Two API processes over one database hold a key to one limit together, not one each; another
// key keeps its own.
func TestRateLimitPerKeyAcrossProcesses(t *testing.T) {
	const limit = 4
	first := newAuthAPI(t, heraldhttp.RateLimit{Requests: limit, Window: time.Minute})
	second := serveAuthAPI(t, first.pool, heraldhttp.RateLimit{Requests: limit, Window: time.Minute})
	busy := first.key(t, "busy", herald.ScopeRead)
	calm := first.key(t, "calm", herald.ScopeRead)
	count := func(token string, n int) (ok, limited int) {
		for i := range n {
			api := []*authAPI{first, second}[i%2]
			switch r := doRequest(t, api.url, http.MethodGet, "/api/v1/notifications", "", bearer(token)); r.status {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				limited++
				wantError(t, r, http.StatusTooManyRequests, herald.ERATELIMITED)
			default:
				t.Fatalf("request %d: %d %s", i, r.status, r.body)
			}
		}
		return ok, limited
	}
	// Over a minute's window nothing is earned back during the test.
	if ok, limited := count(busy, 3*limit); ok != limit || limited != 2*limit {
		t.Errorf("%d requests of one key alternating between two processes: %d answered and %d limited, want %d and %d",
			3*limit, ok, limited, limit, 2*limit)
	}
	if ok, _ := count(calm, limit); ok != limit {
		t.Errorf("another key: %d of %d answered, want all", ok, limit)
	}
}

// Retry-After is a whole number of seconds; a window shorter than a second must not tell the
// client to retry after 0 seconds, which invites it to hammer.
//
// The key earns its one request back every 500 ms, so a request is refused only when it reaches
// the limiter within 500 ms of the one before: the requests go in bursts sent at once, as one
// after another each may take longer than that on a loaded machine.
func TestRetryAfterOfAShortWindow(t *testing.T) {
	const window, burst = 500 * time.Millisecond, 5
	api := newAuthAPI(t, heraldhttp.RateLimit{Requests: 1, Window: window})
	token := api.key(t, "k", herald.ScopeRead)
	var limited *response
	heraldtest.Eventually(t, 30*time.Second, fmt.Sprintf("a 429 among %d requests sent at once", burst), func() (bool, error) {
		answers, errs := make([]response, burst), make([]error, burst)
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				answers[i], errs[i] = tryRequest(t, api.url, http.MethodGet, "/api/v1/notifications", "", bearer(token))
			})
		}
		wg.Wait()
		for i, r := range answers {
			switch {
			case errs[i] != nil:
				t.Fatal(errs[i])
			case r.status == http.StatusTooManyRequests:
				limited = &r
			case r.status != http.StatusOK:
				t.Fatalf("request %d: %d %s", i, r.status, r.body)
			}
		}
		return limited != nil, fmt.Errorf("all %d answered", burst)
	})
	wantError(t, *limited, http.StatusTooManyRequests, herald.ERATELIMITED)
	if retry, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || retry < 1 {
		t.Errorf("Retry-After = %q with a window of 500ms, want at least 1 (second)", limited.header.Get("Retry-After"))
	}
}

type eventsAnswer struct {
	Events []struct {
		Type     string          `json:"type"`
		Data     json.RawMessage `json:"data"`
		Metadata struct {
			Actor string `json:"actor"`
		} `json:"metadata"`
	} `json:"events"`
}

func TestTheSendingKeyIsRecorded(t *testing.T) {
	api := newAuthAPI(t, heraldhttp.RateLimit{})
	token := api.key(t, "newsletter", herald.ScopeSend)
	reader := api.key(t, "auditor", herald.ScopeRead)
	keys, err := api.keys.List(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	var keyID string
	for _, k := range keys {
		if k.Name == "newsletter" {
			keyID = k.ID
		}
	}

	n, _ := api.send(t, authEmail, bearer(token))
	r := doRequest(t, api.url, http.MethodGet, "/api/v1/notifications/"+n.ID+"/events", "", bearer(reader))
	if r.status != http.StatusOK {
		t.Fatalf("GET events: %d %s", r.status, r.body)
	}
	evs := decodeJSON[eventsAnswer](t, r)
	if len(evs.Events) != 1 || evs.Events[0].Type != "NotificationQueued" {
		t.Fatalf("events %s, want one NotificationQueued", r.body)
	}
	var data struct {
		APIKey map[string]string `json:"api_key"`
	}
	if err := json.Unmarshal(evs.Events[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"id": keyID, "name": "newsletter"}, data.APIKey); diff != "" {
		t.Errorf("data.api_key (-want +got):\n%s", diff)
	}
	if got := evs.Events[0].Metadata.Actor; got != "apikey:newsletter" {
		t.Errorf("metadata.actor = %q, want apikey:newsletter", got)
	}
}

func TestOperatorActionsNameTheKey(t *testing.T) {
	api := newAuthAPI(t, heraldhttp.RateLimit{})
	token := api.key(t, "oncall", herald.ScopeOperate)
	parked := &poisonAPI{url: api.url, log: api.log, parked: api.parked}
	tests := []struct {
		name, body, want string
	}{
		{"no body", "", "apikey:oncall"},
		{"no actor", `{"reason":"gateway fixed"}`, "apikey:oncall"},
		{"an actor", `{"actor":"alice","reason":"gateway fixed"}`, "alice via apikey:oncall"},
		{"null actor", `{"actor":null}`, "apikey:oncall"},
		{"empty actor", `{"actor":""}`, "apikey:oncall"},
		// The longest actor a client may name (200 characters) must not be refused because the
		// server appends the key to it.
		{"longest actor", `{"actor":"` + strings.Repeat("a", 200) + `"}`, strings.Repeat("a", 200) + " via apikey:oncall"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := parked.notification(t, herald.ChannelSMS, "+14155550123", true, failedTwice...)
			r := doRequest(t, api.url, http.MethodPost, "/api/v1/poison/"+id+"/requeue", tt.body, bearer(token))
			if r.status != http.StatusOK {
				t.Fatalf("requeue: %d %s", r.status, r.body)
			}
			last := lastEvent(t, api.log, id)
			e, ok := last.event.(*events.NotificationRequeued)
			if !ok {
				t.Fatalf("last event %T, want NotificationRequeued", last.event)
			}
			if e.Actor != tt.want || last.md.Actor != tt.want {
				t.Errorf("requeue recorded actor %q and metadata actor %q, want %q", e.Actor, last.md.Actor, tt.want)
			}
		})
	}
}

func TestIdempotencyOverHTTP(t *testing.T) {
	api := newAuthAPI(t, heraldhttp.RateLimit{})
	token := api.key(t, "shop", herald.ScopeSend)
	other := api.key(t, "crm", herald.ScopeSend)
	withKey := func(token, key string) http.Header {
		h := bearer(token)
		h.Set(heraldhttp.IdempotencyHeader, key)
		return h
	}

	first, r := api.send(t, authEmail, withKey(token, "order-7"))
	if got := r.header.Get(heraldhttp.ReplayedHeader); got != "" {
		t.Errorf("first answer has %s: %q", heraldhttp.ReplayedHeader, got)
	}
	// The same request, its fields in another order and spaced otherwise.
	same := `{ "variables": {"name": "Ada"}, "content": "Hello {{.name}}!", "subject": "Hi {{.name}}",
		"recipient": "ada@example.com", "type": "email" }`
	for _, body := range []string{authEmail, same} {
		again, r := api.send(t, body, withKey(token, "order-7"))
		if r.header.Get(heraldhttp.ReplayedHeader) != "true" {
			t.Errorf("retry: %s = %q, want true", heraldhttp.ReplayedHeader, r.header.Get(heraldhttp.ReplayedHeader))
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Errorf("retry answered otherwise (-first +retry):\n%s", diff)
		}
	}
	if n := countRows(t, api.pool, "event_log"); n != 1 {
		t.Errorf("%d events after a request and two retries, want 1", n)
	}

	// Another request with the key: 422 naming the header.
	r = doRequest(t, api.url, http.MethodPost, "/api/v1/notifications/send",
		strings.Replace(authEmail, "Ada", "Grace", 1), withKey(token, "order-7"))
	if e := wantError(t, r, http.StatusUnprocessableEntity, herald.EINVALID); e.Error.Fields[heraldhttp.IdempotencyHeader] == "" {
		t.Errorf("fields %v, want %s named", e.Error.Fields, heraldhttp.IdempotencyHeader)
	}
	// A malformed key: 422 naming the header.
	r = doRequest(t, api.url, http.MethodPost, "/api/v1/notifications/send", authEmail, withKey(token, strings.Repeat("k", 300)))
	if e := wantError(t, r, http.StatusUnprocessableEntity, herald.EINVALID); e.Error.Fields[heraldhttp.IdempotencyHeader] == "" {
		t.Errorf("fields %v, want %s named", e.Error.Fields, heraldhttp.IdempotencyHeader)
	}
	// Another API key has keys of its own.
	theirs, r := api.send(t, authEmail, withKey(other, "order-7"))
	if theirs.ID == first.ID || r.header.Get(heraldhttp.ReplayedHeader) != "" {
		t.Errorf("another API key with the same idempotency key got %s (replayed %q), want a new notification",
			theirs.ID, r.header.Get(heraldhttp.ReplayedHeader))
	}
	if n := countRows(t, api.pool, "event_log"); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

// floodAPI is the API with WithAuth whose key store counts the queries it makes.
type floodAPI struct {
	url     string
	queries *heraldtest.QueryCounter
	keys    *apikeys.Store
}

func serveFloodAPI(t *testing.T, limit heraldhttp.RateLimit, trustedProxies ...string) *floodAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	queries := heraldtest.CountQueries(db.Pool)
	keys := apikeys.NewStore(queries)
	limit = sharedKeyLimit(t, db.Pool, limit)
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: apiMaxBody, TrustedProxies: trustedProxies},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t),
	).WithAuth(keys, limit)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &floodAPI{url: ts.URL, queries: queries, keys: keys}
}

// madeUpToken returns a well-formed token no key has: the i-th of a flood.
func madeUpToken(i int) string {
	secret := fmt.Sprintf("%043d", i)
	return apikeys.TokenPrefix + secret
}

// A client address that keeps sending missing or made-up keys is answered 429 once it has been
// refused PerAddress times, before any key it sends is looked up: a flood of distinct made-up
// tokens costs PerAddress queries, not one each.
func TestFloodWithoutAValidKey(t *testing.T) {
	const perAddress, flood = 5, 60
	list := func(base string, header http.Header) response {
		return doRequest(t, base, http.MethodGet, "/api/v1/notifications", "", header)
	}
	floods := map[string]func(i int) http.Header{
		"distinct made-up tokens": func(i int) http.Header { return bearer(madeUpToken(i)) },
		"malformed tokens":        func(i int) http.Header { return bearer(fmt.Sprintf("let-me-in-%d", i)) },
		"no key":                  func(int) http.Header { return nil },
		// Without trusted proxies, a client's X-Forwarded-For is ignored: it cannot pose as
		// ever new addresses.
		"made-up forwarded addresses": func(i int) http.Header {
			h := bearer(madeUpToken(i))
			h.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i%250))
			return h
		},
	}
	for name, header := range floods {
		t.Run(name, func(t *testing.T) {
			api := serveFloodAPI(t, heraldhttp.RateLimit{Requests: 1000, Window: time.Minute, PerAddress: perAddress})
			valid, token, err := api.keys.Create(t.Context(), "elsewhere", []herald.Scope{herald.ScopeRead}, "test")
			if err != nil {
				t.Fatal(err)
			}
			before := api.queries.Count()
			var refused, limited int
			for i := range flood {
				r := list(api.url, header(i))
				switch r.status {
				case http.StatusUnauthorized:
					refused++
					if limited > 0 {
						t.Fatalf("request %d: 401 after a 429: the address was let back in within the window", i)
					}
				case http.StatusTooManyRequests:
					limited++
					e := wantError(t, r, http.StatusTooManyRequests, herald.ERATELIMITED)
					if retry, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || retry < 1 || retry > 60 {
						t.Errorf("Retry-After = %q, want 1 to 60 seconds (%s)", r.header.Get("Retry-After"), e.Error.Message)
					}
				default:
					t.Fatalf("request %d: %d %s", i, r.status, r.body)
				}
			}
			if refused != perAddress || limited != flood-perAddress {
				t.Errorf("%d refused (401) and %d limited (429), want %d and %d", refused, limited, perAddress, flood-perAddress)
			}
			if n := api.queries.Count() - before; n > perAddress {
				t.Errorf("%d requests without a valid key cost %d queries, want at most %d", flood, n, perAddress)
			}
			// The address is refused whatever it presents now, a valid key included: the
			// bound is on the address.
			if r := list(api.url, bearer(token)); r.status != http.StatusTooManyRequests {
				t.Errorf("a valid key (%s) from the limited address: %d, want 429", valid.Name, r.status)
			}
		})
	}
}

// Behind trusted proxies, the client address is the rightmost forwarded one that is not a proxy:
// one client's flood does not lock out another behind the same proxy, and a client cannot escape
// its bound by forwarding made-up addresses of its own in front of the proxy's.
func TestFloodBehindTrustedProxies(t *testing.T) {
	const perAddress = 3
	api := serveFloodAPI(t, heraldhttp.RateLimit{Requests: 1000, Window: time.Minute, PerAddress: perAddress}, "127.0.0.1/32", "10.0.0.0/8")
	_, token, err := api.keys.Create(t.Context(), "good", []herald.Scope{herald.ScopeRead}, "test")
	if err != nil {
		t.Fatal(err)
	}
	from := func(forwarded string, header http.Header) response {
		if header == nil {
			header = http.Header{}
		}
		header.Set("X-Forwarded-For", forwarded)
		return doRequest(t, api.url, http.MethodGet, "/api/v1/notifications", "", header)
	}
	// The attacker, 203.0.113.9, prepends a new made-up address each time; the proxies at 10.1.2.3
	// and 127.0.0.1 append what they saw.
	for i := range 20 {
		r := from(fmt.Sprintf("192.0.2.%d, 203.0.113.9, 10.1.2.3", i), bearer(madeUpToken(i)))
		want := http.StatusUnauthorized
		if i >= perAddress {
			want = http.StatusTooManyRequests
		}
		if r.status != want {
			t.Fatalf("attacker's request %d: %d, want %d", i, r.status, want)
		}
	}
	// Another client behind the same proxies is not limited by it.
	if r := from("198.51.100.4, 10.1.2.3", bearer(token)); r.status != http.StatusOK {
		t.Errorf("another client's valid key: %d %s, want 200", r.status, r.body)
	}
	if r := from("198.51.100.4, 10.1.2.3", bearer(madeUpToken(99))); r.status != http.StatusUnauthorized {
		t.Errorf("another client's first made-up key: %d, want 401", r.status)
	}
}
