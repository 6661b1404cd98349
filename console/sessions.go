package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Session is a signed-in browser: the API key it signed in with, and the token its forms carry.
type Session struct {
	Principal herald.Principal
	CSRF      string
	CreatedAt time.Time
}

// Sessions keeps the console's sessions in PostgreSQL (table console_sessions), so that every
// serve process behind a load balancer knows them. Only a SHA-256 of each token is stored.
type Sessions struct {
	db events.Querier
	// idle ends a session not used for that long; absolute ends any session that old.
	idle, absolute time.Duration
}

// NewSessions returns the sessions in db, ending after idle without use and absolute in all.
func NewSessions(db events.Querier, idle, absolute time.Duration) *Sessions {
	return &Sessions{db: db, idle: idle, absolute: absolute}
}

// touchEvery is how stale last_seen_at may grow before a request writes it again: a page load is
// then mostly one read, and the idle expiry is at most this much late.
const touchEvery = 30 * time.Second

// Open starts a session for p and returns its token, which is not stored and is the cookie.
func (s *Sessions) Open(ctx context.Context, p herald.Principal) (string, Session, error) {
	token, err := randomToken()
	if err != nil {
		return "", Session{}, fmt.Errorf("open session: %w", err)
	}
	csrf, err := randomToken()
	if err != nil {
		return "", Session{}, fmt.Errorf("open session: %w", err)
	}
	hash := sha256.Sum256([]byte(token))
	sess := Session{Principal: p, CSRF: csrf}
	if err := s.db.QueryRow(ctx, `INSERT INTO console_sessions (token_hash, api_key_id, csrf_token)
		VALUES ($1, $2, $3) RETURNING created_at`, hash[:], p.KeyID, csrf).Scan(&sess.CreatedAt); err != nil {
		return "", Session{}, fmt.Errorf("open session: %w", err)
	}
	return token, sess, nil
}

// errNoSession is any reason a token does not name a live session: unknown, expired, or its key
// revoked or stripped of the operate scope.
var errNoSession = herald.Errorf(herald.EUNAUTHORIZED, "your session has ended: sign in again")

// Find returns the live session of token, and marks it used. EUNAUTHORIZED when there is none.
// The key is read with the session, so that a revoked key, or one without the operate scope any
// more, ends its sessions at once.
func (s *Sessions) Find(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, errNoSession
	}
	hash := sha256.Sum256([]byte(token))
	var (
		sess   Session
		scopes []string
		stale  bool
	)
	err := s.db.QueryRow(ctx, `SELECT k.id::text, k.name, k.scopes, c.csrf_token, c.created_at,
			c.last_seen_at < now() - $4 * interval '1 second'
		FROM console_sessions c JOIN api_keys k ON k.id = c.api_key_id
		WHERE c.token_hash = $1 AND k.revoked_at IS NULL
			AND c.last_seen_at > now() - $2 * interval '1 second'
			AND c.created_at > now() - $3 * interval '1 second'`,
		hash[:], s.idle.Seconds(), s.absolute.Seconds(), touchEvery.Seconds()).
		Scan(&sess.Principal.KeyID, &sess.Principal.Name, &scopes, &sess.CSRF, &sess.CreatedAt, &stale)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, errNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("find session: %w", err)
	}
	for _, sc := range scopes {
		sess.Principal.Scopes = append(sess.Principal.Scopes, herald.Scope(sc))
	}
	if !sess.Principal.Can(herald.ScopeOperate) {
		return Session{}, errNoSession
	}
	if stale {
		if _, err := s.db.Exec(ctx, `UPDATE console_sessions SET last_seen_at = now() WHERE token_hash = $1`, hash[:]); err != nil {
			return Session{}, fmt.Errorf("touch session: %w", err)
		}
	}
	return sess, nil
}

// Close ends the session of token; closing an unknown one does nothing.
func (s *Sessions) Close(ctx context.Context, token string) error {
	hash := sha256.Sum256([]byte(token))
	if _, err := s.db.Exec(ctx, `DELETE FROM console_sessions WHERE token_hash = $1`, hash[:]); err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	return nil
}

// Purge deletes the sessions that have expired, and returns how many.
func (s *Sessions) Purge(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM console_sessions
		WHERE last_seen_at <= now() - $1 * interval '1 second' OR created_at <= now() - $2 * interval '1 second'`,
		s.idle.Seconds(), s.absolute.Seconds())
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// randomToken is 32 random bytes in unpadded base64url.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
