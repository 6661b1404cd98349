package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	heraldhttp "github.com/herald-notify/herald/http"
)

// decodeSeeds are the starting points of both fuzz targets: valid requests and the malformed
// shapes clients really send. The corpus in testdata/fuzz adds the larger ones.
var decodeSeeds = []struct {
	contentType string
	body        string
}{
	{"application/json", `{"type":"email","recipient":"ada@example.com","content":"Hello!"}`},
	{"application/json", `{"type":"email","recipient":"Ada <ada@example.com>","subject":"Hi {{.name}}","content":"Hello {{.name}}!","variables":{"name":"Ada"}}`},
	{"application/json; charset=utf-8", `{"type":"sms","recipient":"+14155550123","content":"Code {{.code}}","variables":{"code":"1234"}}`},
	{"application/vnd.herald+json", `{"type":"sms","recipient":"+14155550123","content":"hi","variables":null}`},
	{"", `{"type":"sms","recipient":"+14155550123","content":"hi"}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"{{.n}} {{.f}} {{.e}}","variables":{"n":12345678901234567890,"f":-0.0,"e":1e400,"z":-0,"l":[1,2.5,{"x":null}],"b":true}}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"caf\u00e9 \ud800 \"q\" \u0000","subject":"\u2028"}`},
	{"application/json", `{"type":"email","recipient":"a@example.com\r\nBcc: x@example.com","content":"Hi"}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","html":"<p title=\"{{.t}}\"><a href=\"{{.u}}\">{{.t}}</a></p>","variables":{"t":"\" x","u":"javascript:x"}}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"Hi","html":"<script>var a = {{.a}};</script><a href=\"{{.a}}","variables":{"a":"</script>"}}`},
	{"application/json", `{"type":"sms","recipient":"+14155550123","html":"<p>hi</p>"}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"{{range .a}}{{.}}{{end}}","variables":{"a":[[[[[]]]]]}}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"See attached.","attachments":[{"filename":"a.pdf","content_type":"application/pdf","content":"JVBERi0xLjc="},{"filename":"b.txt","content_type":"text/plain; charset=utf-8","content":""}]}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"x","attachments":[{"filename":"../a\r\n.pdf","content_type":"text/html","content":"!!","extra":1},null,"x",[]]}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"x","attachments":{"filename":"a.pdf"}}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"x","attachments":[{"filename":null,"content_type":7,"content":{}}],"attachments":[]}`},
	{"application/json", `{"type":"sms","recipient":"+14155550123","content":"x","attachments":null}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"x","attachments":[]}`},
	{"application/json", ""},
	{"application/json", " \n\t "},
	{"application/json", "null"},
	{"application/json", "[]"},
	{"application/json", `"hello"`},
	{"application/json", "42"},
	{"application/json", "{}"},
	{"application/json", "{} {}"},
	{"application/json", `{"type":"email",}`},
	{"application/json", `{"type":"email","type":"sms"}`},
	{"application/json", `{"TYPE":"email","Recipient":"a@example.com"}`},
	{"application/json", `{"type":1e999999,"recipient":{},"content":[],"subject":true,"variables":"x"}`},
	{"application/json", `{"type":"email","recipient":"a@example.com","content":"x","variables":[1]}`},
	{"application/json", `{"type":"email","recipient":"a@exa`},
	{"application/json", `{'type':'email'}`},
	{"application/json", `{"type":NaN}`},
	{"application/json", "{\"type\":\"email\",\"content\":\"\xff\xfe\"}"},
	{"application/json", "{\"type\":\"email\",\"content\":\"\xc0\xaf\xed\xa0\x80\"}"},
	{"application/json", "\xef\xbb\xbf{}"},
	{"application/json", "\xff\xfe{\x00}\x00"},
	{"application/json", `{"variables":{"a\u0000b":1}}`},
	{"text/plain", `{"type":"sms","recipient":"+14155550123","content":"hi"}`},
	{"application/json; charset", `{}`},
	{"application/x-www-form-urlencoded", "type=sms"},
	{"multipart/form-data; boundary=x", "--x--"},
	{"application/json, text/plain", `{}`},
}

// edgeCodes are the codes DecodeSend may answer with: its error codes are the edge's own, and
// unexported, so they are spelled out as the client reads them.
var edgeCodes = map[string]bool{
	"malformed_json":         true,
	herald.EINVALID:          true,
	"too_large":              true,
	"unsupported_media_type": true,
}

// FuzzDecodeSend checks that DecodeSend never panics, answers with a request or an error a
// client can act on, never an internal one, and that what it decodes survives a round trip
// through JSON unchanged. slack sets the body limit relative to the body: negative is too large.
func FuzzDecodeSend(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add(s.contentType, []byte(s.body), int8(0))
	}
	f.Add("application/json", []byte(`{"type":"sms","recipient":"+14155550123","content":"hi"}`), int8(-1))
	f.Add("application/json", []byte(`{}`), int8(-128))
	f.Add("text/plain", []byte(`{}`), int8(-1))

	f.Fuzz(func(t *testing.T, contentType string, body []byte, slack int8) {
		limit := max(int64(len(body))+int64(slack), 0)
		r := httptest.NewRequest(http.MethodPost, "/api/v1/notifications/send", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		req, err := heraldhttp.DecodeSend(r, httptest.NewRecorder(), limit)
		if err != nil {
			checkDecodeError(t, body, limit, err)
			return
		}
		if int64(len(body)) > limit {
			t.Fatalf("DecodeSend accepted %d bytes with a limit of %d", len(body), limit)
		}
		if req.IdempotencyKey != "" {
			t.Errorf("DecodeSend set the idempotency key %q from the body", req.IdempotencyKey)
		}
		for name, s := range map[string]string{"type": req.Type, "recipient": req.Recipient, "subject": req.Subject, "content": req.Content, "html": req.HTML} {
			if !utf8.ValidString(s) {
				t.Errorf("decoded %s %q is not valid UTF-8", name, s)
			}
		}
		for i, a := range req.Attachments {
			for name, s := range map[string]string{"filename": a.Filename, "content_type": a.ContentType, "content": a.Content} {
				if !utf8.ValidString(s) {
					t.Errorf("decoded attachments[%d].%s %q is not valid UTF-8", i, name, s)
				}
			}
		}

		again, err := heraldhttp.DecodeSend(encodeSend(t, req), httptest.NewRecorder(), 1<<30)
		if err != nil {
			t.Fatalf("re-encoded request %+v does not decode: %v", req, err)
		}
		// reflect.DeepEqual first: cmp takes minutes over thousands of nested lists.
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("request changed in a JSON round trip (-first +second):\n%s", cmp.Diff(req, again))
		}
	})
}

// checkDecodeError checks that err is one of the answers DecodeSend documents, consistent with
// the body and the limit it was given.
func checkDecodeError(t *testing.T, body []byte, limit int64, err error) {
	t.Helper()
	var e *herald.Error
	if !errors.As(err, &e) {
		t.Fatalf("DecodeSend error %v is a %T, want a *herald.Error", err, err)
	}
	if !edgeCodes[e.Code] {
		t.Fatalf("DecodeSend error code %q (%v), want one of malformed_json, invalid, too_large, unsupported_media_type", e.Code, err)
	}
	if e.Message == "" {
		t.Errorf("DecodeSend error %q has no message", e.Code)
	}
	if e.Code == herald.EINVALID {
		if len(e.Fields) == 0 {
			t.Errorf("invalid error %q names no field", e.Message)
		}
		for name, msg := range e.Fields {
			if msg == "" {
				t.Errorf("field %q has an empty message", name)
			}
		}
	} else if len(e.Fields) != 0 {
		t.Errorf("%s error has fields %v", e.Code, e.Fields)
	}
	switch tooBig := int64(len(body)) > limit; {
	case e.Code == "too_large" && !tooBig:
		t.Errorf("too_large for %d bytes with a limit of %d", len(body), limit)
	case tooBig && e.Code != "too_large" && e.Code != "unsupported_media_type":
		t.Errorf("%d bytes with a limit of %d answered %s (%v), want too_large", len(body), limit, e.Code, err)
	}
	// A well-formed JSON object is never malformed: its problems have names.
	if e.Code == "malformed_json" && utf8.Valid(body) && json.Valid(body) {
		if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
			t.Errorf("malformed_json for a valid JSON object: %v", err)
		}
	}
}

// encodeSend is the request a client would send for req.
func encodeSend(t *testing.T, req handlers.SendRequest) *http.Request {
	t.Helper()
	type attachment struct {
		Filename    string `json:"filename"`
		ContentType string `json:"content_type"`
		Content     string `json:"content"`
	}
	var atts []attachment
	for _, a := range req.Attachments {
		atts = append(atts, attachment{a.Filename, a.ContentType, a.Content})
	}
	b, err := json.Marshal(struct {
		Type        string         `json:"type"`
		Recipient   string         `json:"recipient"`
		Subject     string         `json:"subject"`
		Content     string         `json:"content"`
		HTML        string         `json:"html"`
		Variables   map[string]any `json:"variables"`
		Attachments []attachment   `json:"attachments"`
	}{req.Type, req.Recipient, req.Subject, req.Content, req.HTML, req.Variables, atts})
	if err != nil {
		t.Fatalf("encode %+v: %v", req, err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/notifications/send", bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// validatingAcceptor runs the real rules (handlers.Acceptor.Validate) and accepts what passes
// without writing anything, keeping the last event it would have recorded.
type validatingAcceptor struct {
	rules *handlers.Acceptor

	mu     sync.Mutex
	queued *events.NotificationQueued
}

var _ heraldhttp.Acceptor = (*validatingAcceptor)(nil)

func newValidatingAcceptor() *validatingAcceptor {
	// Validate reads only the limits: the database, log and outbox are never touched.
	return &validatingAcceptor{rules: handlers.NewAcceptor(nil, nil, nil, handlers.DefaultLimits)}
}

func (a *validatingAcceptor) Accept(ctx context.Context, req handlers.SendRequest) (handlers.Accepted, error) {
	q, err := a.rules.Validate(req)
	if err != nil {
		return handlers.Accepted{}, err
	}
	a.mu.Lock()
	a.queued = q
	a.mu.Unlock()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return handlers.Accepted{Notification: herald.Notification{
		ID: "0195f1f4-0000-7000-8000-000000000001", Channel: q.Channel, Recipient: q.Recipient,
		Status: herald.StatusPending, Version: 1, CreatedAt: now, UpdatedAt: now,
	}}, nil
}

func (a *validatingAcceptor) last() *events.NotificationQueued {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queued
	a.queued = nil
	return q
}

// FuzzSendEndToEnd posts to the server, whose acceptor applies every rule the real one does
// before it writes: the answer is a 202 or a JSON client error, never a 5xx, and what is
// accepted is fit to store and to send.
func FuzzSendEndToEnd(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add(s.contentType, []byte(s.body), "")
	}
	f.Add("application/json", []byte(`{"type":"sms","recipient":"+14155550123","content":"hi"}`), "key-1")
	f.Add("application/json", []byte(`{"type":"sms","recipient":"+14155550123","content":"hi"}`), "k\r\nX: y")
	f.Add("application/json", []byte(`{"type":"email","recipient":"a@example.com","subject":"{{.s}}","content":"{{if gt .n 1}}{{.n}}{{end}} {{index .l 0}} {{upper .s}}","variables":{"n":2,"l":["x"],"s":"y"}}`), "")
	f.Add("application/json", []byte(`{"type":"email","recipient":"=?UTF-8?Q?A=0D=0AB?= <a@example.com>","content":"Hi"}`), "")
	f.Add("application/json", []byte(`{"type":"sms","recipient":"+14155550123","content":"Hi{{\"\\x41\"}}{{\"\\u2028\"}}"}`), "")

	acceptor := newValidatingAcceptor()
	handler := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: 64 << 10}, acceptor, emptyReader{}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil))).Handler()
	f.Fuzz(func(t *testing.T, contentType string, body []byte, idempotencyKey string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/notifications/send", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if idempotencyKey != "" {
			r.Header.Set(heraldhttp.IdempotencyHeader, idempotencyKey)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, r)
		q := acceptor.last()

		if rec.Code == http.StatusAccepted {
			if q == nil {
				t.Fatal("202 without a validated notification")
			}
			checkQueued(t, q)
			return
		}
		if q != nil {
			t.Fatalf("status %d after Validate passed", rec.Code)
		}
		if rec.Code < 400 || rec.Code > 499 {
			t.Fatalf("status %d, want 202 or a 4xx; body: %s", rec.Code, rec.Body)
		}
		var e errorResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%d answer is not JSON: %v\n%s", rec.Code, err, rec.Body)
		}
		if e.Error.Code == "" || e.Error.Message == "" || e.Error.Code == herald.EINTERNAL {
			t.Fatalf("%d answer lacks a client error code or message: %s", rec.Code, rec.Body)
		}
		if (rec.Code == http.StatusUnprocessableEntity) != (len(e.Error.Fields) > 0) {
			t.Errorf("%d answer with fields %v, want fields exactly on a 422", rec.Code, e.Error.Fields)
		}
	})
}

// checkQueued checks what Validate let through against what storing and sending it needs.
func checkQueued(t *testing.T, q *events.NotificationQueued) {
	t.Helper()
	if err := herald.ValidateRecipient(q.Channel, q.Recipient); err != nil {
		t.Errorf("accepted recipient %q: %v", q.Recipient, err)
	}
	if strings.TrimSpace(q.Body) == "" {
		t.Errorf("accepted an empty body from content %q", q.Content)
	}
	// PostgreSQL's jsonb cannot hold U+0000: anything accepted that carries one fails the write
	// with a 500 instead of a 422.
	b, err := json.Marshal(q)
	if err != nil {
		t.Fatalf("accepted event does not encode: %v", err)
	}
	if bytes.Contains(b, []byte(`\u0000`)) {
		t.Errorf("accepted event carries U+0000, which the event log cannot store: %s", b)
	}
	switch q.Channel {
	case herald.ChannelSMS:
		if n := utf8.RuneCountInString(q.Body); n > handlers.DefaultLimits.MaxSMSBodyChars {
			t.Errorf("accepted an SMS of %d characters", n)
		}
		if q.Subject != "" || q.RenderedSubject != "" {
			t.Errorf("accepted an SMS with subject %q", q.Subject)
		}
		if q.HTML != "" || q.RenderedHTML != "" {
			t.Errorf("accepted an SMS with html %q", q.HTML)
		}
	case herald.ChannelEmail:
		if len(q.Body) > handlers.DefaultLimits.MaxEmailBodyBytes {
			t.Errorf("accepted an email body of %d bytes", len(q.Body))
		}
		if len(q.RenderedHTML) > handlers.DefaultLimits.MaxHTMLBodyBytes || (q.HTML == "") != (q.RenderedHTML == "") {
			t.Errorf("accepted html %q rendered as %d bytes", q.HTML, len(q.RenderedHTML))
		}
		if strings.IndexFunc(q.RenderedSubject, func(r rune) bool {
			return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
		}) >= 0 {
			t.Errorf("accepted subject %q would break the mail header", q.RenderedSubject)
		}
		if n := utf8.RuneCountInString(q.RenderedSubject); n == 0 || n > handlers.DefaultLimits.MaxSubjectChars {
			t.Errorf("accepted a subject of %d characters", n)
		}
	default:
		t.Errorf("accepted channel %q", q.Channel)
	}
}
