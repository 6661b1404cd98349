package http_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// TestSendWithAttachments: a send's body may exceed the API's body limit by the attachments at
// their limits in base64, and no more; a file beyond its limit is a 413 and a malformed
// attachment a 422, each naming the field, with nothing written.
func TestSendWithAttachments(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	limits := handlers.DefaultLimits
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: apiMaxBody, SendBodyBytes: apiMaxBody + limits.SendBodyBytes()},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), limits),
		projections.NewReader(db.Pool, log), nil, testLogger(t))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	api := &testAPI{url: ts.URL, pool: db.Pool}

	file := func(name, contentType string, size int) string {
		data := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(name[:1], size)))
		return fmt.Sprintf(`{"filename":%q,"content_type":%q,"content":%q}`, name, contentType, data)
	}
	send := func(attachments ...string) string {
		return `{"type":"email","recipient":"ada@example.com","content":"See attached.","attachments":[` + strings.Join(attachments, ",") + `]}`
	}

	// Two files at the limit of one, together at the limit of all: 13 MiB of JSON.
	full := send(file("a.pdf", "application/pdf", limits.MaxAttachmentBytes), file("b.png", "image/png", limits.MaxAttachmentsBytes-limits.MaxAttachmentBytes))
	api.send(t, full, nil)
	if n := countRows(t, db.Pool, "attachments"); n != 2 {
		t.Fatalf("%d attachment rows after a send of two files, want 2", n)
	}

	tests := []struct {
		name, body    string
		status        int
		field, reason string
	}{
		{"a file over its limit", send(file("a.pdf", "application/pdf", limits.MaxAttachmentBytes+1)), 413, "attachments[0].content", "more than the limit"},
		{"files over their limit together", send(file("a.pdf", "application/pdf", limits.MaxAttachmentBytes), file("b.pdf", "application/pdf", limits.MaxAttachmentsBytes-limits.MaxAttachmentBytes+1)),
			413, "attachments", "together, more than the limit"},
		{"not an array", `{"type":"email","recipient":"ada@example.com","content":"x","attachments":{}}`, 422, "attachments", "must be an array"},
		{"not an object", send(`"a.pdf"`), 422, "attachments[0]", "must be an object"},
		{"an unknown field", send(`{"filename":"a.pdf","content_type":"application/pdf","content":"eA==","path":"/tmp"}`), 422, "attachments[0].path", "not a known field"},
		{"a field missing", send(file("a.pdf", "application/pdf", 3), `{"filename":"a.pdf","content":"eA=="}`), 422, "attachments[1].content_type", "is required"},
		{"a number for a string", send(`{"filename":7,"content_type":"application/pdf","content":"eA=="}`), 422, "attachments[0].filename", "must be a string"},
		{"a type not allowed", send(file("run.exe", "application/x-msdownload", 3)), 422, "attachments[0].content_type", "not allowed"},
		{"an sms", `{"type":"sms","recipient":"+14155550123","content":"x","attachments":[` + file("a.pdf", "application/pdf", 3) + `]}`, 422, "attachments", "only for email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := [3]int{countRows(t, db.Pool, "event_log"), countRows(t, db.Pool, "outbox"), countRows(t, db.Pool, "attachments")}
			r := api.do(t, http.MethodPost, "/api/v1/notifications/send", tt.body, jsonHeader())
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			e := decodeJSON[errorResponse](t, r)
			if !strings.Contains(e.Error.Fields[tt.field], tt.reason) {
				t.Errorf("fields %v: want %s to say %q", e.Error.Fields, tt.field, tt.reason)
			}
			after := [3]int{countRows(t, db.Pool, "event_log"), countRows(t, db.Pool, "outbox"), countRows(t, db.Pool, "attachments")}
			if before != after {
				t.Errorf("event_log, outbox, attachments rows went from %v to %v", before, after)
			}
		})
	}

	// Past the room the attachments leave, the body itself is too large.
	over := send(file("a.pdf", "application/pdf", int(apiMaxBody+limits.SendBodyBytes())))
	if r := api.do(t, http.MethodPost, "/api/v1/notifications/send", over, jsonHeader()); r.status != 413 || !strings.Contains(string(r.body), "request body is larger") {
		t.Errorf("a body past the send's limit: %d %s, want 413 for the body", r.status, r.body)
	}
}
