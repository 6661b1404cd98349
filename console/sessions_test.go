package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/console"
	"github.com/herald-notify/herald/heraldtest"
)

// TestSessions checks, on a real database, that a session lives while its key does and it is
// used, and ends at the idle and the absolute expiry, with its key's revocation or its loss of
// the operate scope, and at sign-out; and that only the token's hash is stored.
func TestSessions(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	keys := apikeys.NewStore(db.Pool)
	sessions := console.NewSessions(db.Pool, 30*time.Minute, 12*time.Hour)

	open := func(t *testing.T, name string) (string, herald.Principal) {
		t.Helper()
		_, token, err := keys.Create(ctx, name, []herald.Scope{herald.ScopeOperate}, "test")
		if err != nil {
			t.Fatal(err)
		}
		p, err := keys.Authenticate(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		session, sess, err := sessions.Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if sess.CSRF == "" || sess.CSRF == session {
			t.Fatalf("session opened with CSRF token %q", sess.CSRF)
		}
		return session, p
	}
	live := func(t *testing.T, token string) bool {
		t.Helper()
		_, err := sessions.Find(ctx, token)
		if err != nil && herald.ErrorCode(err) != herald.EUNAUTHORIZED {
			t.Fatal(err)
		}
		return err == nil
	}
	age := func(t *testing.T, token, column string, by time.Duration) {
		t.Helper()
		hash := sha256.Sum256([]byte(token))
		if _, err := db.Pool.Exec(ctx, `UPDATE console_sessions SET `+column+` = `+column+` - $2 * interval '1 second'
			WHERE token_hash = $1`, hash[:], by.Seconds()); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("lives while used, and stores only the hash", func(t *testing.T) {
		token, p := open(t, "used")
		s, err := sessions.Find(ctx, token)
		if err != nil || s.Principal.Name != p.Name || !s.Principal.Can(herald.ScopeOperate) {
			t.Fatalf("Find = %+v, %v; want the session of %s", s, err, p.Name)
		}
		// The row of this key's session holds the token's SHA-256 as its key, not the token.
		var stored []byte
		if err := db.Pool.QueryRow(ctx, `SELECT token_hash FROM console_sessions WHERE api_key_id = $1`, p.KeyID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if hash := sha256.Sum256([]byte(token)); !bytes.Equal(stored, hash[:]) || bytes.Equal(stored, []byte(token)) {
			t.Errorf("the session row holds %x, want the SHA-256 of the token, %x", stored, hash)
		}
		// Used 20 minutes ago, then now: the idle clock starts again.
		age(t, token, "last_seen_at", 20*time.Minute)
		if !live(t, token) {
			t.Fatal("a session used 20 minutes ago ended; the idle expiry is 30")
		}
		age(t, token, "last_seen_at", 20*time.Minute)
		if !live(t, token) {
			t.Error("a session used again ended 20 minutes later: its use did not count")
		}
	})
	t.Run("idle expiry", func(t *testing.T) {
		token, _ := open(t, "idle")
		age(t, token, "last_seen_at", 31*time.Minute)
		if live(t, token) {
			t.Error("a session unused for 31 minutes is live; the idle expiry is 30")
		}
	})
	t.Run("absolute expiry", func(t *testing.T) {
		token, _ := open(t, "old")
		age(t, token, "created_at", 12*time.Hour+time.Minute)
		if live(t, token) {
			t.Error("a session opened 12h01m ago is live; the absolute expiry is 12h")
		}
		if n, err := sessions.Purge(ctx); err != nil || n < 1 {
			t.Errorf("Purge = %d, %v; want the expired sessions gone", n, err)
		}
	})
	t.Run("ends with its key", func(t *testing.T) {
		token, p := open(t, "revoked")
		if _, err := keys.Revoke(ctx, p.Name); err != nil {
			t.Fatal(err)
		}
		if live(t, token) {
			t.Error("the session of a revoked key is live")
		}
	})
	t.Run("ends when its key loses operate", func(t *testing.T) {
		token, p := open(t, "demoted")
		if _, err := db.Pool.Exec(ctx, `UPDATE api_keys SET scopes = '{read}' WHERE id = $1`, p.KeyID); err != nil {
			t.Fatal(err)
		}
		if live(t, token) {
			t.Error("the session of a key without operate is live")
		}
	})
	t.Run("sign-out", func(t *testing.T) {
		token, _ := open(t, "leaving")
		if err := sessions.Close(ctx, token); err != nil {
			t.Fatal(err)
		}
		if live(t, token) {
			t.Error("a closed session is live")
		}
		if live(t, "") || live(t, "made-up") {
			t.Error("an empty or made-up token is a session")
		}
	})
}
