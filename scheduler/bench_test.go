package scheduler_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/scheduler"
)

// BenchmarkScheduled measures scheduled sends with the schedule table empty and with a million
// rows waiting far ahead (inserted directly with SQL): what the waiting rows cost the acceptance
// (one at a time, and 16 clients at once), a release (a round of up to 500 due notifications,
// per notification, and the median and longest round), a round that finds nothing due, and how late releases are at 100 scheduled
// per second with the scheduler's defaults.
//
//	HERALD_TEST_REQUIRE_SERVICES=1 go test -run '^$' -bench BenchmarkScheduled -benchtime 2000x ./scheduler/
func BenchmarkScheduled(b *testing.B) {
	for _, waiting := range []int{0, 1_000_000} {
		db := heraldtest.NewDatabase(b)
		ctx := context.Background()
		if waiting > 0 {
			if _, err := db.Pool.Exec(ctx, `INSERT INTO scheduled_notifications (notification_id, due_at)
				SELECT gen_random_uuid(), now() + interval '20 days' + n * interval '1 ms' FROM generate_series(1, $1) n`, waiting); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.Pool.Exec(ctx, `ANALYZE scheduled_notifications`); err != nil {
			b.Fatal(err)
		}
		log := events.NewLog(db.Pool)
		acc := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits)
		sched := scheduler.New(db.Pool, router.NewOutbox(nil), quiet)
		later := func() handlers.SendRequest {
			at := time.Now().Add(time.Hour)
			return handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi {{.n}}",
				Variables: map[string]any{"n": "x"}, SendAt: &at}
		}

		b.Run(fmt.Sprintf("accept/waiting=%d", waiting), func(b *testing.B) {
			for b.Loop() {
				if _, err := acc.Accept(ctx, later()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("accept-16-clients/waiting=%d", waiting), func(b *testing.B) {
			b.SetParallelism(8) // 8 × GOMAXPROCS (2 here)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := acc.Accept(ctx, later()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run(fmt.Sprintf("release/waiting=%d", waiting), func(b *testing.B) {
			b.StopTimer()
			due(b, db, b.N)
			b.StartTimer()
			released := 0
			var rounds []time.Duration
			for released < b.N {
				start := time.Now()
				rep, err := sched.Release(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Due == 0 {
					b.Fatalf("released %d of %d, then nothing was due", released, b.N)
				}
				rounds = append(rounds, time.Since(start))
				released += len(rep.Released)
			}
			// A round's time is how long its transaction holds the snapshot that holds back
			// the log's readers.
			slices.Sort(rounds)
			b.ReportMetric(float64(rounds[len(rounds)/2].Microseconds())/1000, "median-round-ms")
			b.ReportMetric(float64(rounds[len(rounds)-1].Microseconds())/1000, "max-round-ms")
		})
		b.Run(fmt.Sprintf("idle-round/waiting=%d", waiting), func(b *testing.B) {
			for b.Loop() {
				if rep, err := sched.Release(ctx); err != nil || rep.Due != 0 {
					b.Fatalf("idle round: %+v, %v", rep, err)
				}
			}
		})
		b.Run(fmt.Sprintf("lateness-100-per-s/waiting=%d", waiting), func(b *testing.B) {
			benchmarkLateness(b, db, acc)
		})
	}
}

// due writes n notifications scheduled a second ago, each with its NotificationQueued and its
// schedule row, in one statement.
func due(tb testing.TB, db *heraldtest.Database, n int) {
	tb.Helper()
	if _, err := db.Pool.Exec(context.Background(), `
WITH ids AS (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)),
ev AS (
	INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
	SELECT gen_random_uuid(), id, 1, 'NotificationQueued',
		jsonb_build_object('channel', 'sms', 'recipient', '+14155550123', 'content', 'hi', 'body', 'hi',
			'send_at', to_jsonb(now() - interval '1 second')), '{"actor":"bench"}'::jsonb
	FROM ids RETURNING stream_id)
INSERT INTO scheduled_notifications (notification_id, due_at) SELECT stream_id, now() - interval '1 second' FROM ev`, n); err != nil {
		tb.Fatal(err)
	}
}

// benchmarkLateness schedules b.N notifications at 100 per second, each due a second after it is
// accepted, with a scheduler running as serve runs it, and reports the lateness of their
// releases (the release's time, on the database's clock, minus send_at, on the API's: the same
// machine's here) at the 50th and 99th percentiles and the worst.
func benchmarkLateness(b *testing.B, db *heraldtest.Database, acc *handlers.Acceptor) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- scheduler.New(db.Pool, router.NewOutbox(nil), quiet).Run(ctx) }()
	defer func() {
		stop()
		<-done
	}()
	var ids []string
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for b.Loop() {
		<-tick.C
		at := time.Now().Add(time.Second)
		a, err := acc.Accept(context.Background(), handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi", SendAt: &at})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	var lateness []float64
	heraldtest.Eventually(b, 30*time.Second, "every release", func() (bool, error) {
		rows, err := db.Pool.Query(context.Background(), `
SELECT extract(epoch FROM r.occurred_at - (q.data->>'send_at')::timestamptz)::float8
FROM event_log r JOIN event_log q ON q.stream_id = r.stream_id AND q.stream_version = 1
WHERE r.event_type = 'NotificationReleased' AND r.stream_id = ANY($1::uuid[])`, ids)
		if err != nil {
			return false, err
		}
		defer rows.Close()
		lateness = lateness[:0]
		for rows.Next() {
			var s float64
			if err := rows.Scan(&s); err != nil {
				return false, err
			}
			lateness = append(lateness, s)
		}
		return len(lateness) == len(ids), fmt.Errorf("%d of %d released", len(lateness), len(ids))
	})
	slices.Sort(lateness)
	pct := func(p float64) float64 { return lateness[min(len(lateness)-1, int(p*float64(len(lateness))))] }
	if lateness[0] < 0 {
		b.Errorf("a release came %.3f s before its send_at", -lateness[0])
	}
	b.ReportMetric(pct(0.50)*1000, "p50-late-ms")
	b.ReportMetric(pct(0.99)*1000, "p99-late-ms")
	b.ReportMetric(lateness[len(lateness)-1]*1000, "max-late-ms")
}
