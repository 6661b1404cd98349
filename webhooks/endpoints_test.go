package webhooks_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/webhooks"
)

// TestCreateRefusesBadEndpoints: a bad URL, an unknown or endpoint event type, a long description
// and a duplicate URL are refused with the field named, and nothing is written.
func TestCreateRefusesBadEndpoints(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	strict := webhooks.NewEndpoints(s.pool, webhooks.Policy{})
	if _, _, err := s.eps.Create(ctx, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/first"}, "tester"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		eps   *webhooks.Endpoints
		n     webhooks.NewEndpoint
		code  string
		field string
	}{
		{"not a URL", s.eps, webhooks.NewEndpoint{URL: "hooks"}, herald.EINVALID, "url"},
		{"http without AllowHTTP", strict, webhooks.NewEndpoint{URL: "http://hooks.example.com/"}, herald.EINVALID, "url"},
		{"loopback without AllowPrivate", strict, webhooks.NewEndpoint{URL: "https://127.0.0.1/"}, herald.EINVALID, "url"},
		{"metadata address", strict, webhooks.NewEndpoint{URL: "https://169.254.169.254/latest"}, herald.EINVALID, "url"},
		{"credentials in the URL", s.eps, webhooks.NewEndpoint{URL: "https://u:p@hooks.example.com/"}, herald.EINVALID, "url"},
		{"unknown type", s.eps, webhooks.NewEndpoint{URL: "https://a.example.com/", EventTypes: []string{"NotificationSnet"}}, herald.EINVALID, "events"},
		{"an endpoint's own type", s.eps, webhooks.NewEndpoint{URL: "https://a.example.com/", EventTypes: []string{events.TypeWebhookEndpointCreated}}, herald.EINVALID, "events"},
		{"long description", s.eps, webhooks.NewEndpoint{URL: "https://a.example.com/", Description: strings.Repeat("x", 501)}, herald.EINVALID, "description"},
		{"duplicate URL", s.eps, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/first"}, herald.ECONFLICT, "url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.eps.Create(ctx, tt.n, "tester")
			if herald.ErrorCode(err) != tt.code || herald.ErrorFields(err)[tt.field] == "" {
				t.Fatalf("Create: %v (fields %v), want %s naming %s", err, herald.ErrorFields(err), tt.code, tt.field)
			}
		})
	}
	list, err := s.eps.List(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("endpoints after the refusals: %d (%v), want the first only", len(list), err)
	}
	var streams int
	if err := s.db.Pool.QueryRow(ctx, `SELECT count(DISTINCT stream_id) FROM event_log`).Scan(&streams); err != nil || streams != 1 {
		t.Errorf("%d streams in the log (%v), want 1", streams, err)
	}
}

// TestEndpointChangesAreEvents: every change is an event of the endpoint's stream naming its
// actor; no secret is ever in the log; the endpoint's stream is no notification.
func TestEndpointChangesAreEvents(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	ep, secret, err := s.eps.Create(ctx, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/a", Description: "shop"}, "ada")
	if err != nil {
		t.Fatal(err)
	}
	if !ep.Enabled || ep.Version != 1 || ep.EventTypes != nil || ep.CreatedBy != "ada" {
		t.Errorf("created %+v", ep)
	}
	url := "http://127.0.0.1:9/b"
	types := []string{events.TypeNotificationFailed, events.TypeNotificationSent}
	if ep, err = s.eps.Update(ctx, ep.ID, webhooks.Change{URL: &url, EventTypes: &types}, "bob"); err != nil {
		t.Fatal(err)
	}
	if ep.URL != url || !slices.Equal(ep.EventTypes, []string{events.TypeNotificationSent, events.TypeNotificationFailed}) {
		t.Errorf("updated to %s %v", ep.URL, ep.EventTypes)
	}
	same, err := s.eps.Update(ctx, ep.ID, webhooks.Change{URL: &url}, "bob")
	if err != nil || same.Version != ep.Version {
		t.Errorf("an update that changes nothing moved the version %d → %d (%v)", ep.Version, same.Version, err)
	}
	if ep, err = s.eps.Disable(ctx, ep.ID, "carol", "receiver moving"); err != nil || ep.Enabled || !strings.Contains(ep.DisabledReason, "receiver moving") {
		t.Fatalf("disable: %+v, %v", ep, err)
	}
	if ep, err = s.eps.Enable(ctx, ep.ID, "carol"); err != nil || !ep.Enabled {
		t.Fatalf("enable: %+v, %v", ep, err)
	}
	ep, rotated, err := s.eps.RotateSecret(ctx, ep.ID, "dave")
	if err != nil || ep.PreviousSecretUntil == nil || time.Until(*ep.PreviousSecretUntil) < 23*time.Hour {
		t.Fatalf("rotate: %+v, %v", ep, err)
	}
	if err := s.eps.Delete(ctx, ep.ID, "erin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.eps.Get(ctx, ep.ID); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("Get after Delete: %v, want not found", err)
	}
	recs, err := s.eps.History(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Type+" by "+r.Metadata.Actor)
	}
	want := []string{"WebhookEndpointCreated by ada", "WebhookEndpointUpdated by bob", "WebhookEndpointDisabled by carol",
		"WebhookEndpointEnabled by carol", "WebhookEndpointSecretRotated by dave", "WebhookEndpointDeleted by erin"}
	if !slices.Equal(got, want) {
		t.Errorf("the endpoint's stream:\n got %v\nwant %v", got, want)
	}
	var leaked int
	if err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log WHERE data::text LIKE '%' || $1 || '%' OR data::text LIKE '%' || $2 || '%' OR data::text LIKE '%whsec_%'`,
		secret.Reveal()[6:], rotated.Reveal()[6:]).Scan(&leaked); err != nil || leaked != 0 {
		t.Errorf("%d events hold a secret (%v)", leaked, err)
	}
	// A URL freed by a delete can be registered again.
	if _, _, err := s.eps.Create(ctx, webhooks.NewEndpoint{URL: url}, "ada"); err != nil {
		t.Errorf("re-register a deleted endpoint's URL: %v", err)
	}

	// Notifications' readers do not take the endpoint's stream for a notification.
	reader := projections.NewReader(s.pool, s.log)
	if _, err := reader.Status(ctx, ep.ID); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("status of an endpoint's id: %v, want not found", err)
	}
	if _, err := reader.History(ctx, ep.ID); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("history of an endpoint's id: %v, want not found", err)
	}
	if _, _, err := s.log.NotificationAsOf(ctx, ep.ID, time.Now()); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("as-of answer for an endpoint's id: %v, want not found", err)
	}
	var asOf int
	if err := s.log.ScanStreamsAsOf(ctx, time.Now(), func(herald.Notification) error { asOf++; return nil }); err != nil || asOf != 0 {
		t.Errorf("the as-of listing of a log with only endpoints has %d notifications (%v)", asOf, err)
	}
}

// TestProjectionsLeaveEndpointStreamsOut: the read models, fed a log with endpoint events among
// notifications' events, hold the notifications alone, equal to a fold of their streams.
func TestProjectionsLeaveEndpointStreamsOut(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		id, _ := s.sendStory(t)
		ids = append(ids, id)
		if _, _, err := s.eps.Create(ctx, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/" + string(rune('a'+i))}, "ada"); err != nil {
			t.Fatal(err)
		}
	}
	total := 3*5 + 3
	heraldtest.WaitLogVisible(t, s.db, total)
	recs, _, err := s.log.ReadAfter(ctx, nil, events.Cursor{}, 100)
	if err != nil || len(recs) != total {
		t.Fatalf("read %d events (%v), want %d", len(recs), err, total)
	}
	tx, err := s.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, p := range projections.All() {
		if err := p.ApplyBatch(ctx, tx, recs); err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status`).Scan(&rows); err != nil || rows != 3 {
		t.Errorf("notification_status has %d rows (%v), want 3", rows, err)
	}
	heraldtest.CheckReadModels(t, s.db, ids)
}
