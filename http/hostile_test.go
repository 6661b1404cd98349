package http_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// hostileAPI is the API as production builds it (default body limit, real acceptor, reader and
// outbox, no authentication) over a fresh database, reachable both on a local port and, for
// headers Go's client refuses to send, through its handler directly.
type hostileAPI struct {
	testAPI
	handler http.Handler
}

func newHostileAPI(t *testing.T) *hostileAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: heraldhttp.DefaultMaxBodyBytes},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t),
	)
	h := srv.Handler()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &hostileAPI{testAPI: testAPI{url: ts.URL, pool: db.Pool}, handler: h}
}

// post sends body to the send endpoint as application/json, with header added (a Content-Type
// in it replaces the default). direct serves it through the handler, not over the wire.
func (a *hostileAPI) post(t *testing.T, body string, header http.Header, direct bool) response {
	t.Helper()
	h := jsonHeader()
	for name, values := range header {
		h[http.CanonicalHeaderKey(name)] = values
	}
	if !direct {
		return a.do(t, http.MethodPost, "/api/v1/notifications/send", body, h)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/notifications/send", strings.NewReader(body))
	r.Header = h
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, r)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// requireNothingWritten fails unless the request left no trace in the database.
func requireNothingWritten(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for _, table := range []string{"event_log", "outbox", "idempotency_keys"} {
		if n := countRows(t, pool, table); n != 0 {
			t.Errorf("%s has %d rows after a refused request, want 0", table, n)
		}
	}
}

// sendBody is a send request's JSON, with the JSON of its fields spliced in as given.
func sendBody(fields ...string) string { return "{" + strings.Join(fields, ",") + "}" }

const (
	emailTo = `"type":"email","recipient":"ada@example.com"`
	smsTo   = `"type":"sms","recipient":"+14155550123"`
)

// nested is n copies of open, then inner, then n copies of close.
func nested(n int, open, inner, close string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// manyVariables is a JSON object of n variables named v0, v1, ...
func manyVariables(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"v%d":%d`, i, i)
	}
	b.WriteByte('}')
	return b.String()
}

// bigInteger is an n-digit integer.
func bigInteger(n int) string { return "9" + strings.Repeat("0", n-1) }

// crlfName is a display name that decodes (RFC 2047) to a line break and a Bcc header.
var crlfName = "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("Ada\r\nBcc: x@example.com")) + "?="

const notInSubset = `; the functions are and, default, eq, ge, gt, index, le, len, lower, lt, ne, not, or, trim, upper`

// TestHostileSendRefused sends what a careless or malicious client might, and requires each to be
// answered with a client error that says what is wrong, and nothing to be written.
func TestHostileSendRefused(t *testing.T) {
	api := newHostileAPI(t)
	const (
		singleLine   = "must be a single line: line breaks are not allowed"
		e164Digits   = "may contain only digits after '+', no spaces, dashes or parentheses: E.164 like +14155550123 is expected"
		subjectLine  = "must be a single line of text, without control characters"
		notUTF8      = "request body is not valid UTF-8"
		tooDeep      = "exceeded max depth"
		idemKeyRule  = "must be 1 to 255 printable ASCII characters"
		invalidMsg   = "the notification is invalid"
		overSMSLimit = "renders to 1601 characters, more than the SMS limit of 1600"
	)
	tests := []struct {
		name string
		body string
		// header is added to Content-Type: application/json; a Content-Type in it replaces that.
		header http.Header
		// direct serves the request through the handler: Go's client refuses to send the header.
		direct      bool
		wantStatus  int
		wantCode    string
		wantMessage string // contained in the answer's message
		// wantFields are the fields and their messages; a message "" stands for any message.
		wantFields map[string]string
	}{
		// Numbers. Variables keep a number as the client wrote it, and the event log stores them
		// as jsonb, whose numeric type ends near 1e131072 (and 1e-16383): beyond that the write
		// fails, so such a number must be refused here, naming it.
		{
			name: "1e999999 in variables", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":1e999999}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"variables.n": ""},
		},
		{
			name: "1e999999 unused in variables", body: sendBody(emailTo, `"content":"Hi"`, `"variables":{"n":-1e-999999}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"variables.n": ""},
		},
		{
			name: "1e999999 as the type", body: sendBody(`"type":1e999999`, `"recipient":"ada@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"type": "must be a string, not a number"},
		},
		{
			name: "10,000-digit integer as the content", body: sendBody(emailTo, `"content":`+bigInteger(10000)),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "must be a string, not a number"},
		},
		{
			name: "10,000-digit integer as an index", body: sendBody(emailTo, `"content":"{{index .l .i}}"`, `"variables":{"l":[1],"i":`+bigInteger(10000)+`}`),
			wantStatus: 422, wantCode: "invalid",
			wantFields: map[string]string{"content": "line 1, column 3 (index .l .i): error calling index: cannot index slice/array with type json.Number"},
		},
		{
			name: "10,000-digit integer compared", body: sendBody(emailTo, `"content":"{{if gt .n 1}}many{{end}}"`, `"variables":{"n":`+bigInteger(10000)+`}`),
			wantStatus: 422, wantCode: "invalid",
			wantFields: map[string]string{"content": "line 1, column 6 (gt .n 1): error calling gt: incompatible types for comparison: json.Number and int"},
		},
		{name: "NaN", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":NaN}`), wantStatus: 400, wantCode: "malformed_json", wantMessage: "invalid character 'N'"},
		{name: "Infinity", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":-Infinity}`), wantStatus: 400, wantCode: "malformed_json", wantMessage: "invalid character 'I'"},
		{name: "hex number", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":0x10}`), wantStatus: 400, wantCode: "malformed_json", wantMessage: "request body is not valid JSON"},
		{name: "leading zeros", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":007}`), wantStatus: 400, wantCode: "malformed_json", wantMessage: "request body is not valid JSON"},
		{
			name: "NaN as text compared as a number", body: sendBody(emailTo, `"content":"{{if gt .n 1}}many{{end}}"`, `"variables":{"n":"NaN"}`),
			wantStatus: 422, wantCode: "invalid",
			wantFields: map[string]string{"content": "line 1, column 6 (gt .n 1): error calling gt: incompatible types for comparison: string and int"},
		},

		// Deep JSON.
		{
			name: "100,000 nested arrays in variables", body: sendBody(emailTo, `"content":"Hi"`, `"variables":{"x":`+nested(100000, "[", "", "]")+`}`),
			wantStatus: 400, wantCode: "malformed_json", wantMessage: tooDeep,
		},
		{
			name: "10,001 nested objects in variables", body: sendBody(emailTo, `"content":"Hi"`, `"variables":`+nested(10001, `{"a":`, "1", "}")),
			wantStatus: 400, wantCode: "malformed_json", wantMessage: tooDeep,
		},
		{
			name: "100,000 nested arrays as the content", body: sendBody(emailTo, `"content":`+nested(100000, "[", "", "]")),
			wantStatus: 400, wantCode: "malformed_json", wantMessage: tooDeep,
		},
		{
			name: "100,000 unclosed arrays", body: sendBody(emailTo, `"content":"Hi"`, `"variables":{"x":`+strings.Repeat("[", 100000)),
			wantStatus: 400, wantCode: "malformed_json", wantMessage: tooDeep,
		},

		// Invalid UTF-8, in each field: the body as a whole is refused before any field is read.
		{name: "invalid UTF-8 in type", body: sendBody("\"type\":\"em\xffail\"", `"recipient":"ada@example.com"`, `"content":"Hi"`), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "invalid UTF-8 in recipient", body: sendBody(`"type":"email"`, "\"recipient\":\"ada\xfe@example.com\"", `"content":"Hi"`), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "invalid UTF-8 in subject", body: sendBody(emailTo, "\"subject\":\"Hi \xc3\"", `"content":"Hi"`), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "invalid UTF-8 in content", body: sendBody(emailTo, "\"content\":\"Hi \x80\""), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "invalid UTF-8 in a variable", body: sendBody(emailTo, `"content":"Hi"`, "\"variables\":{\"n\":\"\xf5\x80\x80\x80\"}"), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "invalid UTF-8 in a variable's name", body: sendBody(emailTo, `"content":"Hi"`, "\"variables\":{\"\xe2\x82\":1}"), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "invalid UTF-8 in an unknown field's name", body: sendBody(emailTo, `"content":"Hi"`, "\"\xff\":1"), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "overlong UTF-8 slash", body: sendBody(emailTo, "\"content\":\"..\xc0\xaf..\xc0\xafetc\""), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "overlong UTF-8 NUL", body: sendBody(emailTo, "\"content\":\"Hi\xc0\x80\""), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "surrogate encoded as UTF-8", body: sendBody(emailTo, "\"content\":\"Hi \xed\xa0\x80\""), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "UTF-8 beyond U+10FFFF", body: sendBody(emailTo, "\"content\":\"Hi \xf4\x90\x80\x80\""), wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{name: "UTF-16 body", body: "\xff\xfe{\x00}\x00", wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8},
		{
			name: "UTF-16 body declared as such", body: "\xff\xfe{\x00}\x00", header: http.Header{"Content-Type": {"application/json; charset=utf-16"}},
			wantStatus: 400, wantCode: "malformed_json", wantMessage: notUTF8,
		},
		{name: "lone surrogate as the type", body: sendBody(`"type":"email\ud800"`, `"recipient":"ada@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"type": "unknown type \"email\ufffd\": want email or sms"}},

		// Header injection.
		{
			name: "CRLF and Bcc in an email recipient", body: sendBody(`"type":"email"`, `"recipient":"a@example.com\r\nBcc: x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": singleLine},
		},
		{
			name: "LF and Bcc in an email recipient", body: sendBody(`"type":"email"`, `"recipient":"a@example.com\nBcc:"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": singleLine},
		},
		{
			name: "CR alone in an email recipient", body: sendBody(`"type":"email"`, `"recipient":"a@example.com\rBcc: x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": singleLine},
		},
		{
			name: "Unicode line separator in an email recipient", body: sendBody(`"type":"email"`, `"recipient":"Ada\u2028Bcc: x <a@example.com>"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": singleLine},
		},
		{
			name: "NEL in an email recipient", body: sendBody(`"type":"email"`, `"recipient":"a@example.com\u0085Bcc: x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": singleLine},
		},
		{
			name: "CRLF in a quoted display name", body: sendBody(`"type":"email"`, `"recipient":"\"Ada\r\nBcc: x@example.com\" <a@example.com>"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": singleLine},
		},
		{
			name: "CRLF in a base64 encoded-word display name", body: sendBody(`"type":"email"`, `"recipient":"`+crlfName+` <a@example.com>"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": "display name " + singleLine},
		},
		{
			name: "CRLF in a Q encoded-word display name", body: sendBody(`"type":"email"`, `"recipient":"=?UTF-8?Q?Ada=0D=0ABcc=3A_x=40example.com?= <a@example.com>"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": "display name " + singleLine},
		},
		{
			name: "NUL in an encoded-word display name", body: sendBody(`"type":"email"`, `"recipient":"=?UTF-8?Q?Ada=00?= <a@example.com>"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": "display name contains the control character U+0000"},
		},
		{
			name: "two addresses in one recipient", body: sendBody(`"type":"email"`, `"recipient":"a@example.com, x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": "must be exactly one email address, not a list"},
		},
		{
			name: "group syntax in a recipient", body: sendBody(`"type":"email"`, `"recipient":"team: a@example.com, x@example.com;"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": "must be exactly one email address, not a list"},
		},
		{
			name: "CRLF after an SMS number", body: sendBody(`"type":"sms"`, `"recipient":"+14155550123\r\n"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": e164Digits},
		},
		{
			name: "CRLF and a header after an SMS number", body: sendBody(`"type":"sms"`, `"recipient":"+14155550123\r\nX-Evil: 1"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": e164Digits},
		},
		{
			name: "CRLF and Bcc in the subject", body: sendBody(emailTo, `"subject":"Hi\r\nBcc: x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"subject": subjectLine},
		},
		{
			name: "line separator in the subject", body: sendBody(emailTo, `"subject":"Hi\u2028Bcc: x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"subject": subjectLine},
		},
		{
			name: "subject template writing CRLF", body: sendBody(emailTo, `"subject":"Hi{{\"\\r\\n\"}}Bcc: x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"subject": subjectLine},
		},
		{
			name: "subject variable holding CRLF", body: sendBody(emailTo, `"subject":"Hi {{.name}}"`, `"content":"Hi"`, `"variables":{"name":"Ada\r\nBcc: x@example.com"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"subject": subjectLine},
		},
		{
			name: "CRLF in the Idempotency-Key", body: sendBody(smsTo, `"content":"Hi"`),
			header: http.Header{"Idempotency-Key": {"k\r\nX-Evil: 1"}}, direct: true,
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"Idempotency-Key": idemKeyRule},
		},
		{
			name: "non-ASCII Idempotency-Key", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Idempotency-Key": {"ключ"}},
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"Idempotency-Key": idemKeyRule},
		},
		{
			name: "invalid UTF-8 Idempotency-Key", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Idempotency-Key": {"k\xff"}},
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"Idempotency-Key": idemKeyRule},
		},
		{
			name: "tab in the Idempotency-Key", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Idempotency-Key": {"a\tb"}},
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"Idempotency-Key": idemKeyRule},
		},
		{
			name: "100 KB Idempotency-Key", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Idempotency-Key": {strings.Repeat("k", 100<<10)}},
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"Idempotency-Key": idemKeyRule},
		},

		// Template attacks.
		{
			name: "template", body: sendBody(emailTo, `"content":"{{template \"x\"}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "line 1, column 12: {{template}} is not allowed"},
		},
		{
			name: "define", body: sendBody(emailTo, `"content":"{{define \"x\"}}{{readFile \"/etc/passwd\"}}{{end}}{{template \"x\"}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "{{define}} and {{block}} are not allowed"},
		},
		{
			name: "block", body: sendBody(emailTo, `"content":"{{block \"x\" .}}a{{end}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "{{define}} and {{block}} are not allowed"},
		},
		{
			name: "call", body: sendBody(emailTo, `"content":"{{call .f}}"`, `"variables":{"f":"os.ReadFile"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": `line 1, column 3: function "call" is not allowed`},
		},
		{
			name: "printf with a huge width", body: sendBody(emailTo, `"content":"{{printf \"%999999999d\" 1}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": `line 1, column 3: function "printf" is not allowed; insert values with {{.name}}`},
		},
		{
			name: "readFile", body: sendBody(emailTo, `"content":"{{readFile \"/etc/passwd\"}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": `line 1, column 3: function "readFile" is not allowed` + notInSubset},
		},
		{
			name: "env", body: sendBody(emailTo, `"content":"{{env \"DATABASE_URL\"}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": `line 1, column 3: function "env" is not allowed` + notInSubset},
		},
		{
			name: "exec", body: sendBody(emailTo, `"content":"Hi {{exec \"id\" | upper}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": `line 1, column 6: function "exec" is not allowed` + notInSubset},
		},
		{
			name: "range over a billion", body: sendBody(emailTo, `"content":"{{range 1000000000}}{{end}}"`),
			wantStatus: 422, wantCode: "invalid",
			wantFields: map[string]string{"content": "line 1, column 9: range over a number is not allowed; iterate over a list such as {{range .items}}"},
		},
		{
			name: "range over a billion in a variable", body: sendBody(emailTo, `"content":"{{range .n}}x{{end}}"`, `"variables":{"n":1000000000}`),
			wantStatus: 422, wantCode: "invalid",
			wantFields: map[string]string{"content": "line 1, column 9: range needs a list or an object, not a number"},
		},
		{
			name: "nested ranges over a large list", body: sendBody(emailTo, `"content":"{{range .l}}{{range $.l}}x{{end}}{{end}}"`, `"variables":{"l":`+longJSONList(10000)+`}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "line 1, column 21: a range inside another range is not allowed"},
		},
		{
			name:       "loop over a large list with a costly body",
			body:       sendBody(emailTo, `"content":"{{range .l}}`+strings.Repeat(`{{$x := eq . 1}}`, 20)+`{{end}}"`, `"variables":{"l":`+longJSONList(10000)+`}`),
			wantStatus: 422, wantCode: "invalid",
			wantFields: map[string]string{"content": "line 1, column 9: repeating the loop for 10000 items needs too much work: use fewer items or a shorter loop"},
		},
		{
			name: "index far out of range", body: sendBody(emailTo, `"content":"{{index .a 99999}}"`, `"variables":{"a":[1]}`),
			wantStatus: 422, wantCode: "invalid",
			wantFields: map[string]string{"content": "line 1, column 3 (index .a 99999): error calling index: index out of range: 99999"},
		},
		{
			name: "fields of a string", body: sendBody(emailTo, `"content":"{{.a.b.c.d.e}}"`, `"variables":{"a":"text"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": ""},
		},
		{
			name: "unknown template variable", body: sendBody(emailTo, `"content":"{{$x}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": `line 1: undefined variable "$x"`},
		},
		{
			name: "comment only", body: sendBody(emailTo, `"content":"{{/* comment */}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "renders to an empty message"},
		},
		// A string literal can write characters the content itself may not hold; the event log,
		// jsonb, cannot store U+0000, so the rendered body must be checked as the subject is.
		{
			name: "NUL written by a template literal", body: sendBody(emailTo, `"content":"Hi{{\"\\x00\"}}"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": ""},
		},
		{
			name: "NUL written by a template literal in the subject", body: sendBody(emailTo, `"subject":"Hi{{\"\\u0000\"}}"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"subject": subjectLine},
		},
		{
			name: "SMS rendering 1601 characters", body: sendBody(smsTo, `"content":"{{.a}}"`, `"variables":{"a":"`+strings.Repeat("é", 1601)+`"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": overSMSLimit},
		},
		{
			// The SMS limit is in characters, but a rendering is first capped at 4 bytes a
			// character: past that the answer counts bytes.
			name: "SMS rendering 10,000 characters", body: sendBody(smsTo, `"content":"{{range .l}}{{$.a}}{{end}}"`, `"variables":{"l":[1,2,3,4,5,6,7,8,9,10],"a":"`+strings.Repeat("x", 1000)+`"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "renders to more than the SMS limit of 1600 characters"},
		},
		{
			name: "email rendering 1 MB", body: sendBody(emailTo, `"content":"{{range .l}}{{$.a}}{{end}}"`, `"variables":{"l":`+longJSONList(1000)+`,"a":"`+strings.Repeat("x", 1000)+`"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "renders to more than 65536 bytes"},
		},
		{
			name: "subject rendering 256 characters", body: sendBody(emailTo, `"subject":"{{.a}}"`, `"content":"Hi"`, `"variables":{"a":"`+strings.Repeat("s", 256)+`"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"subject": "renders to more than 255 characters"},
		},

		// Size and shape of the body.
		{
			name: "300 KB body", body: sendBody(emailTo, `"content":"`+strings.Repeat("z", 300<<10)+`"`),
			wantStatus: 413, wantCode: "too_large", wantMessage: "request body is larger than 262144 bytes",
		},
		{
			name: "content over 32 KB", body: sendBody(emailTo, `"content":"`+strings.Repeat("z", 32<<10+1)+`"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"content": "is 32769 bytes, more than the limit of 32768"},
		},
		{
			name: "10,000 variables and one missing", body: sendBody(emailTo, `"content":"{{.v10000}}"`, `"variables":`+manyVariables(10000)),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"variables.v10000": "used by content but not given"},
		},
		{
			name: "variable name with NUL", body: sendBody(emailTo, `"content":"Hi"`, `"variables":{"a\u0000b":"x"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"variables": "contains a NUL character"},
		},
		{
			name: "nested variable name with NUL", body: sendBody(emailTo, `"content":"Hi"`, `"variables":{"user":{"na\u0000me":"x"}}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"variables.user": "contains a NUL character"},
		},
		{
			name: "NUL deep in a list", body: sendBody(emailTo, `"content":"Hi"`, `"variables":{"l":["a",["b","\u0000"]]}`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"variables.l[1][1]": "contains a NUL character"},
		},
		{
			name: "field given twice", body: sendBody(`"type":"email"`, `"recipient":"ada@example.com"`, `"recipient":"x@example.com"`, `"content":"Hi"`),
			wantStatus: 422, wantCode: "invalid", wantFields: map[string]string{"recipient": "is given more than once"},
		},

		// Headers.
		{
			name: "100 KB Content-Type that is not JSON", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Content-Type": {"text/plain; x=" + strings.Repeat("y", 100<<10)}},
			wantStatus: 415, wantCode: "unsupported_media_type", wantMessage: "is not JSON: send application/json",
		},
		{
			name: "100 KB Content-Type that does not parse", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Content-Type": {strings.Repeat("application/json;", 6000)}},
			wantStatus: 415, wantCode: "unsupported_media_type", wantMessage: "is not JSON: send application/json",
		},
		{
			name: "a second Content-Type after one that is not JSON", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Content-Type": {"text/plain", "application/json"}},
			wantStatus: 415, wantCode: "unsupported_media_type", wantMessage: `Content-Type "text/plain" is not JSON`,
		},
		{
			name: "two media types in one Content-Type", body: sendBody(smsTo, `"content":"Hi"`),
			header:     http.Header{"Content-Type": {"application/json, text/plain"}},
			wantStatus: 415, wantCode: "unsupported_media_type", wantMessage: "is not JSON: send application/json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := api.post(t, tt.body, tt.header, tt.direct)
			if r.status != tt.wantStatus {
				t.Errorf("status = %d, want %d; body: %.2000s", r.status, tt.wantStatus, r.body)
			}
			e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
			if e.Error.Code != tt.wantCode {
				t.Errorf("error.code = %q, want %q", e.Error.Code, tt.wantCode)
			}
			wantMessage := tt.wantMessage
			if wantMessage == "" && tt.wantStatus == http.StatusUnprocessableEntity {
				wantMessage = invalidMsg
			}
			if !strings.Contains(e.Error.Message, wantMessage) {
				t.Errorf("error.message = %.500q, want it to contain %q", e.Error.Message, wantMessage)
			}
			got := map[string]string{}
			for name, msg := range e.Error.Fields {
				if msg == "" {
					t.Errorf("error.fields[%q] is empty", name)
				}
				if want, ok := tt.wantFields[name]; ok && want == "" {
					msg = ""
				}
				got[name] = msg
			}
			if diff := cmp.Diff(tt.wantFields, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("error.fields (-want +got):\n%s", diff)
			}
			requireNothingWritten(t, api.pool)
		})
	}
}

// longJSONList is the JSON list 0, 1, ... n-1.
func longJSONList(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	return "[" + strings.Join(items, ",") + "]"
}

// TestHostileSendAccepted sends odd but harmless requests, and checks that each is accepted and
// stored as the code documents: rendered sanely, within the limits.
func TestHostileSendAccepted(t *testing.T) {
	api := newHostileAPI(t)
	big := bigInteger(10000)
	tests := []struct {
		name        string
		body        string
		header      http.Header
		wantBody    string
		wantSubject string // "" means the default subject for email, none for SMS
	}{
		{name: "10,000-digit integer renders as sent", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":`+big+`}`), wantBody: big},
		{name: "negative zero renders as 0", body: sendBody(emailTo, `"content":"{{.n}} {{.f}}"`, `"variables":{"n":-0,"f":-0.0}`), wantBody: "0 -0.0"},
		{name: "NaN as text is text", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":"NaN"}`), wantBody: "NaN"},
		{name: "large exponent renders as sent", body: sendBody(emailTo, `"content":"{{.n}}"`, `"variables":{"n":1e300}`), wantBody: "1e300"},
		{
			name: "50 nested objects", body: sendBody(emailTo, `"content":"{{.`+strings.Repeat("a.", 50)+`v}}"`, `"variables":`+nested(50, `{"a":`, `{"v":"deep"}`, "}")),
			wantBody: "deep",
		},
		{name: "9,000 nested arrays", body: sendBody(emailTo, `"content":"{{len .x}}"`, `"variables":{"x":`+nested(9000, "[", "", "]")+`}`), wantBody: "1"},
		{name: "lone surrogate becomes U+FFFD", body: sendBody(emailTo, `"subject":"\ud800"`, `"content":"Hi \udfff{{.a}}"`, `"variables":{"a":"\ud800"}`), wantBody: "Hi \ufffd\ufffd", wantSubject: "\ufffd"},
		{name: "comment", body: sendBody(emailTo, `"content":"Hi{{/* {{readFile \"/etc/passwd\"}} */}}"`), wantBody: "Hi"},
		{name: "len of the variables", body: sendBody(emailTo, `"content":"{{ len . }}"`, `"variables":{"a":1,"b":2}`), wantBody: "2"},
		{name: "10,000 variables", body: sendBody(emailTo, `"content":"{{.v9999}}"`, `"variables":`+manyVariables(10000)), wantBody: "9999"},
		{name: "SMS of exactly 1600 characters", body: sendBody(smsTo, `"content":"{{.a}}"`, `"variables":{"a":"`+strings.Repeat("é", 1600)+`"}`), wantBody: strings.Repeat("é", 1600)},
		{name: "encoded-word display name", body: sendBody(`"type":"email"`, `"recipient":"=?UTF-8?Q?Ad=C3=A1?= <a@example.com>"`, `"content":"Hi"`), wantBody: "Hi"},
		{
			name: "100 KB Content-Type parameter", body: sendBody(smsTo, `"content":"Hi"`),
			header: http.Header{"Content-Type": {"application/json; x=" + strings.Repeat("y", 100<<10)}}, wantBody: "Hi",
		},
		{
			name: "duplicate Content-Type: the first is read", body: sendBody(smsTo, `"content":"Hi"`),
			header: http.Header{"Content-Type": {"application/json", "text/plain"}}, wantBody: "Hi",
		},
		{
			name: "100 KB correlation id is replaced", body: sendBody(smsTo, `"content":"Hi"`),
			header: http.Header{"X-Correlation-Id": {strings.Repeat("c", 100<<10)}}, wantBody: "Hi",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := api.post(t, tt.body, tt.header, false)
			if r.status != http.StatusAccepted {
				t.Fatalf("status = %d, want 202; body: %.2000s", r.status, r.body)
			}
			n := decodeJSON[notificationResponse](t, r)
			if _, err := uuid.Parse(r.header.Get(heraldhttp.CorrelationHeader)); err != nil && tt.header.Get("X-Correlation-Id") != "" {
				t.Errorf("X-Correlation-ID = %.100q, want an id Herald made", r.header.Get(heraldhttp.CorrelationHeader))
			}
			var body, subject string
			err := api.pool.QueryRow(t.Context(), `SELECT data->>'body', coalesce(data->>'rendered_subject', '') FROM event_log WHERE stream_id = $1`, n.ID).
				Scan(&body, &subject)
			if err != nil {
				t.Fatalf("read the recorded event: %v", err)
			}
			if body != tt.wantBody {
				t.Errorf("recorded body = %.200q (%d bytes), want %.200q", body, len(body), tt.wantBody)
			}
			wantSubject := tt.wantSubject
			if wantSubject == "" && n.Type == "email" {
				wantSubject = handlers.DefaultSubject
			}
			if subject != wantSubject {
				t.Errorf("recorded subject = %q, want %q", subject, wantSubject)
			}
			if got := countRows(t, api.pool, "outbox"); got != i+1 {
				t.Errorf("outbox has %d rows after %d accepted requests", got, i+1)
			}
		})
	}
}

// TestHostileHeadersOnTheWire sends header values Go's client will not. Control characters are
// refused by net/http before any handler runs (with its own plain-text 400), and nothing is
// written; a folded header line is unfolded into one line, which Herald then judges like any other.
func TestHostileHeadersOnTheWire(t *testing.T) {
	api := newHostileAPI(t)
	body := sendBody(smsTo, `"content":"Hi"`)
	refused := []struct {
		name   string
		header string // raw header lines, each ending in CRLF
	}{
		{name: "CR and a header in the Idempotency-Key", header: "Idempotency-Key: k\rX-Evil: 1\r\n"},
		{name: "NUL in the Idempotency-Key", header: "Idempotency-Key: k\x00\r\n"},
		{name: "NUL in the Content-Type", header: "Content-Type: application/json\x00text/plain\r\n"},
		{name: "space before the colon", header: "Content-Type : application/json\r\n"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if status := rawPost(t, strings.TrimPrefix(api.url, "http://"), tt.header, body); status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", status)
			}
			requireNothingWritten(t, api.pool)
		})
	}

	t.Run("folded Idempotency-Key", func(t *testing.T) {
		status := rawPost(t, strings.TrimPrefix(api.url, "http://"), "Idempotency-Key: k\r\n\tX-Evil: 1\r\n", body)
		if status != http.StatusAccepted {
			t.Fatalf("status = %d, want 202", status)
		}
		var key string
		if err := api.pool.QueryRow(t.Context(), `SELECT key FROM idempotency_keys`).Scan(&key); err != nil {
			t.Fatal(err)
		}
		if key != "k X-Evil: 1" {
			t.Errorf("recorded idempotency key %q, want the folded line unfolded, \"k X-Evil: 1\"", key)
		}
	})
}

// rawPost writes a POST of body to the send endpoint byte for byte, with the extra header lines
// given, and returns the status of the answer.
func rawPost(t *testing.T, addr, header, body string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ToLower(header), "content-type") {
		header += "Content-Type: application/json\r\n"
	}
	req := fmt.Sprintf("POST /api/v1/notifications/send HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		addr, header, len(body), body)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}
