// Package templatestore keeps stored templates: named, versioned email and SMS templates that
// sends use by name. Every change is an event of a stream per template name in
// the log (events.TemplateVersionCreated, events.TemplateArchived, events.TemplateRestored),
// appended with the stream's expected version in the transaction that writes the tables
// templates (what a name resolves to now) and template_versions (every version, whole and
// never changed).
//
// It is a package of its own, beside package templates rather than inside it: templates is the
// renderer the send path imports, pure and without a database; the store adapts PostgreSQL and
// uses the renderer's checks to refuse, when a template is saved, what a send would refuse.
package templatestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templates"
)

// Limits of what a template holds.
const (
	// MaxPartBytes caps each of subject, content and html, as a send caps its content.
	MaxPartBytes = 32 << 10
	// MaxVariables caps the variables a template declares.
	MaxVariables = 100
	// MaxDefaultChars caps a variable's default value, in characters.
	MaxDefaultChars = 1000
	// MaxTextChars caps a description and a reason, in characters.
	MaxTextChars = 2000
)

// DB is what the store needs of PostgreSQL: a *pgxpool.Pool.
type DB interface {
	events.Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Draft is a template as a client writes it: what a create or an update saves as a new version.
type Draft struct {
	Channel herald.Channel
	// Subject (email only), Content and HTML (email only) are templates in the send path's
	// language. An SMS needs Content; an email needs Content, HTML or both.
	Subject string
	Content string
	HTML    string
	// Variables declares every variable the parts use; one with a default may be left out of a
	// send. A declared variable that no part uses is allowed.
	Variables   []events.TemplateVariable
	Description string
}

// Version is one version of a template, as it was saved.
type Version struct {
	Name        string
	Version     int
	Channel     herald.Channel
	Subject     string
	Content     string
	HTML        string
	Variables   []events.TemplateVariable
	Description string
	CreatedAt   time.Time
	CreatedBy   string
}

// Template is a template as its name resolves now: its latest version, and whether it is
// archived.
type Template struct {
	Latest         Version
	CreatedAt      time.Time
	CreatedBy      string
	UpdatedAt      time.Time
	UpdatedBy      string
	ArchivedAt     *time.Time
	ArchivedBy     string
	ArchivedReason string
	// StreamVersion is the version of the template's stream in the log.
	StreamVersion int64
}

// Name is the template's name.
func (t Template) Name() string { return t.Latest.Name }

// Archived reports whether the template is archived.
func (t Template) Archived() bool { return t.ArchivedAt != nil }

// streamNamespace makes a template's stream id from its name (UUID v5), so that every process
// finds the same stream for the same name without looking it up.
var streamNamespace = uuid.MustParse("9b0e6d0c-2f4a-5b7e-8c1d-4e2f6a8b0c13")

// Stream is the id of the stream of the template named name.
func Stream(name string) string { return uuid.NewSHA1(streamNamespace, []byte(name)).String() }

var (
	namePattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	variablePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

// NameProblem says what is wrong with name as a template's name, "" when nothing is: a slug of
// 1 to 64 lower-case letters, digits, '-' and '_', starting with a letter or a digit. '@' is
// reserved: name@3 names version 3 of name.
func NameProblem(name string) string {
	switch {
	case name == "":
		return "is required"
	case strings.Contains(name, "@"):
		return "must not contain @: name@N names version N of a template"
	case !namePattern.MatchString(name):
		return "must be 1 to 64 lower-case letters, digits, - and _, starting with a letter or a digit"
	}
	return ""
}

// Problems returns what is wrong with d, by field (channel, subject, content, html, variables,
// variables[i], variables.<name>, description): none when it can be saved. Each part is checked
// as the send path checks it, and every variable a part uses must be declared.
func (d Draft) Problems() map[string]string {
	problems := map[string]string{}
	email := d.Channel == herald.ChannelEmail
	switch d.Channel {
	case herald.ChannelEmail, herald.ChannelSMS:
	case "":
		problems["channel"] = "is required: email or sms"
	default:
		problems["channel"] = fmt.Sprintf("unknown channel %q: want email or sms", d.Channel)
	}
	if d.Channel == herald.ChannelSMS {
		if d.Subject != "" {
			problems["subject"] = "is only for email"
		}
		if d.HTML != "" {
			problems["html"] = "is only for email"
		}
	}
	if email && strings.TrimSpace(d.Content) == "" && strings.TrimSpace(d.HTML) == "" {
		problems["content"] = "is required for email unless html is given"
		problems["html"] = "is required for email unless content is given"
	}
	used := map[string]string{} // variable → the first part that uses it
	check := func(field, part string, parse func(string, string) ([]string, error)) {
		if _, bad := problems[field]; bad {
			return
		}
		if len(part) > MaxPartBytes {
			problems[field] = fmt.Sprintf("is %d bytes, more than the limit of %d", len(part), MaxPartBytes)
			return
		}
		if strings.ContainsRune(part, 0) {
			// The log keeps events as JSONB, which has no NUL; a send refuses it the same way.
			problems[field] = "must not contain NUL characters"
			return
		}
		names, err := parse(field, part)
		if err != nil {
			maps.Copy(problems, herald.ErrorFields(err))
			return
		}
		for _, n := range names {
			if _, seen := used[n]; !seen {
				used[n] = field
			}
		}
	}
	if strings.TrimSpace(d.Subject) != "" {
		check("subject", d.Subject, templates.Variables)
		if strings.ContainsAny(d.Subject, "\r\n") {
			problems["subject"] = "must be a single line"
		}
	}
	if d.Channel == herald.ChannelSMS || strings.TrimSpace(d.Content) != "" {
		check("content", d.Content, templates.Variables)
	}
	if strings.TrimSpace(d.HTML) != "" {
		check("html", d.HTML, templates.HTMLVariables)
	}

	declared := map[string]bool{}
	if len(d.Variables) > MaxVariables {
		problems["variables"] = fmt.Sprintf("declares %d variables, more than the limit of %d", len(d.Variables), MaxVariables)
	}
	for i, v := range d.Variables {
		field := fmt.Sprintf("variables[%d]", i)
		switch {
		case !variablePattern.MatchString(v.Name):
			problems[field] = fmt.Sprintf("name %q must be 1 to 64 letters, digits and _, not starting with a digit", v.Name)
		case declared[v.Name]:
			problems[field] = fmt.Sprintf("%s is declared twice", v.Name)
		case v.Default != nil && !utf8.ValidString(*v.Default):
			problems[field] = "default is not valid UTF-8"
		case v.Default != nil && strings.ContainsRune(*v.Default, 0):
			problems[field] = "default must not contain NUL characters"
		case v.Default != nil && utf8.RuneCountInString(*v.Default) > MaxDefaultChars:
			problems[field] = fmt.Sprintf("default is longer than %d characters", MaxDefaultChars)
		}
		declared[v.Name] = true
	}
	for name, part := range used {
		if !declared[name] {
			problems["variables."+name] = fmt.Sprintf("is used by %s but not declared in variables", part)
		}
	}
	if p := textProblem(d.Description, false); p != "" {
		problems["description"] = p
	}
	return problems
}

// Store keeps the templates.
type Store struct {
	db  DB
	log *events.Log
}

// New returns the templates stored in db.
func New(db DB) *Store { return &Store{db: db, log: events.NewLog(db)} }

// Create saves d as version 1 of a new template named name, by actor, and returns it.
// EINVALID, naming the fields, for a bad name or draft; ECONFLICT when the name is taken (an
// archived template keeps its name). Nothing is written when it fails.
func (s *Store) Create(ctx context.Context, name string, d Draft, actor string) (Template, error) {
	problems := d.Problems()
	if p := NameProblem(name); p != "" {
		problems["name"] = p
	}
	if len(problems) > 0 {
		return Template{}, invalid("invalid template", problems)
	}
	var saved Template
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		_, exists, err := s.lock(ctx, tx, name)
		if err != nil {
			return err
		}
		if exists {
			return herald.Errorf(herald.ECONFLICT, "template %s exists: add a version to it instead", name)
		}
		if err := s.saveVersion(ctx, tx, name, 1, 0, d, actor, true); err != nil {
			return err
		}
		saved, err = get(ctx, tx, name)
		return err
	})
	if err != nil {
		return Template{}, err
	}
	return saved, nil
}

// Update saves d as the next version of the template named name, by actor, and returns it.
// d.Channel may be left empty; given, it must be the template's: a name keeps its channel.
// ENOTFOUND for no such template; EINVALID, naming the fields, for a bad draft, and for an
// archived template (field name), which takes no new version until it is restored. Concurrent
// updates are made one after the other, each getting the next version. Nothing is written
// when it fails.
func (s *Store) Update(ctx context.Context, name string, d Draft, actor string) (Template, error) {
	return s.UpdateFrom(ctx, name, 0, d, actor)
}

// UpdateFrom is Update of a draft made from version base of the template: ECONFLICT, and
// nothing written, when the template's latest version is another by then, so that an edit of
// what was read never silently replaces a version saved meanwhile. base 0 is Update.
func (s *Store) UpdateFrom(ctx context.Context, name string, base int, d Draft, actor string) (Template, error) {
	if p := NameProblem(name); p != "" {
		return Template{}, invalid("invalid template name", map[string]string{"name": p})
	}
	var saved Template
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		cur, exists, err := s.lock(ctx, tx, name)
		if err != nil {
			return err
		}
		if !exists {
			return notFound(name)
		}
		if base != 0 && cur.Latest.Version != base {
			return herald.Errorf(herald.ECONFLICT, "template %s is at version %d, not %d: it changed since it was read", name, cur.Latest.Version, base)
		}
		if d.Channel == "" {
			d.Channel = cur.Latest.Channel
		}
		problems := d.Problems()
		if d.Channel != cur.Latest.Channel && problems["channel"] == "" {
			problems["channel"] = fmt.Sprintf("is %s for template %s: a template keeps its channel; create another for %s",
				cur.Latest.Channel, name, d.Channel)
		}
		if cur.Archived() {
			problems["name"] = fmt.Sprintf("template %s is archived: restore it before adding a version", name)
		}
		if len(problems) > 0 {
			return invalid("invalid template", problems)
		}
		if err := s.saveVersion(ctx, tx, name, cur.Latest.Version+1, cur.StreamVersion, d, actor, false); err != nil {
			return err
		}
		saved, err = get(ctx, tx, name)
		return err
	})
	if err != nil {
		return Template{}, err
	}
	return saved, nil
}

// saveVersion appends version of name and writes its rows, inside tx, at the stream's expected
// version.
func (s *Store) saveVersion(ctx context.Context, tx pgx.Tx, name string, version int, expected int64, d Draft, actor string, create bool) error {
	vars := d.Variables
	if vars == nil {
		vars = []events.TemplateVariable{}
	}
	// A blank part is no part: an email whose content is spaces has only its HTML.
	blank := func(part string) string {
		if strings.TrimSpace(part) == "" {
			return ""
		}
		return part
	}
	ev := &events.TemplateVersionCreated{Name: name, Version: version, Channel: d.Channel, Subject: blank(d.Subject),
		Content: blank(d.Content), HTML: blank(d.HTML), Variables: vars, Description: strings.TrimSpace(d.Description)}
	md := events.Metadata{Actor: actor, CorrelationID: herald.CorrelationID(ctx)}
	recs, err := s.log.In(tx).Append(ctx, Stream(name), expected, md, ev)
	if err != nil {
		return fmt.Errorf("save template %s v%d: %w", name, version, err)
	}
	at := recs[0].Time
	if create {
		_, err = tx.Exec(ctx, `INSERT INTO templates (name, stream_id, stream_version, version, channel, description,
				created_at, created_by, updated_at, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $8)`,
			name, Stream(name), recs[0].Version, version, ev.Channel, ev.Description, at, actor)
	} else {
		_, err = tx.Exec(ctx, `UPDATE templates SET stream_version = $2, version = $3, description = $4,
				updated_at = $5, updated_by = $6 WHERE name = $1`,
			name, recs[0].Version, version, ev.Description, at, actor)
	}
	if err != nil {
		return fmt.Errorf("save template %s v%d: %w", name, version, err)
	}
	varsJSON, err := json.Marshal(vars)
	if err != nil {
		return fmt.Errorf("save template %s v%d: %w", name, version, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO template_versions (name, version, channel, subject, content, html, variables,
			description, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		name, version, ev.Channel, ev.Subject, ev.Content, ev.HTML, varsJSON, ev.Description, at, actor)
	if err != nil {
		return fmt.Errorf("save template %s v%d: %w", name, version, err)
	}
	return nil
}

// Archive archives the template named name, by actor, with reason, and returns it: its name no
// longer resolves for new sends, and it takes no new version. ENOTFOUND for no such template;
// ECONFLICT when it is archived already; EINVALID without a reason.
func (s *Store) Archive(ctx context.Context, name, reason, actor string) (Template, error) {
	return s.archiveOrRestore(ctx, name, reason, actor, true)
}

// Restore puts an archived template back in use, by actor, and returns it. ENOTFOUND for no
// such template; ECONFLICT when it is not archived; EINVALID without a reason.
func (s *Store) Restore(ctx context.Context, name, reason, actor string) (Template, error) {
	return s.archiveOrRestore(ctx, name, reason, actor, false)
}

func (s *Store) archiveOrRestore(ctx context.Context, name, reason, actor string, archive bool) (Template, error) {
	problems := map[string]string{}
	if p := NameProblem(name); p != "" {
		problems["name"] = p
	}
	if p := textProblem(reason, true); p != "" {
		problems["reason"] = p
	}
	if len(problems) > 0 {
		return Template{}, invalid("invalid request", problems)
	}
	reason = strings.TrimSpace(reason)
	var saved Template
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		cur, exists, err := s.lock(ctx, tx, name)
		switch {
		case err != nil:
			return err
		case !exists:
			return notFound(name)
		case archive && cur.Archived():
			return herald.Errorf(herald.ECONFLICT, "template %s is archived already", name)
		case !archive && !cur.Archived():
			return herald.Errorf(herald.ECONFLICT, "template %s is not archived", name)
		}
		var ev events.Event = &events.TemplateArchived{Name: name, Reason: reason}
		if !archive {
			ev = &events.TemplateRestored{Name: name, Reason: reason}
		}
		md := events.Metadata{Actor: actor, CorrelationID: herald.CorrelationID(ctx)}
		recs, err := s.log.In(tx).Append(ctx, Stream(name), cur.StreamVersion, md, ev)
		if err != nil {
			return fmt.Errorf("%s template %s: %w", ev.EventType(), name, err)
		}
		if archive {
			_, err = tx.Exec(ctx, `UPDATE templates SET stream_version = $2, archived_at = $3, archived_by = $4,
				archived_reason = $5 WHERE name = $1`, name, recs[0].Version, recs[0].Time, actor, reason)
		} else {
			_, err = tx.Exec(ctx, `UPDATE templates SET stream_version = $2, archived_at = NULL, archived_by = NULL,
				archived_reason = NULL WHERE name = $1`, name, recs[0].Version)
		}
		if err != nil {
			return fmt.Errorf("%s template %s: %w", ev.EventType(), name, err)
		}
		saved, err = get(ctx, tx, name)
		return err
	})
	if err != nil {
		return Template{}, err
	}
	return saved, nil
}

// lock takes the template named name for the rest of tx, so that concurrent changes of one
// template are made one after the other, each at its stream's version; exists is false when
// there is no such template yet.
func (s *Store) lock(ctx context.Context, tx pgx.Tx, name string) (Template, bool, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, Stream(name)); err != nil {
		return Template{}, false, fmt.Errorf("lock template %s: %w", name, err)
	}
	t, err := get(ctx, tx, name)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return Template{}, false, nil
	}
	if err != nil {
		return Template{}, false, err
	}
	return t, true, nil
}

// get reads the template named name through q. ENOTFOUND for no such template.
func get(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (Template, error) {
	t, err := scanTemplate(q.QueryRow(ctx, `SELECT `+templateColumns+` FROM `+templateFrom+` WHERE t.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Template{}, notFound(name)
	}
	if err != nil {
		return Template{}, fmt.Errorf("template %s: %w", name, err)
	}
	return t, nil
}

// Get returns the template named name, archived or not. ENOTFOUND for no such template;
// EINVALID (field name) for a name no template can have.
func (s *Store) Get(ctx context.Context, name string) (Template, error) {
	if p := NameProblem(name); p != "" {
		return Template{}, invalid("invalid template name", map[string]string{"name": p})
	}
	return get(ctx, s.db, name)
}

// GetVersion returns version of the template named name, archived or not. ENOTFOUND for no
// such template or version.
func (s *Store) GetVersion(ctx context.Context, name string, version int) (Version, error) {
	if p := NameProblem(name); p != "" {
		return Version{}, invalid("invalid template name", map[string]string{"name": p})
	}
	v, err := scanVersion(s.db.QueryRow(ctx, `SELECT `+versionColumns+` FROM template_versions v
		WHERE v.name = $1 AND v.version = $2`, name, version))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.Get(ctx, name); err != nil {
			return Version{}, err
		}
		return Version{}, herald.Errorf(herald.ENOTFOUND, "template %s has no version %d", name, version)
	}
	if err != nil {
		return Version{}, fmt.Errorf("template %s v%d: %w", name, version, err)
	}
	return v, nil
}

// Versions returns every version of the template named name, the first first. ENOTFOUND for no
// such template.
func (s *Store) Versions(ctx context.Context, name string) ([]Version, error) {
	if _, err := s.Get(ctx, name); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+versionColumns+` FROM template_versions v WHERE v.name = $1 ORDER BY v.version`, name)
	if err != nil {
		return nil, fmt.Errorf("versions of template %s: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Version, error) { return scanVersion(row) })
	if err != nil {
		return nil, fmt.Errorf("versions of template %s: %w", name, err)
	}
	return out, nil
}

// History returns the stream of the template named name: every change, in order. ENOTFOUND
// for no such template.
func (s *Store) History(ctx context.Context, name string) ([]events.Recorded, error) {
	if p := NameProblem(name); p != "" {
		return nil, invalid("invalid template name", map[string]string{"name": p})
	}
	recs, err := s.log.Load(ctx, Stream(name))
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, notFound(name)
	}
	return recs, nil
}

// Resolve returns the version ref names for a new send: "welcome" is the latest version of
// welcome, "welcome@3" its version 3. An archived template resolves to nothing, by name or by
// version: archiving refuses every new send of it (its versions stay readable with GetVersion).
// EINVALID with the field "template" for a ref no template can have and for an archived
// template; ENOTFOUND for no such template or version.
func (s *Store) Resolve(ctx context.Context, ref string) (Version, error) {
	name, version, problem := ParseRef(ref)
	if problem != "" {
		return Version{}, invalid("invalid template "+strconv.Quote(ref), map[string]string{"template": problem})
	}
	t, err := s.Get(ctx, name)
	if err != nil {
		return Version{}, err
	}
	if t.Archived() {
		problem := fmt.Sprintf("template %s is archived (%s) and takes no new sends", name, t.ArchivedReason)
		return Version{}, herald.Invalid(problem, map[string]string{"template": problem})
	}
	if version == 0 {
		return t.Latest, nil
	}
	return s.GetVersion(ctx, name, version)
}

// ParseRef splits a template reference, "name" or "name@N", into the name and the version
// (0 for the latest). problem says what is wrong with ref, "" when nothing is.
func ParseRef(ref string) (name string, version int, problem string) {
	name, v, hasVersion := strings.Cut(ref, "@")
	if p := NameProblem(name); p != "" {
		return "", 0, "name " + p
	}
	if !hasVersion {
		return name, 0, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || strconv.Itoa(n) != v {
		return "", 0, fmt.Sprintf("version %q must be a positive whole number, as in %s@3", v, name)
	}
	return name, n, ""
}

// Defaults returns the variables a send of v uses: vars, with the default of each declared
// variable vars leaves out. vars is not changed. EINVALID, with the field variables.<name> for
// each, when vars leaves out a declared variable that has no default.
func Defaults(v Version, vars map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(vars)+len(v.Variables))
	maps.Copy(out, vars)
	problems := map[string]string{}
	for _, tv := range v.Variables {
		if _, given := out[tv.Name]; given {
			continue
		}
		if tv.Default == nil {
			problems["variables."+tv.Name] = fmt.Sprintf("is required by template %s@%d, which gives it no default", v.Name, v.Version)
			continue
		}
		out[tv.Name] = *tv.Default
	}
	if len(problems) > 0 {
		return nil, invalid("variables missing for template "+v.Name, problems)
	}
	return out, nil
}

// templateFrom joins a template to its latest version; templateColumns are what scanTemplate
// reads from it.
const (
	templateFrom    = `templates t JOIN template_versions v ON v.name = t.name AND v.version = t.version`
	templateColumns = versionColumns + `, t.created_at, t.created_by, t.updated_at, t.updated_by, t.archived_at,
		coalesce(t.archived_by, ''), coalesce(t.archived_reason, ''), t.stream_version`
	versionColumns = `v.name, v.version, v.channel, v.subject, v.content, v.html, v.variables, v.description,
		v.created_at, v.created_by`
)

func scanTemplate(row pgx.Row) (Template, error) {
	var t Template
	var vars []byte
	v := &t.Latest
	err := row.Scan(&v.Name, &v.Version, &v.Channel, &v.Subject, &v.Content, &v.HTML, &vars, &v.Description,
		&v.CreatedAt, &v.CreatedBy, &t.CreatedAt, &t.CreatedBy, &t.UpdatedAt, &t.UpdatedBy, &t.ArchivedAt,
		&t.ArchivedBy, &t.ArchivedReason, &t.StreamVersion)
	if err != nil {
		return Template{}, err
	}
	if err := json.Unmarshal(vars, &v.Variables); err != nil {
		return Template{}, fmt.Errorf("variables of template %s v%d: %w", v.Name, v.Version, err)
	}
	return t, nil
}

func scanVersion(row pgx.Row) (Version, error) {
	var v Version
	var vars []byte
	err := row.Scan(&v.Name, &v.Version, &v.Channel, &v.Subject, &v.Content, &v.HTML, &vars, &v.Description,
		&v.CreatedAt, &v.CreatedBy)
	if err != nil {
		return Version{}, err
	}
	if err := json.Unmarshal(vars, &v.Variables); err != nil {
		return Version{}, fmt.Errorf("variables of template %s v%d: %w", v.Name, v.Version, err)
	}
	return v, nil
}

func notFound(name string) error {
	return herald.Errorf(herald.ENOTFOUND, "no template named %s", name)
}

// invalid is EINVALID with problems, its message naming each field.
func invalid(what string, problems map[string]string) error {
	var parts []string
	for _, f := range slices.Sorted(maps.Keys(problems)) {
		parts = append(parts, f+" "+problems[f])
	}
	return herald.Invalid(what+": "+strings.Join(parts, "; "), problems)
}

// textProblem checks a description or, when required, a reason.
func textProblem(s string, required bool) string {
	switch t := strings.TrimSpace(s); {
	case t == "" && required:
		return "is required: say why"
	case !utf8.ValidString(t):
		return "is not valid UTF-8"
	case strings.ContainsRune(t, 0):
		return "must not contain NUL characters"
	case utf8.RuneCountInString(t) > MaxTextChars:
		return fmt.Sprintf("is longer than %d characters", MaxTextChars)
	}
	return ""
}
