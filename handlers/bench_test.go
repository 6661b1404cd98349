package handlers_test

import (
	"encoding/json"
	"testing"

	"github.com/herald-notify/herald/handlers"
)

// BenchmarkValidate measures what the API does to a request before writing it: the recipient
// rules, the template subset's checks and the rendering.
func BenchmarkValidate(b *testing.B) {
	a := handlers.NewAcceptor(nil, nil, nil, handlers.DefaultLimits)
	var vars map[string]any
	if err := json.Unmarshal([]byte(`{"name":"Ada","order":{"id":"A-1042","items":[{"sku":"x1","qty":2},{"sku":"y7","qty":1}]}}`), &vars); err != nil {
		b.Fatal(err)
	}
	req := handlers.SendRequest{
		Type:      "email",
		Recipient: "Ada Lovelace <ada@example.com>",
		Subject:   "Your order {{.order.id}}",
		Content:   "Hello {{.name}},\n{{range .order.items}}{{.qty}} x {{upper .sku}}\n{{end}}Thanks!",
		Variables: vars,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
}
