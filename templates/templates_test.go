package templates_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/templates"
)

// decodeVars decodes variables the way the HTTP edge does, so that the tests see the same types
// (json.Number, []any, map[string]any) a client's request produces.
func decodeVars(t testing.TB, text string) map[string]any {
	t.Helper()
	if text == "" {
		return nil
	}
	vars, err := decodeJSONVars(text)
	if err != nil {
		t.Fatalf("decode variables %s: %v", text, err)
	}
	return vars
}

func decodeJSONVars(text string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var vars map[string]any
	err := dec.Decode(&vars)
	return vars, err
}

// longList is the JSON of a list of n copies of item.
func longList(n int, item string) string {
	return "[" + strings.Repeat(item+",", n-1) + item + "]"
}

func TestRender(t *testing.T) {
	const allowed = "and, default, eq, ge, gt, index, le, len, lower, lt, ne, not, or, trim, upper"
	tests := []struct {
		name    string
		content string
		vars    string // JSON; goVars is used instead when set
		goVars  map[string]any
		max     int // 0 means 1000
		want    string
		// fields is nil when rendering should succeed.
		fields map[string]string
	}{
		{name: "plain text", content: "Your code is ready.", want: "Your code is ready."},
		{name: "variable", content: "Hello {{.name}}!", vars: `{"name": "Ada"}`, want: "Hello Ada!"},
		{name: "root variable", content: "{{$.name}}", vars: `{"name": "Ada"}`, want: "Ada"},
		{name: "nested map", content: "{{.user.name}} from {{.user.address.city}}",
			vars: `{"user": {"name": "Ada", "address": {"city": "London"}}}`, want: "Ada from London"},
		{name: "numbers render as sent", content: "{{.count}} items for {{.price}} ({{.big}}, {{.exp}})",
			vars: `{"count": 3, "price": 9.50, "big": 123456789012345678901234567890, "exp": 1e3}`,
			want: "3 items for 9.50 (123456789012345678901234567890, 1e3)"},
		{name: "integers compare with literals", content: "{{.count}} item{{if gt .count 1}}s{{end}}",
			vars: `{"count": 2}`, want: "2 items"},
		{name: "integer index", content: "{{index .items .i}}", vars: `{"items": ["a", "b"], "i": 1}`, want: "b"},
		{name: "if else", content: "{{if .vip}}Dear guest{{else}}Hi{{end}}", vars: `{"vip": false}`, want: "Hi"},
		{name: "else if", content: `{{if eq .lang "fr"}}Bonjour{{else if eq .lang "de"}}Hallo{{else}}Hello{{end}}`,
			vars: `{"lang": "de"}`, want: "Hallo"},
		{name: "and or not", content: "{{if and .a (or .b (not .c))}}yes{{end}}",
			vars: `{"a": true, "b": false, "c": false}`, want: "yes"},
		{name: "with", content: "{{with .user}}{{.name}}{{else}}nobody{{end}}", vars: `{"user": {"name": "Ada"}}`, want: "Ada"},
		{name: "range over a list", content: "{{range $i, $x := .items}}{{if $i}}, {{end}}{{$x}}{{end}}",
			vars: `{"items": ["tea", "cake"]}`, want: "tea, cake"},
		{name: "range over objects with root access", content: "{{range .orders}}{{$.name}}: {{.id}};{{end}}",
			vars: `{"name": "Ada", "orders": [{"id": 1}, {"id": 2}]}`, want: "Ada: 1;Ada: 2;"},
		{name: "range else", content: "{{range .items}}x{{else}}none{{end}}", vars: `{"items": []}`, want: "none"},
		{name: "range over null", content: "{{range .items}}x{{else}}none{{end}}", vars: `{"items": null}`, want: "none"},
		{name: "break and continue", content: "{{range .n}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}",
			vars: `{"n": [1, 2, 3, 4, 5]}`, want: "13"},
		{name: "len", content: "{{len .items}}", vars: `{"items": [1, 2, 3]}`, want: "3"},
		{name: "upper lower trim", content: `{{upper .a}} {{lower .b}} [{{trim .c}}]`,
			vars: `{"a": "ada", "b": "LOVELACE", "c": "  x  "}`, want: "ADA lovelace [x]"},
		{name: "default with a missing variable", content: `Hi {{default "friend" .name}}!`, want: "Hi friend!"},
		{name: "default piped", content: `Hi {{.name | default "friend" | upper}}!`, want: "Hi FRIEND!"},
		{name: "default on root variable", content: `{{range .items}}{{default "friend" $.name}}{{end}}`,
			vars: `{"items": [1]}`, want: "friend"},
		{name: "default with an empty string", content: `Hi {{default "friend" .name}}!`, vars: `{"name": ""}`, want: "Hi friend!"},
		{name: "default with null", content: `Hi {{default "friend" .name}}!`, vars: `{"name": null}`, want: "Hi friend!"},
		{name: "default with a value", content: `Hi {{default "friend" .name}}!`, vars: `{"name": "Ada"}`, want: "Hi Ada!"},
		{name: "default keeps zero", content: `{{default 1 .n}}`, vars: `{"n": 0}`, want: "0"},
		{name: "default makes a section optional", content: `{{with default "" .nick}}aka {{.}}{{end}}.`, want: "."},
		{name: "null renders empty", content: "[{{.name}}]", vars: `{"name": null}`, want: "[]"},
		{name: "comment and trim markers", content: "a  {{- /* note */ -}}  b", want: "ab"},
		{name: "output exactly at the cap", content: "{{.s}}", vars: `{"s": "abcde"}`, max: 5, want: "abcde"},

		{name: "empty content", content: "", fields: map[string]string{"content": "is required"}},
		{name: "blank content", content: " \n\t", fields: map[string]string{"content": "is required"}},
		{name: "missing variable", content: "Hello {{.name}}!",
			fields: map[string]string{"variables.name": "used by content but not given"}},
		{name: "missing variables are all reported", content: "{{.zeta}} {{.alpha.x}} {{$.mid}} {{.alpha}}", vars: `{"other": 1}`,
			fields: map[string]string{
				"variables.alpha": "used by content but not given",
				"variables.mid":   "used by content but not given",
				"variables.zeta":  "used by content but not given",
			}},
		{name: "default does not excuse another use", content: `{{default "x" .name}} {{.name}}`,
			fields: map[string]string{"variables.name": "used by content but not given"}},
		{name: "missing nested key", content: "Hi\n  {{.user.nick}}", vars: `{"user": {"name": "Ada"}}`,
			fields: map[string]string{"content": `line 2, column 10 (.user.nick): map has no entry for key "nick"`}},
		{name: "index out of range", content: "{{index .items 5}}", vars: `{"items": []}`,
			fields: map[string]string{"content": "line 1, column 3 (index .items 5): error calling index: index out of range: 5"}},
		{name: "compare mismatched types", content: `{{if eq .n "1"}}x{{end}}`, vars: `{"n": 1}`,
			fields: map[string]string{"content": `line 1, column 6 (eq .n "1"): error calling eq: incompatible types for comparison: int64 and string`}},
		{name: "upper of a number", content: `{{upper .n}}`, vars: `{"n": 1}`,
			fields: map[string]string{"content": "line 1, column 3 (upper .n): error calling upper: upper needs text, not a number"}},
		{name: "parse error", content: "Hello {{.name", vars: `{"name": "Ada"}`,
			fields: map[string]string{"content": "line 1: unclosed action"}},
		{name: "parse error on a later line", content: "a\nb {{if .x}}", vars: `{"x": 1}`,
			fields: map[string]string{"content": "line 2: unexpected EOF"}},
		{name: "printf", content: `{{printf "%999999999d" 1}}`,
			fields: map[string]string{"content": `line 1, column 3: function "printf" is not allowed; insert values with {{.name}}`}},
		{name: "print", content: `{{print 1}}`,
			fields: map[string]string{"content": `line 1, column 3: function "print" is not allowed; insert values with {{.name}}`}},
		{name: "println", content: `{{println 1}}`,
			fields: map[string]string{"content": `line 1, column 3: function "println" is not allowed; insert values with {{.name}}`}},
		{name: "printf as an argument", content: `{{eq printf "x"}}`,
			fields: map[string]string{"content": `line 1, column 6: function "printf" is not allowed; insert values with {{.name}}`}},
		{name: "printf piped", content: `{{.name | printf "%s"}}`, vars: `{"name": "Ada"}`,
			fields: map[string]string{"content": `line 1, column 11: function "printf" is not allowed; insert values with {{.name}}`}},
		{name: "call", content: `{{call .f}}`, vars: `{"f": 1}`,
			fields: map[string]string{"content": `line 1, column 3: function "call" is not allowed`}},
		{name: "html", content: `{{html .s}}`, vars: `{"s": "x"}`,
			fields: map[string]string{"content": `line 1, column 3: function "html" is not allowed`}},
		{name: "js", content: `{{js .s}}`, vars: `{"s": "x"}`,
			fields: map[string]string{"content": `line 1, column 3: function "js" is not allowed`}},
		{name: "urlquery", content: `{{urlquery .s}}`, vars: `{"s": "x"}`,
			fields: map[string]string{"content": `line 1, column 3: function "urlquery" is not allowed`}},
		{name: "slice", content: `{{slice .s 0 1}}`, vars: `{"s": "x"}`,
			fields: map[string]string{"content": `line 1, column 3: function "slice" is not allowed`}},
		{name: "unknown function", content: "x\n{{ env \"HOME\" }}",
			fields: map[string]string{"content": `line 2, column 4: function "env" is not allowed; the functions are ` + allowed}},
		{name: "forbidden function in a nested pipeline", content: `{{if (len (printf "%s" .s))}}x{{end}}`, vars: `{"s": "x"}`,
			fields: map[string]string{"content": `line 1, column 12: function "printf" is not allowed; insert values with {{.name}}`}},
		{name: "template", content: `{{template "x"}}`,
			fields: map[string]string{"content": "line 1, column 12: {{template}} is not allowed"}},
		{name: "define", content: `{{define "x"}}a{{end}}b`,
			fields: map[string]string{"content": "{{define}} and {{block}} are not allowed"}},
		{name: "define replacing the main template", content: ` {{define "content"}}a{{end}}`,
			fields: map[string]string{"content": "{{define}} and {{block}} are not allowed"}},
		{name: "block", content: `{{block "x" .}}a{{end}}`,
			fields: map[string]string{"content": "{{define}} and {{block}} are not allowed"}},
		{name: "redefining $", content: `{{$ = .user}}{{$.name}}`, vars: `{"user": {"name": "Ada"}}`,
			fields: map[string]string{"content": "line 1, column 3: $ cannot be redefined; use another name, such as $user"}},
		{name: "range over an integer literal", content: "{{range 1000000000}}{{end}}",
			fields: map[string]string{"content": "line 1, column 9: range over a number is not allowed; iterate over a list such as {{range .items}}"}},
		{name: "range over a pipeline", content: "{{range len .items}}{{end}}", vars: `{"items": [1]}`,
			fields: map[string]string{"content": "line 1, column 9: range may only iterate over a variable, such as {{range .items}}"}},
		{name: "range over a variable holding a number", content: "{{$n := 1000000000}}{{range $n}}{{end}}",
			fields: map[string]string{"content": "line 1, column 29: range needs a list or an object, not a number"}},
		{name: "range over a number variable", content: "{{range .n}}{{end}}", vars: `{"n": 1000000000}`,
			fields: map[string]string{"content": "line 1, column 9: range needs a list or an object, not a number"}},
		{name: "nested range", content: "{{range .rows}}{{range .}}x{{end}}{{end}}", vars: `{"rows": [[1]]}`,
			fields: map[string]string{"content": "line 1, column 24: a range inside another range is not allowed"}},
		{name: "range nested deeper", content: "{{range .rows}}{{if .}}{{with .}}{{range $.rows}}{{end}}{{end}}{{end}}{{end}}",
			vars:   `{"rows": [1]}`,
			fields: map[string]string{"content": "line 1, column 42: a range inside another range is not allowed"}},
		{name: "output over the cap", content: "{{range .items}}{{.}}{{end}}", vars: `{"items": ` + longList(10000, `"xy"`) + `}`,
			fields: map[string]string{"content": "renders to more than 1000 bytes"}},
		{name: "output over a small cap", content: "{{.s}}", vars: `{"s": "abcdef"}`, max: 5,
			fields: map[string]string{"content": "renders to more than 5 bytes"}},
		{name: "loop doing too much work", content: "{{range .items}}" + strings.Repeat(`{{$x := eq . "y"}}`, 20) + "{{end}}",
			vars:   `{"items": ` + longList(10000, `"x"`) + `}`,
			fields: map[string]string{"content": "line 1, column 9: repeating the loop for 10000 items needs too much work: use fewer items or a shorter loop"}},
		{name: "actions doing too much work", content: strings.Repeat("{{$x := upper .s}}", 300),
			vars:   `{"s": "` + strings.Repeat("a", 30000) + `"}`,
			fields: map[string]string{"content": "needs too much work to render: use fewer actions or shorter variables"}},
		{name: "invalid UTF-8 in content", content: "Hello \xff{{.name}}", vars: `{"name": "Ada"}`,
			fields: map[string]string{"content": "is not valid UTF-8"}},
		{name: "invalid UTF-8 in variables", content: "Hello {{.name}}",
			goVars: map[string]any{"name": "Ad\xffa", "list": []any{"ok", map[string]any{"k\xfe": "v"}}},
			fields: map[string]string{
				"variables.name":            "is not valid UTF-8",
				"variables.list[1].k\ufffd": "is not valid UTF-8",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := tt.goVars
			if vars == nil {
				vars = decodeVars(t, tt.vars)
			}
			maxOutput := tt.max
			if maxOutput == 0 {
				maxOutput = 1000
			}
			got, err := templates.Render("content", tt.content, vars, maxOutput)
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Render(%q) error: %v (fields %v)", tt.content, err, herald.ErrorFields(err))
				}
				if got != tt.want {
					t.Errorf("Render(%q) = %q, want %q", tt.content, got, tt.want)
				}
				return
			}
			if code := herald.ErrorCode(err); code != herald.EINVALID {
				t.Fatalf("Render(%q) = %q, %v; want an %s error", tt.content, got, err, herald.EINVALID)
			}
			if diff := cmp.Diff(tt.fields, herald.ErrorFields(err)); diff != "" {
				t.Errorf("Render(%q) fields (-want +got):\n%s", tt.content, diff)
			}
			if got != "" {
				t.Errorf("Render(%q) = %q with an error, want no output", tt.content, got)
			}
		})
	}
}

func TestRenderNamesTheField(t *testing.T) {
	_, err := templates.Render("subject", "{{.a}} {{printf}}", nil, 100)
	want := map[string]string{"subject": `line 1, column 10: function "printf" is not allowed; insert values with {{.name}}`}
	if diff := cmp.Diff(want, herald.ErrorFields(err)); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}

	_, err = templates.Render("subject", "{{.a}}", nil, 100)
	want = map[string]string{"variables.a": "used by subject but not given"}
	if diff := cmp.Diff(want, herald.ErrorFields(err)); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

func TestRenderLeavesVariablesAlone(t *testing.T) {
	vars := decodeVars(t, `{"n": 1, "x": null, "list": [null]}`)
	want := decodeVars(t, `{"n": 1, "x": null, "list": [null]}`)
	if _, err := templates.Render("content", `{{.n}}{{.x}}{{.list}}{{default "" .optional}}`, vars, 100); err != nil {
		t.Fatalf("Render: %v", err)
	}
	if diff := cmp.Diff(want, vars); diff != "" {
		t.Errorf("variables changed (-before +after):\n%s", diff)
	}
}

func FuzzRender(f *testing.F) {
	seeds := []struct {
		content, vars string
		max           uint16
	}{
		{"Hello {{.name}}!", `{"name": "Ada"}`, 100},
		{`{{range $i, $x := .items}}{{$i}}={{upper $x}};{{else}}none{{end}}`, `{"items": ["a", "b"]}`, 100},
		{`{{with .user}}{{.name}}{{end}} {{default "friend" .nick}}`, `{"user": {"name": "Ada"}}`, 50},
		{`{{if gt .n 1}}{{.n}} items{{end}} {{index .list 1}} {{len .list}}`, `{"n": 2, "list": [1, 2.5]}`, 50},
		{`{{range .items}}{{$.s}}{{end}}`, `{"items": [1, 2, 3, 4], "s": "0123456789"}`, 30},
		{`{{printf "%d" 1}}`, `{}`, 10},
		{`{{range 10}}{{end}}`, `{}`, 10},
		{`{{$n := 3}}{{range $n}}x{{end}}`, `{}`, 10},
		{`{{define "x"}}{{end}}{{template "x"}}`, `{}`, 10},
		{"{{.a.b.c}} {{$.a}} {{(.a).b}}", `{"a": {"b": {"c": null}}}`, 10},
		{"{{eq .a .b}} {{lt .a 1.5}} {{ne .a nil}}", `{"a": 1, "b": "x"}`, 10},
		{"{{- /* c */ -}} {{break}}", `{}`, 10},
		// Hostile templates: each must be refused or rendered within the cap.
		{`{{template "x"}} {{block "y" .}}{{end}}`, `{}`, 10},
		{`{{call .f}} {{readFile "/etc/passwd"}} {{html .f}}`, `{"f": "x"}`, 10},
		{`{{range .a}}{{range $.a}}x{{end}}{{end}}`, `{"a": [1, 2, 3]}`, 100},
		{`{{range $k, $v := .}}{{$k}}={{$v}};{{end}}`, `{"a": 1, "b": [2], "c": {"d": 3}}`, 100},
		{`{{range .a}}{{if eq . 1}}{{continue}}{{else if eq . 3}}{{break}}{{end}}{{.}}{{end}}`, `{"a": [1, 2, 3, 4]}`, 100},
		{`{{index .a 99999}} {{index .m "k"}} {{index .a .i}}`, `{"a": [1], "m": {"k": "v"}, "i": 12345678901234567890}`, 50},
		{`{{.a.b.c.d.e}}`, `{"a": "text"}`, 50},
		{`{{"\x00"}}{{"\r\n"}}{{"\u2028"}}{{"\xff"}}`, `{}`, 50},
		{`{{len .}} {{len .s}} {{len .n}}`, `{"s": "héllo", "n": 1e999999}`, 50},
		{`{{.n}} {{.z}} {{.f}} {{if lt .i 0}}neg{{end}}`, `{"n": 1e999999, "z": -0, "f": -0.0, "i": -9223372036854775808}`, 100},
		{`{{$x := .a}}{{range $x}}{{$x = 1}}{{end}}{{$x}}`, `{"a": [1, 2]}`, 50},
		{`{{with $y := .u}}{{$y.name}}{{else with .v}}{{.}}{{end}}`, `{"u": null, "v": "w"}`, 50},
		{`{{upper (lower (trim .s))}} {{not (and .t (or .f .t))}}`, `{"s": " MiXeD ", "t": true, "f": false}`, 50},
		{`{{.s | default "x" | upper | lower}}{{default .d .e}}`, `{"d": "dd"}`, 50},
		{"{{if .a}}\n{{- else if .b -}}\n{{else}}{{end}}{{end}}", `{"a": 0}`, 10},
		{`{{range .}}{{.}}{{end}}`, `{"s": "` + strings.Repeat("x", 300) + `"}`, 200},
		{`{{$ := 1}}{{$.a}}`, `{"a": 1}`, 10},
		{`{{nil}} {{.a.b}} {{(1).x}}`, `{"a": {}}`, 10},
	}
	for _, s := range seeds {
		f.Add(s.content, s.vars, s.max)
	}
	f.Fuzz(func(t *testing.T, content, varsJSON string, maxOutput uint16) {
		vars, err := decodeJSONVars(varsJSON)
		if err != nil {
			vars = nil
		}
		out, err := templates.Render("content", content, vars, int(maxOutput))
		if err != nil {
			var e *herald.Error
			if !errors.As(err, &e) || e.Code != herald.EINVALID {
				t.Fatalf("Render(%q, %s) error %v (%T), want an EINVALID *herald.Error", content, varsJSON, err, err)
			}
			if len(e.Fields) == 0 {
				t.Fatalf("Render(%q, %s) error %v names no field", content, varsJSON, err)
			}
			if out != "" {
				t.Fatalf("Render(%q, %s) = %q with an error", content, varsJSON, out)
			}
			return
		}
		if len(out) > int(maxOutput) {
			t.Fatalf("Render(%q, %s) = %d bytes, over the cap of %d", content, varsJSON, len(out), maxOutput)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("Render(%q, %s) = %q, not valid UTF-8", content, varsJSON, out)
		}
	})
}

// BenchmarkRender measures a typical email body: variables, a nested field, a loop and a function.
func BenchmarkRender(b *testing.B) {
	vars := map[string]any{"name": "Ada", "order": map[string]any{"id": "A-1042", "items": []any{
		map[string]any{"sku": "x1", "qty": json.Number("2")}, map[string]any{"sku": "y7", "qty": json.Number("1")}}}}
	content := "Hello {{.name}},\n{{range .order.items}}{{.qty}} x {{upper .sku}}\n{{end}}Order {{.order.id}}. Thanks!"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := templates.Render("content", content, vars, 64<<10); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVariables(t *testing.T) {
	for _, tt := range []struct {
		content string
		want    []string
	}{
		{"Hello {{.name}}", []string{"name"}},
		{"{{.b}} {{$.a}} {{.b}}", []string{"a", "b"}},
		{`Hi {{default "friend" .nick}}`, []string{"nick"}},
		{"{{range .items}}{{.title}}{{$.sep}}{{end}}", []string{"items", "sep"}},
		{"{{with .user}}{{.name}}{{end}}", []string{"user"}},
		{"no actions", []string{}},
	} {
		got, err := templates.Variables("content", tt.content)
		if err != nil {
			t.Errorf("Variables(%q): %v", tt.content, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Variables(%q) = %v, want %v", tt.content, got, tt.want)
		}
	}
	for _, content := range []string{"", "{{.name", `{{printf "%d" 1}}`, `{{define "x"}}{{end}}`} {
		if _, err := templates.Variables("content", content); herald.ErrorFields(err)["content"] == "" {
			t.Errorf("Variables(%q): %v, want EINVALID naming content", content, err)
		}
	}
}

func TestHTMLVariables(t *testing.T) {
	got, err := templates.HTMLVariables("html", `<p class="{{.cls}}">Hello {{.name | upper}}</p>`)
	if err != nil || !slices.Equal(got, []string{"cls", "name"}) {
		t.Errorf("HTMLVariables = %v, %v", got, err)
	}
	// Refusals name the html field, whether the subset or the parser refuses.
	for _, content := range []string{`{{.x}`, `{{call .f}}`} {
		if _, err := templates.HTMLVariables("html", content); herald.ErrorFields(err)["html"] == "" {
			t.Errorf("HTMLVariables(%q): %v, want EINVALID naming html", content, err)
		}
	}
}
