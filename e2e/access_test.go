package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/heraldtest"
)

// answer is an HTTP answer read in full.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorAnswer is the API's JSON error.
type errorAnswer struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
}

// request sends method url with body and header through the test client. An Authorization
// header of "-" sends no key; none sends the cluster's key.
func request(t *testing.T, method, url, body string, header http.Header) answer {
	t.Helper()
	a, err := tryRequest(method, url, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tryRequest is request for goroutines other than the test's.
func tryRequest(method, url, body string, header http.Header) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{}, err
	}
	for k, v := range header {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: read: %w", method, url, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// errorCode checks that a is a JSON error with status and returns its code.
func errorCode(t *testing.T, a answer, status int) string {
	t.Helper()
	var e errorAnswer
	if err := json.Unmarshal(a.body, &e); err != nil || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Errorf("answer %d (%s) is not a JSON error: %s", a.status, a.header.Get("Content-Type"), a.body)
	}
	if a.status != status {
		t.Errorf("answer %d %s, want %d", a.status, a.body, status)
	}
	return e.Error.Code
}

func withToken(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

var noKey = http.Header{"Authorization": {"-"}}

const accessEmail = `{"type":"email","recipient":"access@example.com","content":"Hello"}`

func TestAccessControl(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"all"}})
	send := h.API + "/api/v1/notifications/send"
	list := h.API + "/api/v1/notifications"

	// No key: 401 everywhere but the probes.
	for _, rt := range []struct{ method, url, body string }{
		{http.MethodPost, send, accessEmail},
		{http.MethodGet, list, ""},
		{http.MethodGet, h.API + "/api/v1/poison", ""},
	} {
		a := request(t, rt.method, rt.url, rt.body, noKey)
		if code := errorCode(t, a, http.StatusUnauthorized); code != herald.EUNAUTHORIZED {
			t.Errorf("%s %s without a key: code %q, want %s", rt.method, rt.url, code, herald.EUNAUTHORIZED)
		}
		if a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", rt.method, rt.url)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"} {
		if a := request(t, http.MethodGet, h.API+path, "", noKey); a.status != http.StatusOK {
			t.Errorf("GET %s without a key: %d %s, want 200", path, a.status, a.body)
		}
	}

	// A read-only key reads but cannot send.
	store := apikeys.NewStore(h.DB.Pool)
	_, reader, err := store.Create(context.Background(), "dashboard", []herald.Scope{herald.ScopeRead}, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	a := request(t, http.MethodPost, send, accessEmail, withToken(reader))
	if code := errorCode(t, a, http.StatusForbidden); code != herald.EFORBIDDEN {
		t.Errorf("send with a read-only key: code %q, want %s", code, herald.EFORBIDDEN)
	}
	if a := request(t, http.MethodGet, list, "", withToken(reader)); a.status != http.StatusOK {
		t.Errorf("list with a read-only key: %d %s, want 200", a.status, a.body)
	}
	if a := request(t, http.MethodGet, h.API+"/api/v1/poison", "", withToken(reader)); a.status != http.StatusForbidden {
		t.Errorf("poison list with a read-only key: %d %s, want 403", a.status, a.body)
	}

	// A key made with the CLI works at once; revoked with the CLI, it stops within the cache time.
	out := mustRunCLI(t, h, "apikeys", "create", "--name", "temp", "--scopes", "send,read", "-o", "json")
	var created struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Token, apikeys.TokenPrefix) {
		t.Fatalf("apikeys create -o json printed %q (%v), want a token", out, err)
	}
	if a := request(t, http.MethodPost, send, accessEmail, withToken(created.Token)); a.status != http.StatusAccepted {
		t.Fatalf("send with a key made by the CLI: %d %s, want 202", a.status, a.body)
	}
	if listed := mustRunCLI(t, h, "apikeys", "list"); strings.Contains(listed, created.Token) || !strings.Contains(listed, "temp") {
		t.Errorf("apikeys list shows a token or not the key:\n%s", listed)
	}
	mustRunCLI(t, h, "apikeys", "revoke", "temp")
	revoked := time.Now()
	heraldtest.Eventually(t, apikeys.CacheFor+3*time.Second, "the revoked key to be refused", func() (bool, error) {
		a := request(t, http.MethodGet, list, "", withToken(created.Token))
		return a.status == http.StatusUnauthorized, nil
	})
	t.Logf("the revoked key was refused %s after the revocation", time.Since(revoked))
	a = request(t, http.MethodPost, send, accessEmail, withToken(created.Token))
	if code := errorCode(t, a, http.StatusUnauthorized); code != herald.EUNAUTHORIZED {
		t.Errorf("send with a revoked key: code %q", code)
	}

	// The CLI's refusals exit non-zero.
	for _, args := range [][]string{
		{"apikeys", "create", "--name", "temp", "--scopes", "send"},
		{"apikeys", "create", "--name", "x", "--scopes", "root"},
		{"apikeys", "revoke", "nobody"},
	} {
		if res := runCLI(t, h, args...); res.code == 0 || tokenIn(res.stdout+res.stderr) {
			t.Errorf("herald %s: exit %d\nstdout: %s\nstderr: %s; want a failure and no token", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
	}
}

var tokenPattern = regexp.MustCompile(regexp.QuoteMeta(apikeys.TokenPrefix) + `[A-Za-z0-9_-]{20,}`)

func tokenIn(s string) bool { return tokenPattern.MatchString(s) }

func TestIdempotentSendIsDeliveredOnce(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"all"}})
	const recipient = "once@example.com"
	body := `{"type":"email","recipient":"` + recipient + `","subject":"Order {{.n}}","content":"Your order {{.n}} shipped.","variables":{"n":42}}`
	header := http.Header{"Idempotency-Key": {"order-42-shipped"}}
	// post sends the request; it may run outside the test's goroutine, so it reports with Errorf.
	post := func() (notificationJSON, answer) {
		a, err := tryRequest(http.MethodPost, h.API+"/api/v1/notifications/send", body, header)
		if err != nil {
			t.Error(err)
			return notificationJSON{}, a
		}
		var n notificationJSON
		if a.status != http.StatusAccepted || json.Unmarshal(a.body, &n) != nil {
			t.Errorf("send: %d %s, want 202 with a notification", a.status, a.body)
		}
		return n, a
	}

	first, a := post()
	if a.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first answer has Idempotent-Replayed: %q", a.header.Get("Idempotent-Replayed"))
	}
	if first.ID == "" {
		t.Fatal("no notification")
	}
	for i := range 2 {
		n, a := post()
		if n != first || a.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry %d: %+v replayed %q; want %+v replayed", i, n, a.header.Get("Idempotent-Replayed"), first)
		}
	}
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			n, a := post()
			if n.ID != first.ID || a.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("concurrent retry %d: %s replayed %q; want %s replayed", i, n.ID, a.header.Get("Idempotent-Replayed"), first.ID)
			}
		})
	}
	wg.Wait()

	waitStatus(t, h.API, first.ID, "sent", deliveryTimeout)
	if got := h.SMTP.Received(recipient); len(got) != 1 {
		t.Errorf("%d emails to %s, want exactly 1", len(got), recipient)
	}
	var streams, queued int
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT stream_id),
		count(*) FILTER (WHERE event_type = 'NotificationQueued') FROM event_log`).Scan(&streams, &queued); err != nil {
		t.Fatal(err)
	}
	if streams != 1 || queued != 1 {
		t.Errorf("%d streams and %d NotificationQueued events after 8 requests with one key, want 1 and 1", streams, queued)
	}

	// The event names the key that sent it.
	_, evs := story(t, h.API, first.ID, 3)
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	var data struct {
		APIKey map[string]string `json:"api_key"`
	}
	if err := json.Unmarshal(evs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	keys, err := apikeys.NewStore(h.DB.Pool).List(context.Background(), false)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if diff := cmp.Diff(map[string]string{"id": keys[0].ID, "name": "e2e"}, data.APIKey); diff != "" {
		t.Errorf("NotificationQueued data.api_key (-want +got):\n%s", diff)
	}
	if evs[0].Metadata.Actor != "apikey:e2e" {
		t.Errorf("NotificationQueued actor %q, want apikey:e2e", evs[0].Metadata.Actor)
	}

	// Once delivered, the key still answers the same, and sends nothing more.
	if n, a := post(); n.ID != first.ID || a.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry after delivery: %s replayed %q", n.ID, a.header.Get("Idempotent-Replayed"))
	}
	// The same key with another request is refused.
	a = request(t, http.MethodPost, h.API+"/api/v1/notifications/send", strings.Replace(body, "42", "43", 1), header)
	if code := errorCode(t, a, http.StatusUnprocessableEntity); code != herald.EINVALID {
		t.Errorf("another request with the key: code %q, want %s", code, herald.EINVALID)
	}
	if got := h.SMTP.Received(recipient); len(got) != 1 {
		t.Errorf("%d emails to %s at the end, want exactly 1", len(got), recipient)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	h := startHerald(t, heraldOpts{Commands: []string{"all"}, Env: map[string]string{"HERALD_RATE_LIMIT": "5"}})
	store := apikeys.NewStore(h.DB.Pool)
	_, other, err := store.Create(context.Background(), "other", []herald.Scope{herald.ScopeRead}, "e2e")
	if err != nil {
		t.Fatal(err)
	}

	const burst = 20
	answers := make([]answer, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			var err error
			if answers[i], err = tryRequest(http.MethodGet, h.API+"/api/v1/notifications", "", nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, a := range answers {
		switch a.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if code := errorCode(t, a, http.StatusTooManyRequests); code != herald.ERATELIMITED {
				t.Errorf("429 with code %q, want %s", code, herald.ERATELIMITED)
			}
			if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("429 with Retry-After %q, want a number of seconds", a.header.Get("Retry-After"))
			}
		default:
			t.Errorf("burst answer %d %s", a.status, a.body)
		}
	}
	if limited == 0 || ok < 1 || ok > 10 {
		t.Errorf("a burst of %d with a limit of 5 per second: %d answered, %d limited", burst, ok, limited)
	}

	// Another key is not limited by that burst, nor are the probes.
	if a := request(t, http.MethodGet, h.API+"/api/v1/notifications", "", withToken(other)); a.status != http.StatusOK {
		t.Errorf("another key right after the burst: %d %s, want 200", a.status, a.body)
	}
	if a := request(t, http.MethodGet, h.API+"/healthz", "", noKey); a.status != http.StatusOK {
		t.Errorf("/healthz right after the burst: %d, want 200", a.status)
	}
	// And the limited key gets through again once the window has passed.
	heraldtest.Eventually(t, 5*time.Second, "the limited key to be let through again", func() (bool, error) {
		return request(t, http.MethodGet, h.API+"/api/v1/notifications", "", nil).status == http.StatusOK, nil
	})
}
