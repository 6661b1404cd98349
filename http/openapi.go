package http

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the API's contract: every route, body and answer, in OpenAPI 3.1. It is
// kept by hand beside the handlers; the package's and the end-to-end tests check every request
// they make and every answer they get against it (see http/openapitest), so a change of a route
// or of a shape in package wire that the document does not follow fails them.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIPath is where the document is served, without an API key.
const OpenAPIPath = "/api/v1/openapi.json"

// OpenAPIDocument returns the API's OpenAPI document, as served at OpenAPIPath.
func OpenAPIDocument() []byte { return append([]byte(nil), openAPIDocument...) }

// openAPI serves GET /api/v1/openapi.json.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument)
}
