package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templatestore"
	"github.com/herald-notify/herald/wire"
)

// Templates keeps the stored templates (see templatestore.Store).
type Templates interface {
	// Create returns the new template: EINVALID, naming the fields, for a bad name or draft;
	// ECONFLICT when the name is taken.
	Create(ctx context.Context, name string, d templatestore.Draft, actor string) (templatestore.Template, error)
	// Update returns the template at its new version: ENOTFOUND for no such template; EINVALID,
	// naming the fields, for a bad draft, another channel or an archived template.
	Update(ctx context.Context, name string, d templatestore.Draft, actor string) (templatestore.Template, error)
	// Archive returns the archived template: ENOTFOUND, ECONFLICT when archived already,
	// EINVALID without a reason.
	Archive(ctx context.Context, name, reason, actor string) (templatestore.Template, error)
	// Restore returns the restored template: ENOTFOUND, ECONFLICT when not archived, EINVALID
	// without a reason.
	Restore(ctx context.Context, name, reason, actor string) (templatestore.Template, error)
	// Get, GetVersion, Versions and History return ENOTFOUND for no such template (or
	// version), EINVALID for a name no template can have.
	Get(ctx context.Context, name string) (templatestore.Template, error)
	GetVersion(ctx context.Context, name string, version int) (templatestore.Version, error)
	Versions(ctx context.Context, name string) ([]templatestore.Version, error)
	History(ctx context.Context, name string) ([]events.Recorded, error)
	// List returns EINVALID, naming the field, for a bad filter or cursor.
	List(ctx context.Context, f templatestore.Filter) ([]templatestore.Template, string, error)
}

var _ Templates = (*templatestore.Store)(nil)

// WithTemplates adds the stored templates' API to s, under the operate scope.
func (s *Server) WithTemplates(t Templates) *Server {
	s.templates = t
	return s
}

// templateRoutes mounts the stored templates' API. A new version is a new resource, made by
// POST …/versions, not a PUT of the template: saving twice makes two versions.
func (s *Server) templateRoutes(r chi.Router) {
	r.Get("/", s.listTemplates)
	r.Post("/", s.createTemplate)
	r.Get("/{name}", s.showTemplate)
	r.Get("/{name}/versions", s.templateVersions)
	r.Post("/{name}/versions", s.addTemplateVersion)
	r.Get("/{name}/versions/{version}", s.showTemplateVersion)
	r.Post("/{name}/archive", s.archiveTemplate)
	r.Post("/{name}/restore", s.restoreTemplate)
	r.Get("/{name}/events", s.templateEvents)
}

// listTemplates serves GET /api/v1/templates: a page of templates by name, those in use unless
// ?archived=true (only the archived) or ?archived=all, narrowed by ?channel=.
func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := templatestore.Filter{Cursor: q.Get("cursor")}
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "channel", "archived", "limit", "cursor":
		default:
			fields[name] = "is not a known parameter: use channel, archived, limit and cursor"
		}
	}
	if v := q.Get("channel"); v != "" {
		c, err := herald.ParseChannel(v)
		if err != nil {
			fields["channel"] = herald.ErrorMessage(err)
		}
		f.Channel = c
	}
	switch v := q.Get("archived"); v {
	case "", "false":
		f.Archived = templatestore.ArchivedExclude
	case "true":
		f.Archived = templatestore.ArchivedOnly
	case "all":
		f.Archived = templatestore.ArchivedInclude
	default:
		fields["archived"] = "must be false (in use), true (archived) or all"
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > templatestore.MaxLimit {
			fields["limit"] = fmt.Sprintf("must be a whole number from 1 to %d", templatestore.MaxLimit)
		}
		f.Limit = n
	}
	if len(fields) > 0 {
		s.writeError(w, r, herald.Invalid("the listing is invalid", fields))
		return
	}
	list, next, err := s.templates.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.NewTemplateList(list, next)
	if next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", next)
		out.Next = wire.TemplatesPrefix + "?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// templateFields are the fields of a template's body after its name.
var templateFields = []string{"channel", "subject", "content", "html", "variables", "description"}

// decodeTemplate reads a create's or a new version's body; every field it refuses is named.
func (s *Server) decodeTemplate(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, wire.TemplateRequest, error) {
	var req wire.TemplateRequest
	raw, err := readObject(r, w, s.cfg.MaxBodyBytes, append([]string{"name"}, templateFields...)...)
	if err != nil {
		return nil, req, err
	}
	fields := map[string]string{}
	for name, into := range map[string]*string{"name": &req.Name, "channel": &req.Channel, "subject": &req.Subject,
		"content": &req.Content, "html": &req.HTML, "description": &req.Description} {
		if v, ok := raw[name]; ok {
			if err := json.Unmarshal(v, into); err != nil {
				fields[name] = "must be a string, not " + jsonValueKind(v)
			}
		}
	}
	if v, ok := raw["variables"]; ok {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req.Variables); err != nil {
			fields["variables"] = `must be an array of objects {"name": "...", "default": "..."}, the default optional`
		}
	}
	if len(fields) > 0 {
		return nil, req, herald.Invalid("the template is invalid", fields)
	}
	return raw, req, nil
}

func draft(req wire.TemplateRequest) templatestore.Draft {
	return templatestore.Draft{Channel: herald.Channel(req.Channel), Subject: req.Subject, Content: req.Content,
		HTML: req.HTML, Variables: wire.TemplateVariables(req.Variables), Description: req.Description}
}

// templateInvalid keeps the store's fields, which say what is wrong, as for a body refused
// before it reached the store.
func templateInvalid(err error) error {
	if herald.ErrorCode(err) == herald.EINVALID {
		return &herald.Error{Code: herald.EINVALID, Message: "the template is invalid",
			Fields: herald.ErrorFields(err), Err: err}
	}
	return err
}

// createTemplate serves POST /api/v1/templates: save version 1 of a new template and answer
// 201 with it; 409 when the name is taken. Nothing is written unless the whole body is right.
func (s *Server) createTemplate(w http.ResponseWriter, r *http.Request) {
	raw, req, err := s.decodeTemplate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, ok := raw["name"]; !ok {
		problems := draft(req).Problems()
		problems["name"] = "is required"
		s.writeError(w, r, herald.Invalid("the template is invalid", problems))
		return
	}
	t, err := s.templates.Create(r.Context(), req.Name, draft(req), actor(r))
	if err != nil {
		s.writeError(w, r, templateInvalid(err))
		return
	}
	out := wire.NewTemplate(t)
	w.Header().Set("Location", out.Links.Self)
	writeJSON(w, http.StatusCreated, out)
}

// addTemplateVersion serves POST /api/v1/templates/{name}/versions: save the body, a whole
// template, as the template's next version, and answer 201 with the template at it.
func (s *Server) addTemplateVersion(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	_, req, err := s.decodeTemplate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Name != "" && req.Name != name {
		s.writeError(w, r, herald.Invalid("the template is invalid",
			map[string]string{"name": fmt.Sprintf("is %q, but the path names %q: a template cannot be renamed", req.Name, name)}))
		return
	}
	t, err := s.templates.Update(r.Context(), name, draft(req), actor(r))
	if err != nil {
		s.writeError(w, r, templateInvalid(err))
		return
	}
	out := wire.NewTemplate(t)
	w.Header().Set("Location", wire.TemplateVersionPath(t.Name(), t.Latest.Version))
	writeJSON(w, http.StatusCreated, out)
}

// showTemplate serves GET /api/v1/templates/{name}: the template at its latest version,
// archived or not.
func (s *Server) showTemplate(w http.ResponseWriter, r *http.Request) {
	t, err := s.templates.Get(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewTemplate(t))
}

// templateVersions serves GET /api/v1/templates/{name}/versions: every version, the first
// first.
func (s *Server) templateVersions(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	versions, err := s.templates.Versions(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewTemplateVersionList(name, versions))
}

// showTemplateVersion serves GET /api/v1/templates/{name}/versions/{version}.
func (s *Server) showTemplateVersion(w http.ResponseWriter, r *http.Request) {
	text := chi.URLParam(r, "version")
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 || strconv.Itoa(n) != text {
		s.writeError(w, r, herald.Invalid("the version is invalid", map[string]string{"version": "must be a positive whole number"}))
		return
	}
	v, err := s.templates.GetVersion(r.Context(), chi.URLParam(r, "name"), n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewTemplateVersion(v))
}

// archiveTemplate serves POST /api/v1/templates/{name}/archive {"reason": …}: the name takes no
// new sends and no new versions until it is restored.
func (s *Server) archiveTemplate(w http.ResponseWriter, r *http.Request) {
	s.archiveOrRestore(w, r, s.templates.Archive)
}

// restoreTemplate serves POST /api/v1/templates/{name}/restore {"reason": …}.
func (s *Server) restoreTemplate(w http.ResponseWriter, r *http.Request) {
	s.archiveOrRestore(w, r, s.templates.Restore)
}

func (s *Server) archiveOrRestore(w http.ResponseWriter, r *http.Request,
	do func(ctx context.Context, name, reason, actor string) (templatestore.Template, error)) {
	body, err := decodeStringFields(r, w, s.cfg.MaxBodyBytes, "reason")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := do(r.Context(), chi.URLParam(r, "name"), body["reason"], actor(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewTemplate(t))
}

// templateEvents serves GET /api/v1/templates/{name}/events: the template's stream, every
// change of it with who made it.
func (s *Server) templateEvents(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	recs, err := s.templates.History(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewTemplateStream(name, recs))
}
