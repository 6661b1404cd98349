package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/projections"
)

// notificationJSON is a notification as the API shows it.
type notificationJSON struct {
	ID                string    `json:"id"`
	Type              string    `json:"type"`
	Recipient         string    `json:"recipient"`
	Status            string    `json:"status"`
	Attempts          int       `json:"attempts"`
	LastError         string    `json:"last_error,omitempty"`
	Provider          string    `json:"provider,omitempty"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	Version           int64     `json:"version"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	Links             links     `json:"links"`
}

type links struct {
	Status  string `json:"status"`
	History string `json:"history"`
	Events  string `json:"events"`
}

func linksFor(id string) links {
	base := "/api/v1/notifications/" + id
	return links{Status: base + "/status", History: base + "/history", Events: base + "/events"}
}

func toJSON(n herald.Notification) notificationJSON {
	return notificationJSON{
		ID:                n.ID,
		Type:              string(n.Channel),
		Recipient:         n.Recipient,
		Status:            string(n.Status),
		Attempts:          n.Attempts,
		LastError:         n.LastError,
		Provider:          n.Provider,
		ProviderMessageID: n.ProviderMessageID,
		Version:           n.Version,
		CreatedAt:         n.CreatedAt.UTC(),
		UpdatedAt:         n.UpdatedAt.UTC(),
		Links:             linksFor(n.ID),
	}
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	req, err := DecodeSend(r, w, s.cfg.MaxBodyBytes)
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
	w.Header().Set("Location", linksFor(a.ID).Status)
	if a.Replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	writeJSON(w, http.StatusAccepted, toJSON(a.Notification))
}

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
	writeJSON(w, http.StatusOK, toJSON(n))
}

// statusAsOf answers what the status was at the instant asOf names, derived from the log.
func (s *Server) statusAsOf(w http.ResponseWriter, r *http.Request, asOf string) {
	at, err := time.Parse(time.RFC3339Nano, asOf)
	if err != nil && strings.Contains(asOf, " ") {
		// An unencoded "+01:00" offset arrives as " 01:00": a query string decodes "+" as a space.
		at, err = time.Parse(time.RFC3339Nano, strings.Replace(asOf, " ", "+", 1))
	}
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
	writeJSON(w, http.StatusOK, struct {
		notificationJSON
		AsOf time.Time `json:"as_of"`
	}{toJSON(n), at.UTC()})
}

type historyEntryJSON struct {
	Version           int64     `json:"version"`
	Position          int64     `json:"position"`
	Event             string    `json:"event"`
	Status            string    `json:"status"`
	Attempt           int       `json:"attempt,omitempty"`
	Provider          string    `json:"provider,omitempty"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	Error             string    `json:"error,omitempty"`
	Reason            string    `json:"reason,omitempty"`
	Actor             string    `json:"actor,omitempty"`
	At                time.Time `json:"at"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	id := pathID(r)
	entries, err := s.reader.History(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		ID      string             `json:"id"`
		History []historyEntryJSON `json:"history"`
		Links   links              `json:"links"`
	}{ID: id, History: make([]historyEntryJSON, 0, len(entries)), Links: linksFor(id)}
	for _, h := range entries {
		out.History = append(out.History, historyEntryJSON{
			Version: h.Version, Position: h.Position, Event: h.Event, Status: string(h.Status),
			Attempt: h.Attempt, Provider: h.Provider, ProviderMessageID: h.ProviderMessageID,
			Error: h.Error, Reason: h.Reason, Actor: h.Actor, At: h.At.UTC(),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

type eventJSON struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Version  int64           `json:"version"`
	Position int64           `json:"position"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata any             `json:"metadata"`
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id := pathID(r)
	recs, err := s.reader.Events(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		ID     string      `json:"id"`
		Events []eventJSON `json:"events"`
		Links  links       `json:"links"`
	}{ID: id, Events: make([]eventJSON, 0, len(recs)), Links: linksFor(id)}
	for _, rec := range recs {
		out.Events = append(out.Events, eventJSON{
			ID: rec.ID, Type: rec.Type, Version: rec.Version, Position: rec.Position,
			Time: rec.Time.UTC(), Data: rec.Data, Metadata: rec.Metadata,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// pathID returns the notification id in the path, in the canonical lower case of UUIDs.
func pathID(r *http.Request) string { return strings.ToLower(chi.URLParam(r, "id")) }

// DefaultListLimit is a page's size when the client names none.
const DefaultListLimit = 50

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := herald.ListFilter{Limit: DefaultListLimit, Cursor: q.Get("cursor")}
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "status", "type", "limit", "cursor":
		default:
			fields[name] = "is not a known parameter: use status, type, limit and cursor"
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
	out := struct {
		Notifications []notificationJSON `json:"notifications"`
		NextCursor    string             `json:"next_cursor,omitempty"`
		Next          string             `json:"next,omitempty"`
	}{Notifications: make([]notificationJSON, 0, len(list)), NextCursor: next}
	for _, n := range list {
		out.Notifications = append(out.Notifications, toJSON(n))
	}
	if next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", next)
		out.Next = "/api/v1/notifications?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds the readiness checks, so a hung dependency reads as not ready.
const readyTimeout = 2 * time.Second

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := make(map[string]string, len(s.checks))
	status, code := "ready", http.StatusOK
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	for _, c := range s.checks {
		if err := c.Ready(ctx); err != nil {
			checks[c.Name] = s.cfg.Secrets.String(err.Error())
			status, code = "not_ready", http.StatusServiceUnavailable
			continue
		}
		checks[c.Name] = "ok"
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}
