package wire

import (
	"net/url"
	"strconv"
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templatestore"
)

// The shapes of the stored templates' API and of `herald templates … -o json`, and their
// constructors from the templatestore package's types: the one place a template becomes what
// the API answers and what the CLI prints.

// TemplateVariable is a variable a template declares: every variable its parts use, and the
// default a send that leaves it out gets (none: the send must give it).
type TemplateVariable struct {
	Name    string  `json:"name"`
	Default *string `json:"default,omitempty"`
}

// Template is a stored template as its name resolves now: its latest version, whole, and
// whether it is archived.
type Template struct {
	Name string `json:"name"`
	// Version is the latest version, 1, 2, …; the content below is that version's.
	Version     int                `json:"version"`
	Channel     string             `json:"channel"`
	Subject     string             `json:"subject,omitempty"`
	Content     string             `json:"content,omitempty"`
	HTML        string             `json:"html,omitempty"`
	Variables   []TemplateVariable `json:"variables"`
	Description string             `json:"description,omitempty"`
	CreatedAt   time.Time          `json:"created_at"`
	CreatedBy   string             `json:"created_by"`
	UpdatedAt   time.Time          `json:"updated_at"`
	UpdatedBy   string             `json:"updated_by"`
	// Archived is true while the name takes no new sends and no new versions.
	Archived       bool          `json:"archived"`
	ArchivedAt     *time.Time    `json:"archived_at,omitempty"`
	ArchivedBy     string        `json:"archived_by,omitempty"`
	ArchivedReason string        `json:"archived_reason,omitempty"`
	Links          TemplateLinks `json:"links"`
}

// TemplateLinks are the API paths of what is known about one template.
type TemplateLinks struct {
	Self     string `json:"self"`
	Versions string `json:"versions"`
	Events   string `json:"events"`
}

// TemplateVersion is one version of a template, whole, as it was saved; it never changes.
type TemplateVersion struct {
	Name        string               `json:"name"`
	Version     int                  `json:"version"`
	Channel     string               `json:"channel"`
	Subject     string               `json:"subject,omitempty"`
	Content     string               `json:"content,omitempty"`
	HTML        string               `json:"html,omitempty"`
	Variables   []TemplateVariable   `json:"variables"`
	Description string               `json:"description,omitempty"`
	CreatedAt   time.Time            `json:"created_at"`
	CreatedBy   string               `json:"created_by"`
	Links       TemplateVersionLinks `json:"links"`
}

// TemplateVersionLinks are the API paths of a version and of its template.
type TemplateVersionLinks struct {
	Self     string `json:"self"`
	Template string `json:"template"`
}

// TemplateList is a page of templates, by name.
type TemplateList struct {
	Templates []Template `json:"templates"`
	// NextCursor continues the listing after this page (?cursor= or --cursor); empty, and
	// omitted, on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Next is the API path of the next page (the API sets it; the CLI has none).
	Next string `json:"next,omitempty"`
}

// TemplateVersionList is every version of a template, the first first.
type TemplateVersionList struct {
	Name     string            `json:"name"`
	Versions []TemplateVersion `json:"versions"`
}

// TemplateRequest is the body of POST /api/v1/templates (Name required) and of POST
// /api/v1/templates/{name}/versions (Name, if given, must be the path's; Channel, if given, the
// template's): a whole template, saved as a new version.
type TemplateRequest struct {
	Name        string             `json:"name,omitempty"`
	Channel     string             `json:"channel,omitempty"`
	Subject     string             `json:"subject,omitempty"`
	Content     string             `json:"content,omitempty"`
	HTML        string             `json:"html,omitempty"`
	Variables   []TemplateVariable `json:"variables,omitempty"`
	Description string             `json:"description,omitempty"`
}

// TemplatesPrefix is where the stored templates' API is mounted.
const TemplatesPrefix = "/api/v1/templates"

// TemplatePath is the API path of the template named name.
func TemplatePath(name string) string { return TemplatesPrefix + "/" + url.PathEscape(name) }

// TemplateLinksFor returns the links of the template named name.
func TemplateLinksFor(name string) TemplateLinks {
	self := TemplatePath(name)
	return TemplateLinks{Self: self, Versions: self + "/versions", Events: self + "/events"}
}

// TemplateVersionPath is the API path of version of the template named name.
func TemplateVersionPath(name string, version int) string {
	return TemplatePath(name) + "/versions/" + strconv.Itoa(version)
}

// NewTemplate returns t as users see it.
func NewTemplate(t templatestore.Template) Template {
	v := t.Latest
	return Template{
		Name: v.Name, Version: v.Version, Channel: string(v.Channel), Subject: v.Subject, Content: v.Content, HTML: v.HTML,
		Variables: NewTemplateVariables(v.Variables), Description: v.Description,
		CreatedAt: t.CreatedAt.UTC(), CreatedBy: t.CreatedBy, UpdatedAt: t.UpdatedAt.UTC(), UpdatedBy: t.UpdatedBy,
		Archived: t.Archived(), ArchivedAt: utcCopy(t.ArchivedAt), ArchivedBy: t.ArchivedBy, ArchivedReason: t.ArchivedReason,
		Links: TemplateLinksFor(v.Name),
	}
}

// NewTemplateVersion returns v as users see it.
func NewTemplateVersion(v templatestore.Version) TemplateVersion {
	return TemplateVersion{
		Name: v.Name, Version: v.Version, Channel: string(v.Channel), Subject: v.Subject, Content: v.Content, HTML: v.HTML,
		Variables: NewTemplateVariables(v.Variables), Description: v.Description,
		CreatedAt: v.CreatedAt.UTC(), CreatedBy: v.CreatedBy,
		Links: TemplateVersionLinks{Self: TemplateVersionPath(v.Name, v.Version), Template: TemplatePath(v.Name)},
	}
}

// NewTemplateVariables returns vars as users see them, never null.
func NewTemplateVariables(vars []events.TemplateVariable) []TemplateVariable {
	out := make([]TemplateVariable, 0, len(vars))
	for _, v := range vars {
		out = append(out, TemplateVariable{Name: v.Name, Default: v.Default})
	}
	return out
}

// TemplateVariables returns vars as the store takes them.
func TemplateVariables(vars []TemplateVariable) []events.TemplateVariable {
	out := make([]events.TemplateVariable, 0, len(vars))
	for _, v := range vars {
		out = append(out, events.TemplateVariable{Name: v.Name, Default: v.Default})
	}
	return out
}

// NewTemplateList returns a page of templates, continued by cursor next (empty after the
// last), never null.
func NewTemplateList(list []templatestore.Template, next string) TemplateList {
	out := TemplateList{Templates: make([]Template, 0, len(list)), NextCursor: next}
	for _, t := range list {
		out.Templates = append(out.Templates, NewTemplate(t))
	}
	return out
}

// NewTemplateVersionList returns the versions of the template named name.
func NewTemplateVersionList(name string, versions []templatestore.Version) TemplateVersionList {
	out := TemplateVersionList{Name: name, Versions: make([]TemplateVersion, 0, len(versions))}
	for _, v := range versions {
		out.Versions = append(out.Versions, NewTemplateVersion(v))
	}
	return out
}

// NewTemplateStream returns the stream of the template named name, recs: every change of it,
// in the shape of a notification's stream, with links to the template (status) and to this
// stream (history and events).
func NewTemplateStream(name string, recs []events.Recorded) Stream {
	l := TemplateLinksFor(name)
	return Stream{ID: templatestore.Stream(name), Events: all(recs, NewEvent),
		Links: Links{Status: l.Self, History: l.Events, Events: l.Events}}
}
