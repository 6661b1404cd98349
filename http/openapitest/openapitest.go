// Package openapitest holds HTTP exchanges with Herald's API to its OpenAPI document
// (http/openapi.json): a Checker that says whether one request and its answer keep to the
// document, and a Transport that checks every exchange a test client carries. Tests route their
// clients through it so that a route, a body or an answer's shape that drifts from the document
// fails the test that sent it.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	heraldhttp "github.com/herald-notify/herald/http"
)

func init() {
	// The SMS gateway's inbound callback is answered with TwiML, which the filter has no decoder
	// for: its body is checked as text.
	openapi3filter.RegisterBodyDecoder("text/xml", openapi3filter.PlainBodyDecoder)
}

// Checker checks exchanges against the API's document.
type Checker struct {
	doc     *openapi3.T
	router  routers.Router
	options *openapi3filter.Options
}

// Option changes what a Checker checks.
type Option func(*Checker)

// IgnoreSecurity stops the Checker from requiring an API key on the routes that need one: for
// a server built without authentication (only tests build one).
func IgnoreSecurity() Option {
	return func(c *Checker) { c.options.AuthenticationFunc = openapi3filter.NoopAuthenticationFunc }
}

// Load loads the API's document, validates it, and returns a Checker of it.
func Load(opts ...Option) (*Checker, error) {
	return LoadDocument(heraldhttp.OpenAPIDocument(), opts...)
}

// LoadDocument is Load of another document (a test's deliberately broken one, say).
func LoadDocument(data []byte, opts ...Option) (*Checker, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate the OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	c := &Checker{doc: doc, router: router, options: &openapi3filter.Options{
		IncludeResponseStatus: true,
		AuthenticationFunc:    presented,
	}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// presented lets a request through a security requirement when it presents the credential the
// scheme names; whether the key is valid is the server's to say.
func presented(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	switch s := in.SecurityScheme; {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, token, ok := strings.Cut(h.Get("Authorization"), " ")
		if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
			return nil
		}
		return errors.New("no Authorization: Bearer <API key>")
	case s.Type == "apiKey" && s.In == "header":
		if h.Get(s.Name) != "" {
			return nil
		}
		return fmt.Errorf("no %s header", s.Name)
	}
	return fmt.Errorf("security scheme %q is not one the checker knows", in.SecuritySchemeName)
}

// Check says how the exchange of req (whose body is reqBody) and resp (whose body is respBody)
// breaks the document, or nil if it keeps to it:
//   - a request to a route the document does not have must be answered 404 or 405 as an Error;
//   - a request the document refuses (a missing field, a bad parameter, no API key) must be
//     refused by the server too: answered 4xx, as the operation's document says;
//   - every answer must be one the operation documents, in its documented shape.
func (c *Checker) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	ctx := context.Background()
	what := req.Method + " " + req.URL.RequestURI()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s: %v in the OpenAPI document, but the server answered %d: %s", what, err, resp.StatusCode, short(respBody))
		}
		if err := c.isError(respBody); err != nil {
			return fmt.Errorf("%s: answered %d, not as an Error: %v", what, resp.StatusCode, err)
		}
		return nil
	}
	in := &openapi3filter.RequestValidationInput{Request: forValidation(req, reqBody), PathParams: params, Route: route, Options: c.options}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && (resp.StatusCode < 400 || resp.StatusCode >= 500) {
		return fmt.Errorf("%s: the OpenAPI document refuses the request, but the server answered %d: %v", what, resp.StatusCode, short([]byte(reqErr.Error())))
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: c.options}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s: the answer %d breaks the OpenAPI document: %v\nanswer: %s", what, resp.StatusCode, short([]byte(err.Error())), short(respBody))
	}
	return nil
}

// forValidation is req with reqBody to read again. A body without a Content-Type is read as
// JSON, as the server reads it.
func forValidation(req *http.Request, body []byte) *http.Request {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) > 0 && r.Header.Get("Content-Type") == "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// isError checks that body is an Error of the document.
func (c *Checker) isError(body []byte) error {
	ref := c.doc.Components.Schemas["Error"]
	if ref == nil || ref.Value == nil {
		return errors.New("the document has no Error schema")
	}
	v, err := decodeJSON(body)
	if err != nil {
		return err
	}
	return ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

func decodeJSON(body []byte) (any, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("not JSON: %w: %s", err, short(body))
	}
	return v, nil
}

// short is b cut to a length a test failure can show.
func short(b []byte) string {
	const max = 1500
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// Transport carries requests through Next and checks each exchange with Checker, reporting a
// mismatch where Report says.
type Transport struct {
	Checker *Checker
	Next    http.RoundTripper
	// Report returns where a mismatch in an exchange of r is reported (a test's Errorf), or nil
	// to carry r unchecked (a request to another server than Herald's API).
	Report func(r *http.Request) func(format string, args ...any)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	report := t.Report(r)
	if report == nil {
		return t.Next.RoundTrip(r)
	}
	var reqBody []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read the request body to check it: %w", err)
		}
		reqBody = b
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := t.Next.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		// Unchecked: the caller reads what came, then the same error.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(respBody), errReader{err}))
		return resp, nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err := t.Checker.Check(r, reqBody, resp, respBody); err != nil {
		report("OpenAPI contract: %v", err)
	}
	return resp, nil
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Client returns a client whose every exchange is checked with c and reported to t.
func Client(t testing.TB, c *Checker) *http.Client {
	return &http.Client{Transport: &Transport{Checker: c, Next: http.DefaultTransport,
		Report: func(*http.Request) func(string, ...any) { return t.Errorf }}}
}
