package templatestore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/templatestore"
)

type setup struct {
	pool  *pgxpool.Pool
	store *templatestore.Store
}

func newSetup(t *testing.T) setup {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return setup{pool: pool, store: templatestore.New(pool)}
}

// written counts the template events in the log and the rows of both tables.
func (s setup) written(t *testing.T) string {
	t.Helper()
	var evs, tpls, versions int
	err := s.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM event_log WHERE event_type = ANY($1)),
		(SELECT count(*) FROM templates), (SELECT count(*) FROM template_versions)`,
		[]string{events.TypeTemplateVersionCreated, events.TypeTemplateArchived, events.TypeTemplateRestored}).Scan(&evs, &tpls, &versions)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d events, %d templates, %d versions", evs, tpls, versions)
}

func ptr[T any](v T) *T { return &v }

func welcome() templatestore.Draft {
	return templatestore.Draft{
		Channel: herald.ChannelEmail, Subject: "Welcome, {{.name}}",
		Content:   "Hello {{.name}}, you are on the {{.plan}} plan.",
		HTML:      "<p>Hello {{.name}}</p>",
		Variables: []events.TemplateVariable{{Name: "name"}, {Name: "plan", Default: ptr("free")}},
	}
}

// TestCreateUpdateArchive: versions number 1, 2, … each carrying the whole template; the name
// resolves to the latest until it is archived; every change is an event with its actor.
func TestCreateUpdateArchive(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	created, err := s.store.Create(ctx, "welcome", welcome(), "apikey:ops")
	if err != nil {
		t.Fatal(err)
	}
	if created.Latest.Version != 1 || created.Latest.Content != welcome().Content || created.Latest.HTML != welcome().HTML ||
		created.CreatedBy != "apikey:ops" || created.Archived() || created.StreamVersion != 1 {
		t.Errorf("created %+v", created)
	}
	if _, err := s.store.Create(ctx, "welcome", welcome(), "apikey:ops"); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Errorf("second Create of welcome: %v, want ECONFLICT", err)
	}

	d := welcome()
	d.Channel = "" // an update keeps the channel
	d.Content = "Hi {{.name}}!"
	d.HTML = ""
	d.Description = "shorter"
	updated, err := s.store.Update(ctx, "welcome", d, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if updated.Latest.Version != 2 || updated.Latest.Channel != herald.ChannelEmail || updated.Latest.HTML != "" ||
		updated.UpdatedBy != "alice" || updated.CreatedBy != "apikey:ops" || updated.Latest.Description != "shorter" {
		t.Errorf("updated %+v", updated)
	}
	v1, err := s.store.GetVersion(ctx, "welcome", 1)
	if err != nil || v1.Content != welcome().Content || v1.HTML != welcome().HTML {
		t.Errorf("version 1 after an update = %+v, %v; want it unchanged", v1, err)
	}
	if _, err := s.store.GetVersion(ctx, "welcome", 3); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("GetVersion 3: %v, want ENOTFOUND", err)
	}
	versions, err := s.store.Versions(ctx, "welcome")
	if err != nil || len(versions) != 2 || versions[0].Version != 1 || versions[1].Version != 2 {
		t.Errorf("Versions = %+v, %v", versions, err)
	}
	if diff := cmp.Diff(updated.Latest, versions[1]); diff != "" {
		t.Errorf("the latest version differs from Versions' last (-latest +versions):\n%s", diff)
	}

	got, err := s.store.Resolve(ctx, "welcome")
	if err != nil || got.Version != 2 {
		t.Errorf("Resolve(welcome) = v%d, %v; want v2", got.Version, err)
	}
	got, err = s.store.Resolve(ctx, "welcome@1")
	if err != nil || got.Version != 1 || got.Content != welcome().Content {
		t.Errorf("Resolve(welcome@1) = %+v, %v; want v1", got, err)
	}

	if _, err := s.store.Archive(ctx, "welcome", " ", "alice"); herald.ErrorFields(err)["reason"] == "" {
		t.Errorf("Archive without a reason: %v, want EINVALID naming reason", err)
	}
	archived, err := s.store.Archive(ctx, "welcome", "replaced by onboarding", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !archived.Archived() || archived.ArchivedBy != "alice" || archived.ArchivedReason != "replaced by onboarding" || archived.Latest.Version != 2 {
		t.Errorf("archived %+v", archived)
	}
	if _, err := s.store.Archive(ctx, "welcome", "again", "alice"); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Errorf("Archive of an archived template: %v, want ECONFLICT", err)
	}
	for _, ref := range []string{"welcome", "welcome@1"} {
		if _, err := s.store.Resolve(ctx, ref); herald.ErrorFields(err)["template"] == "" {
			t.Errorf("Resolve(%s) of an archived template: %v, want EINVALID naming template", ref, err)
		}
	}
	if _, err := s.store.GetVersion(ctx, "welcome", 1); err != nil {
		t.Errorf("GetVersion of an archived template: %v; its versions stay readable", err)
	}
	before := s.written(t)
	if _, err := s.store.Update(ctx, "welcome", welcome(), "alice"); herald.ErrorFields(err)["name"] == "" {
		t.Errorf("Update of an archived template: %v, want EINVALID naming name", err)
	}
	if after := s.written(t); after != before {
		t.Errorf("a refused update wrote: %s, then %s", before, after)
	}

	restored, err := s.store.Restore(ctx, "welcome", "onboarding withdrawn", "bob")
	if err != nil || restored.Archived() {
		t.Fatalf("Restore = %+v, %v", restored, err)
	}
	if got, err := s.store.Resolve(ctx, "welcome"); err != nil || got.Version != 2 {
		t.Errorf("Resolve after Restore = v%d, %v; want v2", got.Version, err)
	}
	third, err := s.store.Update(ctx, "welcome", welcome(), "bob")
	if err != nil || third.Latest.Version != 3 || third.StreamVersion != 5 {
		t.Errorf("Update after Restore = v%d at stream version %d, %v; want v3 at 5", third.Latest.Version, third.StreamVersion, err)
	}

	recs, err := s.store.History(ctx, "welcome")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Type+" by "+r.Metadata.Actor)
		if r.StreamID != templatestore.Stream("welcome") {
			t.Errorf("%s on stream %s, want the template's", r.Type, r.StreamID)
		}
	}
	want := []string{"TemplateVersionCreated by apikey:ops", "TemplateVersionCreated by alice", "TemplateArchived by alice",
		"TemplateRestored by bob", "TemplateVersionCreated by bob"}
	if !slices.Equal(kinds, want) {
		t.Errorf("history = %v, want %v", kinds, want)
	}
	ev, err := recs[0].Event()
	if err != nil {
		t.Fatal(err)
	}
	wantEv := &events.TemplateVersionCreated{Name: "welcome", Version: 1, Channel: herald.ChannelEmail, Subject: welcome().Subject,
		Content: welcome().Content, HTML: welcome().HTML, Variables: welcome().Variables}
	if diff := cmp.Diff(wantEv, ev); diff != "" {
		t.Errorf("first event (-want +got):\n%s", diff)
	}
}

// TestNotFound: a name with no template is ENOTFOUND everywhere, and nothing is written.
func TestNotFound(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	for what, err := range map[string]error{
		"Get":        second(s.store.Get(ctx, "nope")),
		"GetVersion": second(s.store.GetVersion(ctx, "nope", 1)),
		"Versions":   second(s.store.Versions(ctx, "nope")),
		"History":    second(s.store.History(ctx, "nope")),
		"Update":     second(s.store.Update(ctx, "nope", welcome(), "ops")),
		"Archive":    second(s.store.Archive(ctx, "nope", "r", "ops")),
		"Restore":    second(s.store.Restore(ctx, "nope", "r", "ops")),
		"Resolve":    second(s.store.Resolve(ctx, "nope@2")),
	} {
		if herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Errorf("%s: %v, want ENOTFOUND", what, err)
		}
	}
	if got := s.written(t); got != "0 events, 0 templates, 0 versions" {
		t.Errorf("wrote %s", got)
	}
}

func second[T any](_ T, err error) error { return err }

// TestCreateRefusesBadInput names each bad field and writes nothing.
func TestCreateRefusesBadInput(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	sms := func(content string, vars ...events.TemplateVariable) templatestore.Draft {
		return templatestore.Draft{Channel: herald.ChannelSMS, Content: content, Variables: vars}
	}
	email := func(f func(*templatestore.Draft)) templatestore.Draft {
		d := welcome()
		f(&d)
		return d
	}
	for _, tt := range []struct {
		name   string
		tpl    string
		draft  templatestore.Draft
		fields []string
	}{
		{"empty name", "", sms("hi"), []string{"name"}},
		{"upper case", "Welcome", sms("hi"), []string{"name"}},
		{"at", "welcome@2", sms("hi"), []string{"name"}},
		{"leading dash", "-welcome", sms("hi"), []string{"name"}},
		{"long name", strings.Repeat("a", 65), sms("hi"), []string{"name"}},
		{"no channel", "a", templatestore.Draft{Content: "hi"}, []string{"channel"}},
		{"fax", "a", templatestore.Draft{Channel: "fax", Content: "hi"}, []string{"channel"}},
		{"sms without content", "a", sms(""), []string{"content"}},
		{"sms subject and html", "a", templatestore.Draft{Channel: herald.ChannelSMS, Content: "hi", Subject: "s", HTML: "<p>"}, []string{"subject", "html"}},
		{"email without a body", "a", email(func(d *templatestore.Draft) { d.Content, d.HTML = "", " " }), []string{"content", "html"}},
		{"content does not parse", "a", sms("{{.name"), []string{"content"}},
		{"NUL in content", "a", sms("hi\x00"), []string{"content"}},
		{"NUL in a default", "a", sms("hi {{.n}}", events.TemplateVariable{Name: "n", Default: ptr("x\x00")}), []string{"variables[0]"}},
		{"NUL in the description", "a", templatestore.Draft{Channel: herald.ChannelSMS, Content: "hi", Description: "d\x00"}, []string{"description"}},
		{"srcdoc in html", "a", email(func(d *templatestore.Draft) { d.HTML = `<iframe srcdoc="{{.name}}"></iframe>` }), []string{"html"}},
		{"content outside the subset", "a", sms(`{{printf "%d" 1}}`), []string{"content"}},
		{"subject does not parse", "a", email(func(d *templatestore.Draft) { d.Subject = "{{if}}" }), []string{"subject"}},
		{"subject on two lines", "a", email(func(d *templatestore.Draft) { d.Subject = "a\nb" }), []string{"subject"}},
		{"html does not parse", "a", email(func(d *templatestore.Draft) { d.HTML = "<p>{{.name}</p>" }), []string{"html"}},
		{"content too long", "a", sms(strings.Repeat("x", templatestore.MaxPartBytes+1)), []string{"content"}},
		{"undeclared variable", "a", sms("{{.code}} for {{.name}}", events.TemplateVariable{Name: "name"}), []string{"variables.code"}},
		{"undeclared in html", "a", email(func(d *templatestore.Draft) { d.HTML = "{{.footer}}" }), []string{"variables.footer"}},
		{"undeclared in subject", "a", email(func(d *templatestore.Draft) { d.Subject = "{{.title}}" }), []string{"variables.title"}},
		{"bad variable name", "a", sms("hi", events.TemplateVariable{Name: "a b"}), []string{"variables[0]"}},
		{"duplicate variable", "a", sms("hi", events.TemplateVariable{Name: "x"}, events.TemplateVariable{Name: "x"}), []string{"variables[1]"}},
		{"long default", "a", sms("hi", events.TemplateVariable{Name: "x", Default: ptr(strings.Repeat("d", templatestore.MaxDefaultChars+1))}), []string{"variables[0]"}},
		{"long description", "a", email(func(d *templatestore.Draft) { d.Description = strings.Repeat("d", templatestore.MaxTextChars+1) }), []string{"description"}},
	} {
		_, err := s.store.Create(ctx, tt.tpl, tt.draft, "ops")
		fields := herald.ErrorFields(err)
		if herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("%s: %v, want EINVALID", tt.name, err)
			continue
		}
		for _, f := range tt.fields {
			if fields[f] == "" {
				t.Errorf("%s: fields %v, want %s named", tt.name, fields, f)
			} else if !strings.Contains(herald.ErrorMessage(err), f) {
				t.Errorf("%s: message %q does not name %s", tt.name, herald.ErrorMessage(err), f)
			}
		}
	}
	if got := s.written(t); got != "0 events, 0 templates, 0 versions" {
		t.Errorf("refused input wrote %s", got)
	}

	// What is allowed: a declared variable that no part uses, default's own variables, html only.
	ok := templatestore.Draft{Channel: herald.ChannelEmail, HTML: `<p>Hi {{default "friend" .nick}}</p>`,
		Variables: []events.TemplateVariable{{Name: "nick"}, {Name: "unused"}}}
	ok.Content, ok.Subject = " \n", "  "
	got, err := s.store.Create(ctx, "html-only_1", ok, "ops")
	if err != nil {
		t.Fatalf("Create of an html-only email: %v", err)
	}
	if got.Latest.Content != "" || got.Latest.Subject != "" || got.Latest.HTML != ok.HTML {
		t.Errorf("blank parts saved as %q, %q; want none", got.Latest.Subject, got.Latest.Content)
	}
}

// TestUpdateRefusesBadInput: an update is checked like a create, may not change the channel,
// and writes nothing when refused.
func TestUpdateRefusesBadInput(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	if _, err := s.store.Create(ctx, "otp", templatestore.Draft{Channel: herald.ChannelSMS, Content: "{{.code}}",
		Variables: []events.TemplateVariable{{Name: "code"}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	before := s.written(t)
	for _, tt := range []struct {
		draft templatestore.Draft
		field string
	}{
		{welcome(), "channel"},
		{templatestore.Draft{Content: "{{.code}} {{.ttl}}", Variables: []events.TemplateVariable{{Name: "code"}}}, "variables.ttl"},
		{templatestore.Draft{Content: ""}, "content"},
	} {
		_, err := s.store.Update(ctx, "otp", tt.draft, "ops")
		if herald.ErrorCode(err) != herald.EINVALID || herald.ErrorFields(err)[tt.field] == "" {
			t.Errorf("Update(%+v): %v, want EINVALID naming %s", tt.draft, err, tt.field)
		}
	}
	if after := s.written(t); after != before {
		t.Errorf("refused updates wrote: %s, then %s", before, after)
	}
}

// TestConcurrentUpdates: updates of one template at once each get a version of their own, with
// no gap, and the log holds one event for each.
func TestConcurrentUpdates(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	if _, err := s.store.Create(ctx, "otp", templatestore.Draft{Channel: herald.ChannelSMS, Content: "v1"}, "ops"); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	got := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tpl, err := s.store.Update(ctx, "otp", templatestore.Draft{Content: fmt.Sprintf("update %d", i)}, "ops")
			got[i], errs[i] = tpl.Latest.Version, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	slices.Sort(got)
	for i, v := range got {
		if v != i+2 {
			t.Fatalf("versions returned %v, want 2 to %d once each", got, n+1)
		}
	}
	versions, err := s.store.Versions(ctx, "otp")
	if err != nil || len(versions) != n+1 {
		t.Fatalf("Versions: %d, %v; want %d", len(versions), err, n+1)
	}
	// Each version is the content of the update that made it, as its event says.
	recs, err := s.store.History(ctx, "otp")
	if err != nil || len(recs) != n+1 {
		t.Fatalf("History: %d events, %v", len(recs), err)
	}
	for i, r := range recs {
		ev, err := r.Event()
		if err != nil {
			t.Fatal(err)
		}
		created := ev.(*events.TemplateVersionCreated)
		if created.Version != i+1 || r.Version != int64(i+1) || created.Content != versions[i].Content {
			t.Errorf("event %d: version %d at stream version %d, content %q; want version %d, content %q",
				i, created.Version, r.Version, created.Content, i+1, versions[i].Content)
		}
	}
	if latest, err := s.store.Get(ctx, "otp"); err != nil || latest.Latest.Version != n+1 || latest.StreamVersion != n+1 {
		t.Errorf("Get = %+v, %v", latest, err)
	}
}

// TestUpdateFrom: an edit of a version that is no longer the latest is refused, and writes
// nothing; an edit of the latest is saved.
func TestUpdateFrom(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	if _, err := s.store.Create(ctx, "otp", templatestore.Draft{Channel: herald.ChannelSMS, Content: "v1"}, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Update(ctx, "otp", templatestore.Draft{Content: "v2"}, "ann"); err != nil {
		t.Fatal(err)
	}
	before := s.written(t)
	if _, err := s.store.UpdateFrom(ctx, "otp", 1, templatestore.Draft{Content: "edit of v1"}, "bob"); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Errorf("UpdateFrom version 1 at version 2: %v, want ECONFLICT", err)
	}
	if after := s.written(t); after != before {
		t.Errorf("a refused UpdateFrom wrote: %s, then %s", before, after)
	}
	got, err := s.store.UpdateFrom(ctx, "otp", 2, templatestore.Draft{Content: "edit of v2"}, "bob")
	if err != nil || got.Latest.Version != 3 || got.Latest.Content != "edit of v2" {
		t.Errorf("UpdateFrom version 2 = %+v, %v; want version 3", got.Latest, err)
	}
}

// TestConcurrentCreates: of creates of one name at once, one wins and the rest are ECONFLICT.
func TestConcurrentCreates(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	codes := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.store.Create(ctx, "otp", templatestore.Draft{Channel: herald.ChannelSMS, Content: "hi"}, "ops")
			codes[i] = herald.ErrorCode(err)
		}()
	}
	wg.Wait()
	slices.Sort(codes)
	want := append([]string{""}, slices.Repeat([]string{herald.ECONFLICT}, n-1)...)
	slices.Sort(want)
	if !slices.Equal(codes, want) {
		t.Errorf("codes %v, want one success and %d conflicts", codes, n-1)
	}
	if got := s.written(t); got != "1 events, 1 templates, 1 versions" {
		t.Errorf("wrote %s", got)
	}
}

// TestList pages by name and filters by channel and archiving.
func TestList(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	for _, name := range []string{"c-sms", "a-email", "b-sms", "d-email"} {
		d := templatestore.Draft{Channel: herald.ChannelSMS, Content: "hi"}
		if strings.HasSuffix(name, "email") {
			d.Channel = herald.ChannelEmail
		}
		if _, err := s.store.Create(ctx, name, d, "ops"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.store.Archive(ctx, "b-sms", "gone", "ops"); err != nil {
		t.Fatal(err)
	}
	names := func(f templatestore.Filter) []string {
		t.Helper()
		var out []string
		for {
			page, next, err := s.store.List(ctx, f)
			if err != nil {
				t.Fatalf("List(%+v): %v", f, err)
			}
			for _, tpl := range page {
				out = append(out, tpl.Name())
			}
			if next == "" {
				return out
			}
			f.Cursor = next
		}
	}
	for _, tt := range []struct {
		f    templatestore.Filter
		want []string
	}{
		{templatestore.Filter{}, []string{"a-email", "c-sms", "d-email"}},
		{templatestore.Filter{Limit: 1}, []string{"a-email", "c-sms", "d-email"}},
		{templatestore.Filter{Archived: templatestore.ArchivedOnly}, []string{"b-sms"}},
		{templatestore.Filter{Archived: templatestore.ArchivedInclude, Limit: 2}, []string{"a-email", "b-sms", "c-sms", "d-email"}},
		{templatestore.Filter{Channel: herald.ChannelSMS, Archived: templatestore.ArchivedInclude}, []string{"b-sms", "c-sms"}},
		{templatestore.Filter{Channel: herald.ChannelEmail}, []string{"a-email", "d-email"}},
	} {
		if got := names(tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("List(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
	for _, tt := range []struct {
		f     templatestore.Filter
		field string
	}{
		{templatestore.Filter{Channel: "fax"}, "channel"},
		{templatestore.Filter{Archived: "yes"}, "archived"},
		{templatestore.Filter{Limit: templatestore.MaxLimit + 1}, "limit"},
		{templatestore.Filter{Cursor: "!!"}, "cursor"},
	} {
		if _, _, err := s.store.List(ctx, tt.f); herald.ErrorFields(err)[tt.field] == "" {
			t.Errorf("List(%+v): %v, want EINVALID naming %s", tt.f, err, tt.field)
		}
	}
}

func TestParseRef(t *testing.T) {
	for _, tt := range []struct {
		ref     string
		name    string
		version int
		bad     bool
	}{
		{"welcome", "welcome", 0, false},
		{"welcome@3", "welcome", 3, false},
		{"welcome@0", "", 0, true},
		{"welcome@03", "", 0, true},
		{"welcome@", "", 0, true},
		{"welcome@x", "", 0, true},
		{"welcome@1@2", "", 0, true},
		{"@2", "", 0, true},
		{"Welcome", "", 0, true},
	} {
		name, version, problem := templatestore.ParseRef(tt.ref)
		if name != tt.name || version != tt.version || (problem != "") != tt.bad {
			t.Errorf("ParseRef(%q) = %q, %d, %q", tt.ref, name, version, problem)
		}
	}
}

// TestDefaults fills what a send leaves out and names what it cannot fill.
func TestDefaults(t *testing.T) {
	v := templatestore.Version{Name: "welcome", Version: 3, Variables: []events.TemplateVariable{
		{Name: "name"}, {Name: "plan", Default: ptr("free")}, {Name: "team"}}}
	given := map[string]any{"name": "Ada", "team": "core", "extra": 1}
	got, err := templatestore.Defaults(v, given)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"name": "Ada", "team": "core", "extra": 1, "plan": "free"}, got); diff != "" {
		t.Errorf("Defaults (-want +got):\n%s", diff)
	}
	if _, filled := given["plan"]; filled {
		t.Error("Defaults changed the send's variables")
	}
	got, err = templatestore.Defaults(v, map[string]any{"name": "Ada", "plan": "pro", "team": "x"})
	if err != nil || got["plan"] != "pro" {
		t.Errorf("a given variable with a default: %v, %v; want the given one", got, err)
	}
	_, err = templatestore.Defaults(v, map[string]any{"plan": "pro"})
	fields := herald.ErrorFields(err)
	if herald.ErrorCode(err) != herald.EINVALID || fields["variables.name"] == "" || fields["variables.team"] == "" || len(fields) != 2 {
		t.Errorf("Defaults without name and team: %v (fields %v), want both named", err, fields)
	}
}
