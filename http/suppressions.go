package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/suppressions"
	"github.com/herald-notify/herald/wire"
)

// Suppressions keeps the suppression list (see suppressions.Store).
type Suppressions interface {
	// Add returns the entry: EINVALID, naming the fields, for a bad channel, recipient, reason
	// or expiry.
	Add(ctx context.Context, a suppressions.Add, actor string) (suppressions.Suppression, error)
	// Remove returns the lifted entry: ENOTFOUND when no suppression holds, EINVALID without a
	// reason.
	Remove(ctx context.Context, channel herald.Channel, recipient, actor, reason string) (suppressions.Suppression, error)
	// Get and History return ENOTFOUND for a recipient never on the list, EINVALID for a bad
	// channel or recipient.
	Get(ctx context.Context, channel herald.Channel, recipient string) (suppressions.Suppression, error)
	History(ctx context.Context, channel herald.Channel, recipient string) ([]events.Recorded, error)
	// List returns EINVALID, naming the field, for a bad filter or cursor.
	List(ctx context.Context, f suppressions.Filter) ([]suppressions.Suppression, string, error)
}

var _ Suppressions = (*suppressions.Store)(nil)

// WithSuppressions adds the suppression list's API to s, under the operate scope.
func (s *Server) WithSuppressions(list Suppressions) *Server {
	s.suppressions = list
	return s
}

// suppressionsPrefix is where the suppression list's API is mounted.
const suppressionsPrefix = "/api/v1/suppressions"

// suppressionRoutes mounts the suppression list's API.
func (s *Server) suppressionRoutes(r chi.Router) {
	r.Get("/", s.listSuppressions)
	r.Post("/", s.addSuppression)
	r.Get("/{channel}/{recipient}", s.showSuppression)
	r.Delete("/{channel}/{recipient}", s.removeSuppression)
	r.Get("/{channel}/{recipient}/events", s.suppressionEvents)
}

// suppressionEntry reads the channel and the recipient of the entry a request's path names. The
// recipient is read from the path as the client escaped it, and unescaped once: an SMS number's
// + arrives as %2B or as a literal +, and is a + either way, never a space.
func suppressionEntry(r *http.Request) (herald.Channel, string, error) {
	segments := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), suppressionsPrefix+"/"), "/")
	if len(segments) < 2 {
		return "", "", herald.Errorf(herald.ENOTFOUND, "no such endpoint: %s", r.URL.Path)
	}
	channel, err := url.PathUnescape(segments[0])
	if err != nil {
		return "", "", herald.Invalid("the channel is invalid", map[string]string{"channel": "is not a URL-escaped path segment"})
	}
	recipient, err := url.PathUnescape(segments[1])
	if err != nil {
		return "", "", herald.Invalid("the recipient is invalid", map[string]string{"recipient": "is not a URL-escaped path segment: escape it, + as %2B"})
	}
	return herald.Channel(channel), recipient, nil
}

// listSuppressions serves GET /api/v1/suppressions: a page of the entries that hold (every
// entry with ?all=true), by channel and recipient, narrowed by ?channel= and ?cause=; every bad
// parameter is reported at once.
func (s *Server) listSuppressions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := suppressions.Filter{Cursor: q.Get("cursor")}
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "channel", "cause", "all", "limit", "cursor":
		default:
			fields[name] = "is not a known parameter: use channel, cause, all, limit and cursor"
		}
	}
	if v := q.Get("channel"); v != "" {
		c, err := herald.ParseChannel(v)
		if err != nil {
			fields["channel"] = herald.ErrorMessage(err)
		}
		f.Channel = c
	}
	if v := q.Get("cause"); v != "" {
		if !slices.Contains(events.SuppressionCauses, v) {
			fields["cause"] = fmt.Sprintf("unknown cause %q: want one of %s", v, strings.Join(events.SuppressionCauses, ", "))
		}
		f.Cause = v
	}
	if v := q.Get("all"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fields["all"] = "must be true or false"
		}
		f.All = b
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > suppressions.MaxLimit {
			fields["limit"] = fmt.Sprintf("must be a whole number from 1 to %d", suppressions.MaxLimit)
		}
		f.Limit = n
	}
	if len(fields) > 0 {
		s.writeError(w, r, herald.Invalid("the listing is invalid", fields))
		return
	}
	list, next, err := s.suppressions.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.NewSuppressionList(list, next)
	if next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", next)
		out.Next = suppressionsPrefix + "?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// suppressionFields are the fields of an add's body.
var suppressionFields = []string{"channel", "recipient", "reason", "expires_at", "expires_in"}

// addSuppression serves POST /api/v1/suppressions: put a recipient on the list (cause manual),
// or replace the reason and expiry of the entry that holds, and answer 201 with the entry.
// Nothing is written unless the whole body is right.
func (s *Server) addSuppression(w http.ResponseWriter, r *http.Request) {
	raw, err := readObject(r, w, s.cfg.MaxBodyBytes, suppressionFields...)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var (
		add       suppressions.Add
		channel   string
		expiresIn string
		fields    = map[string]string{}
	)
	decode := func(name string, into any, want string, required bool) {
		v, ok := raw[name]
		if !ok {
			if required {
				fields[name] = "is required"
			}
			return
		}
		if err := json.Unmarshal(v, into); err != nil {
			fields[name] = "must be " + want + ", not " + jsonValueKind(v)
		}
	}
	decode("channel", &channel, "a string (email or sms)", true)
	decode("recipient", &add.Recipient, "a string", true)
	decode("reason", &add.Reason, "a string", true)
	decode("expires_at", &add.ExpiresAt, "an RFC 3339 time, such as 2027-01-01T00:00:00Z", false)
	decode("expires_in", &expiresIn, "a duration, such as 720h", false)
	add.Channel = herald.Channel(channel)
	if _, ok := raw["expires_in"]; ok && fields["expires_in"] == "" {
		d, err := time.ParseDuration(expiresIn)
		switch {
		case err != nil:
			fields["expires_in"] = fmt.Sprintf("%q is not a duration: give one such as 720h or 90m", expiresIn)
		case d <= 0:
			fields["expires_in"] = "must be a positive duration, such as 720h"
		}
		add.ExpiresIn = d
	}
	if len(fields) > 0 {
		// Every problem at once: what the list would say of the fields read well, too.
		for name, p := range add.Problems(time.Now()) {
			if _, given := raw[name]; given && fields[name] == "" {
				fields[name] = p
			}
		}
		s.writeError(w, r, herald.Invalid("the suppression is invalid", fields))
		return
	}
	sup, err := s.suppressions.Add(r.Context(), add, actor(r))
	if herald.ErrorCode(err) == herald.EINVALID {
		// The fields say what is wrong, as for a body refused before it reached the list.
		err = &herald.Error{Code: herald.EINVALID, Message: "the suppression is invalid", Fields: herald.ErrorFields(err), Err: err}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.NewSuppression(sup)
	w.Header().Set("Location", out.Links.Self)
	writeJSON(w, http.StatusCreated, out)
}

// showSuppression serves GET /api/v1/suppressions/{channel}/{recipient}: the recipient's entry,
// holding or not; 404 for a recipient never on the list.
func (s *Server) showSuppression(w http.ResponseWriter, r *http.Request) {
	channel, recipient, err := suppressionEntry(r)
	if err == nil {
		var sup suppressions.Suppression
		if sup, err = s.suppressions.Get(r.Context(), channel, recipient); err == nil {
			writeJSON(w, http.StatusOK, wire.NewSuppression(sup))
			return
		}
	}
	s.writeError(w, r, err)
}

// suppressionEvents serves GET /api/v1/suppressions/{channel}/{recipient}/events: the entry's
// stream, every change of it with who made it.
func (s *Server) suppressionEvents(w http.ResponseWriter, r *http.Request) {
	channel, recipient, err := suppressionEntry(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sup, err := s.suppressions.Get(r.Context(), channel, recipient)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recs, err := s.suppressions.History(r.Context(), channel, recipient)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewSuppressionStream(sup, recs))
}

// removeSuppression serves DELETE /api/v1/suppressions/{channel}/{recipient}: lift the
// suppression that holds, with a reason — in a JSON body {"reason": …} or as ?reason= — and
// answer 200 with the lifted entry; 404 when none holds.
func (s *Server) removeSuppression(w http.ResponseWriter, r *http.Request) {
	channel, recipient, err := suppressionEntry(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := decodeStringFields(r, w, s.cfg.MaxBodyBytes, "reason")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	fields := map[string]string{}
	for name := range q {
		if name != "reason" {
			fields[name] = "is not a known parameter: give reason, here or in the body"
		}
	}
	reason, inBody := body["reason"]
	if q.Has("reason") {
		if inBody && q.Get("reason") != reason {
			fields["reason"] = "is given both in the body and as ?reason=, differently: give it once"
		}
		reason = q.Get("reason")
	}
	if len(fields) > 0 {
		s.writeError(w, r, herald.Invalid("the removal is invalid", fields))
		return
	}
	sup, err := s.suppressions.Remove(r.Context(), channel, recipient, actor(r), reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewSuppression(sup))
}
