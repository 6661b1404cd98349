package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/wire"
)

// Error codes only the edge produces.
const (
	codeMalformed        = "malformed_json"
	codeTooLarge         = herald.ETOOLARGE
	codeUnsupportedMedia = "unsupported_media_type"
	codeMethodNotAllowed = "method_not_allowed"
	codeRouteNotFound    = "route_not_found"
)

// statusOf maps every error code to its HTTP status: the one table of it.
var statusOf = map[string]int{
	herald.EINVALID:      http.StatusUnprocessableEntity,
	herald.ENOTFOUND:     http.StatusNotFound,
	herald.ECONFLICT:     http.StatusConflict,
	herald.EUNAVAILABLE:  http.StatusServiceUnavailable,
	herald.EINTERNAL:     http.StatusInternalServerError,
	codeMalformed:        http.StatusBadRequest,
	codeTooLarge:         http.StatusRequestEntityTooLarge,
	codeUnsupportedMedia: http.StatusUnsupportedMediaType,
	codeMethodNotAllowed: http.StatusMethodNotAllowed,
	codeRouteNotFound:    http.StatusNotFound,
	herald.EUNAUTHORIZED: http.StatusUnauthorized,
	herald.EFORBIDDEN:    http.StatusForbidden,
	herald.ERATELIMITED:  http.StatusTooManyRequests,
}

// writeError answers with err as JSON. Internal errors are logged here, once, and reach the
// client only as "internal error"; the others are the client's to read and are not logged.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := herald.ErrorCode(err)
	if code == herald.EINTERNAL && unavailable(err) {
		err = &herald.Error{Code: herald.EUNAVAILABLE, Message: "the database is unavailable; try again shortly", Err: err}
		code = herald.EUNAVAILABLE
	}
	status, ok := statusOf[code]
	if !ok {
		code, status = herald.EINTERNAL, http.StatusInternalServerError
	}
	if code == herald.EUNAVAILABLE && w.Header().Get("Retry-After") == "" {
		// Unavailable is worth retrying; say when, as every other 503 and 429 here does.
		w.Header().Set("Retry-After", unavailableRetryAfter)
	}
	if code == herald.EINTERNAL || code == herald.EUNAVAILABLE {
		s.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"error", err, "correlation_id", herald.CorrelationID(r.Context()))
	}
	writeJSON(w, status, wire.NewError(code, herald.ErrorMessage(err), herald.ErrorFields(err)))
}

// unavailableRetryAfter is the Retry-After of a 503 that does not set its own: a failover of
// PostgreSQL takes a second or two before the new primary accepts writes.
const unavailableRetryAfter = "2"

// unavailable reports whether err comes from a dependency that could not be reached in time,
// which a client may retry, rather than from a fault in Herald: a connection that could not be
// made or was lost, the server shutting down or refusing connections, a primary that became a
// standby, or a deadline that passed (waiting for a connection from the pool, among others).
// During a failover the requests caught by the switch fail in each of these ways.
func unavailable(err error) bool {
	var (
		connErr *pgconn.ConnectError
		netErr  net.Error
		pgErr   *pgconn.PgError
	)
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded), pgconn.SafeToRetry(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &pgErr):
		// Connection exceptions (08), operator intervention (57: the server is shutting down,
		// or an administrator terminated the connection), and a write refused because the
		// server is now a standby (25006 read_only_sql_transaction).
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57") || pgErr.Code == "25006"
	}
	return false
}

// writeJSON answers with status and v as JSON, without escaping <, > and & (recipients and
// message ids hold them).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
