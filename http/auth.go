package http

import (
	"context"
	"math"

	"net/http"
	"strconv"
	"strings"
	"time"

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

// RateLimit bounds the requests one API key may make: Requests per Window, in each process.
type RateLimit struct {
	Requests int
	Window   time.Duration
}

type auth struct {
	authenticator Authenticator
	limiter       *httprate.RateLimiter
}

// WithAuth makes every API endpoint require an API key (health, readiness and metrics stay open),
// with the scope each needs, and limits each key to limit. A server without it lets everyone in:
// only tests build one.
func (s *Server) WithAuth(a Authenticator, limit RateLimit) *Server {
	s.auth = &auth{authenticator: a}
	if limit.Requests > 0 {
		s.auth.limiter = httprate.NewRateLimiter(limit.Requests, limit.Window,
			httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
				// httprate rounds the window down to whole seconds; a client told 0 would retry at once.
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(limit.Window.Seconds()))))
				s.writeError(w, r, herald.Errorf(herald.ERATELIMITED,
					"this API key sent more than %d requests in %s; retry after the time in Retry-After", limit.Requests, limit.Window))
			}))
	}
	return s
}

// authenticate finds the API key a request presents and puts its principal in the context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.auth == nil {
			next.ServeHTTP(w, r)
			return
		}
		token, err := bearer(r)
		if err == nil {
			var p herald.Principal
			if p, err = s.auth.authenticator.Authenticate(r.Context(), token); err == nil {
				if s.auth.limiter != nil && s.auth.limiter.RespondOnLimit(w, r, p.KeyID) {
					return
				}
				next.ServeHTTP(w, r.WithContext(herald.WithPrincipal(r.Context(), p)))
				return
			}
		}
		if herald.ErrorCode(err) == herald.EUNAUTHORIZED {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		}
		s.writeError(w, r, err)
	})
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
