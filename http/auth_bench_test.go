package http_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// BenchmarkRequestWithoutValidKey measures what a request with a bad key costs the server, in
// process (no network): from a limited address (429 before the key is read), with a malformed
// key (401 without a query), and with a well-formed unknown key (401 after a query: what every
// request of a flood cost before addresses were limited). queries/op counts the key store's
// statements.
func BenchmarkRequestWithoutValidKey(b *testing.B) {
	db := heraldtest.NewDatabase(b)
	log := events.NewLog(db.Pool)
	serve := func(b *testing.B, perAddress int) (http.Handler, *heraldtest.QueryCounter) {
		queries := heraldtest.CountQueries(db.Pool)
		srv := heraldhttp.NewServer(heraldhttp.Config{},
			handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
			projections.NewReader(db.Pool, log), nil, slog.New(slog.NewTextHandler(io.Discard, nil)),
		).WithAuth(apikeys.NewStore(queries), sharedKeyLimit(b, db.Pool, heraldhttp.RateLimit{Requests: 1000, Window: time.Minute, PerAddress: perAddress}))
		return srv.Handler(), queries
	}
	run := func(b *testing.B, h http.Handler, queries *heraldtest.QueryCounter, want int, token func(i int) string) {
		before := queries.Count()
		i := 0
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/notifications", nil)
			req.RemoteAddr = "192.0.2.1:40000"
			req.Header.Set("Authorization", "Bearer "+token(i))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != want {
				b.Fatalf("request %d: %d, want %d", i, w.Code, want)
			}
			i++
		}
		b.ReportMetric(float64(queries.Count()-before)/float64(i), "queries/op")
	}
	b.Run("limited address", func(b *testing.B) {
		h, queries := serve(b, 1)
		// One refusal uses up the address's allowance.
		req := httptest.NewRequest(http.MethodGet, "/api/v1/notifications", nil)
		req.RemoteAddr = "192.0.2.1:40000"
		h.ServeHTTP(httptest.NewRecorder(), req)
		run(b, h, queries, http.StatusTooManyRequests, madeUpToken)
	})
	b.Run("malformed key", func(b *testing.B) {
		h, queries := serve(b, 0)
		run(b, h, queries, http.StatusUnauthorized, func(i int) string { return fmt.Sprintf("let-me-in-%d", i) })
	})
	b.Run("unknown well-formed key", func(b *testing.B) {
		h, queries := serve(b, 0)
		run(b, h, queries, http.StatusUnauthorized, madeUpToken)
	})
}
