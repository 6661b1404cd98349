package http

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// Canceller calls off notifications that have not gone out (see handlers.Canceller).
type Canceller interface {
	// Cancel returns the notification cancelled: ENOTFOUND for an unknown id or one by may not
	// cancel, EINVALID for a bad reason, ECONFLICT naming the status (field "status") when it
	// is past cancelling.
	Cancel(ctx context.Context, id string, by handlers.Canceler, reason string) (herald.Notification, error)
	// CancelByKey is Cancel of the notification by sent with an idempotency key: ENOTFOUND for
	// a key it does not know.
	CancelByKey(ctx context.Context, key string, by handlers.Canceler, reason string) (herald.Notification, error)
}

// WithCanceller adds the cancel endpoints to s's notifications, served by c.
func (s *Server) WithCanceller(c Canceller) *Server {
	s.canceller = c
	return s
}

// cancelRoutes mounts the cancel endpoints under /api/v1/notifications. A key with the send
// scope cancels what it sent; one with the operate scope cancels any notification.
func (s *Server) cancelRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.requireAny(herald.ScopeSend, herald.ScopeOperate))
		r.Post("/{id}/cancel", s.cancel)
		r.Post("/cancel", s.cancelByKey)
	})
}

// cancel serves POST /api/v1/notifications/{id}/cancel, with an optional body {"reason": "..."}.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	body, err := decodeStringFields(r, w, s.cfg.MaxBodyBytes, "reason")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := s.canceller.Cancel(r.Context(), pathID(r), cancelerOf(r.Context()), body["reason"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewNotification(n))
}

// cancelByKey serves POST /api/v1/notifications/cancel, with a body {"idempotency_key": "...",
// "reason": "..."}: the notification the caller's API key sent with that idempotency key.
func (s *Server) cancelByKey(w http.ResponseWriter, r *http.Request) {
	body, err := decodeStringFields(r, w, s.cfg.MaxBodyBytes, "idempotency_key", "reason")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key, ok := body["idempotency_key"]
	if !ok || key == "" {
		s.writeError(w, r, herald.Invalid("the cancel is invalid", map[string]string{
			"idempotency_key": "is required: the Idempotency-Key the notification was sent with"}))
		return
	}
	n, err := s.canceller.CancelByKey(r.Context(), key, cancelerOf(r.Context()), body["reason"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewNotification(n))
}

// cancelerOf is who asks to cancel: the API key ctx carries, which may cancel any notification
// when it has the operate scope. A server without authentication trusts every caller alike.
func cancelerOf(ctx context.Context) handlers.Canceler {
	if p, ok := herald.PrincipalFrom(ctx); ok {
		return handlers.Canceler{Actor: p.Actor(), KeyID: p.KeyID, Any: p.Can(herald.ScopeOperate)}
	}
	return handlers.Canceler{Actor: defaultOperatorActor, Any: true}
}

// requireAny refuses a request whose API key has none of scopes: 403.
func (s *Server) requireAny(scopes ...herald.Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.auth != nil {
				p, _ := herald.PrincipalFrom(r.Context())
				allowed := false
				for _, sc := range scopes {
					allowed = allowed || p.Can(sc)
				}
				if !allowed {
					s.writeError(w, r, herald.Errorf(herald.EFORBIDDEN, "API key %q lacks the %q or %q scope this needs", p.Name, scopes[0], scopes[len(scopes)-1]))
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
