package handlers_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/templatestore"
)

// attachmentLimits are small, so that the table reaches each limit with a few bytes.
var attachmentLimits = func() handlers.Limits {
	l := handlers.DefaultLimits
	l.MaxAttachments, l.MaxAttachmentBytes, l.MaxAttachmentsBytes = 3, 10, 16
	l.AttachmentTypes = []string{"application/pdf", "text/plain"}
	return l
}()

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func hexSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func pdf(name, content string) handlers.Attachment {
	return handlers.Attachment{Filename: name, ContentType: "application/pdf", Content: b64(content)}
}

// countRows returns how many rows table holds.
func countRows(t *testing.T, db *heraldtest.Database, table string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAcceptRefusesBadAttachments: every rule of attachments, at and over each limit; a refused
// send writes nothing, not even its files.
func TestAcceptRefusesBadAttachments(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	a := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), attachmentLimits)
	email := func(atts ...handlers.Attachment) handlers.SendRequest {
		return handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Content: "See attached.", Attachments: atts}
	}
	tests := []struct {
		name string
		req  handlers.SendRequest
		code string // "": accepted
		// field is the offending field; its message must contain what.
		field, what string
	}{
		{name: "at the count limit", req: email(pdf("a.pdf", "1"), pdf("b.pdf", "2"), pdf("c.pdf", "3"))},
		{name: "over the count limit", req: email(pdf("a.pdf", "1"), pdf("b.pdf", "2"), pdf("c.pdf", "3"), pdf("d.pdf", "4")),
			code: herald.EINVALID, field: "attachments", what: "more than the limit of 3"},
		{name: "one file at its limit", req: email(pdf("a.pdf", "0123456789"))},
		{name: "one file over its limit", req: email(pdf("a.pdf", "0"), pdf("b.pdf", "0123456789x")),
			code: herald.ETOOLARGE, field: "attachments[1].content", what: "11 bytes, more than the limit of 10"},
		{name: "all files at their limit", req: email(pdf("a.pdf", "01234567"), pdf("b.pdf", "abcdefgh"))},
		{name: "all files over their limit", req: email(pdf("a.pdf", "01234567"), pdf("b.pdf", "abcdefghi")),
			code: herald.ETOOLARGE, field: "attachments", what: "17 bytes together, more than the limit of 16"},
		{name: "type not allowed", req: email(handlers.Attachment{Filename: "x.exe", ContentType: "application/x-msdownload", Content: b64("MZ")}),
			code: herald.EINVALID, field: "attachments[0].content_type", what: "application/x-msdownload is not allowed"},
		{name: "HTML not allowed", req: email(pdf("a.pdf", "1"), handlers.Attachment{Filename: "x.html", ContentType: "text/html", Content: b64("<p>")}),
			code: herald.EINVALID, field: "attachments[1].content_type", what: "text/html is not allowed"},
		{name: "type is not a media type", req: email(handlers.Attachment{Filename: "a.pdf", ContentType: "pdf please", Content: b64("1")}),
			code: herald.EINVALID, field: "attachments[0].content_type", what: "must be a media type"},
		{name: "type missing", req: email(handlers.Attachment{Filename: "a.pdf", Content: b64("1")}),
			code: herald.EINVALID, field: "attachments[0].content_type", what: "is required"},
		{name: "type with a line break", req: email(handlers.Attachment{Filename: "a.txt", ContentType: "text/plain;\r\nBcc: x@y", Content: b64("1")}),
			code: herald.EINVALID, field: "attachments[0].content_type", what: "must be a media type"},
		{name: "name missing", req: email(pdf("", "1")), code: herald.EINVALID, field: "attachments[0].filename", what: "is required"},
		{name: "name with a slash", req: email(pdf("../etc/passwd", "1")), code: herald.EINVALID, field: "attachments[0].filename", what: "without /"},
		{name: "name with a backslash", req: email(pdf(`c:\x.pdf`, "1")), code: herald.EINVALID, field: "attachments[0].filename", what: "without /"},
		{name: "name with a double quote", req: email(pdf(`a".pdf`, "1")), code: herald.EINVALID, field: "attachments[0].filename", what: "double quote"},
		{name: "name with a control character", req: email(pdf("a\r\nb.pdf", "1")), code: herald.EINVALID, field: "attachments[0].filename", what: "control characters"},
		{name: "name at its length limit", req: email(pdf(strings.Repeat("n", 251)+".pdf", "1"))},
		{name: "name over its length limit", req: email(pdf(strings.Repeat("n", 252)+".pdf", "1")),
			code: herald.EINVALID, field: "attachments[0].filename", what: "256 bytes, more than the limit of 255"},
		{name: "content not base64", req: email(handlers.Attachment{Filename: "a.pdf", ContentType: "application/pdf", Content: "not base64!"}),
			code: herald.EINVALID, field: "attachments[0].content", what: "standard base64"},
		{name: "content in URL base64", req: email(handlers.Attachment{Filename: "a.pdf", ContentType: "application/pdf", Content: base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff})}),
			code: herald.EINVALID, field: "attachments[0].content", what: "standard base64"},
		{name: "content empty", req: email(pdf("a.pdf", "")), code: herald.EINVALID, field: "attachments[0].content", what: "is empty"},
		{name: "sms", req: handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi", Attachments: []handlers.Attachment{pdf("a.pdf", "1")}},
			code: herald.EINVALID, field: "attachments", what: "only for email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := [3]int{countRows(t, db, "event_log"), countRows(t, db, "outbox"), countRows(t, db, "attachments")}
			_, err := a.Accept(context.Background(), tt.req)
			after := [3]int{countRows(t, db, "event_log"), countRows(t, db, "outbox"), countRows(t, db, "attachments")}
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Accept: %v, want accepted", err)
				}
				return
			}
			if got := herald.ErrorCode(err); got != tt.code {
				t.Fatalf("Accept: %v (code %q), want code %q", err, got, tt.code)
			}
			if msg := herald.ErrorFields(err)[tt.field]; !strings.Contains(msg, tt.what) {
				t.Errorf("fields %v: want %s to say %q", herald.ErrorFields(err), tt.field, tt.what)
			}
			if before != after {
				t.Errorf("event_log, outbox, attachments rows went from %v to %v: a refused send wrote", before, after)
			}
		})
	}
}

// TestAttachmentsAreStoredOnce: two sends of the same bytes store one row, on the one-round-trip
// path (no idempotency key) and on the transaction path (with one); the event names the files by
// hash and carries none of their bytes. A send by stored template carries attachments too.
func TestAttachmentsAreStoredOnce(t *testing.T) {
	for _, path := range []string{"one round trip", "transaction"} {
		t.Run(path, func(t *testing.T) {
			db := heraldtest.NewDatabase(t)
			ctx := context.Background()
			log := events.NewLog(db.Pool)
			a := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
			content := "%PDF-1.7 the invoice " + strings.Repeat("x", 300)
			req := handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Content: "See attached.",
				Attachments: []handlers.Attachment{pdf("invoice.pdf", content), pdf("copy.pdf", content),
					{Filename: "notes.txt", ContentType: "text/plain; charset=utf-8", Content: b64("notes")}}}
			var ids []string
			for i := range 2 {
				if path == "transaction" {
					req.IdempotencyKey = "key-" + string(rune('a'+i))
				}
				got, err := a.Accept(ctx, req)
				if err != nil {
					t.Fatalf("Accept %d: %v", i, err)
				}
				ids = append(ids, got.ID)
			}
			if n := countRows(t, db, "attachments"); n != 2 {
				t.Errorf("%d attachment rows after two sends of two distinct files, want 2", n)
			}
			var size int64
			var data []byte
			if err := db.Pool.QueryRow(ctx, `SELECT size, data FROM attachments WHERE sha256 = decode($1, 'hex')`, hexSHA(content)).Scan(&size, &data); err != nil {
				t.Fatal(err)
			}
			if size != int64(len(content)) || string(data) != content {
				t.Errorf("stored %d bytes %.20q…, want %d bytes of the file", size, data, len(content))
			}
			want := []events.AttachmentRef{
				{Filename: "invoice.pdf", ContentType: "application/pdf", Size: int64(len(content)), SHA256: hexSHA(content)},
				{Filename: "copy.pdf", ContentType: "application/pdf", Size: int64(len(content)), SHA256: hexSHA(content)},
				{Filename: "notes.txt", ContentType: "text/plain; charset=utf-8", Size: 5, SHA256: hexSHA("notes")},
			}
			for _, id := range ids {
				recs, err := log.Load(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				e, err := recs[0].Event()
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, e.(*events.NotificationQueued).Attachments); diff != "" {
					t.Errorf("NotificationQueued attachments (-want +got):\n%s", diff)
				}
				if raw := string(recs[0].Data); strings.Contains(raw, "the invoice") || strings.Contains(raw, b64(content)[:40]) {
					t.Errorf("the event holds the file's bytes: %.200s", raw)
				}
			}
		})
	}
}

// TestIdempotencyCountsAttachments: the same key with other attachment bytes is another request.
func TestIdempotencyCountsAttachments(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	a := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), handlers.DefaultLimits)
	req := handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Content: "See attached.", IdempotencyKey: "k1",
		Attachments: []handlers.Attachment{pdf("a.pdf", "first")}}
	first, err := a.Accept(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.Accept(context.Background(), req)
	if err != nil || !again.Replayed || again.ID != first.ID {
		t.Fatalf("retry: %+v, %v; want the first notification replayed", again, err)
	}
	req.Attachments = []handlers.Attachment{pdf("a.pdf", "other")}
	if _, err := a.Accept(context.Background(), req); herald.ErrorFields(err)["Idempotency-Key"] == "" {
		t.Errorf("same key, other attachment bytes: %v; want the key refused as used with another request", err)
	}
	req.Attachments = []handlers.Attachment{pdf("b.pdf", "first")}
	if _, err := a.Accept(context.Background(), req); herald.ErrorFields(err)["Idempotency-Key"] == "" {
		t.Errorf("same key, other attachment name: %v; want the key refused as used with another request", err)
	}
}

// TestDeliverLoadsAttachments: the worker loads a notification's files by hash and hands the
// provider their bytes, with the names and types sent; when one is gone (the retention sweep
// deleted it) the notification fails for good without calling the provider.
func TestDeliverLoadsAttachments(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	a := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	p := &fakeProvider{name: "smtp", channel: herald.ChannelEmail}
	d := newDeliverer(log, "w1", p).WithFiles(attachments.New(db.Pool)).WithConns(db.Pool)
	send := func(content string) string {
		t.Helper()
		got, err := a.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Content: "See attached.",
			Attachments: []handlers.Attachment{pdf("a.pdf", content), {Filename: "b.txt", ContentType: "text/plain", Content: b64("bee")}}})
		if err != nil {
			t.Fatal(err)
		}
		return got.ID
	}

	id := send("\x00\xffbinary")
	if err := d.Deliver(ctx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}, cmdMD(1)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	calls := p.Calls()
	if len(calls) != 1 {
		t.Fatalf("provider called %d times, want 1", len(calls))
	}
	want := []delivery.Attachment{
		{Filename: "a.pdf", ContentType: "application/pdf", Data: []byte("\x00\xffbinary")},
		{Filename: "b.txt", ContentType: "text/plain", Data: []byte("bee")},
	}
	if diff := cmp.Diff(want, calls[0].Attachments); diff != "" {
		t.Errorf("attachments given to the provider (-want +got):\n%s", diff)
	}

	gone := send("deleted later")
	if _, err := db.Pool.Exec(ctx, `DELETE FROM attachments WHERE sha256 = decode($1, 'hex')`, hexSHA("deleted later")); err != nil {
		t.Fatal(err)
	}
	err := d.Deliver(ctx, commands.SendNotification{NotificationID: gone, Channel: herald.ChannelEmail}, cmdMD(1))
	checkOutcome(t, err, givenUp, nil)
	if !errors.Is(err, handlers.ErrAttachmentGone) {
		t.Errorf("Deliver: %v, want it to wrap ErrAttachmentGone", err)
	}
	if n := len(p.Calls()); n != 1 {
		t.Errorf("provider called %d times in all, want 1: not for the notification whose file is gone", n)
	}
	n, _, err := log.Notification(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != herald.StatusFailed || !strings.Contains(n.LastError, "a.pdf (sha256 "+hexSHA("deleted later")+") was deleted") {
		t.Errorf("notification %s, error %q: want failed, naming the file and its hash", n.Status, n.LastError)
	}
	recs, _ := log.Load(ctx, gone)
	last, _ := recs[len(recs)-1].Event()
	if f, ok := last.(*events.NotificationFailed); !ok || f.Reason != events.ReasonPermanentError {
		t.Errorf("last event %T %+v, want NotificationFailed for a permanent error", last, last)
	}

	// The read models agree with the fold, which carries the references they do not keep.
	heraldtest.WaitLogVisible(t, db, len(recs)+3)
	all, _, err := log.ReadAfter(ctx, nil, events.Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, p := range projections.All() {
		if err := p.ApplyBatch(ctx, tx, all); err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	heraldtest.CheckReadModels(t, db, []string{id, gone})
}

// TestAttachmentsWithStoredTemplate: a send by stored template carries the client's attachments;
// they are checked the same way, and are never the template's.
func TestAttachmentsWithStoredTemplate(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	store := templatestore.New(db.Pool)
	log := events.NewLog(db.Pool)
	a := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits).WithTemplates(store)
	if _, err := store.Create(ctx, "invoice", templatestore.Draft{Channel: herald.ChannelEmail, Subject: "Invoice {{.n}}",
		Content: "Invoice {{.n}} is attached.", Variables: []events.TemplateVariable{{Name: "n"}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	got, err := a.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Template: "invoice",
		Variables: map[string]any{"n": "42"}, Attachments: []handlers.Attachment{pdf("invoice-42.pdf", "%PDF 42")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []herald.Attachment{{Filename: "invoice-42.pdf", ContentType: "application/pdf", Size: 7, SHA256: hexSHA("%PDF 42")}}; !cmp.Equal(want, got.Attachments) {
		t.Errorf("accepted attachments %+v, want %+v", got.Attachments, want)
	}
	if n := countRows(t, db, "attachments"); n != 1 {
		t.Errorf("%d attachment rows, want 1", n)
	}
	_, err = a.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Template: "invoice",
		Variables: map[string]any{"n": "43"}, Attachments: []handlers.Attachment{pdf("a/b.pdf", "%PDF 43")}})
	if herald.ErrorFields(err)["attachments[0].filename"] == "" {
		t.Errorf("a bad filename with a template: %v, want it named", err)
	}
}

// TestScheduledAttachmentsOutliveTheirWait: a scheduled send's files count as used at its
// send_at, so that a retention shorter than the wait does not purge them before the release;
// a later send of the same file now keeps the later time, with or without a key.
func TestScheduledAttachmentsOutliveTheirWait(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	a := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), attachmentLimits)
	store := attachments.New(db.Pool)
	lastUsed := func() time.Time {
		t.Helper()
		var at time.Time
		if err := db.Pool.QueryRow(ctx, `SELECT last_used_at FROM attachments WHERE sha256 = decode($1, 'hex')`, hexSHA("invoice")).Scan(&at); err != nil {
			t.Fatalf("the file is not stored: %v", err)
		}
		return at
	}
	for _, key := range []string{"", "k"} {
		at := time.Now().Add(2 * time.Hour).Truncate(time.Microsecond)
		req := handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Content: "See attached.",
			Attachments: []handlers.Attachment{pdf("invoice.pdf", "invoice")}, SendAt: &at, IdempotencyKey: key}
		if _, err := a.Accept(ctx, req); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); !got.Equal(at) {
			t.Errorf("key %q: last_used_at %v, want the send_at %v", key, got, at)
		}
		now := req
		now.SendAt, now.IdempotencyKey = nil, ""
		if _, err := a.Accept(ctx, now); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); !got.Equal(at) {
			t.Errorf("key %q: a send now moved last_used_at to %v, want the later send_at %v kept", key, got, at)
		}
		// A retention of an hour: the file waits for its send two hours ahead.
		if n, err := store.Purge(ctx, time.Hour); err != nil || n != 0 {
			t.Errorf("key %q: Purge(1h) deleted %d, %v; want the scheduled send's file kept", key, n, err)
		}
		if _, err := db.Pool.Exec(ctx, `UPDATE attachments SET last_used_at = now() - interval '2 hours'`); err != nil {
			t.Fatal(err)
		}
	}
}
