package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// queuedData reads the NotificationQueued event of stream id as the log holds it.
func queuedData(t *testing.T, api *testAPI, id string) map[string]any {
	t.Helper()
	var data []byte
	err := api.pool.QueryRow(t.Context(),
		`SELECT data FROM event_log WHERE stream_id = $1 AND event_type = 'NotificationQueued'`, id).Scan(&data)
	if err != nil {
		t.Fatalf("read NotificationQueued of %s: %v", id, err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	return fields
}

// TestSendHTMLRecordsBothRenderings: the log keeps both templates as sent and both renderings as
// delivered, the HTML escaped for its context, and the text part read from the HTML when only
// HTML is sent.
func TestSendHTMLRecordsBothRenderings(t *testing.T) {
	api := newTestAPI(t)
	vars := `"variables":{"name":"<script>alert(1)</script>","url":"javascript:alert(1)"}`
	tests := []struct {
		name string
		body string
		want map[string]string
	}{
		{
			name: "content and html",
			body: `{"type":"email","recipient":"ada@example.com","content":"Hi {{.name}}","html":"<p>Hi {{.name}}</p><a href=\"{{.url}}\">Open</a>",` + vars + `}`,
			want: map[string]string{
				"content":       "Hi {{.name}}",
				"body":          "Hi <script>alert(1)</script>",
				"html":          `<p>Hi {{.name}}</p><a href="{{.url}}">Open</a>`,
				"rendered_html": `<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p><a href="#ZgotmplZ">Open</a>`,
			},
		},
		{
			name: "html only: the text part is read from it",
			body: `{"type":"email","recipient":"ada@example.com","html":"<h1>Hi {{.name}}</h1><p>See <a href=\"https://example.com/o?id=1&amp;x=2\">your order</a>.</p>",` + vars + `}`,
			want: map[string]string{
				"content":       "",
				"body":          "Hi <script>alert(1)</script>\n\nSee your order (https://example.com/o?id=1&x=2).",
				"html":          `<h1>Hi {{.name}}</h1><p>See <a href="https://example.com/o?id=1&amp;x=2">your order</a>.</p>`,
				"rendered_html": `<h1>Hi &lt;script&gt;alert(1)&lt;/script&gt;</h1><p>See <a href="https://example.com/o?id=1&amp;x=2">your order</a>.</p>`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, r := api.send(t, tt.body, nil)
			if r.status != http.StatusAccepted {
				t.Fatalf("status = %d, want 202; body: %s", r.status, r.body)
			}
			data := queuedData(t, api, n.ID)
			got := map[string]string{}
			for name := range tt.want {
				got[name], _ = data[name].(string)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NotificationQueued (-want +got):\n%s", diff)
			}
		})
	}

	// Without html the event has no html fields, as before.
	n, r := api.send(t, `{"type":"email","recipient":"ada@example.com","content":"Hi"}`, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("status = %d, want 202; body: %s", r.status, r.body)
	}
	for _, name := range []string{"html", "rendered_html"} {
		if v, ok := queuedData(t, api, n.ID)[name]; ok {
			t.Errorf("NotificationQueued without html has %s = %q", name, v)
		}
	}
}

// TestRejectedHTMLWritesNothing: every problem with html is a 422 naming html (or the missing
// variable) with its position, and nothing is written.
func TestRejectedHTMLWritesNothing(t *testing.T) {
	api := newTestAPI(t)
	tests := []struct {
		name   string
		body   string
		fields map[string]string
	}{
		{
			name:   "html on an SMS",
			body:   `{"type":"sms","recipient":"+14155550123","content":"Hi","html":"<p>Hi</p>"}`,
			fields: map[string]string{"html": "is only for email"},
		},
		{
			name:   "neither content nor html",
			body:   `{"type":"email","recipient":"ada@example.com"}`,
			fields: map[string]string{"content": "is required"},
		},
		{
			name:   "html that is not a string",
			body:   `{"type":"email","recipient":"ada@example.com","html":["<p>"]}`,
			fields: map[string]string{"html": "must be a string, not an array"},
		},
		{
			name:   "blank html",
			body:   `{"type":"email","recipient":"ada@example.com","content":"Hi","html":"  "}`,
			fields: map[string]string{"html": "is blank: send an HTML template, or leave html out"},
		},
		{
			name:   "html that does not parse",
			body:   `{"type":"email","recipient":"ada@example.com","html":"<p>\n{{if .name}}Hi</p>","variables":{"name":"Ada"}}`,
			fields: map[string]string{"html": "line 2: unexpected EOF"},
		},
		{
			name:   "missing variable in html",
			body:   `{"type":"email","recipient":"ada@example.com","content":"Hi","html":"<p>{{.who}}</p>"}`,
			fields: map[string]string{"variables.who": "used by html but not given"},
		},
		{
			name:   "function outside the subset",
			body:   `{"type":"email","recipient":"ada@example.com","html":"<p>{{printf \"%d\" 1}}</p>"}`,
			fields: map[string]string{"html": `line 1, column 6: function "printf" is not allowed; insert values with {{.name}}`},
		},
		{
			name:   "contexts html/template cannot escape",
			body:   `{"type":"email","recipient":"ada@example.com","html":"<a href=\"{{.u}}","variables":{"u":"x"}}`,
			fields: map[string]string{"html": "line 1: ends inside a tag, an attribute, a comment, a script or a style: close it"},
		},
		{
			name:   "html without text and no content",
			body:   `{"type":"email","recipient":"ada@example.com","html":"<img src=\"https://example.com/a.png\"><script>x()</script>"}`,
			fields: map[string]string{"html": "renders to HTML without readable text: send content for the text part"},
		},
		{
			name: "html rendering over the limit",
			// Escaping makes each "<" four bytes: 30 copies of 3,000 of them are 360,000 bytes.
			body: `{"type":"email","recipient":"ada@example.com","html":"{{range .l}}<p>{{$.b}}{{$.b}}{{$.b}}</p>{{end}}",` +
				`"variables":{"l":[1,2,3,4,5,6,7,8,9,10],"b":"` + strings.Repeat("<", 3000) + `"}}`,
			fields: map[string]string{"html": "renders to more than 262144 bytes"},
		},
		{
			name:   "NUL in html",
			body:   `{"type":"email","recipient":"ada@example.com","html":"<p>Hi\u0000</p>"}`,
			fields: map[string]string{"html": "contains a NUL character"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := api.do(t, http.MethodPost, "/api/v1/notifications/send", tt.body, jsonHeader())
			if r.status != http.StatusUnprocessableEntity {
				t.Errorf("status = %d, want 422; body: %s", r.status, r.body)
			}
			e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
			if diff := cmp.Diff(tt.fields, e.Error.Fields); diff != "" {
				t.Errorf("error.fields (-want +got):\n%s", diff)
			}
			for _, table := range []string{"event_log", "outbox"} {
				if n := countRows(t, api.pool, table); n != 0 {
					t.Errorf("%s has %d rows after a rejected request, want 0", table, n)
				}
			}
		})
	}
}
