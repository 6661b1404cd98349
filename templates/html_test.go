package templates_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/templates"
)

// hostile are variables written to break out of every context an HTML template has.
const hostile = `{
	"script": "<script>alert(1)</script>",
	"quote": "\" onmouseover=\"x",
	"url": "javascript:alert(1)",
	"style": "</style><script>alert(1)</script>",
	"css": "red;background:url(javascript:alert(1))",
	"name": "Ada & <Bob>"
}`

func TestRenderHTMLEscapesEveryContext(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{name: "element text", html: `<p>{{.script}}</p>`,
			want: `<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>`},
		{name: "quoted attribute", html: `<a title="{{.quote}}">x</a>`,
			want: `<a title="&#34; onmouseover=&#34;x">x</a>`},
		{name: "unquoted attribute", html: `<a title={{.quote}}>x</a>`,
			want: `<a title=&#34;&#32;onmouseover&#61;&#34;x>x</a>`},
		{name: "javascript URL in href", html: `<a href="{{.url}}">Open</a>`,
			want: `<a href="#ZgotmplZ">Open</a>`},
		{name: "value in a URL's query", html: `<a href="https://example.com/?q={{.script}}">x</a>`,
			want: `<a href="https://example.com/?q=%3cscript%3ealert%281%29%3c%2fscript%3e">x</a>`},
		{name: "end of style in a style attribute", html: `<p style="color: {{.style}}">x</p>`,
			want: `<p style="color: ZgotmplZ">x</p>`},
		{name: "CSS with a URL in a style attribute", html: `<p style="color: {{.css}}">x</p>`,
			want: `<p style="color: ZgotmplZ">x</p>`},
		{name: "style element", html: `<style>p { color: {{.style}} }</style>`,
			want: `<style>p { color: ZgotmplZ }</style>`},
		{name: "script element", html: `<script>var v = {{.script}};</script>`,
			want: `<script>var v = "\u003cscript\u003ealert(1)\u003c/script\u003e";</script>`},
		{name: "event handler attribute", html: `<a onclick="f({{.quote}})">x</a>`,
			want: `<a onclick="f(&#34;\&#34; onmouseover=\&#34;x&#34;)">x</a>`},
		{name: "attribute name", html: `<a {{.quote}}="1">x</a>`,
			want: `<a ZgotmplZ="1">x</a>`},
		{name: "functions and loops work", html: `<ul>{{range .items}}<li>{{upper .}}</li>{{end}}</ul>{{default "friend" .nick}}`,
			want: `<ul><li>&lt;B&gt;</li><li>C</li></ul>friend`},
	}
	vars := decodeVars(t, hostile)
	vars["items"] = []any{"<b>", "c"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := templates.RenderHTML("html", tt.html, vars, 10_000)
			if err != nil {
				t.Fatalf("RenderHTML: %v", err)
			}
			if got != tt.want {
				t.Errorf("RenderHTML(%s)\n got %s\nwant %s", tt.html, got, tt.want)
			}
		})
	}
}

func TestRenderHTMLRefuses(t *testing.T) {
	tests := []struct {
		name, html string
		max        int
		fields     map[string]string
	}{
		{name: "parse error", html: "<p>\n{{.name</p>",
			fields: map[string]string{"html": "line 2: bad character U+003C '<'"}},
		{name: "missing variable", html: "<p>{{.nobody}}</p>",
			fields: map[string]string{"variables.nobody": "used by html but not given"}},
		{name: "function outside the subset", html: `<p>{{printf "%d" 1}}</p>`,
			fields: map[string]string{"html": `line 1, column 6: function "printf" is not allowed; insert values with {{.name}}`}},
		{name: "html/template's own escapers are not functions here", html: `<p>{{html .name}}</p>`,
			fields: map[string]string{"html": `line 1, column 6: function "html" is not allowed`}},
		{name: "branches that end in different contexts", html: "<p>\n{{if .name}}<a href=\"{{end}}x",
			fields: map[string]string{"html": "line 2, column 6: {{if}} branches end in different contexts"}},
		{name: "ends inside an attribute", html: "<p>\n<a href=\"{{.name}}",
			fields: map[string]string{"html": "line 2: ends inside a tag, an attribute, a comment, a script or a style: close it"}},
		{name: "escaped output over the limit", html: "<p>{{.name}}{{.name}}</p>", max: 30,
			fields: map[string]string{"html": "renders to more than 30 bytes"}},
	}
	vars := decodeVars(t, hostile)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.max == 0 {
				tt.max = 10_000
			}
			got, err := templates.RenderHTML("html", tt.html, vars, tt.max)
			if err == nil {
				t.Fatalf("RenderHTML = %q, want an error", got)
			}
			if diff := cmp.Diff(tt.fields, herald.ErrorFields(err)); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if herald.ErrorCode(err) != herald.EINVALID {
				t.Errorf("code = %s, want %s", herald.ErrorCode(err), herald.EINVALID)
			}
		})
	}
}

func TestPlainText(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{
			name: "a receipt",
			html: `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Your receipt</title>
  <style>body { font-family: sans-serif; } p { margin: 0 }</style>
  <script>window.track && track("open");</script>
</head>
<body>
  <div class="header"><img src="https://example.com/logo.png" alt="Example   Shop"></div>
  <h1>Thanks for your order, Ada &amp; Bob!</h1>
  <p>Your order <strong>#1042</strong> is on its way.
     It should arrive by&nbsp;Friday.</p>
  <table>
    <tr><th>Item</th><th>Price</th></tr>
    <tr><td>Tea &lt;green&gt;</td><td>&euro;4.50</td></tr>
  </table>
  <ol><li>Open the box</li><li>Enjoy</li></ol>
  <ul>
    <li>Returns within 30 days</li>
    <li><a href="https://example.com/help">Help centre</a></li>
  </ul>
  <p>Track it at <a href="https://example.com/t/1042">https://example.com/t/1042</a>
  or write to <a href="mailto:help@example.com">help@example.com</a>.<br>
  Thanks,<br>The Shop</p>
  <!-- a comment nobody reads -->
  <pre>  Order   1042
  Total   4.50</pre>
</body>
</html>`,
			want: "Example Shop\n\n" +
				"Thanks for your order, Ada & Bob!\n\n" +
				"Your order #1042 is on its way. It should arrive by Friday.\n\n" +
				"Item Price\n" +
				"Tea <green> €4.50\n\n" +
				"1. Open the box\n" +
				"2. Enjoy\n\n" +
				"- Returns within 30 days\n" +
				"- Help centre (https://example.com/help)\n\n" +
				"Track it at https://example.com/t/1042 or write to help@example.com.\n" +
				"Thanks,\n" +
				"The Shop\n\n" +
				"  Order   1042\n" +
				"  Total   4.50",
		},
		{
			name: "escaped hostile values read as text",
			html: `<p>Hello &lt;script&gt;alert(1)&lt;/script&gt;</p><a href="#ZgotmplZ">Open</a>`,
			want: "Hello <script>alert(1)</script>\n\nOpen",
		},
		{
			name: "a fragment with inline markup and a link without text",
			html: `Hi <b>Ada</b>,<br><br><a href="https://example.com/x"></a><span> </span>bye`,
			want: "Hi Ada,\n\nhttps://example.com/x bye",
		},
		{
			name: "unclosed tags are repaired as a browser would",
			html: `<p>one<p>two<div>three`,
			want: "one\n\ntwo\n\nthree",
		},
		{name: "only a script", html: `<script>alert(1)</script><style>p{}</style>`, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := templates.PlainText(tt.html)
			if err != nil {
				t.Fatalf("PlainText: %v", err)
			}
			if diff := cmp.Diff(strings.Split(tt.want, "\n"), strings.Split(got, "\n")); diff != "" {
				t.Errorf("PlainText (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzRenderHTML holds RenderHTML to Render's promises — an EINVALID error naming a field, or
// valid UTF-8 within the cap — whatever the contexts, and PlainText to reading any rendering.
func FuzzRenderHTML(f *testing.F) {
	seeds := []struct {
		html, vars string
		max        uint16
	}{
		{`<p>Hello {{.name}}</p>`, `{"name": "<b>Ada</b>"}`, 100},
		{`<a href="{{.u}}" title={{.t}}>{{.t}}</a>`, `{"u": "javascript:x", "t": "\" x"}`, 200},
		{`<script>var a = {{.a}}; var s = "{{.s}}";</script>`, `{"a": [1, "</script>"], "s": "\\"x"}`, 200},
		{`<style>p { color: {{.c}} }</style><p style="{{.c}}">x</p>`, `{"c": "</style>"}`, 200},
		{`<ul>{{range .items}}<li class="{{.}}">{{upper .}}</li>{{else}}<li>none</li>{{end}}</ul>`, `{"items": ["a", "b"]}`, 200},
		{`{{range .items}}{{if eq . "b"}}{{break}}{{end}}<i>{{.}}</i>{{end}}`, `{"items": ["a", "b", "c"]}`, 100},
		{`<a href="{{.u}}`, `{"u": "x"}`, 100},
		{`{{if .x}}<a href="{{end}}`, `{"x": true}`, 100},
		{`<!-- {{.x}} --><textarea>{{.x}}</textarea><title>{{.x}}</title>`, `{"x": "</textarea>"}`, 200},
		{`<img src="data:{{.x}}" srcset="{{.x}} 1x" onerror="{{.x}}">`, `{"x": "javascript:alert(1)"}`, 200},
		{`<p>{{html .x}}{{urlquery .x}}{{js .x}}</p>`, `{"x": "y"}`, 100},
		{`<p {{.a}}={{.b}}>`, `{"a": "onclick", "b": "x"}`, 100},
	}
	for _, s := range seeds {
		f.Add(s.html, s.vars, s.max)
	}
	f.Fuzz(func(t *testing.T, html, varsJSON string, maxOutput uint16) {
		vars, err := decodeJSONVars(varsJSON)
		if err != nil {
			vars = nil
		}
		out, err := templates.RenderHTML("html", html, vars, int(maxOutput))
		if err != nil {
			var e *herald.Error
			if !errors.As(err, &e) || e.Code != herald.EINVALID || len(e.Fields) == 0 {
				t.Fatalf("RenderHTML(%q, %s) error %v (%T), want an EINVALID *herald.Error naming a field", html, varsJSON, err, err)
			}
			return
		}
		if len(out) > int(maxOutput) || !utf8.ValidString(out) {
			t.Fatalf("RenderHTML(%q, %s) = %q: over the cap of %d or not UTF-8", html, varsJSON, out, maxOutput)
		}
		if _, err := templates.PlainText(out); err != nil {
			t.Fatalf("PlainText(%q): %v", out, err)
		}
	})
}

// TestPlainTextNumbersLongListsInOnePass: ordered lists are numbered from their start, each list
// on its own, and a list of many thousand items (its length is the client's to choose) is read
// in one pass; raw-text elements whose content a reader never sees as text are left out.
func TestPlainTextNumbersLongListsInOnePass(t *testing.T) {
	got, err := templates.PlainText(`<ol start="7"><li>a<li>b</ol><ol><li>c<li>d</ol><noembed><script>x()</script></noembed><xmp><b>y</b></xmp>`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "7. a\n8. b\n\n1. c\n2. d"; got != want {
		t.Errorf("PlainText = %q, want %q", got, want)
	}
	const n = 60000
	long, err := templates.PlainText("<ol>" + strings.Repeat("<li>x", n) + "</ol>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(long, strconv.Itoa(n)+". x") {
		t.Errorf("a list of %d items ends %q", n, long[max(0, len(long)-20):])
	}
}

// TestRenderHTMLRefusesDocumentAttributes: a srcdoc attribute's value is parsed by the browser
// as a whole document after it is decoded, so a variable escaped for the attribute would run
// there; such a template is refused when rendered and when stored.
func TestRenderHTMLRefusesDocumentAttributes(t *testing.T) {
	const tpl = `<iframe SRCDOC="<p>{{.name}}</p>"></iframe>`
	_, err := templates.RenderHTML("html", tpl, map[string]any{"name": "<img src=x onerror=alert(1)>"}, 1<<16)
	if herald.ErrorCode(err) != herald.EINVALID || !strings.Contains(herald.ErrorFields(err)["html"], "srcdoc attribute of <iframe> is not allowed") {
		t.Errorf("RenderHTML of a srcdoc: %v (fields %v), want EINVALID naming it", err, herald.ErrorFields(err))
	}
	if _, err := templates.HTMLVariables("html", tpl); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("HTMLVariables of a srcdoc: %v, want EINVALID", err)
	}
	if _, err := templates.RenderHTML("html", `<p data-x="srcdoc">{{.name}}</p>`, map[string]any{"name": "a"}, 1<<16); err != nil {
		t.Errorf("the word srcdoc as a value is refused: %v", err)
	}
}

// The quick look for a document attribute's name agrees with the tokenizer: it finds every
// spelling the tokenizer would, so skipping the tokenizer when it finds none loses nothing.
func TestMentionsDocumentAttribute(t *testing.T) {
	for _, tt := range []struct {
		content string
		want    bool
	}{
		{`<p>{{.name}}</p>`, false},
		{`<iframe srcdoc="x">`, true},
		{`<iframe SrcDoc="x">`, true},
		{`srcdo`, false},
		{`<p>s r c d o c</p>`, false},
		{`xSRCDOC`, true},
	} {
		if got := templates.MentionsDocumentAttribute(tt.content); got != tt.want {
			t.Errorf("MentionsDocumentAttribute(%q) = %v, want %v", tt.content, got, tt.want)
		}
	}
}
