package http

import (
	"cmp"
	"context"
	"math"

	"net/http"
	"strconv"
	"strings"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/herald-notify/herald"
)

// Headers of the API's contract.
const (
	// IdempotencyHeader makes a POST safe to retry: see handlers.SendRequest.IdempotencyKey.
	IdempotencyHeader = "Idempotency-Key"
	// ReplayedHeader is "true" on the answer to a request that repeated an idempotency key.
	ReplayedHeader = "Idempotent-Replayed"
	// APIKeyHeader carries an API key, as Authorization: Bearer <key> does.
	APIKeyHeader = "X-API-Key"
)

// Authenticator tells who a token stands for (see apikeys.Store).
type Authenticator interface {
	// Authenticate returns EUNAUTHORIZED for an unknown or revoked token.
	Authenticate(ctx context.Context, token string) (herald.Principal, error)
}

// KeyLimiter holds each API key to its rate (see ratelimit.Keys).
type KeyLimiter interface {
	// Allow takes one of the key's tokens and reports whether its request may pass now; it
	// never waits for one.
	Allow(ctx context.Context, keyID string) bool
}

// RateLimit bounds the requests one API key may make: Requests per Window, held by Keys (across
// every process that shares its buckets); and the requests without a valid API key one client
// address may make: PerAddress per Window, in each process.
type RateLimit struct {
	Requests int
	Window   time.Duration
	// Keys holds each key to Requests per Window; it is needed when Requests is above 0.
	Keys KeyLimiter
	// PerAddress bounds the requests with a missing, malformed, unknown or revoked API key from
	// one client address (see Config.TrustedProxies). Past it, the address is answered 429 before
	// any key it presents is looked up, valid or not, until its rate falls below the bound again:
	// a flood of made-up keys costs no database query. 0: no bound.
	PerAddress int
}

type auth struct {
	authenticator Authenticator
	limit         RateLimit
	refusals      *addressLimit
}

// WithAuth makes every API endpoint require an API key (health, readiness and metrics stay open),
// with the scope each needs, and limits each key and each refused client address to limit. A
// server without it lets everyone in: only tests build one.
func (s *Server) WithAuth(a Authenticator, limit RateLimit) *Server {
	if limit.Requests > 0 && limit.Keys == nil {
		panic("http: a rate limit of API keys without a limiter to hold it")
	}
	s.auth = &auth{authenticator: a, limit: limit}
	if limit.PerAddress > 0 {
		s.auth.refusals = newAddressLimit(limit.PerAddress, cmp.Or(limit.Window, time.Second))
	}
	return s
}

// keyLimited reports whether the API key p is over its rate, and then answers 429.
func (s *Server) keyLimited(w http.ResponseWriter, r *http.Request, p herald.Principal) bool {
	l := s.auth.limit
	if l.Requests <= 0 || l.Keys.Allow(r.Context(), p.KeyID) {
		return false
	}
	w.Header().Set("Retry-After", retryAfter(l.Window))
	s.writeError(w, r, herald.Errorf(herald.ERATELIMITED,
		"this API key sent more than %d requests in %s; retry after the time in Retry-After", l.Requests, l.Window))
	return true
}

// authenticate finds the API key a request presents and puts its principal in the context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.auth == nil {
			next.ServeHTTP(w, r)
			return
		}
		addr := clientAddress(r)
		if s.auth.refusals.exceeded(addr) {
			// Turned away before its key is read, let alone looked up.
			w.Header().Set("Retry-After", retryAfter(s.auth.refusals.window))
			s.writeError(w, r, herald.Errorf(herald.ERATELIMITED,
				"too many requests without a valid API key from this address; retry after the time in Retry-After"))
			return
		}
		token, err := bearer(r)
		if err == nil {
			var p herald.Principal
			if p, err = s.auth.authenticator.Authenticate(r.Context(), token); err == nil {
				if s.keyLimited(w, r, p) {
					return
				}
				next.ServeHTTP(w, r.WithContext(herald.WithPrincipal(r.Context(), p)))
				return
			}
		}
		if herald.ErrorCode(err) == herald.EUNAUTHORIZED {
			s.auth.refusals.count(w, r, addr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		}
		s.writeError(w, r, err)
	})
}

// retryAfter is a Retry-After in whole seconds, at least 1: a client told 0 would retry at once.
func retryAfter(window time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(window.Seconds()))))
}

// addressLimit counts the requests refused for want of a valid API key, per client address.
type addressLimit struct {
	limiter *httprate.RateLimiter
	limit   int
	window  time.Duration
}

func newAddressLimit(limit int, window time.Duration) *addressLimit {
	return &addressLimit{
		// Its own headers would describe this bound on every 401 and be mistaken for the key's.
		limiter: httprate.NewRateLimiter(limit, window, httprate.WithResponseHeaders(httprate.ResponseHeaders{})),
		limit:   limit,
		window:  window,
	}
}

// exceeded reports whether addr was refused limit times within the window.
func (l *addressLimit) exceeded(addr string) bool {
	if l == nil {
		return false
	}
	_, rate, err := l.limiter.Status(addr)
	return err == nil && rate >= float64(l.limit)
}

// count records a refusal of addr.
func (l *addressLimit) count(w http.ResponseWriter, r *http.Request, addr string) {
	if l != nil {
		l.limiter.OnLimit(w, r, addr)
	}
}

// clientAddress is the key a client's refusals are counted under: the address the clientIP
// middleware found (the TCP peer, or what trusted proxies forwarded), an IPv6 client's /64.
func clientAddress(r *http.Request) string {
	if ip := chimw.GetClientIP(r.Context()); ip != "" {
		return httprate.CanonicalizeIP(ip)
	}
	// Unreadable: such requests share one bucket, which errs on the side of refusing.
	return "unknown"
}

// bearer returns the token in Authorization: Bearer, or in X-API-Key.
func bearer(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return "", herald.Errorf(herald.EUNAUTHORIZED, "the Authorization header must be \"Bearer <API key>\"")
		}
		return strings.TrimSpace(token), nil
	}
	if token := r.Header.Get(APIKeyHeader); token != "" {
		return token, nil
	}
	return "", herald.Errorf(herald.EUNAUTHORIZED, "an API key is required: send Authorization: Bearer <API key>")
}

// require lets a request through only if its API key carries scope.
func (s *Server) require(scope herald.Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.auth != nil {
				p, ok := herald.PrincipalFrom(r.Context())
				if !ok || !p.Can(scope) {
					s.writeError(w, r, herald.Errorf(herald.EFORBIDDEN, "API key %q lacks the %q scope this needs", p.Name, scope))
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
