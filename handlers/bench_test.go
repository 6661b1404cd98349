package handlers_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/herald-notify/herald/handlers"
)

// BenchmarkValidate measures what the API does to a request before writing it: the recipient
// rules, the template subset's checks and the rendering. text is a short text template; html
// is the newsletter of templates' testdata (about 20 KB, ten variables) sent as html alone, so
// that its text part is read back from the rendered HTML too.
func BenchmarkValidate(b *testing.B) {
	a := handlers.NewAcceptor(nil, nil, nil, handlers.DefaultLimits)
	b.Run("text", func(b *testing.B) {
		req := handlers.SendRequest{
			Type:      "email",
			Recipient: "Ada Lovelace <ada@example.com>",
			Subject:   "Your order {{.order.id}}",
			Content:   "Hello {{.name}},\n{{range .order.items}}{{.qty}} x {{upper .sku}}\n{{end}}Thanks!",
			Variables: decode(b, `{"name":"Ada","order":{"id":"A-1042","items":[{"sku":"x1","qty":2},{"sku":"y7","qty":1}]}}`),
		}
		benchmarkValidate(b, a, req)
	})
	b.Run("html", func(b *testing.B) {
		newsletter, err := os.ReadFile("../bench/newsletter.html")
		if err != nil {
			b.Fatal(err)
		}
		req := handlers.SendRequest{
			Type:      "email",
			Recipient: "Ada Lovelace <ada@example.com>",
			Subject:   "{{.company}} news, issue {{.issue}}",
			HTML:      string(newsletter),
			Variables: decode(b, `{"name":"Ada","email":"ada@example.com","n":1042,"issue":37,"date":"November 2026",
				"company":"Herald & Co","logo_url":"https://cdn.example.com/newsletter/logo.png",
				"view_url":"https://news.example.com/issues/37?u=ada%40example.com",
				"preferences_url":"https://news.example.com/preferences?u=ada%40example.com&t=5f2b",
				"unsubscribe_url":"https://news.example.com/unsubscribe?u=ada%40example.com&t=5f2b"}`),
		}
		benchmarkValidate(b, a, req)
	})
}

func benchmarkValidate(b *testing.B, a *handlers.Acceptor, req handlers.SendRequest) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
}

func decode(b *testing.B, text string) map[string]any {
	b.Helper()
	var vars map[string]any
	if err := json.Unmarshal([]byte(text), &vars); err != nil {
		b.Fatal(err)
	}
	return vars
}
