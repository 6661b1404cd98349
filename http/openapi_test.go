package http_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/herald-notify/herald"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/http/openapitest"
)

// refuseAll knows no API key.
type refuseAll struct{}

func (refuseAll) Authenticate(context.Context, string) (herald.Principal, error) {
	return herald.Principal{}, herald.Errorf(herald.EUNAUTHORIZED, "unknown API key")
}

// The document served is the one in the repository, byte for byte, and it is a valid OpenAPI
// 3.1 document, served without an API key even by a server that requires one everywhere else.
func TestOpenAPIDocumentIsServed(t *testing.T) {
	inRepo, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := heraldhttp.NewServer(heraldhttp.Config{}, nil, nil, nil, slog.New(slog.DiscardHandler)).
		WithAuth(refuseAll{}, heraldhttp.RateLimit{})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	resp, err := openapitest.Client(t, contract(t)).Get(ts.URL + heraldhttp.OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	served, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET %s: %s, Content-Type %q; want 200 and JSON", heraldhttp.OpenAPIPath, resp.Status, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(served, inRepo) {
		t.Fatalf("the document served (%d bytes) is not http/openapi.json (%d bytes)", len(served), len(inRepo))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(served)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
}
