// Package apikeys owns the API keys clients authenticate with: creating them (the token is shown
// once), listing, revoking, and checking a presented token. Only a SHA-256 of each token is
// stored.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// TokenPrefix starts every token, so that a leaked one is easy to recognise and scan for.
const TokenPrefix = "hrld_"

// Key is an API key as the store keeps it: everything but the token.
type Key struct {
	ID        string
	Name      string
	Prefix    string // the token's first characters, to tell keys apart
	Scopes    []herald.Scope
	CreatedAt time.Time
	CreatedBy string
	RevokedAt *time.Time
}

// Store keeps API keys in PostgreSQL (table api_keys).
type Store struct {
	db events.Querier
	// cacheFor is how long a checked token is trusted without asking the database again: the
	// longest a revocation takes to bite.
	cacheFor time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached
	// refused remembers tokens that failed, apart, so that a flood of made-up tokens cannot push
	// the good ones out of the cache.
	refused map[[32]byte]time.Time
}

type cached struct {
	p       herald.Principal
	expires time.Time
}

// CacheFor is how long a process trusts a token it checked; a revoked key stops working within it.
const CacheFor = 5 * time.Second

// NewStore returns the store in db.
func NewStore(db events.Querier) *Store {
	return &Store{db: db, cacheFor: CacheFor, now: time.Now, cache: map[[32]byte]cached{}, refused: map[[32]byte]time.Time{}}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Create makes a key named name with scopes and returns it with its token, which is not stored
// and cannot be shown again. EINVALID for a bad name or no scope, ECONFLICT for a name in use.
func (s *Store) Create(ctx context.Context, name string, scopes []herald.Scope, createdBy string) (Key, string, error) {
	if !validName.MatchString(name) {
		return Key{}, "", herald.Invalid("the key is invalid", map[string]string{
			"name": "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
		})
	}
	if _, err := uuid.Parse(name); err == nil {
		// Keys are revoked by name or id: a name that reads as an id would be ambiguous.
		return Key{}, "", herald.Invalid("the key is invalid", map[string]string{"name": "must not look like a key id (a UUID)"})
	}
	if len(scopes) == 0 {
		return Key{}, "", herald.Invalid("the key is invalid", map[string]string{"scopes": "name at least one of send, read, operate, admin"})
	}
	for _, sc := range scopes {
		if !slices.Contains(herald.Scopes, sc) {
			return Key{}, "", herald.Invalid("the key is invalid", map[string]string{"scopes": fmt.Sprintf("%q is not a scope: want send, read, operate or admin", sc)})
		}
	}
	secret := make([]byte, 32) // see secretChars
	if _, err := rand.Read(secret); err != nil {
		return Key{}, "", fmt.Errorf("create key %s: %w", name, err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	hash := sha256.Sum256([]byte(token))
	k := Key{ID: uuid.NewString(), Name: name, Prefix: token[:len(TokenPrefix)+6], Scopes: scopes, CreatedBy: createdBy}
	err := s.db.QueryRow(ctx, `INSERT INTO api_keys (id, name, token_hash, token_prefix, scopes, created_by)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		k.ID, k.Name, hash[:], k.Prefix, scopeStrings(scopes), createdBy).Scan(&k.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return Key{}, "", herald.Errorf(herald.ECONFLICT, "an API key named %q exists already", name)
	}
	if err != nil {
		return Key{}, "", fmt.Errorf("create key %s: %w", name, err)
	}
	return k, token, nil
}

// List returns the keys, oldest first; revoked ones only with revoked.
func (s *Store) List(ctx context.Context, revoked bool) ([]Key, error) {
	rows, err := s.db.Query(ctx, `SELECT id::text, name, token_prefix, scopes, created_at, created_by, revoked_at
		FROM api_keys WHERE $1 OR revoked_at IS NULL ORDER BY created_at, name`, revoked)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) { return scanKey(row) })
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

func scanKey(row pgx.Row) (Key, error) {
	var (
		k      Key
		scopes []string
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &scopes, &k.CreatedAt, &k.CreatedBy, &k.RevokedAt); err != nil {
		return Key{}, err
	}
	for _, sc := range scopes {
		k.Scopes = append(k.Scopes, herald.Scope(sc))
	}
	return k, nil
}

// Revoke revokes the key with that name or id. ENOTFOUND if there is none; revoking a revoked
// key changes nothing.
func (s *Store) Revoke(ctx context.Context, nameOrID string) (Key, error) {
	where := "name = $1"
	if _, err := uuid.Parse(nameOrID); err == nil {
		where = "id = $1::uuid"
	}
	k, err := scanKey(s.db.QueryRow(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE `+where+`
		RETURNING id::text, name, token_prefix, scopes, created_at, created_by, revoked_at`, nameOrID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, herald.Errorf(herald.ENOTFOUND, "no API key named %q", nameOrID)
	}
	if err != nil {
		return Key{}, fmt.Errorf("revoke key %s: %w", nameOrID, err)
	}
	return k, nil
}

// Authenticate returns the principal token stands for. EUNAUTHORIZED for an unknown or revoked
// token. Answers are cached for CacheFor. A token that Create could not have made is refused
// without asking the database.
func (s *Store) Authenticate(ctx context.Context, token string) (herald.Principal, error) {
	unauthorized := herald.Errorf(herald.EUNAUTHORIZED, "the API key is not valid: it is unknown or revoked")
	if !wellFormed(token) {
		return herald.Principal{}, unauthorized
	}
	hash := sha256.Sum256([]byte(token))
	now := s.now()
	s.mu.Lock()
	c, hit := s.cache[hash]
	until, refused := s.refused[hash]
	s.mu.Unlock()
	if hit && now.Before(c.expires) {
		return c.p, nil
	}
	if refused && now.Before(until) {
		return herald.Principal{}, unauthorized
	}

	var (
		p      herald.Principal
		scopes []string
	)
	err := s.db.QueryRow(ctx, `SELECT id::text, name, scopes FROM api_keys WHERE token_hash = $1 AND revoked_at IS NULL`,
		hash[:]).Scan(&p.KeyID, &p.Name, &scopes)
	ok := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return herald.Principal{}, fmt.Errorf("check API key: %w", err)
	}
	for _, sc := range scopes {
		p.Scopes = append(p.Scopes, herald.Scope(sc))
	}
	s.mu.Lock()
	if ok {
		if len(s.cache) > 10_000 {
			clear(s.cache)
		}
		s.cache[hash] = cached{p: p, expires: now.Add(s.cacheFor)}
	} else {
		if len(s.refused) > 10_000 {
			// Bounded: a flood of made-up tokens must not grow it without end.
			clear(s.refused)
		}
		s.refused[hash] = now.Add(s.cacheFor)
	}
	s.mu.Unlock()
	if !ok {
		return herald.Principal{}, unauthorized
	}
	return p, nil
}

// secretChars is the length of a token's secret: 32 random bytes in unpadded base64url.
var secretChars = base64.RawURLEncoding.EncodedLen(32)

// wellFormed reports whether token has the shape of the tokens Create makes: TokenPrefix and
// secretChars base64url characters.
func wellFormed(token string) bool {
	secret, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok || len(secret) != secretChars {
		return false
	}
	for i := 0; i < len(secret); i++ {
		switch c := secret[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func scopeStrings(scopes []herald.Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}
