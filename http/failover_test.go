package http_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// TestDatabaseUnavailableIs503: a request caught by a PostgreSQL failover is answered 503
// unavailable with Retry-After, in the Error shape, not 500. The two ways it meets the switch
// are played for real: a database whose new connections are read-only (the old primary, now a
// standby) and a server nothing listens on (the old primary, stopped).
func TestDatabaseUnavailableIs503(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.Pool.Exec(ctx, fmt.Sprintf("ALTER DATABASE %q SET default_transaction_read_only = on", db.Name)); err != nil {
		t.Fatal(err)
	}
	readOnly, err := pgxpool.New(ctx, db.URL) // new connections pick the setting up
	if err != nil {
		t.Fatal(err)
	}
	defer readOnly.Close()
	closed, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()

	for name, pool := range map[string]*pgxpool.Pool{"read-only": readOnly, "closed port": closed} {
		t.Run(name, func(t *testing.T) {
			log := events.NewLog(pool)
			srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: 1 << 20},
				handlers.NewAcceptor(pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
				projections.NewReader(pool, log), nil, testLogger(t))
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			r := doRequest(t, ts.URL, http.MethodPost, "/api/v1/notifications/send",
				`{"type":"email","recipient":"ada@example.com","content":"hi"}`, jsonHeader())
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
				t.Fatalf("POST send: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
			}
			e, _ := asMap(t, r)["error"].(map[string]any)
			if e["code"] != "unavailable" || e["message"] != "the database is unavailable; try again shortly" {
				t.Errorf("POST send: %s, want the Error shape with code unavailable", r.body)
			}
		})
	}
}
