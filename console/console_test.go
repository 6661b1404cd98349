package console_test

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/console"
	"github.com/herald-notify/herald/heraldtest"
)

// consoleEnv is the console's sign-in and keys pages over a real database, served on loopback.
type consoleEnv struct {
	db   *heraldtest.Database
	keys *apikeys.Store
	base string
}

func newConsoleEnv(t *testing.T) *consoleEnv {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	keys := apikeys.NewStore(db.Pool)
	c := console.New(console.Deps{Auth: keys, Keys: keys, Sessions: console.NewSessions(db.Pool, 30*time.Minute, 12*time.Hour)},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := chi.NewRouter()
	r.Mount(console.Prefix, c.Handler())
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &consoleEnv{db: db, keys: keys, base: srv.URL + console.Prefix}
}

// key makes an API key with scopes and returns its token.
func (e *consoleEnv) key(t *testing.T, name string, scopes ...herald.Scope) string {
	t.Helper()
	_, token, err := e.keys.Create(context.Background(), name, scopes, "test")
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// browser is a client that keeps its cookies and does not follow redirects.
func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var hiddenField = regexp.MustCompile(`name="(login_token|csrf)" value="([^"]+)"`)

// page gets url with c and returns the status and the body.
func page(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post posts form to url with c and returns the status and the body.
func post(t *testing.T, c *http.Client, url string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(url, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// field returns the value of the hidden field name in body.
func field(t *testing.T, body, name string) string {
	t.Helper()
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	t.Fatalf("the page has no %s field:\n%s", name, body)
	return ""
}

// signIn signs c in with token and returns the session's CSRF token.
func (e *consoleEnv) signIn(t *testing.T, c *http.Client, token string) string {
	t.Helper()
	_, body := page(t, c, e.base+"/login")
	if code, body := post(t, c, e.base+"/login", url.Values{"api_key": {token}, "login_token": {field(t, body, "login_token")}}); code != http.StatusSeeOther {
		t.Fatalf("signing in answered %d:\n%s", code, body)
	}
	_, body = page(t, c, e.base+"/keys")
	return field(t, body, "csrf")
}

// sessionToken returns c's session cookie.
func (e *consoleEnv) sessionToken(t *testing.T, c *http.Client) string {
	t.Helper()
	u, _ := url.Parse(e.base + "/")
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == console.SessionCookie {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func (e *consoleEnv) sessions(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM console_sessions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// keyNames returns the names of the keys, with whether each is revoked.
func (e *consoleEnv) keyNames(t *testing.T) map[string]bool {
	t.Helper()
	list, err := e.keys.List(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range list {
		out[k.Name] = k.RevokedAt != nil
	}
	return out
}

// keyID returns the id of the key named name.
func (e *consoleEnv) keyID(t *testing.T, name string) string {
	t.Helper()
	list, err := e.keys.List(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(k apikeys.Key) bool { return k.Name == name })
	if i < 0 {
		t.Fatalf("no key %s", name)
	}
	return list[i].ID
}

// TestKeysNeedAdmin checks that a session of a key with operate but not admin sees the keys and
// a note saying why it cannot change them, and that its create and revoke posts, with a valid
// CSRF token, are refused 403 and change nothing; that an admin key can, but grants no scope it
// does not hold itself.
func TestKeysNeedAdmin(t *testing.T) {
	e := newConsoleEnv(t)
	operator := e.key(t, "op", herald.ScopeOperate)
	e.key(t, "victim", herald.ScopeSend)
	c := browser()
	csrf := e.signIn(t, c, operator)

	code, body := page(t, c, e.base+"/keys")
	if code != http.StatusOK || !strings.Contains(body, "victim") || !strings.Contains(body, `id="not_admin"`) ||
		strings.Contains(body, `id="create_key"`) || strings.Contains(body, `id="revoke-victim"`) {
		t.Errorf("an operate key's keys page (%d) should list the keys, say it lacks admin, and offer no create or revoke:\n%s", code, body)
	}
	before := e.keyNames(t)
	if code, body := post(t, c, e.base+"/keys", url.Values{"csrf": {csrf}, "name": {"successor"}, "scope": {"operate"}}); code != http.StatusForbidden ||
		!strings.Contains(body, "admin scope") {
		t.Errorf("an operate key's key creation answered %d, want 403 naming the admin scope:\n%s", code, body)
	}
	if code, _ := post(t, c, e.base+"/keys/"+e.keyID(t, "victim")+"/revoke", url.Values{"csrf": {csrf}}); code != http.StatusForbidden {
		t.Errorf("an operate key's revocation answered %d, want 403", code)
	}
	if after := e.keyNames(t); !maps.Equal(before, after) {
		t.Errorf("the refused posts changed the keys: %v, then %v", before, after)
	}

	// An admin key makes and revokes keys, within its own scopes.
	admin := e.key(t, "boss", herald.ScopeOperate, herald.ScopeAdmin, herald.ScopeRead)
	a := browser()
	csrf = e.signIn(t, a, admin)
	if code, body := post(t, a, e.base+"/keys", url.Values{"csrf": {csrf}, "name": {"sender"}, "scope": {"send"}}); code != http.StatusForbidden ||
		!strings.Contains(body, "lacks the send scope") {
		t.Errorf("creating a key with a scope the creator lacks answered %d, want 403 naming it:\n%s", code, body)
	}
	if _, ok := e.keyNames(t)["sender"]; ok {
		t.Error("a key with a scope its creator lacks was created")
	}
	if code, body := post(t, a, e.base+"/keys", url.Values{"csrf": {csrf}, "name": {"reader"}, "scope": {"read"}}); code != http.StatusCreated {
		t.Errorf("an admin key's creation of a read key answered %d, want 201:\n%s", code, body)
	}
	if code, _ := post(t, a, e.base+"/keys/"+e.keyID(t, "victim")+"/revoke", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Errorf("an admin key's revocation answered %d, want 303", code)
	}
	if got := e.keyNames(t); !got["victim"] {
		t.Errorf("after the admin's revocation the keys are %v, want victim revoked", got)
	}
}

// TestAssetsOnly checks that the assets route serves the stylesheet and nothing outside its
// directory, however the path climbs.
func TestAssetsOnly(t *testing.T) {
	e := newConsoleEnv(t)
	if code, body := page(t, http.DefaultClient, e.base+"/assets/console.css"); code != http.StatusOK || body == "" {
		t.Errorf("the stylesheet answered %d", code)
	}
	for _, p := range []string{"/assets/../templates/login.html", "/assets/%2e%2e/templates/login.html", "/assets/templates/login.html"} {
		code, body := page(t, http.DefaultClient, e.base+p)
		if code != http.StatusNotFound || strings.Contains(body, "{{") {
			t.Errorf("GET %s answered %d, want 404 and no template:\n%s", p, code, body)
		}
	}
}

// TestSignInEndsThePreviousSession checks that signing in again from a browser that has a session
// deletes that session's row, rather than leave it live beside the new one.
func TestSignInEndsThePreviousSession(t *testing.T) {
	e := newConsoleEnv(t)
	token := e.key(t, "op", herald.ScopeOperate)
	c := browser()
	e.signIn(t, c, token)
	first := e.sessionToken(t, c)
	e.signIn(t, c, token)
	second := e.sessionToken(t, c)
	if first == second {
		t.Fatal("signing in again kept the session token")
	}
	hash := sha256.Sum256([]byte(first))
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM console_sessions WHERE token_hash = $1`, hash[:]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 || e.sessions(t) != 1 {
		t.Errorf("after signing in again the first session is stored %d times, and %d sessions in all; want 0 and 1", n, e.sessions(t))
	}
}
