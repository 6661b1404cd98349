package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// Operator is what operators do to failed notifications (see handlers.Operator).
type Operator interface {
	// ParkedPage lists one page of the parked messages, in queue order, with their notifications:
	// EINVALID for a limit out of range or a cursor it did not give.
	ParkedPage(ctx context.Context, q handlers.ParkedQuery) (handlers.ParkedPage, error)
	// Requeue and Discard act on the selected notifications, or on none of them: EINVALID for a
	// bad actor or reason, ENOTFOUND for an unknown notification, ECONFLICT for one that is not
	// failed (or already discarded) and has nothing parked.
	Requeue(ctx context.Context, sel handlers.Selection, actor, reason string) ([]handlers.Result, error)
	Discard(ctx context.Context, sel handlers.Selection, actor, reason string) ([]handlers.Result, error)
	// Preview says what Requeue (a = ActionRequeued) or Discard (ActionDiscarded) would do,
	// doing nothing: the same checks and the same errors.
	Preview(ctx context.Context, a handlers.Action, sel handlers.Selection, actor, reason string) ([]handlers.Planned, error)
}

// maxClientActorChars bounds the actor a client names; " via apikey:<name>" is added to it.
const maxClientActorChars = 200

// defaultOperatorActor is who acts when a request names no actor.
const defaultOperatorActor = "api"

// poisonRoutes mounts the poison queue's endpoints.
func (s *Server) poisonRoutes(r chi.Router) {
	r.Get("/", s.listParked)
	r.Post("/{id}/requeue", s.operate(handlers.ActionRequeued, s.operator.Requeue))
	r.Post("/{id}/discard", s.operate(handlers.ActionDiscarded, s.operator.Discard))
}

// DefaultPoisonTimeout is how long a request to the poison queue may take to answer. A page is
// found by walking the queue from its head, so one deep in a large queue takes far longer than
// the server's usual write timeout allows (about 20–45 s for the last of 100,000 on a small,
// busy machine); and one look at the queue at a time, in any process, so a request may first
// wait for another to finish.
const DefaultPoisonTimeout = 5 * time.Minute

// poisonContext extends the write deadline of a request to the poison queue and returns its
// context, which ends a tenth of that time earlier: a wait for another look that lasts too long
// is then answered 503 rather than cut off by the write deadline.
func (s *Server) poisonContext(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc, error) {
	timeout := s.cfg.PoisonTimeout
	if timeout <= 0 {
		timeout = DefaultPoisonTimeout
	}
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, nil, fmt.Errorf("extend the write deadline: %w", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout-timeout/10)
	return ctx, cancel, nil
}

// listParked serves GET /api/v1/poison: a page of the poison queue, in queue order.
func (s *Server) listParked(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, err := s.poisonContext(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer cancel()
	q := r.URL.Query()
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "type", "channel", "limit", "cursor":
		default:
			fields[name] = "is not a known parameter: use type, limit and cursor"
		}
	}
	query := handlers.ParkedQuery{Cursor: q.Get("cursor")}
	// The channel is "type", as in a notification and in GET /api/v1/notifications; "channel"
	// is the deprecated name it had here first, still understood.
	for _, name := range []string{"type", "channel"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		c, err := herald.ParseChannel(v)
		switch {
		case err != nil:
			fields[name] = herald.ErrorMessage(err)
		case query.Channel != "" && c != query.Channel:
			fields[name] = fmt.Sprintf("is %s, but type is %s: give one (channel is the deprecated name of type)", c, query.Channel)
		default:
			query.Channel = c
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > handlers.MaxParkedPageSize {
			fields["limit"] = fmt.Sprintf("must be a whole number from 1 to %d", handlers.MaxParkedPageSize)
		}
		query.Limit = n
	}
	if len(fields) > 0 {
		s.writeError(w, r, herald.Invalid("the listing is invalid", fields))
		return
	}
	page, err := s.operator.ParkedPage(ctx, query)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.NewParkedPage(page)
	if page.Next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", page.Next)
		out.Next = "/api/v1/poison?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// operate serves POST /{id}/requeue and /{id}/discard, whose action is action, with act. The
// body is optional: see operatorRequest. The actor recorded is the API key ("apikey:<name>"), or
// "<actor> via apikey:<name>" when the body names one. A dry run answers the plan, as the
// console's preview shows it, and does nothing; an action given what the dry run showed as
// "expect" does nothing either (409) if the plan differs now.
func (s *Server) operate(action handlers.Action, act func(context.Context, handlers.Selection, string, string) ([]handlers.Result, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := pathID(r)
		if _, err := handlers.ParseID(id); err != nil {
			s.writeError(w, r, herald.Errorf(herald.ENOTFOUND, "no notification %s", id))
			return
		}
		body, err := decodeOperatorRequest(r, w, s.cfg.MaxBodyBytes)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		actor := body.actor
		if p, ok := herald.PrincipalFrom(r.Context()); ok {
			// The key is who did it; a name the client gives says for whom.
			if strings.TrimSpace(actor) == "" {
				actor = p.Actor()
			} else if n := utf8.RuneCountInString(actor); n > maxClientActorChars {
				s.writeError(w, r, herald.Invalid("the request is invalid", map[string]string{
					"actor": fmt.Sprintf("is longer than %d characters", maxClientActorChars)}))
				return
			} else {
				actor += " via " + p.Actor()
			}
		} else if !body.actorGiven {
			actor = defaultOperatorActor
		}
		ctx, cancel, err := s.poisonContext(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer cancel()
		sel := handlers.Selection{IDs: []string{id}, Expect: body.expect}
		if body.dryRun {
			plan, err := s.operator.Preview(ctx, action, sel, actor, body.reason)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, wire.Plan{Plan: wire.NewPlan(plan)})
			return
		}
		results, err := act(ctx, sel, actor, body.reason)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(results) != 1 {
			s.writeError(w, r, fmt.Errorf("operator action on %s: %d results, want 1", id, len(results)))
			return
		}
		writeJSON(w, http.StatusOK, wire.NewResult(results[0]))
	}
}

// operatorRequest is the optional body of a requeue or discard: "actor" and "reason" (which a
// discard requires: the operator says so), "dry_run", and "expect", what a dry run showed for
// each notification id (wire.Expected).
type operatorRequest struct {
	actor, reason string
	actorGiven    bool
	dryRun        bool
	expect        map[string]handlers.Expected
}

// expectedFields are the fields of each entry of "expect", all required.
var expectedFields = []string{"version", "action", "message_ids"}

// decodeOperatorRequest reads an operatorRequest from r, at most limit bytes, as strictly as
// DecodeSend.
func decodeOperatorRequest(r *http.Request, w http.ResponseWriter, limit int64) (operatorRequest, error) {
	var out operatorRequest
	raw, err := readObject(r, w, limit, "actor", "reason", "dry_run", "expect")
	if err != nil {
		return out, err
	}
	fields := map[string]string{}
	for _, name := range []string{"actor", "reason"} {
		v, ok := raw[name]
		if !ok {
			continue
		}
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			fields[name] = "must be a string, not " + jsonValueKind(v)
			continue
		}
		if name == "actor" {
			out.actor, out.actorGiven = str, true
		} else {
			out.reason = str
		}
	}
	if v, ok := raw["dry_run"]; ok {
		if err := json.Unmarshal(v, &out.dryRun); err != nil {
			fields["dry_run"] = "must be true or false, not " + jsonValueKind(v)
		}
	}
	if v, ok := raw["expect"]; ok {
		out.expect = decodeExpect(v, fields)
	}
	if len(fields) > 0 {
		return out, herald.Invalid("the request is invalid", fields)
	}
	return out, nil
}

// decodeExpect reads "expect": an object of notification ids, each with what the dry run
// showed. It names what is wrong in fields.
func decodeExpect(v json.RawMessage, fields map[string]string) map[string]handlers.Expected {
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(v, &entries); err != nil {
		fields["expect"] = "must be an object of notification ids, not " + jsonValueKind(v)
		return nil
	}
	out := make(map[string]handlers.Expected, len(entries))
	for key, entry := range entries {
		path := "expect." + key
		id, err := handlers.ParseID(key)
		if err != nil {
			fields[path] = "is not a notification id (a UUID)"
			continue
		}
		var names map[string]json.RawMessage
		if err := json.Unmarshal(entry, &names); err != nil {
			fields[path] = "must be an object with version, action and message_ids, not " + jsonValueKind(entry)
			continue
		}
		var missing []string
		for _, name := range expectedFields {
			if _, ok := names[name]; !ok {
				missing = append(missing, name)
			}
		}
		dec := json.NewDecoder(bytes.NewReader(entry))
		dec.DisallowUnknownFields()
		var e wire.Expected
		switch err := dec.Decode(&e); {
		case len(missing) > 0:
			fields[path] = "needs " + strings.Join(missing, ", ") + ", as the dry run showed them"
		case err != nil:
			fields[path] = "must have an integer version, a string action and a list of strings message_ids, and nothing else"
		default:
			out[id] = e.Handlers()
		}
	}
	return out
}

// decodeStringFields reads an optional JSON object of string fields from r, at most limit bytes,
// as strictly as DecodeSend: exact names, no repeats, no other fields, no other types. An empty
// body is an empty object. A field given as null is absent.
func decodeStringFields(r *http.Request, w http.ResponseWriter, limit int64, names ...string) (map[string]string, error) {
	raw, err := readObject(r, w, limit, names...)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	fields := map[string]string{}
	for name, v := range raw {
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			fields[name] = "must be a string, not " + jsonValueKind(v)
			continue
		}
		out[name] = str
	}
	if len(fields) > 0 {
		return nil, herald.Invalid("the request is invalid", fields)
	}
	return out, nil
}

// readObject reads an optional JSON object from r, at most limit bytes, as strictly as DecodeSend:
// exact names, no repeats, no fields but names. An empty body is an empty object; a field given
// as null is absent.
func readObject(r *http.Request, w http.ResponseWriter, limit int64, names ...string) (map[string]json.RawMessage, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &herald.Error{Code: codeUnsupportedMedia,
				Message: fmt.Sprintf("Content-Type %q is not JSON: send application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &herald.Error{Code: codeTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
		}
		return nil, &herald.Error{Code: codeMalformed, Message: "could not read the request body", Err: err}
	}
	out := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) == 0 {
		return out, nil
	}
	if !utf8.Valid(body) {
		return nil, &herald.Error{Code: codeMalformed, Message: "request body is not valid UTF-8"}
	}
	raw, err := topLevelFields(body)
	if err != nil {
		if herald.ErrorCode(err) == herald.EINVALID {
			return nil, herald.Invalid("the request is invalid", herald.ErrorFields(err))
		}
		return nil, err
	}
	fields := map[string]string{}
	for name, v := range raw {
		switch {
		case !slices.Contains(names, name):
			fields[name] = fmt.Sprintf("is not a known field: send %s (names are case-sensitive)", listNames(names))
		case string(v) != "null":
			out[name] = v
		}
	}
	if len(fields) > 0 {
		return nil, herald.Invalid("the request is invalid", fields)
	}
	return out, nil
}

// listNames writes names as a sentence does: "a", "a and b", "a, b and c".
func listNames(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
