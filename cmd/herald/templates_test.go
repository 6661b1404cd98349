package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/templatestore"
	"github.com/herald-notify/herald/wire"
)

// templatesCLI runs herald templates against a scratch database.
type templatesCLI struct {
	db *heraldtest.Database
}

func newTemplatesCLI(t *testing.T) *templatesCLI {
	t.Helper()
	commandSettings(t)
	return &templatesCLI{db: heraldtest.NewDatabase(t)}
}

func (c *templatesCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runHerald(t, append(append([]string{"templates"}, args...), "--database-url", c.db.URL)...)
}

func (c *templatesCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("herald templates %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// written counts the templates' rows and events.
func (c *templatesCLI) written(t *testing.T) [3]int {
	t.Helper()
	var n [3]int
	if err := c.db.Pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM templates), (SELECT count(*) FROM template_versions),
		(SELECT count(*) FROM event_log WHERE event_type = ANY($1))`,
		[]string{events.TypeTemplateVersionCreated, events.TypeTemplateArchived, events.TypeTemplateRestored}).Scan(&n[0], &n[1], &n[2]); err != nil {
		t.Fatal(err)
	}
	return n
}

// writeFile writes text to a file of the test's own and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTemplatesCreateUpdateShowArchive(t *testing.T) {
	c := newTemplatesCLI(t)
	me, err := poisonActor("")
	if err != nil {
		t.Fatal(err)
	}
	text := writeFile(t, "welcome.txt", "Hello {{.name}},\nyou are on {{.plan}}.\n")
	html := writeFile(t, "welcome.html", "<p>Hello {{.name}}</p>\n")
	var created wire.Template
	decodeOutput(t, c.must(t, "create", "welcome", "--channel", "email", "--subject", "Welcome, {{.name}}",
		"--content-file", text, "--html-file", html, "--var", "name", "--var", "plan=free", "--description", "sign-up", "-o", "json"), &created)
	if created.Version != 1 || created.Content != "Hello {{.name}},\nyou are on {{.plan}}.\n" || created.HTML != "<p>Hello {{.name}}</p>\n" ||
		created.CreatedBy != me || len(created.Variables) != 2 || created.Variables[1].Default == nil || *created.Variables[1].Default != "free" {
		t.Errorf("create -o json: %+v", created)
	}

	// update keeps what it is not given: here the subject, the content and the variables.
	out := c.must(t, "update", "welcome", "--html-file", writeFile(t, "v2.html", "<h1>Hi {{.name}}</h1>"), "--actor", "ann")
	if !strings.Contains(out, "Saved template welcome (version 2)") || !strings.Contains(out, "<h1>Hi {{.name}}</h1>") ||
		!strings.Contains(out, "you are on {{.plan}}.") || !strings.Contains(out, "name, plan=free") {
		t.Errorf("update printed:\n%s", out)
	}
	// An empty file clears a part.
	var v3 wire.Template
	decodeOutput(t, c.must(t, "update", "welcome", "--html-file", writeFile(t, "empty.html", ""), "-o", "json"), &v3)
	if v3.Version != 3 || v3.HTML != "" || v3.Subject != "Welcome, {{.name}}" {
		t.Errorf("update clearing html: %+v", v3)
	}

	show := c.must(t, "show", "welcome")
	for _, want := range []string{"Version", "3", "in use", "Subject:", "Welcome, {{.name}}", "History:", "ann", me,
		"template welcome v2 (email; variables name, plan=free)"} {
		if !strings.Contains(show, want) {
			t.Errorf("show does not show %q:\n%s", want, show)
		}
	}
	var v2 wire.TemplateVersion
	decodeOutput(t, c.must(t, "show", "welcome@2", "-o", "json"), &v2)
	if v2.Version != 2 || v2.HTML != "<h1>Hi {{.name}}</h1>" || v2.CreatedBy != "ann" {
		t.Errorf("show welcome@2 -o json: %+v", v2)
	}
	var versions wire.TemplateVersionList
	decodeOutput(t, c.must(t, "versions", "welcome", "-o", "json"), &versions)
	if len(versions.Versions) != 3 {
		t.Errorf("versions: %+v", versions)
	}
	if out := c.must(t, "versions", "welcome"); !strings.Contains(out, "VERSION") || strings.Count(out, "name, plan=free") != 3 {
		t.Errorf("versions printed:\n%s", out)
	}

	c.must(t, "create", "otp", "--channel", "sms", "--content", "Code {{.code}}", "--var", "code")
	out = c.must(t, "archive", "welcome", "--reason", "replaced by onboarding")
	if !strings.Contains(out, "Archived template welcome") || !strings.Contains(out, "replaced by onboarding") {
		t.Errorf("archive printed:\n%s", out)
	}
	if out := c.must(t, "list"); !strings.Contains(out, "otp") || strings.Contains(out, "welcome") {
		t.Errorf("list shows:\n%s", out)
	}
	if out := c.must(t, "list", "--all"); !strings.Contains(squeezeSpaces(out), "welcome email 3 archived") {
		t.Errorf("list --all does not show welcome archived:\n%s", out)
	}
	var page wire.TemplateList
	decodeOutput(t, c.must(t, "list", "--archived", "-o", "json"), &page)
	if len(page.Templates) != 1 || page.Templates[0].Name != "welcome" || !page.Templates[0].Archived {
		t.Errorf("list --archived -o json: %+v", page)
	}
	if _, err := c.run(t, "update", "welcome", "--content", "x"); err == nil || !strings.Contains(err.Error(), "NAME: template welcome is archived") {
		t.Errorf("update of an archived template: %v", err)
	}
	c.must(t, "restore", "welcome", "--reason", "back")

	// -o json prints what the API's constructor makes of the template: the same JSON.
	stored, err := templatestore.New(c.db.Pool).Get(t.Context(), "otp")
	if err != nil {
		t.Fatal(err)
	}
	var cli wire.Template
	decodeOutput(t, c.must(t, "show", "otp", "-o", "json"), &cli)
	if diff := cmp.Diff(wire.NewTemplate(stored), cli); diff != "" {
		t.Errorf("show -o json differs from the API's shape (-api +cli):\n%s", diff)
	}
}

// TestTemplatesRefuseBadInputAndWriteNothing: each mistake names what to fix.
func TestTemplatesRefuseBadInputAndWriteNothing(t *testing.T) {
	c := newTemplatesCLI(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "otp", "--content", "hi"}, `"channel" not set`},
		{[]string{"create", "otp", "--channel", "fax", "--content", "hi"}, "--channel: unknown channel"},
		{[]string{"create", "Bad Name", "--channel", "sms", "--content", "hi"}, "NAME: must be 1 to 64"},
		{[]string{"create", "otp", "--channel", "sms"}, "--content-file: is required"},
		{[]string{"create", "otp", "--channel", "sms", "--content", "{{.code}}"}, "--var code: is used by content but not declared"},
		{[]string{"create", "otp", "--channel", "sms", "--content", "{{.code"}, "--content-file:"},
		{[]string{"create", "otp", "--channel", "sms", "--content", "hi", "--subject", "s"}, "--subject: is only for email"},
		{[]string{"create", "otp", "--channel", "email", "--html-file", writeFile(t, "bad.html", "{{if}}")}, "--html-file:"},
		{[]string{"create", "otp", "--channel", "sms", "--content", "hi", "--content-file", "x"}, "give the content one way"},
		{[]string{"create", "otp", "--channel", "sms", "--content-file", "/nonexistent/otp.txt"}, "--content-file: open /nonexistent/otp.txt"},
		{[]string{"create", "otp", "--channel", "sms", "--content", "hi", "--var", "=x"}, `--var "=x": give NAME or NAME=DEFAULT`},
		{[]string{"create", "otp", "--channel", "sms", "--content", "hi", "--var", "a b"}, "--var: name \"a b\""},
		{[]string{"update", "nope", "--content", "hi"}, "no template named nope"},
		{[]string{"show", "nope"}, "no template named nope"},
		{[]string{"show", "otp@x"}, "NAME: version \"x\""},
		{[]string{"archive", "otp"}, `"reason" not set`},
		{[]string{"archive", "nope", "--reason", "r"}, "no template named nope"},
		{[]string{"list", "--archived", "--all"}, "give one"},
		{[]string{"list", "--limit", "0"}, "--limit: must be a whole number"},
		{[]string{"list", "--cursor", "!!"}, "--cursor: is not a cursor"},
	} {
		_, err := c.run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("herald templates %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	if n := c.written(t); n != [3]int{} {
		t.Errorf("refused commands wrote %v", n)
	}
}

func TestTemplatesHelpHasExamples(t *testing.T) {
	commandSettings(t)
	out := mustRunHerald(t, "templates", "--help")
	for _, want := range []string{"create NAME", "update NAME", "list", "show NAME[@N]", "versions NAME", "archive NAME", "restore NAME",
		"--actor", "/api/v1/templates", "not available yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("herald templates --help does not say %q:\n%s", want, out)
		}
	}
	for _, sub := range []string{"create", "update", "list", "show", "versions", "archive", "restore"} {
		out := mustRunHerald(t, "templates", sub, "--help")
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "herald templates "+sub+" ") {
			t.Errorf("herald templates %s --help has no example of itself:\n%s", sub, out)
		}
	}
}

// TestServeAndAllServeTheTemplates: herald serve and herald all answer the stored templates'
// API, with the JSON the CLI prints for the same template; what the API saves, the CLI shows
// with the API key as its actor.
func TestServeAndAllServeTheTemplates(t *testing.T) {
	for _, process := range []string{"serve", "all"} {
		t.Run(process, func(t *testing.T) {
			c := newTemplatesCLI(t)
			_, token, err := apikeys.NewStore(c.db.Pool).Create(t.Context(), "ops", []herald.Scope{herald.ScopeOperate}, "test")
			if err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			// RabbitMQ out of reach: the API answers without it.
			spawnHerald(t, map[string]string{"HERALD_DATABASE_URL": c.db.URL, "HERALD_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
				"HERALD_HTTP_ADDR": addr}, process)
			call := func(method, path, body string) (int, string) {
				req, err := http.NewRequestWithContext(t.Context(), method, "http://"+addr+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, err.Error()
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			heraldtest.Eventually(t, 60*time.Second, "herald "+process+" to answer", func() (bool, error) {
				code, body := call(http.MethodGet, "/api/v1/templates", "")
				return code == http.StatusOK, fmt.Errorf("last answer: %d %s", code, body)
			})

			c.must(t, "create", "otp", "--channel", "sms", "--content", "Code {{.code}}", "--var", "code", "--actor", "ann")
			code, body := call(http.MethodGet, "/api/v1/templates/otp", "")
			var fromAPI, fromCLI wire.Template
			decodeOutput(t, body, &fromAPI)
			decodeOutput(t, c.must(t, "show", "otp", "-o", "json"), &fromCLI)
			if diff := cmp.Diff(fromCLI, fromAPI); code != http.StatusOK || diff != "" {
				t.Errorf("GET the template: %d; the API and the CLI differ (-cli +api):\n%s", code, diff)
			}
			if code, body := call(http.MethodPost, "/api/v1/templates/otp/versions", `{"content":"Your code: {{.code}}","variables":[{"name":"code"}]}`); code != http.StatusCreated {
				t.Fatalf("POST a version: %d %s", code, body)
			}
			if show := c.must(t, "show", "otp"); !strings.Contains(show, "by apikey:ops") || !strings.Contains(show, "Your code: {{.code}}") {
				t.Errorf("show of the version the API saved:\n%s", show)
			}
		})
	}
}
