package apikeys_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/heraldtest"
)

// The store runs against a real, migrated database: what it promises (only a hash stored, names
// unique, revocation) is the database's doing as much as the code's.

func newStore(t *testing.T) (*apikeys.Store, *heraldtest.Database) {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	return apikeys.NewStore(db.Pool), db
}

func mustCreate(t *testing.T, s *apikeys.Store, name string, scopes ...herald.Scope) (apikeys.Key, string) {
	t.Helper()
	k, token, err := s.Create(t.Context(), name, scopes, "tester")
	if err != nil {
		t.Fatalf("create key %q: %v", name, err)
	}
	return k, token
}

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := herald.ErrorCode(err); got != code {
		t.Fatalf("error %v has code %q, want %q", err, got, code)
	}
}

func TestCreateShowsTheTokenOnceAndStoresItsHash(t *testing.T) {
	s, db := newStore(t)
	before := time.Now()
	k, token, err := s.Create(t.Context(), "billing-service", []herald.Scope{herald.ScopeSend, herald.ScopeRead}, "ada")
	if err != nil {
		t.Fatal(err)
	}

	secret, ok := strings.CutPrefix(token, apikeys.TokenPrefix)
	if !ok || len(secret) < 40 {
		t.Fatalf("token %q: want %q and at least 40 characters of secret", token, apikeys.TokenPrefix)
	}
	if k.ID == "" || !strings.HasPrefix(token, k.Prefix) || len(k.Prefix) <= len(apikeys.TokenPrefix) || len(k.Prefix) >= len(token)/2 {
		t.Errorf("key %+v: want an id and a short prefix of the token", k)
	}
	want := apikeys.Key{ID: k.ID, Name: "billing-service", Prefix: k.Prefix,
		Scopes: []herald.Scope{herald.ScopeSend, herald.ScopeRead}, CreatedAt: k.CreatedAt, CreatedBy: "ada"}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("created key (-want +got):\n%s", diff)
	}
	if k.CreatedAt.Before(before.Add(-time.Minute)) || k.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("created at %v, want about now", k.CreatedAt)
	}

	// No column holds the token or its secret part; the hash column holds its SHA-256.
	var row string
	if err := db.Pool.QueryRow(t.Context(), `SELECT row_to_json(k)::text FROM api_keys k WHERE id = $1`, k.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, token) || strings.Contains(row, secret) || strings.Contains(row, secret[len(secret)-16:]) {
		t.Errorf("the api_keys row holds the token: %s", row)
	}
	var stored []byte
	if err := db.Pool.QueryRow(t.Context(), `SELECT token_hash FROM api_keys WHERE id = $1`, k.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte(token)); string(stored) != string(sum[:]) {
		t.Errorf("token_hash = %x, want the SHA-256 of the token, %x", stored, sum)
	}

	// Tokens are random: a second key gets another.
	_, other := mustCreate(t, s, "billing-service-2", herald.ScopeSend)
	if other == token {
		t.Errorf("two keys got the same token %q", token)
	}
}

func TestCreateRefuses(t *testing.T) {
	s, db := newStore(t)
	mustCreate(t, s, "taken", herald.ScopeRead)
	tests := []struct {
		name      string
		keyName   string
		scopes    []herald.Scope
		wantCode  string
		wantField string // for EINVALID
	}{
		{"duplicate name", "taken", []herald.Scope{herald.ScopeSend}, herald.ECONFLICT, ""},
		{"empty name", "", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"name with a space", "has space", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"name starting with a dash", "-flag", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"name starting with a dot", ".hidden", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"name with a slash", "a/b", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"name with a newline", "a\nb", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"name with a trailing newline", "name\n", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"non-ASCII name", "clé", []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"name of 65 characters", strings.Repeat("a", 65), []herald.Scope{herald.ScopeSend}, herald.EINVALID, "name"},
		{"nil scopes", "no-scopes", nil, herald.EINVALID, "scopes"},
		{"empty scopes", "no-scopes", []herald.Scope{}, herald.EINVALID, "scopes"},
		{"unknown scope", "admin-key", []herald.Scope{"root"}, herald.EINVALID, "scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, token, err := s.Create(t.Context(), tt.keyName, tt.scopes, "tester")
			wantCode(t, err, tt.wantCode)
			if token != "" {
				t.Errorf("a refused key still got a token")
			}
			if tt.wantField != "" {
				if _, ok := herald.ErrorFields(err)[tt.wantField]; !ok {
					t.Errorf("fields %v, want %q named", herald.ErrorFields(err), tt.wantField)
				}
			}
		})
	}
	var n int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM api_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d keys stored after the refusals, want only the first one", n)
	}
}

func TestCreateAcceptsNames(t *testing.T) {
	s, _ := newStore(t)
	for _, name := range []string{"a", "7", "ci.deploy_bot-1", "UPPER", strings.Repeat("x", 64)} {
		if _, _, err := s.Create(t.Context(), name, []herald.Scope{herald.ScopeRead}, ""); err != nil {
			t.Errorf("create %q: %v", name, err)
		}
	}
}

func TestListAndRevoke(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	first, _ := mustCreate(t, s, "first", herald.ScopeSend)
	second, _ := mustCreate(t, s, "second", herald.ScopeRead, herald.ScopeOperate)
	third, _ := mustCreate(t, s, "third", herald.Scopes...)

	list := func(revoked bool) []apikeys.Key {
		t.Helper()
		keys, err := s.List(ctx, revoked)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if diff := cmp.Diff([]apikeys.Key{first, second, third}, list(false)); diff != "" {
		t.Errorf("list, nothing revoked (-want +got):\n%s", diff)
	}

	// By name, and by id (in upper case too, as people paste them).
	revokedSecond, err := s.Revoke(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	revokedFirst, err := s.Revoke(ctx, strings.ToUpper(first.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		got, want apikeys.Key
	}{{revokedSecond, second}, {revokedFirst, first}} {
		if r.got.RevokedAt == nil {
			t.Fatalf("revoked key %s has no revoked_at", r.got.Name)
		}
		want := r.want
		want.RevokedAt = r.got.RevokedAt
		if diff := cmp.Diff(want, r.got); diff != "" {
			t.Errorf("revoked key (-want +got):\n%s", diff)
		}
	}

	if diff := cmp.Diff([]apikeys.Key{third}, list(false)); diff != "" {
		t.Errorf("list without revoked keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]apikeys.Key{revokedFirst, revokedSecond, third}, list(true)); diff != "" {
		t.Errorf("list with revoked keys (-want +got):\n%s", diff)
	}

	// Revoking again changes nothing: the first revocation's time stays.
	again, err := s.Revoke(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revokedFirst, again); diff != "" {
		t.Errorf("revoking a revoked key changed it (-first +again):\n%s", diff)
	}

	for _, unknown := range []string{"nobody", "00000000-0000-0000-0000-000000000000", "", "fir"} {
		_, err := s.Revoke(ctx, unknown)
		if herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Errorf("revoke %q: %v, want %s", unknown, err, herald.ENOTFOUND)
		}
	}
	if diff := cmp.Diff([]apikeys.Key{third}, list(false)); diff != "" {
		t.Errorf("list after revoking unknown keys (-want +got):\n%s", diff)
	}
}

// Keys are revoked by name or id, so a name may not look like an id: revoking by a string must
// never match two keys.
func TestRevokeRevokesOneKey(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	a, _ := mustCreate(t, s, "a", herald.ScopeSend)
	if _, _, err := s.Create(ctx, a.ID, []herald.Scope{herald.ScopeSend}, "t"); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("create a key named like an id: %v, want %s", err, herald.EINVALID)
	}
	mustCreate(t, s, "b", herald.ScopeSend)
	if _, err := s.Revoke(ctx, strings.ToUpper(a.ID)); err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Name != "b" {
		t.Errorf("revoking %q left %v active, want b alone", a.ID, keys)
	}
}

func TestAuthenticate(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	sender, senderToken := mustCreate(t, s, "sender", herald.ScopeSend)
	ops, opsToken := mustCreate(t, s, "ops", herald.ScopeRead, herald.ScopeOperate)
	_, revokedToken := mustCreate(t, s, "gone", herald.Scopes...)
	if _, err := s.Revoke(ctx, "gone"); err != nil {
		t.Fatal(err)
	}

	valid := []struct {
		token string
		want  herald.Principal
	}{
		{senderToken, herald.Principal{KeyID: sender.ID, Name: "sender", Scopes: []herald.Scope{herald.ScopeSend}}},
		{opsToken, herald.Principal{KeyID: ops.ID, Name: "ops", Scopes: []herald.Scope{herald.ScopeRead, herald.ScopeOperate}}},
	}
	for _, tt := range valid {
		// Twice: from the database, then from the cache.
		for i := range 2 {
			p, err := s.Authenticate(ctx, tt.token)
			if err != nil {
				t.Fatalf("authenticate %s (%d): %v", tt.want.Name, i, err)
			}
			if diff := cmp.Diff(tt.want, p); diff != "" {
				t.Errorf("principal of %s, check %d (-want +got):\n%s", tt.want.Name, i, diff)
			}
		}
	}

	invalid := map[string]string{
		"empty":               "",
		"prefix only":         apikeys.TokenPrefix,
		"unknown":             apikeys.TokenPrefix + strings.Repeat("A", 43),
		"no prefix":           strings.TrimPrefix(senderToken, apikeys.TokenPrefix),
		"truncated":           senderToken[:len(senderToken)-1],
		"one character more":  senderToken + "x",
		"other case":          strings.ToUpper(senderToken),
		"with a space":        senderToken + " ",
		"garbage":             "\x00\xff not a key",
		"very long":           senderToken + strings.Repeat("A", 10_000),
		"revoked before used": revokedToken,
	}
	for name, token := range invalid {
		t.Run(name, func(t *testing.T) {
			for i := range 2 {
				p, err := s.Authenticate(ctx, token)
				if herald.ErrorCode(err) != herald.EUNAUTHORIZED {
					t.Fatalf("check %d: %v, want %s", i, err, herald.EUNAUTHORIZED)
				}
				if diff := cmp.Diff(herald.Principal{}, p); diff != "" {
					t.Errorf("check %d: a principal came with the refusal:\n%s", i, diff)
				}
			}
		})
	}
}

func TestRevocationBitesWithinCacheFor(t *testing.T) {
	s, db := newStore(t)
	ctx := t.Context()
	_, token := mustCreate(t, s, "soon-gone", herald.ScopeSend)
	checked := time.Now()
	if _, err := s.Authenticate(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, "soon-gone"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()

	// Another process (a store with an empty cache) refuses it at once.
	if _, err := apikeys.NewStore(db.Pool).Authenticate(ctx, token); herald.ErrorCode(err) != herald.EUNAUTHORIZED {
		t.Errorf("a new store authenticates a revoked key: %v", err)
	}

	// This one trusted it a moment ago and may go on doing so, but only until CacheFor has passed
	// since it last asked the database.
	if _, err := s.Authenticate(ctx, token); err != nil && time.Since(checked) < apikeys.CacheFor/2 {
		t.Errorf("the cache did not answer for a key checked %s ago: %v", time.Since(checked), err)
	}
	deadline := checked.Add(apikeys.CacheFor + 2*time.Second)
	for {
		_, err := s.Authenticate(ctx, token)
		if herald.ErrorCode(err) == herald.EUNAUTHORIZED {
			break
		}
		if err != nil {
			t.Fatalf("authenticate: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked key still authenticates %s after it was revoked (CacheFor is %s)", time.Since(revoked), apikeys.CacheFor)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And it stays refused: the refusal is not a blip.
	for i := range 3 {
		if _, err := s.Authenticate(ctx, token); herald.ErrorCode(err) != herald.EUNAUTHORIZED {
			t.Fatalf("check %d after the revocation bit: %v, want %s", i, err, herald.EUNAUTHORIZED)
		}
	}
}

// A token that cannot be one Create made is refused without a query; a well-formed unknown one
// costs one query, and is then remembered as refused for a while.
func TestMalformedTokensCostNoQuery(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	queries := heraldtest.CountQueries(db.Pool)
	s := apikeys.NewStore(queries)
	_, token := mustCreate(t, s, "real", herald.ScopeRead)
	secret := strings.TrimPrefix(token, apikeys.TokenPrefix)

	before := queries.Count()
	for name, bad := range map[string]string{
		"empty":                     "",
		"prefix only":               apikeys.TokenPrefix,
		"no prefix":                 secret,
		"other prefix":              "hrlx_" + secret,
		"one character less":        token[:len(token)-1],
		"one character more":        token + "A",
		"a character off base64url": apikeys.TokenPrefix + "+" + secret[1:],
		"padding":                   token[:len(token)-1] + "=",
		"very long":                 token + strings.Repeat("A", 10_000),
		"not a key":                 "let-me-in",
	} {
		if _, err := s.Authenticate(t.Context(), bad); herald.ErrorCode(err) != herald.EUNAUTHORIZED {
			t.Errorf("%s: %v, want %s", name, err, herald.EUNAUTHORIZED)
		}
	}
	if n := queries.Count() - before; n != 0 {
		t.Errorf("malformed tokens cost %d queries, want 0", n)
	}

	unknown := apikeys.TokenPrefix + strings.Repeat("B", len(secret))
	for range 3 {
		if _, err := s.Authenticate(t.Context(), unknown); herald.ErrorCode(err) != herald.EUNAUTHORIZED {
			t.Fatalf("unknown token: %v, want %s", err, herald.EUNAUTHORIZED)
		}
	}
	if n := queries.Count() - before; n != 1 {
		t.Errorf("a well-formed unknown token checked 3 times cost %d queries, want 1", n)
	}
	if _, err := s.Authenticate(t.Context(), token); err != nil {
		t.Errorf("the real token: %v", err)
	}
}

// Authenticate is called from every request at once: the race detector watches the cache.
func TestAuthenticateConcurrently(t *testing.T) {
	s, _ := newStore(t)
	k, token := mustCreate(t, s, "busy", herald.ScopeRead)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			tok := token
			if i%2 == 1 {
				tok = apikeys.TokenPrefix + strings.Repeat("z", 40+i)
			}
			p, err := s.Authenticate(context.Background(), tok)
			switch {
			case i%2 == 0 && (err != nil || p.KeyID != k.ID):
				errs <- err
			case i%2 == 1 && herald.ErrorCode(err) != herald.EUNAUTHORIZED:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent authenticate: %v", err)
	}
}

// A failing database is an error of its own, not a refusal (which would be cached and answered
// as 401 to a valid key).
func TestAuthenticateDatabaseDown(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := apikeys.NewStore(conn)
	_, err = s.Authenticate(ctx, apikeys.TokenPrefix+strings.Repeat("q", 43))
	if err == nil || herald.ErrorCode(err) == herald.EUNAUTHORIZED {
		t.Errorf("authenticate with the database out of reach: %v, want an error other than %s", err, herald.EUNAUTHORIZED)
	}
	_ = conn.Close(context.Background())
}
