package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// WebhookEndpoints keeps the webhook endpoints (see webhooks.Endpoints).
type WebhookEndpoints interface {
	// Create returns the endpoint and its secret: EINVALID for a bad URL, description or event
	// type, ECONFLICT when an endpoint has the URL already.
	Create(ctx context.Context, n webhooks.NewEndpoint, actor string) (webhooks.Endpoint, webhooks.Secret, error)
	// Get, History, Attempts and Pending return ENOTFOUND for an unknown endpoint.
	Get(ctx context.Context, id string) (webhooks.Endpoint, error)
	List(ctx context.Context) ([]webhooks.Endpoint, error)
	History(ctx context.Context, id string) ([]events.Recorded, error)
	// Attempts returns EINVALID for a bad limit or cursor.
	Attempts(ctx context.Context, id string, f webhooks.AttemptFilter) ([]webhooks.Attempt, int64, error)
	Pending(ctx context.Context, id string) (int64, error)
	// Update, Disable, Enable, Delete and RotateSecret return ENOTFOUND, and ECONFLICT when the
	// endpoint changed meanwhile; Update EINVALID and ECONFLICT as Create.
	Update(ctx context.Context, id string, c webhooks.Change, actor string) (webhooks.Endpoint, error)
	Disable(ctx context.Context, id, actor, reason string) (webhooks.Endpoint, error)
	Enable(ctx context.Context, id, actor string) (webhooks.Endpoint, error)
	Delete(ctx context.Context, id, actor string) error
	RotateSecret(ctx context.Context, id, actor string) (webhooks.Endpoint, webhooks.Secret, error)
}

// WebhookReplays runs replays in the background (see webhooks.ReplayJobs).
type WebhookReplays interface {
	// Start returns EINVALID for a bad request, ENOTFOUND for an unknown endpoint, ECONFLICT
	// while a replay to the endpoint runs already.
	Start(ctx context.Context, id string, r webhooks.ReplayRequest) (webhooks.ReplayJob, error)
	// Get returns ENOTFOUND for a job this process does not know.
	Get(endpointID, id string) (webhooks.ReplayJob, error)
}

var (
	_ WebhookEndpoints = (*webhooks.Endpoints)(nil)
	_ WebhookReplays   = (*webhooks.ReplayJobs)(nil)
)

// WithWebhooks adds the webhook endpoints' API to s, under the operate scope.
func (s *Server) WithWebhooks(endpoints WebhookEndpoints, replays WebhookReplays) *Server {
	s.webhooks, s.replays = endpoints, replays
	return s
}

// defaultAttemptsPage is the page of deliveries listed when the request gives no limit.
const defaultAttemptsPage = 100

// webhookRoutes mounts the webhook endpoints' API.
func (s *Server) webhookRoutes(r chi.Router) {
	r.Post("/", s.createWebhook)
	r.Get("/", s.listWebhooks)
	r.Get("/{id}", s.showWebhook)
	r.Patch("/{id}", s.updateWebhook)
	r.Delete("/{id}", s.deleteWebhook)
	r.Post("/{id}/rotate-secret", s.rotateWebhookSecret)
	r.Get("/{id}/deliveries", s.webhookDeliveries)
	r.Get("/{id}/events", s.webhookEvents)
	r.Post("/{id}/replay", s.startWebhookReplay)
	r.Get("/{id}/replays/{job}", s.webhookReplayJob)
}

// actor is who the request acts as: its API key, or "api" on a server without keys.
func actor(r *http.Request) string {
	if p, ok := herald.PrincipalFrom(r.Context()); ok {
		return p.Actor()
	}
	return defaultOperatorActor
}

// endpointFields names the fields of the webhooks package's errors as the API's bodies do: it
// calls the event types "events", after the CLI's flag.
func endpointFields(err error) error {
	fields := herald.ErrorFields(err)
	msg, ok := fields["events"]
	if !ok {
		return err
	}
	renamed := map[string]string{"event_types": msg}
	for k, v := range fields {
		if k != "events" {
			renamed[k] = v
		}
	}
	return &herald.Error{Code: herald.ErrorCode(err), Message: herald.ErrorMessage(err), Fields: renamed, Err: err}
}

// endpointBody is a decoded create or update body: the fields given, nil for the others.
type endpointBody struct {
	URL, Description *string
	EventTypes       *[]string
	Enabled          *bool
	Reason           *string
}

// decodeEndpoint reads a create (names without enabled and reason) or update body strictly,
// reporting every field of the wrong type at once.
func decodeEndpoint(r *http.Request, w http.ResponseWriter, limit int64, names ...string) (endpointBody, error) {
	raw, err := readObject(r, w, limit, names...)
	if err != nil {
		return endpointBody{}, err
	}
	var b endpointBody
	fields := map[string]string{}
	str := func(name string) *string {
		v, ok := raw[name]
		if !ok {
			return nil
		}
		var out string
		if err := json.Unmarshal(v, &out); err != nil {
			fields[name] = "must be a string, not " + jsonValueKind(v)
			return nil
		}
		return &out
	}
	b.URL, b.Description, b.Reason = str("url"), str("description"), str("reason")
	if v, ok := raw["event_types"]; ok {
		types, err := eventTypes(v)
		if err != nil {
			fields["event_types"] = err.Error()
		}
		b.EventTypes = &types
	}
	if v, ok := raw["enabled"]; ok {
		var on bool
		if err := json.Unmarshal(v, &on); err != nil {
			fields["enabled"] = "must be true or false, not " + jsonValueKind(v)
		}
		b.Enabled = &on
	}
	if len(fields) > 0 {
		return b, herald.Invalid("the endpoint is invalid", fields)
	}
	return b, nil
}

// eventTypes reads event_types: an array of notification event types, where [] and ["all"]
// mean every one (nil).
func eventTypes(v json.RawMessage) ([]string, error) {
	var types []string
	if err := json.Unmarshal(v, &types); err != nil {
		return nil, fmt.Errorf("must be an array of event types (or [\"all\"]), not %s", jsonValueKind(v))
	}
	for _, t := range types {
		if t == "all" {
			if len(types) > 1 {
				return nil, fmt.Errorf(`"all" stands alone: give ["all"] or the types themselves`)
			}
			return nil, nil
		}
	}
	if len(types) == 0 {
		return nil, nil
	}
	return types, nil
}

// createWebhook serves POST /api/v1/webhooks: register an endpoint and answer 201 with it and
// its secret, shown this once.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	b, err := decodeEndpoint(r, w, s.cfg.MaxBodyBytes, "url", "description", "event_types")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if b.URL == nil {
		s.writeError(w, r, herald.Invalid("the endpoint is invalid", map[string]string{"url": "is required"}))
		return
	}
	n := webhooks.NewEndpoint{URL: *b.URL}
	if b.Description != nil {
		n.Description = *b.Description
	}
	if b.EventTypes != nil {
		n.EventTypes = *b.EventTypes
	}
	e, secret, err := s.webhooks.Create(r.Context(), n, actor(r))
	if err != nil {
		s.writeError(w, r, endpointFields(err))
		return
	}
	out := webhooks.WireEndpointCreated(e, secret)
	w.Header().Set("Location", out.Links.Self)
	writeJSON(w, http.StatusCreated, out)
}

// listWebhooks serves GET /api/v1/webhooks: every endpoint, oldest first.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	list, err := s.webhooks.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhooks.WireEndpointList(list))
}

// showWebhook serves GET /api/v1/webhooks/{id}: the endpoint, with its retries pending.
func (s *Server) showWebhook(w http.ResponseWriter, r *http.Request) {
	e, err := s.webhooks.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pending, err := s.webhooks.Pending(r.Context(), e.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhooks.WireEndpoint(e, &pending))
}

// updateWebhook serves PATCH /api/v1/webhooks/{id}: change the URL, description or event types,
// then disable (with a reason) or enable, as the body says. Each change is an event of the
// endpoint's stream. A body that is wrong anywhere changes nothing.
func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	b, err := decodeEndpoint(r, w, s.cfg.MaxBodyBytes, "url", "description", "event_types", "enabled", "reason")
	if err == nil && b.Reason != nil && (b.Enabled == nil || *b.Enabled) {
		err = herald.Invalid("the endpoint is invalid", map[string]string{"reason": `goes with "enabled": false: it says why the endpoint is disabled`})
	}
	if err == nil && b == (endpointBody{}) {
		err = herald.Invalid("nothing to change: send url, description, event_types or enabled", nil)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, who := r.Context(), actor(r)
	e, err := s.webhooks.Get(ctx, id)
	if err == nil && (b.URL != nil || b.Description != nil || b.EventTypes != nil) {
		e, err = s.webhooks.Update(ctx, id, webhooks.Change{URL: b.URL, Description: b.Description, EventTypes: b.EventTypes}, who)
	}
	if err == nil && b.Enabled != nil {
		if *b.Enabled {
			e, err = s.webhooks.Enable(ctx, id, who)
		} else {
			reason := ""
			if b.Reason != nil {
				reason = *b.Reason
			}
			e, err = s.webhooks.Disable(ctx, id, who, reason)
		}
	}
	if err != nil {
		s.writeError(w, r, endpointFields(err))
		return
	}
	writeJSON(w, http.StatusOK, webhooks.WireEndpoint(e, nil))
}

// deleteWebhook serves DELETE /api/v1/webhooks/{id}: nothing is posted to it again; its
// deliveries and its stream are kept.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.webhooks.Delete(r.Context(), chi.URLParam(r, "id"), actor(r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rotateWebhookSecret serves POST /api/v1/webhooks/{id}/rotate-secret: a new secret, shown
// this once; the old one signs too for webhooks.RotationOverlap.
func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	if _, err := readObject(r, w, s.cfg.MaxBodyBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, secret, err := s.webhooks.RotateSecret(r.Context(), chi.URLParam(r, "id"), actor(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhooks.WireEndpointCreated(e, secret))
}

// webhookDeliveries serves GET /api/v1/webhooks/{id}/deliveries: a page of the endpoint's
// attempts, newest first (?failed=true for the failed ones, ?limit=, ?before= an attempt id).
func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	q := r.URL.Query()
	f := webhooks.AttemptFilter{Limit: defaultAttemptsPage}
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "failed", "limit", "before":
		default:
			fields[name] = "is not a known parameter: use failed, limit and before"
		}
	}
	if v := q.Get("failed"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fields["failed"] = "must be true or false"
		}
		f.Failed = b
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > webhooks.MaxAttemptsPage {
			fields["limit"] = fmt.Sprintf("must be a whole number from 1 to %d", webhooks.MaxAttemptsPage)
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			fields["before"] = "must be an attempt id, 1 or more"
		}
		f.Before = n
	}
	if len(fields) > 0 {
		s.writeError(w, r, herald.Invalid("the listing is invalid", fields))
		return
	}
	list, next, err := s.webhooks.Attempts(r.Context(), id, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := webhooks.WireAttempts(list, next)
	if next > 0 {
		nq := r.URL.Query()
		nq.Set("before", strconv.FormatInt(next, 10))
		out.Next = wire.WebhookEndpointLinksFor(id).Deliveries + "?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// webhookEvents serves GET /api/v1/webhooks/{id}/events: the endpoint's stream, every change of
// it with who made it. A deleted endpoint's stream is still there.
func (s *Server) webhookEvents(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	recs, err := s.webhooks.History(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewWebhookEndpointStream(id, recs))
}

// replayFields are the fields of a replay's body.
var replayFields = []string{"from_position", "since", "until", "types", "dry_run"}

// startWebhookReplay serves POST /api/v1/webhooks/{id}/replay: start sending past events again,
// in the background, and answer 202 with the job to follow. The body says where to start
// (from_position, since, or both) and may bound the end (until), narrow the types, or ask for a
// dry run that only counts.
func (s *Server) startWebhookReplay(w http.ResponseWriter, r *http.Request) {
	raw, err := readObject(r, w, s.cfg.MaxBodyBytes, replayFields...)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req webhooks.ReplayRequest
	fields := map[string]string{}
	decode := func(name string, into any, want string) {
		if v, ok := raw[name]; ok {
			if err := json.Unmarshal(v, into); err != nil {
				fields[name] = "must be " + want + ", not " + jsonValueKind(v)
			}
		}
	}
	decode("from_position", &req.FromPosition, "a log position (a whole number)")
	decode("since", &req.Since, "an RFC 3339 time")
	decode("until", &req.Until, "an RFC 3339 time")
	decode("types", &req.Types, "an array of event types")
	decode("dry_run", &req.DryRun, "true or false")
	_, from := raw["from_position"]
	_, since := raw["since"]
	if !from && !since && len(fields) == 0 {
		s.writeError(w, r, herald.Invalid("say where the replay starts: from_position (1 for the start of the log), since, or both",
			map[string]string{"from_position": "is required unless since is given", "since": "is required unless from_position is given"}))
		return
	}
	if len(fields) > 0 {
		s.writeError(w, r, herald.Invalid("the replay is invalid", fields))
		return
	}
	job, err := s.replays.Start(r.Context(), chi.URLParam(r, "id"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := webhooks.WireReplayJob(job)
	w.Header().Set("Location", out.Links.Self)
	writeJSON(w, http.StatusAccepted, out)
}

// webhookReplayJob serves GET /api/v1/webhooks/{id}/replays/{job}: the job now. Jobs are kept
// in the process that runs them.
func (s *Server) webhookReplayJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.replays.Get(chi.URLParam(r, "id"), chi.URLParam(r, "job"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhooks.WireReplayJob(job))
}
