package ratelimit_test

import (
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ratelimit"
)

// BenchmarkKeysAllow measures what the API key limit adds to a request, against a real database:
// a lease hit (the process still holds tokens: no query), a refill on every request (a lease of
// one token: one query each, what a limit without leases would cost), the default lease of a
// tenth of the window amortised over the requests it serves, and a key over its limit (refused
// without a query). queries/op counts the statements.
func BenchmarkKeysAllow(b *testing.B) {
	db := heraldtest.NewDatabase(b)
	for _, c := range []struct {
		name  string
		limit ratelimit.KeyLimit
		want  bool
		drain bool
	}{
		// Buckets that never run dry: only the lease size differs.
		{"lease hit", ratelimit.KeyLimit{Requests: 1 << 30, Window: time.Second}, true, false},
		{"refill every request", ratelimit.KeyLimit{Requests: 9, Window: time.Nanosecond}, true, false},
		{"lease of 50", ratelimit.KeyLimit{Requests: 500, Window: time.Millisecond}, true, false},
		{"over the limit", ratelimit.KeyLimit{Requests: 10, Window: time.Hour}, false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			q := heraldtest.CountQueries(db.Pool)
			l := ratelimit.NewKeys(q, c.limit, nil, quietLogger())
			key := c.name
			if c.drain {
				for l.Allow(b.Context(), key) {
				}
			}
			l.Allow(b.Context(), key)
			before := q.Count()
			n := 0
			for b.Loop() {
				if got := l.Allow(b.Context(), key); got != c.want {
					b.Fatalf("request %d: allowed %v, want %v", n, got, c.want)
				}
				n++
			}
			b.ReportMetric(float64(q.Count()-before)/float64(n), "queries/op")
		})
	}
}
