package templates_test

import (
	"os"
	"strings"
	"testing"

	"github.com/herald-notify/herald/templates"
)

// newsletterVars are the ten variables of bench/newsletter.html and testdata/newsletter.txt: text in
// elements, in attributes (alt, title) and in URLs (href, src). The ampersand and the quote make
// the HTML renderer escape something in every context.
const newsletterVars = `{
	"name": "Ada O'Neill",
	"email": "ada@example.com",
	"n": 1042,
	"issue": 37,
	"date": "November 2026",
	"company": "Herald & Co",
	"logo_url": "https://cdn.example.com/newsletter/logo.png",
	"view_url": "https://news.example.com/issues/37?u=ada%40example.com",
	"preferences_url": "https://news.example.com/preferences?u=ada%40example.com&t=5f2b",
	"unsubscribe_url": "https://news.example.com/unsubscribe?u=ada%40example.com&t=5f2b"
}`

// readNewsletter returns a testdata template: a newsletter of about 20 KB, with a header, seven
// article blocks laid out in tables with inline styles, and a footer.
func readNewsletter(tb testing.TB, name string) string {
	tb.Helper()
	// The HTML is the one herald bench --html sends, kept once beside the command that embeds it.
	path := "testdata/" + name
	if name == "newsletter.html" {
		path = "../bench/newsletter.html"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// BenchmarkNewsletter measures an email of a realistic size rather than a line of text: the HTML
// newsletter rendered with html/template's contextual escaping, its text part read back from
// the rendered HTML, and, to compare, a text template of similar size rendered by Render.
// Bytes per second are of the template.
func BenchmarkNewsletter(b *testing.B) {
	html := readNewsletter(b, "newsletter.html")
	text := readNewsletter(b, "newsletter.txt")
	vars := decodeVars(b, newsletterVars)
	const maxOutput = 256 << 10

	rendered, err := templates.RenderHTML("html", html, vars, maxOutput)
	if err != nil {
		b.Fatal(err)
	}
	for _, want := range []string{"Hello Ada O&#39;Neill,", `alt="Herald &amp; Co"`, `href="https://news.example.com/preferences?u=ada%40example.com&amp;t=5f2b"`} {
		if !strings.Contains(rendered, want) {
			b.Fatalf("rendered newsletter lacks %s", want)
		}
	}

	b.Run("RenderHTML", func(b *testing.B) {
		b.SetBytes(int64(len(html)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := templates.RenderHTML("html", html, vars, maxOutput); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PlainText", func(b *testing.B) {
		b.SetBytes(int64(len(rendered)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := templates.PlainText(rendered); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RenderText", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := templates.Render("content", text, vars, maxOutput); err != nil {
				b.Fatal(err)
			}
		}
	})
}
