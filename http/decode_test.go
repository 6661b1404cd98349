package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	heraldhttp "github.com/herald-notify/herald/http"
)

// fakeAcceptor records what the server hands it and accepts everything, so the decoding tests
// see exactly what reached the domain.
type fakeAcceptor struct {
	mu       sync.Mutex
	requests []handlers.SendRequest
	panicMsg string
}

var _ heraldhttp.Acceptor = (*fakeAcceptor)(nil)

func (a *fakeAcceptor) Accept(ctx context.Context, req handlers.SendRequest) (handlers.Accepted, error) {
	if a.panicMsg != "" {
		panic(a.panicMsg)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, req)
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return handlers.Accepted{Notification: herald.Notification{
		ID:        "0195f1f4-0000-7000-8000-000000000001",
		Channel:   herald.Channel(req.Type),
		Recipient: req.Recipient,
		Status:    herald.StatusPending,
		Version:   1,
		CreatedAt: now,
		UpdatedAt: now,
	}}, nil
}

func (a *fakeAcceptor) calls() []handlers.SendRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// emptyReader knows no notification.
type emptyReader struct{}

var _ heraldhttp.Reader = emptyReader{}

func (emptyReader) Status(ctx context.Context, id string) (herald.Notification, error) {
	return herald.Notification{}, herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
}

func (emptyReader) History(ctx context.Context, id string) ([]herald.HistoryEntry, error) {
	return nil, herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
}

func (emptyReader) Events(ctx context.Context, id string) ([]events.Recorded, error) {
	return nil, herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
}

func (emptyReader) StatusAsOf(ctx context.Context, id string, at time.Time) (herald.Notification, error) {
	return herald.Notification{}, herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
}

func (emptyReader) List(ctx context.Context, f herald.ListFilter) ([]herald.Notification, string, error) {
	return nil, "", nil
}

// errorResponse is the error shape every endpoint answers with.
type errorResponse struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// sendRequest builds a POST of body to the send endpoint with the given Content-Type ("" sends
// none).
func sendRequest(t *testing.T, contentType, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/notifications/send", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// decodeError reads an error answer and checks its shape: JSON, with a code and a message.
func decodeErrorBody(t *testing.T, contentType string, body []byte) errorResponse {
	t.Helper()
	if !strings.HasPrefix(contentType, "application/json") {
		t.Errorf("error Content-Type = %q, want application/json", contentType)
	}
	var e errorResponse
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, body)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("error body lacks a code or a message: %s", body)
	}
	return e
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestDecodeSendValid(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		want        handlers.SendRequest
	}{
		{
			name: "email without subject or variables",
			body: `{"type":"email","recipient":"ada@example.com","content":"Hello!"}`,
			want: handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Content: "Hello!"},
		},
		{
			name: "email with subject and variables",
			body: `{"type":"email","recipient":"ada@example.com","subject":"Hi {{.name}}",
				"content":"Hello {{.name}}!","variables":{"name":"Ada"}}`,
			want: handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Subject: "Hi {{.name}}",
				Content: "Hello {{.name}}!", Variables: map[string]any{"name": "Ada"}},
		},
		{
			name: "scheduled, with an offset",
			body: `{"type":"sms","recipient":"+14155550123","content":"Hi","send_at":"2026-12-24T19:00:00.5+01:00"}`,
			want: handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "Hi",
				SendAt: func() *time.Time { t := time.Date(2026, 12, 24, 18, 0, 0, 500e6, time.UTC); return &t }()},
		},
		{
			name: "scheduled, lower-case t and z, nanoseconds cut to microseconds",
			body: `{"type":"sms","recipient":"+14155550123","content":"Hi","send_at":"2026-12-24t18:00:00.123456789z"}`,
			want: handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "Hi",
				SendAt: func() *time.Time { t := time.Date(2026, 12, 24, 18, 0, 0, 123456000, time.UTC); return &t }()},
		},
		{
			name: "by a stored template, without content",
			body: `{"type":"email","recipient":"ada@example.com","template":"welcome@2","variables":{"name":"Ada"}}`,
			want: handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Template: "welcome@2",
				Variables: map[string]any{"name": "Ada"}},
		},
		{
			name: "sms with null variables",
			body: `{"type":"sms","recipient":"+14155550123","content":"Code 42","variables":null}`,
			want: handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "Code 42"},
		},
		{
			name: "numbers keep their digits and nested objects their shape",
			body: `{"type":"email","recipient":"a@example.com","content":"x","variables":{
				"big":12345678901234567890,"small":7,"ratio":1.50,"exp":1e400,"neg":-0.0,
				"user":{"name":"Ada","langs":["en",{"level":3}],"nothing":null},"flag":true}}`,
			want: handlers.SendRequest{Type: "email", Recipient: "a@example.com", Content: "x",
				Variables: map[string]any{
					"big":   json.Number("12345678901234567890"),
					"small": json.Number("7"),
					"ratio": json.Number("1.50"),
					"exp":   json.Number("1e400"),
					"neg":   json.Number("-0.0"),
					"user": map[string]any{
						"name":    "Ada",
						"langs":   []any{"en", map[string]any{"level": json.Number("3")}},
						"nothing": nil,
					},
					"flag": true,
				}},
		},
		{
			name:        "charset parameter on the media type",
			contentType: "application/json; charset=utf-8",
			body:        `{"type":"sms","recipient":"+14155550123","content":"hi"}`,
			want:        handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi"},
		},
		{
			name:        "media type is case-insensitive",
			contentType: "Application/JSON",
			body:        `{"type":"sms","recipient":"+14155550123","content":"hi"}`,
			want:        handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi"},
		},
		{
			name:        "structured +json suffix",
			contentType: "application/vnd.herald+json",
			body:        `{"type":"sms","recipient":"+14155550123","content":"hi"}`,
			want:        handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi"},
		},
		{
			name:        "no Content-Type at all",
			contentType: "-",
			body:        `{"type":"sms","recipient":"+14155550123","content":"hi"}`,
			want:        handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi"},
		},
		{
			name: "whitespace around the object and escaped characters",
			body: " \n\t{\"type\":\"email\",\"recipient\":\"a@example.com\",\"content\":\"caf\\u00e9 \\\"quoted\\\"\"}\r\n ",
			want: handlers.SendRequest{Type: "email", Recipient: "a@example.com", Content: `café "quoted"`},
		},
		{
			name: "present but empty fields are left for validation",
			body: `{"type":"","recipient":"","content":"","subject":""}`,
			want: handlers.SendRequest{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			got, err := heraldhttp.DecodeSend(sendRequest(t, ct, tt.body), httptest.NewRecorder(), 1<<20)
			if err != nil {
				t.Fatalf("DecodeSend: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeSend (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSendRejectsMalformed runs each bad body through DecodeSend and through the server, whose
// acceptor must never be called.
func TestSendRejectsMalformed(t *testing.T) {
	const defaultLimit = 4096
	valid := `{"type":"email","recipient":"a@example.com","content":"Hello"}`
	deep := `{"type":"email","recipient":"a@example.com","content":"Hello","variables":{"x":` +
		strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`
	tests := []struct {
		name        string
		contentType string // "" means application/json
		body        string
		limit       int64 // 0 means limit
		wantStatus  int
		wantCode    string
		wantFields  []string
	}{
		{name: "empty body", body: "", wantStatus: 400, wantCode: "malformed_json"},
		{name: "only whitespace", body: " \n\t ", wantStatus: 400, wantCode: "malformed_json"},
		{name: "not JSON", body: "type=email&recipient=a", wantStatus: 400, wantCode: "malformed_json"},
		{name: "truncated JSON", body: `{"type":"email","recipient":"a@exa`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "truncated after a comma", body: `{"type":"email",`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "array at top level", body: `[` + valid + `]`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "string at top level", body: `"hello"`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "number at top level", body: `42`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "second object after the first", body: valid + `{}`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "garbage after the object", body: valid + ` x`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "a second value after the object", body: valid + ` 1`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "trailing comma", body: `{"type":"email","recipient":"a@example.com","content":"Hello",}`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "single quotes", body: `{'type':'email'}`, wantStatus: 400, wantCode: "malformed_json"},
		{
			name:       "send_at without an offset",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":"2026-12-24T18:00:00"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "send_at with a comma before its fraction",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":"2026-12-24T18:00:00,5Z"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "send_at with ten digits of fraction",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":"2026-12-24T18:00:00.1234567890Z"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "send_at with an offset without its colon",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":"2026-12-24T18:00:00+0100"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "send_at with a day out of range",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":"2026-02-30T18:00:00Z"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "send_at in words",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":"tomorrow"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "send_at empty",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":""}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "send_at as a number",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","send_at":1767000000}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"send_at"},
		},
		{
			name:       "unknown field",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","urgency":"high"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"urgency"},
		},
		{
			name:       "type as number",
			body:       `{"type":1,"recipient":"a@example.com","content":"Hello"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"type"},
		},
		{
			name:       "recipient as object",
			body:       `{"type":"email","recipient":{"email":"a@example.com"},"content":"Hello"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"recipient"},
		},
		{
			name:       "content as array",
			body:       `{"type":"email","recipient":"a@example.com","content":["Hello"]}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"},
		},
		{
			name:       "variables as string",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","variables":"name=Ada"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"variables"},
		},
		{
			name:       "variables as array",
			body:       `{"type":"email","recipient":"a@example.com","content":"Hello","variables":["Ada"]}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"variables"},
		},
		{
			name:       "missing type, recipient and content at once",
			body:       `{"variables":{"name":"Ada"}}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"content", "recipient", "type"},
		},
		{
			name:       "empty object",
			body:       `{}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"content", "recipient", "type"},
		},
		{
			name:       "missing content only",
			body:       `{"type":"sms","recipient":"+14155550123"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"},
		},
		{
			name:       "null type counts as missing",
			body:       `{"type":null,"recipient":"a@example.com","content":"Hello"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"type"},
		},
		{name: "text/plain", contentType: "text/plain", body: valid, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "form", contentType: "application/x-www-form-urlencoded", body: valid, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "unparsable Content-Type", contentType: "application/json; charset", body: valid, wantStatus: 415, wantCode: "unsupported_media_type"},
		{
			name: "body over the limit", limit: 64,
			body:       `{"type":"email","recipient":"a@example.com","content":"` + strings.Repeat("x", 100) + `"}`,
			wantStatus: 413, wantCode: "too_large",
		},
		{
			name: "one byte over the limit", limit: int64(len(valid) - 1),
			body: valid, wantStatus: 413, wantCode: "too_large",
		},
		{name: "invalid UTF-8 in a string", body: "{\"type\":\"email\",\"recipient\":\"a@example.com\",\"content\":\"Hi \xff\"}", wantStatus: 400, wantCode: "malformed_json"},
		{name: "invalid UTF-8 in a key", body: "{\"type\":\"email\",\"recipient\":\"a@example.com\",\"content\":\"Hi\",\"variables\":{\"\xc3\":1}}", wantStatus: 400, wantCode: "malformed_json"},
		{name: "UTF-16 body", body: "\xff\xfe{\x00}\x00", wantStatus: 400, wantCode: "malformed_json"},
		{name: "20,000 nested arrays in variables", body: deep, limit: 1 << 20, wantStatus: 400, wantCode: "malformed_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			limit := tt.limit
			if limit == 0 {
				limit = defaultLimit
			}

			_, err := heraldhttp.DecodeSend(sendRequest(t, ct, tt.body), httptest.NewRecorder(), limit)
			if got := herald.ErrorCode(err); got != tt.wantCode {
				t.Errorf("DecodeSend error code = %q (%v), want %q", got, err, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantFields, sortedKeys(herald.ErrorFields(err)), cmpEmptyNil); diff != "" {
				t.Errorf("DecodeSend error fields (-want +got):\n%s", diff)
			}

			acceptor := &fakeAcceptor{}
			srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: limit}, acceptor, emptyReader{}, nil, testLogger(t))
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, sendRequest(t, ct, tt.body))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d; body: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			e := decodeErrorBody(t, rec.Header().Get("Content-Type"), rec.Body.Bytes())
			if e.Error.Code != tt.wantCode {
				t.Errorf("error.code = %q, want %q", e.Error.Code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantFields, sortedKeys(e.Error.Fields), cmpEmptyNil); diff != "" {
				t.Errorf("error.fields (-want +got):\n%s", diff)
			}
			for name, msg := range e.Error.Fields {
				if msg == "" {
					t.Errorf("error.fields[%q] is empty", name)
				}
			}
			if calls := acceptor.calls(); len(calls) != 0 {
				t.Errorf("acceptor was called with %+v", calls)
			}
		})
	}
}

// cmpEmptyNil treats a nil and an empty slice of field names alike.
var cmpEmptyNil = cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })

// TestSendBodyLimitBoundary checks that a body of exactly the limit is read in full.
func TestSendBodyLimitBoundary(t *testing.T) {
	body := `{"type":"sms","recipient":"+14155550123","content":"hi"}`
	tests := []struct {
		limit      int64
		wantStatus int
	}{
		{limit: int64(len(body)), wantStatus: http.StatusAccepted},
		{limit: int64(len(body)) - 1, wantStatus: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		acceptor := &fakeAcceptor{}
		srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: tt.limit}, acceptor, emptyReader{}, nil, testLogger(t))
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, sendRequest(t, "application/json", body))
		if rec.Code != tt.wantStatus {
			t.Errorf("limit %d, body %d bytes: status = %d, want %d; body: %s", tt.limit, len(body), rec.Code, tt.wantStatus, rec.Body)
		}
	}
}

// TestSendAnswer checks the 202 a valid request gets through the server: what reached the
// acceptor and what the client reads back.
func TestSendAnswer(t *testing.T) {
	acceptor := &fakeAcceptor{}
	srv := heraldhttp.NewServer(heraldhttp.Config{}, acceptor, emptyReader{}, nil, testLogger(t))
	rec := httptest.NewRecorder()
	r := sendRequest(t, "application/json; charset=utf-8",
		`{"type":"email","recipient":"ada@example.com","content":"Total {{.n}}","variables":{"n":12345678901234567890}}`)
	r.Header.Set("X-Correlation-ID", "req-42")
	srv.Handler().ServeHTTP(rec, r)

	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202; body: %s", rec.Code, rec.Body)
	}
	wantReq := []handlers.SendRequest{{Type: "email", Recipient: "ada@example.com", Content: "Total {{.n}}",
		Variables: map[string]any{"n": json.Number("12345678901234567890")}}}
	if diff := cmp.Diff(wantReq, acceptor.calls()); diff != "" {
		t.Errorf("acceptor got (-want +got):\n%s", diff)
	}
	id := "0195f1f4-0000-7000-8000-000000000001"
	wantHeaders := map[string]string{
		"Location":         "/api/v1/notifications/" + id + "/status",
		"X-Correlation-Id": "req-42",
		"Content-Type":     "application/json; charset=utf-8",
	}
	gotHeaders := map[string]string{}
	for name := range wantHeaders {
		gotHeaders[name] = rec.Header().Get(name)
	}
	if diff := cmp.Diff(wantHeaders, gotHeaders); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, rec.Body)
	}
	want := map[string]any{
		"id": id, "type": "email", "recipient": "ada@example.com", "status": "pending",
		"attempts": float64(0), "version": float64(1),
		"created_at": "2025-01-02T03:04:05Z", "updated_at": "2025-01-02T03:04:05Z",
		"links": map[string]any{
			"status":  "/api/v1/notifications/" + id + "/status",
			"history": "/api/v1/notifications/" + id + "/history",
			"events":  "/api/v1/notifications/" + id + "/events",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

// TestSendPanicAnswersJSON checks that a failure nobody planned for still reaches the client as
// the documented JSON error, not as an empty 500.
func TestSendPanicAnswersJSON(t *testing.T) {
	srv := heraldhttp.NewServer(heraldhttp.Config{}, &fakeAcceptor{panicMsg: "boom"}, emptyReader{}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, sendRequest(t, "application/json", `{"type":"sms","recipient":"+14155550123","content":"hi"}`))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	e := decodeErrorBody(t, rec.Header().Get("Content-Type"), rec.Body.Bytes())
	if e.Error.Code != "internal" {
		t.Errorf("error.code = %q, want internal", e.Error.Code)
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("the panic's value reached the client: %s", rec.Body)
	}
}
