package suppressions_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/suppressions"
)

// lookupRows is the size of the list BenchmarkLookup asks.
const lookupRows = 1_000_000

// BenchmarkLookup measures Store.Lookup — what a worker asks before each attempt — on a list of
// a million entries: half email, half SMS, of every cause; one in ten removed and one in ten
// expired, the rest holding. The rows are written straight into the suppressions table with one
// INSERT … SELECT generate_series: a lookup reads that table alone, never the log, so the
// entries' events are left out. It logs the plan of the lookup's statement and fails unless it
// is a scan of the primary key.
func BenchmarkLookup(b *testing.B) {
	db := heraldtest.NewDatabase(b)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO suppressions (channel, recipient, stream_id, version, cause, reason, created_at, created_by, updated_at, expires_at, removed_at)
SELECT CASE WHEN i % 2 = 0 THEN 'email' ELSE 'sms' END,
	CASE WHEN i % 2 = 0 THEN 'u' || i || '@example.com' ELSE '+1' || (4150000000 + i) END,
	gen_random_uuid(), 1,
	(ARRAY['hard_bounce', 'complaint', 'opt_out', 'manual'])[1 + i % 4], 'bench', now() - interval '1 day', 'bench',
	now() - interval '1 day',
	CASE WHEN i % 10 = 1 THEN now() - interval '1 hour' END,
	CASE WHEN i % 10 = 0 THEN now() - interval '1 hour' END
FROM generate_series(1, $1::int) i`, lookupRows); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE suppressions`); err != nil {
		b.Fatal(err)
	}
	store := suppressions.New(db.Pool)

	// recipient is the i-th entry's channel and recipient, as the fill wrote it.
	recipient := func(i int) (herald.Channel, string) {
		if i%2 == 0 {
			return herald.ChannelEmail, fmt.Sprintf("u%d@example.com", i)
		}
		return herald.ChannelSMS, fmt.Sprintf("+1%d", 4150000000+i)
	}
	// Spread over the table, so that the lookups do not all hit the same few pages.
	const spread = 7919
	listed := func(n int) (herald.Channel, string) {
		i := 2 + (n*spread)%(lookupRows-2)
		for i%10 == 0 || i%10 == 1 {
			i++
		}
		return recipient(i)
	}
	lifted := func(n int) (herald.Channel, string) { return recipient(10 * (1 + (n*spread)%(lookupRows/10-1))) }
	unlisted := func(n int) (herald.Channel, string) {
		if n%2 == 0 {
			return herald.ChannelEmail, fmt.Sprintf("nobody%d@example.com", n)
		}
		return herald.ChannelSMS, fmt.Sprintf("+4420%d", 7946000+n)
	}

	channel, key := listed(0)
	var plan []string
	rows, err := db.Pool.Query(ctx, `EXPLAIN `+suppressions.LookupQuery, channel, key)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			b.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	b.Logf("plan of the lookup on %d entries:\n%s", lookupRows, strings.Join(plan, "\n"))
	if !strings.Contains(plan[0], "Index Scan using suppressions_pkey") {
		b.Fatalf("the lookup does not scan the primary key:\n%s", strings.Join(plan, "\n"))
	}

	for _, c := range []struct {
		name  string
		pick  func(int) (herald.Channel, string)
		holds bool
	}{
		{"listed", listed, true},
		{"unlisted", unlisted, false},
		{"lifted", lifted, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				channel, recipient := c.pick(n)
				n++
				sup, ok, err := store.Lookup(ctx, channel, recipient)
				if err != nil || ok != c.holds || (ok && sup.Recipient != recipient) {
					b.Fatalf("Lookup(%s, %s) = %+v, %v, %v; want holds %v", channel, recipient, sup, ok, err, c.holds)
				}
			}
		})
	}
}
