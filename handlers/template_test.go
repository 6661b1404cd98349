package handlers_test

import (
	"context"
	"testing"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/templatestore"
)

// TestAcceptByTemplate: a send that names a stored template is rendered from the version it
// names (the latest, or name@N), with the version's defaults for the variables it leaves out,
// and NotificationQueued records that version; a send the template cannot serve is refused,
// naming the field, with nothing written.
func TestAcceptByTemplate(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	store := templatestore.New(db.Pool)
	log := events.NewLog(db.Pool)
	a := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits).WithTemplates(store)
	team := "The Team"
	if _, err := store.Create(ctx, "welcome", templatestore.Draft{Channel: herald.ChannelEmail, Subject: "Welcome, {{.name}}",
		Content: "Hello {{.name}}. {{.sign}}", HTML: `<p>Hello <b>{{.name}}</b></p><p>{{.sign}}</p>`,
		Variables: []events.TemplateVariable{{Name: "name"}, {Name: "sign", Default: &team}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, "welcome", templatestore.Draft{Channel: herald.ChannelEmail, Subject: "Hi {{.name}}",
		Content: "Hi {{.name}}", Variables: []events.TemplateVariable{{Name: "name"}}}, "ops"); err != nil {
		t.Fatal(err)
	}

	first, err := a.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Template: "welcome@1",
		Variables: map[string]any{"name": "<Ada>"}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := log.Load(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := recs[0].Event()
	q := e.(*events.NotificationQueued)
	if q.Template == nil || *q.Template != (events.TemplateRef{Name: "welcome", Version: 1}) {
		t.Errorf("template recorded %+v, want welcome@1", q.Template)
	}
	if q.Subject != "Welcome, {{.name}}" || q.RenderedSubject != "Welcome, <Ada>" || q.Body != "Hello <Ada>. The Team" ||
		q.RenderedHTML != "<p>Hello <b>&lt;Ada&gt;</b></p><p>The Team</p>" || q.Variables["sign"] != "The Team" {
		t.Errorf("queued %+v: want version 1 rendered, its default filled in and the HTML escaped", q)
	}

	latest, err := a.Accept(ctx, handlers.SendRequest{Type: "email", Recipient: "ada@example.com", Template: "welcome",
		Variables: map[string]any{"name": "Ada"}})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ = log.Load(ctx, latest.ID)
	e, _ = recs[0].Event()
	if q := e.(*events.NotificationQueued); q.Template == nil || q.Template.Version != 2 || q.Body != "Hi Ada" || q.RenderedHTML != "" {
		t.Errorf("queued by the latest %+v, want version 2 rendered", q)
	}

	if _, err := store.Create(ctx, "otp", templatestore.Draft{Channel: herald.ChannelSMS, Content: "Code {{.code}}",
		Variables: []events.TemplateVariable{{Name: "code"}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Create(ctx, "old", templatestore.Draft{Channel: herald.ChannelEmail, Content: "x"}, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Archive(ctx, "old", "replaced by welcome", "ops"); err != nil {
		t.Fatal(err)
	}
	var before int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		req   handlers.SendRequest
		field string
	}{
		{"unknown template", handlers.SendRequest{Type: "email", Recipient: "a@example.com", Template: "nope"}, "template"},
		{"unknown version", handlers.SendRequest{Type: "email", Recipient: "a@example.com", Template: "welcome@9", Variables: map[string]any{"name": "A"}}, "template"},
		{"bad reference", handlers.SendRequest{Type: "email", Recipient: "a@example.com", Template: "Welcome!"}, "template"},
		{"archived", handlers.SendRequest{Type: "email", Recipient: "a@example.com", Template: "old"}, "template"},
		{"another channel", handlers.SendRequest{Type: "email", Recipient: "a@example.com", Template: "otp", Variables: map[string]any{"code": "1"}}, "template"},
		{"missing variable", handlers.SendRequest{Type: "email", Recipient: "a@example.com", Template: "welcome"}, "variables.name"},
		{"content beside a template", handlers.SendRequest{Type: "email", Recipient: "a@example.com", Template: "welcome", Content: "x",
			Variables: map[string]any{"name": "A"}}, "content"},
		{"bad recipient", handlers.SendRequest{Type: "sms", Recipient: "12", Template: "otp", Variables: map[string]any{"code": "1"}}, "recipient"},
	} {
		_, err := a.Accept(ctx, tt.req)
		if herald.ErrorCode(err) != herald.EINVALID || herald.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: %v (fields %v), want EINVALID naming %s", tt.name, err, herald.ErrorFields(err), tt.field)
		}
	}
	var after int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&after); err != nil || after != before {
		t.Errorf("refused sends queued %d commands (%v)", after-before, err)
	}

	// Without a template store, sending by name is refused, not ignored.
	plain := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
	if _, err := plain.Accept(ctx, handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Template: "otp"}); herald.ErrorFields(err)["template"] == "" {
		t.Errorf("send by name without a store: %v, want EINVALID naming template", err)
	}
}

// TestIdempotencyByTemplate: a retried send by name is the same request after the template got
// a new version, and another template makes it another request.
func TestIdempotencyByTemplate(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	store := templatestore.New(db.Pool)
	a := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), handlers.DefaultLimits).WithTemplates(store)
	for _, name := range []string{"a", "b"} {
		if _, err := store.Create(ctx, name, templatestore.Draft{Channel: herald.ChannelSMS, Content: "v1"}, "ops"); err != nil {
			t.Fatal(err)
		}
	}
	req := handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Template: "a", IdempotencyKey: "k-1"}
	first, err := a.Accept(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, "a", templatestore.Draft{Channel: herald.ChannelSMS, Content: "v2"}, "ops"); err != nil {
		t.Fatal(err)
	}
	again, err := a.Accept(ctx, req)
	if err != nil || !again.Replayed || again.ID != first.ID {
		t.Errorf("retry after a new version: %+v, %v; want the first notification replayed", again, err)
	}
	other := req
	other.Template = "b"
	if _, err := a.Accept(ctx, other); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("same key, another template: %v, want EINVALID", err)
	}

	// The template no longer serves the request — a new version wants a variable the request
	// does not give, then the template is archived — and the retry still answers as the first.
	if _, err := store.Update(ctx, "a", templatestore.Draft{Channel: herald.ChannelSMS, Content: "v3 {{.code}}",
		Variables: []events.TemplateVariable{{Name: "code"}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	if again, err := a.Accept(ctx, req); err != nil || !again.Replayed || again.ID != first.ID {
		t.Errorf("retry after a version that needs another variable: %+v, %v; want the first replayed", again, err)
	}
	if _, err := store.Archive(ctx, "a", "gone", "ops"); err != nil {
		t.Fatal(err)
	}
	if again, err := a.Accept(ctx, req); err != nil || !again.Replayed || again.ID != first.ID {
		t.Errorf("retry after the template was archived: %+v, %v; want the first replayed", again, err)
	}
	// A retry that differs from the first request is no retry of it, even by a priority that is
	// not one: it is refused, not answered with the first notification.
	for _, priority := range []string{"high", "urgent"} {
		changed := req
		changed.Priority = priority
		if again, err := a.Accept(ctx, changed); herald.ErrorCode(err) != herald.EINVALID || again.Replayed {
			t.Errorf("same key, priority %q: %+v, %v; want EINVALID and no replay", priority, again, err)
		}
	}
	// A new key for the archived template is refused.
	fresh := req
	fresh.IdempotencyKey = "k-2"
	if _, err := a.Accept(ctx, fresh); herald.ErrorFields(err)["template"] == "" {
		t.Errorf("a new key for an archived template: %v, want EINVALID naming template", err)
	}
}
