package http_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// serveCancelAPI serves the API with authentication and the cancel endpoints over a fresh
// database: the real key store, acceptor, canceller and log.
func serveCancelAPI(t *testing.T) *authAPI {
	t.Helper()
	pool := heraldtest.NewDatabase(t).Pool
	log := events.NewLog(pool)
	keys := apikeys.NewStore(pool)
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: apiMaxBody, Metrics: prometheus.NewRegistry()},
		handlers.NewAcceptor(pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(pool, log),
		nil, testLogger(t),
	).WithCanceller(handlers.NewCanceller(pool, log, time.Minute)).WithAuth(keys, heraldhttp.RateLimit{})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &authAPI{url: ts.URL, pool: pool, log: log, keys: keys}
}

// cancelOf posts body to path with key's token.
func (a *authAPI) cancelOf(t *testing.T, token, path, body string) response {
	t.Helper()
	return doRequest(t, a.url, http.MethodPost, path, body, bearer(token))
}

// streamTypes lists the types of id's events, in order.
func streamTypes(t *testing.T, log *events.Log, id string) []string {
	t.Helper()
	recs, err := log.Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Type)
	}
	return out
}

func TestCancelByID(t *testing.T) {
	api := serveCancelAPI(t)
	shop := api.key(t, "shop", herald.ScopeSend)
	blog := api.key(t, "blog", herald.ScopeSend, herald.ScopeRead)
	ops := api.key(t, "ops", herald.ScopeOperate)
	reader := api.key(t, "reader", herald.ScopeRead)
	send := func() string {
		n, _ := api.send(t, authEmail, bearer(shop))
		return n.ID
	}
	path := func(id string) string { return "/api/v1/notifications/" + id + "/cancel" }
	a, b, sent, inFlight := send(), send(), send(), send()
	md := events.Metadata{Actor: "worker:test"}
	if _, err := api.log.Append(t.Context(), sent, 1, md, &events.NotificationProcessing{Attempt: 1},
		&events.NotificationSent{Attempt: 1, Provider: "smtp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.log.Append(t.Context(), inFlight, 1, md, &events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}

	// Refusals first: none of them writes anything.
	wantError(t, api.cancelOf(t, reader, path(a), ""), http.StatusForbidden, herald.EFORBIDDEN)
	// Another key's notification is as unknown as one that does not exist.
	other := uuid.NewString()
	notFound := wantError(t, api.cancelOf(t, blog, path(a), `{"reason": "not mine"}`), http.StatusNotFound, herald.ENOTFOUND)
	unknown := wantError(t, api.cancelOf(t, blog, path(other), `{"reason": "not mine"}`), http.StatusNotFound, herald.ENOTFOUND)
	if strings.ReplaceAll(notFound.Error.Message, a, "ID") != strings.ReplaceAll(unknown.Error.Message, other, "ID") || notFound.Error.Fields != nil {
		t.Errorf("another key's notification answers %+v, an unknown one %+v: want the same answer", notFound, unknown)
	}
	wantError(t, api.cancelOf(t, shop, path("not-a-uuid"), ""), http.StatusNotFound, herald.ENOTFOUND)
	for _, body := range []string{`{"reason": 5}`, `{"why": "x"}`, `{"Reason": "x"}`, `{"reason": "` + strings.Repeat("é", 501) + `"}`, `{"reason": "a\u0000b"}`} {
		e := wantError(t, api.cancelOf(t, shop, path(a), body), http.StatusUnprocessableEntity, herald.EINVALID)
		if len(e.Error.Fields) == 0 {
			t.Errorf("%s: 422 names no field: %+v", body, e)
		}
	}
	wantError(t, api.cancelOf(t, shop, path(a), `{"reason": `), http.StatusBadRequest, "malformed_json")
	for id, status := range map[string]string{sent: "sent", inFlight: "processing"} {
		e := wantError(t, api.cancelOf(t, shop, path(id), ""), http.StatusConflict, herald.ECONFLICT)
		if e.Error.Fields["status"] != status || !strings.Contains(e.Error.Message, status) {
			t.Errorf("409 for a %s notification: %+v, want its status in fields and message", status, e)
		}
	}
	for id, want := range map[string]int{a: 1, b: 1, sent: 3, inFlight: 2} {
		if got := streamTypes(t, api.log, id); len(got) != want {
			t.Errorf("after refusals %s has %v, want %d events", id, got, want)
		}
	}

	// The key that sent it cancels it, with its reason.
	r := api.cancelOf(t, shop, path(a), `{"reason": "order withdrawn"}`)
	if r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if got := decodeJSON[notificationResponse](t, r); got.ID != a || got.Status != "cancelled" || got.Version != 2 {
		t.Errorf("cancel answered %+v, want %s cancelled at version 2", got, a)
	}
	last := lastEvent(t, api.log, a)
	if c, ok := last.event.(*events.NotificationCancelled); !ok || c.Actor != "apikey:shop" || c.Reason != "order withdrawn" || last.md.Actor != "apikey:shop" {
		t.Errorf("last event of %s: %#v with %+v, want NotificationCancelled by apikey:shop", a, last.event, last.md)
	}
	// Once is enough: a second cancel is a conflict naming the status.
	if e := wantError(t, api.cancelOf(t, shop, path(a), ""), http.StatusConflict, herald.ECONFLICT); e.Error.Fields["status"] != "cancelled" {
		t.Errorf("second cancel: %+v, want status cancelled", e)
	}

	// A key with the operate scope cancels anyone's; no body is needed.
	if r := api.cancelOf(t, ops, path(b), ""); r.status != http.StatusOK {
		t.Fatalf("cancel by the operate key: %d %s", r.status, r.body)
	}
	if c, ok := lastEvent(t, api.log, b).event.(*events.NotificationCancelled); !ok || c.Actor != "apikey:ops" {
		t.Errorf("b cancelled by %#v, want apikey:ops", c)
	}
	if got := streamTypes(t, api.log, a); len(got) != 2 {
		t.Errorf("a has %v after the second cancel, want two events", got)
	}
}

func TestCancelByIdempotencyKey(t *testing.T) {
	api := serveCancelAPI(t)
	shop := api.key(t, "shop", herald.ScopeSend)
	blog := api.key(t, "blog", herald.ScopeSend)
	ops := api.key(t, "ops", herald.ScopeSend, herald.ScopeOperate)
	withKey := func(token, key string) string {
		h := bearer(token)
		h.Set(heraldhttp.IdempotencyHeader, key)
		n, _ := api.send(t, authEmail, h)
		return n.ID
	}
	shops, blogs := withKey(shop, "order-1"), withKey(blog, "order-1")
	const path = "/api/v1/notifications/cancel"

	wantError(t, api.cancelOf(t, shop, path, `{"idempotency_key": "order-2"}`), http.StatusNotFound, herald.ENOTFOUND)
	// Keys are each API key's own: the operate key has sent nothing with order-1.
	wantError(t, api.cancelOf(t, ops, path, `{"idempotency_key": "order-1"}`), http.StatusNotFound, herald.ENOTFOUND)
	for _, body := range []string{``, `{}`, `{"idempotency_key": ""}`, `{"idempotency_key": 1}`, `{"key": "order-1"}`} {
		wantError(t, api.cancelOf(t, shop, path, body), http.StatusUnprocessableEntity, herald.EINVALID)
	}
	for _, id := range []string{shops, blogs} {
		if got := streamTypes(t, api.log, id); len(got) != 1 {
			t.Errorf("after refusals %s has %v", id, got)
		}
	}

	r := api.cancelOf(t, shop, path, `{"idempotency_key": "order-1", "reason": "duplicate order"}`)
	if r.status != http.StatusOK {
		t.Fatalf("cancel by key: %d %s", r.status, r.body)
	}
	if got := decodeJSON[notificationResponse](t, r); got.ID != shops || got.Status != "cancelled" {
		t.Errorf("cancel by key answered %+v, want %s cancelled", got, shops)
	}
	if c, ok := lastEvent(t, api.log, shops).event.(*events.NotificationCancelled); !ok || c.Reason != "duplicate order" {
		t.Errorf("shop's notification ends with %#v", c)
	}
	if got := streamTypes(t, api.log, blogs); len(got) != 1 {
		t.Errorf("blog's notification with the same idempotency key has %v, want it untouched", got)
	}
	if e := wantError(t, api.cancelOf(t, shop, path, `{"idempotency_key": "order-1"}`), http.StatusConflict, herald.ECONFLICT); e.Error.Fields["status"] != "cancelled" {
		t.Errorf("second cancel by key: %+v", e)
	}
}
