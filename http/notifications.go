package http

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/wire"
)

// send serves POST /api/v1/notifications/send: accept the notification (or replay the answer
// to an idempotency key seen before) and answer 202 with where to follow it.
func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	req, err := DecodeSend(r, w, s.cfg.SendBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req.IdempotencyKey = r.Header.Get(IdempotencyHeader)
	a, err := s.acceptor.Accept(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.traceAccepted(r.Context(), a.ID)
	w.Header().Set("Location", wire.LinksFor(a.ID).Status)
	if a.Replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	writeJSON(w, http.StatusAccepted, wire.NewNotification(a.Notification))
}

// status serves GET /api/v1/notifications/{id}/status from the status read model, or, with
// as_of, from the log.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query(); q.Has("as_of") {
		s.statusAsOf(w, r, q.Get("as_of"))
		return
	}
	n, err := s.reader.Status(r.Context(), pathID(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewNotification(n))
}

// statusAsOf answers what the status was at the instant asOf names, derived from the log.
func (s *Server) statusAsOf(w http.ResponseWriter, r *http.Request, asOf string) {
	at, err := parseInstant(asOf)
	if err != nil {
		s.writeError(w, r, herald.Invalid("the status query is invalid", map[string]string{
			"as_of": "must be an RFC 3339 time such as 2026-11-28T10:00:00Z",
		}))
		return
	}
	n, err := s.reader.StatusAsOf(r.Context(), pathID(r), at)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewNotificationAsOf(n, at))
}

// parseInstant reads an RFC 3339 time from a query string.
func parseInstant(v string) (time.Time, error) {
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil && strings.Contains(v, " ") {
		// An unencoded "+01:00" offset arrives as " 01:00": a query string decodes "+" as a space.
		at, err = time.Parse(time.RFC3339Nano, strings.Replace(v, " ", "+", 1))
	}
	return at, err
}

// history serves GET /api/v1/notifications/{id}/history from the history read model.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	id := pathID(r)
	entries, err := s.reader.History(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewHistory(id, entries))
}

// events serves GET /api/v1/notifications/{id}/events: the notification's stream as the log
// holds it, for auditors.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id := pathID(r)
	recs, err := s.reader.Events(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewStream(id, recs))
}

// pathID returns the notification id in the path, in the canonical lower case of UUIDs.
func pathID(r *http.Request) string { return strings.ToLower(chi.URLParam(r, "id")) }

// DefaultListLimit is a page's size when the client names none.
const DefaultListLimit = 50

// list serves GET /api/v1/notifications: a page of notifications, newest first, filtered by
// status, type, recipient and when they were accepted; every bad parameter is reported at once.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := herald.ListFilter{Limit: DefaultListLimit, Cursor: q.Get("cursor")}
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "status", "type", "recipient", "created_from", "created_before", "limit", "cursor":
		default:
			fields[name] = "is not a known parameter: use status, type, recipient, created_from, created_before, limit and cursor"
		}
	}
	f.Recipient = q.Get("recipient")
	for name, at := range map[string]*time.Time{"created_from": &f.CreatedFrom, "created_before": &f.CreatedBefore} {
		if v := q.Get(name); v != "" {
			t, err := parseInstant(v)
			if err != nil {
				fields[name] = "must be an RFC 3339 time such as 2026-11-28T10:00:00Z"
			}
			*at = t
		}
	}
	if v := q.Get("status"); v != "" {
		st, err := herald.ParseStatus(v)
		if err != nil {
			fields["status"] = herald.ErrorMessage(err)
		}
		f.Status = st
	}
	if v := q.Get("type"); v != "" {
		c, err := herald.ParseChannel(v)
		if err != nil {
			fields["type"] = herald.ErrorMessage(err)
		}
		f.Channel = c
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > projections.MaxListLimit {
			fields["limit"] = fmt.Sprintf("must be a whole number from 1 to %d", projections.MaxListLimit)
		}
		f.Limit = n
	}
	if len(fields) > 0 {
		s.writeError(w, r, herald.Invalid("the listing is invalid", fields))
		return
	}
	list, next, err := s.reader.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.NewNotificationList(list, next)
	if next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", next)
		out.Next = "/api/v1/notifications?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// healthz serves GET /healthz: the process is up.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, wire.NewHealth())
}

// readyTimeout bounds the readiness checks, so a hung dependency reads as not ready.
const readyTimeout = 2 * time.Second

// readyz serves GET /readyz: every check of the process, each bounded by readyTimeout, with what
// failed (secrets masked); 503 while any fails.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := make(map[string]string, len(s.checks))
	status, code := wire.Ready, http.StatusOK
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	for _, c := range s.checks {
		if err := c.Ready(ctx); err != nil {
			checks[c.Name] = s.cfg.Secrets.String(err.Error())
			status, code = wire.NotReady, http.StatusServiceUnavailable
			continue
		}
		checks[c.Name] = "ok"
	}
	writeJSON(w, code, wire.Readiness{Status: status, Checks: checks})
}
