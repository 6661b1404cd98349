package bench

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/templatestore"
)

// TestStoredBodiesSendTheSameLoad: with --template, each request names a stored template, and
// what Herald renders from it is what it renders from the inline request of the same index —
// text emails, newsletters and SMS alike — so the two runs compare the same work.
func TestStoredBodiesSendTheSameLoad(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	if err := createTemplates(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	a := handlers.NewAcceptor(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), handlers.DefaultLimits).
		WithTemplates(templatestore.New(db.Pool))
	decode := func(raw []byte) handlers.SendRequest {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/api/v1/notifications/send", bytes.NewReader(raw))
		r.Header.Set("Content-Type", "application/json")
		req, err := heraldhttp.DecodeSend(r, httptest.NewRecorder(), heraldhttp.DefaultMaxBodyBytes)
		if err != nil {
			t.Fatalf("%s does not decode: %v", raw, err)
		}
		return req
	}
	render := func(req handlers.SendRequest) events.NotificationQueued {
		t.Helper()
		acc, err := a.Accept(ctx, req)
		if err != nil {
			t.Fatalf("%+v is not accepted: %v", req, err)
		}
		recs, err := events.NewLog(db.Pool).Load(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := recs[0].Event()
		return *e.(*events.NotificationQueued)
	}
	for _, html := range []bool{false, true} {
		for _, i := range []int{0, 1, 42} {
			inline, stored := render(decode(body(i, 0.5, html))), render(decode(storedBody(i, 0.5, html)))
			if stored.Template == nil {
				t.Errorf("html %v, %d: the stored request named no template", html, i)
			}
			if inline.Channel != stored.Channel || inline.Recipient != stored.Recipient || inline.RenderedSubject != stored.RenderedSubject ||
				inline.Body != stored.Body || inline.RenderedHTML != stored.RenderedHTML {
				t.Errorf("html %v, %d: inline renders %s %q %q (%d bytes of HTML), stored %s %q %q (%d bytes)", html, i,
					inline.Channel, inline.RenderedSubject, inline.Body, len(inline.RenderedHTML),
					stored.Channel, stored.RenderedSubject, stored.Body, len(stored.RenderedHTML))
			}
		}
	}
}
