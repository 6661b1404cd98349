package e2e_test

import (
	"mime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHTMLEmailEndToEnd: an email sent with only an HTML template and variables written to break
// out of every context leaves Herald as multipart/alternative, the text part read from the HTML
// and the HTML with every variable escaped for where it landed; the log keeps the template and
// both renderings.
func TestHTMLEmailEndToEnd(t *testing.T) {
	c := startHerald(t, heraldOpts{Commands: []string{"all"}})
	const html = `<html><head><style>p { margin: 0 }</style></head><body>` +
		`<h1>Hello {{.name}}</h1>` +
		`<p title="{{.title}}" style="color: {{.color}}">Your order is ready.</p>` +
		`<p><a href="{{.link}}">Track it</a> or <a href="https://example.com/help?q={{.name}}">get help</a>.</p>` +
		`<script>var who = {{.name}};</script>` +
		`</body></html>`
	id := send(t, c.API, sendRequest{Type: "email", Recipient: "mallory@example.net", Subject: "Your order", HTML: html,
		Variables: map[string]any{
			"name":  "<script>alert(1)</script>",
			"title": `" onmouseover="x`,
			"link":  "javascript:alert(1)",
			"color": "</style><script>alert(1)</script>",
		}})
	waitStatus(t, c.API, id, "sent", deliveryTimeout)

	got := c.SMTP.Received("mallory@example.net")
	if len(got) != 1 || got[0].NotificationID != id {
		t.Fatalf("the sink received %d messages for mallory, want one of %s", len(got), id)
	}
	msg := got[0]
	if mediaType, _, err := mime.ParseMediaType(msg.Header.Get("Content-Type")); err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative", msg.Header.Get("Content-Type"))
	}
	wantHTML := `<html><head><style>p { margin: 0 }</style></head><body>` +
		`<h1>Hello &lt;script&gt;alert(1)&lt;/script&gt;</h1>` +
		`<p title="&#34; onmouseover=&#34;x" style="color: ZgotmplZ">Your order is ready.</p>` +
		`<p><a href="#ZgotmplZ">Track it</a> or <a href="https://example.com/help?q=%3cscript%3ealert%281%29%3c%2fscript%3e">get help</a>.</p>` +
		`<script>var who = "\u003cscript\u003ealert(1)\u003c/script\u003e";</script>` +
		`</body></html>`
	wantText := "Hello <script>alert(1)</script>\n\n" +
		"Your order is ready.\n\n" +
		"Track it or get help (https://example.com/help?q=%3cscript%3ealert%281%29%3c%2fscript%3e)."
	type part struct{ ContentType, Encoding, Body string }
	want := []part{
		{"text/plain; charset=UTF-8", "quoted-printable", wantText},
		{"text/html; charset=UTF-8", "quoted-printable", wantHTML},
	}
	var parts []part
	for _, p := range msg.Parts {
		parts = append(parts, part{p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Body})
	}
	if diff := cmp.Diff(want, parts); diff != "" {
		t.Errorf("parts of the received message (-want +got):\n%s", diff)
	}

	_, evs := story(t, c.API, id, 3)
	queued := eventData(t, evs[0])
	if queued["html"] != html || queued["rendered_html"] != wantHTML || queued["body"] != wantText {
		t.Errorf("NotificationQueued = %v, want the template, its rendering and the text read from it", queued)
	}
}
