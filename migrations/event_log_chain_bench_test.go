package migrations_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/migrations"
)

// The statements of a notification's three events as Herald sends them: the accept's insert of
// version 1, then the worker's appends, each checking the stream's version.
const (
	benchAcceptSQL = `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
		VALUES ($1, $2, 1, 'NotificationQueued', $3::jsonb, '{"actor": "api", "correlation_id": "c"}')
		RETURNING global_position, occurred_at`
	benchAppendSQL = `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, metadata)
		SELECT $3, $1, $2 + 1, $4, $5::jsonb, '{"actor": "worker:host/1", "correlation_id": "c"}'::jsonb
		WHERE (SELECT coalesce(max(stream_version), 0) FROM event_log WHERE stream_id = $1) = $2
		RETURNING global_position, occurred_at`
)

// benchQueued is a NotificationQueued's data: a line of text, or an HTML newsletter of about
// 57 KB (its templates and renderings), the two shapes of benchmarks.md.
func benchQueued(b *testing.B, html bool) string {
	b.Helper()
	d := map[string]any{"channel": "email", "recipient": "ada@example.com", "content": "Hello {{.name}}",
		"variables": map[string]any{"name": "Ada"}, "body": "Hello Ada", "rendered_subject": "Welcome"}
	if html {
		page := strings.Repeat(`<tr><td class="cell">Grüße — an item of this week's newsletter &amp; more</td></tr>`+"\n", 120)
		d["html"], d["html_rendered"], d["content"], d["body"] = page, page, page[:len(page)/2], page[:len(page)/2]
	}
	out, err := json.Marshal(d)
	if err != nil {
		b.Fatal(err)
	}
	return string(out)
}

// benchChainInserts is how many notifications each round inserts per mode and shape:
// HERALD_BENCH_CHAIN_INSERTS, or 300.
func benchChainInserts(b *testing.B) int {
	if v := os.Getenv("HERALD_BENCH_CHAIN_INSERTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 300
}

// BenchmarkChainInsert measures what the chain trigger costs each insert of the log, one
// notification's three events at a time, each in a statement of its own as Herald sends them:
// with no trigger, with 00020's and with 23's, for a text email and an HTML one. Each iteration
// is one round running every mode and shape in turn (interleaved, so that the machine's other
// work falls on all alike); at the end it logs the median per-insert time of each over the
// rounds, and reports them. The commit is asynchronous (synchronous_commit off, this session
// only), so that the disk's flushes, which the trigger does not change, do not drown it.
//
//	go test -run '^$' -bench BenchmarkChainInsert -benchtime 7x ./migrations
func BenchmarkChainInsert(b *testing.B) {
	db := heraldtest.NewDatabase(b)
	ctx := context.Background()
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithTableName(migrations.Table))
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
		b.Fatal(err)
	}

	modes := []struct {
		name string
		set  func() error
	}{
		{"unchained", func() error {
			_, err := db.Pool.Exec(ctx, `ALTER TABLE event_log DISABLE TRIGGER event_log_chain;
				ALTER TABLE event_log ALTER COLUMN hash DROP NOT NULL;
				ALTER TABLE event_log ALTER COLUMN global_position SET DEFAULT nextval('event_log_global_position_seq')`)
			return err
		}},
		{"00020", func() error {
			if _, err := p.DownTo(ctx, 22); err != nil {
				return err
			}
			_, err := db.Pool.Exec(ctx, `ALTER TABLE event_log ENABLE TRIGGER event_log_chain`)
			return err
		}},
		{"00023", func() error {
			if _, err := p.Up(ctx); err != nil {
				return err
			}
			_, err := db.Pool.Exec(ctx, `ALTER TABLE event_log ENABLE TRIGGER event_log_chain`)
			return err
		}},
	}
	shapes := []struct {
		name string
		data string
	}{{"text", benchQueued(b, false)}, {"html", benchQueued(b, true)}}
	n := benchChainInserts(b)
	perInsert := map[string][]float64{} // µs, by shape/mode, one per round

	for b.Loop() {
		for _, m := range modes {
			b.StopTimer()
			if err := m.set(); err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			b.StartTimer()
			for _, s := range shapes {
				started := time.Now()
				for range n {
					if err := insertNotification(ctx, conn, s.data); err != nil {
						b.Fatalf("%s %s: %v", m.name, s.name, err)
					}
				}
				key := s.name + "/" + m.name
				perInsert[key] = append(perInsert[key], float64(time.Since(started).Microseconds())/float64(3*n))
			}
		}
	}

	for _, s := range shapes {
		base := median(perInsert[s.name+"/unchained"])
		for _, m := range modes {
			key := s.name + "/" + m.name
			med := median(perInsert[key])
			b.ReportMetric(med, "µs/insert:"+key)
			b.Logf("%-16s median %6.1f µs per insert (+%5.1f µs over unchained) over %d rounds of %d inserts: %v",
				key, med, med-base, len(perInsert[key]), 3*n, rounded(perInsert[key]))
		}
	}
}

// insertNotification inserts a notification's three events, each in a statement of its own.
func insertNotification(ctx context.Context, conn *pgx.Conn, queued string) error {
	stream := uuid.New()
	var (
		pos int64
		at  time.Time
	)
	if err := conn.QueryRow(ctx, benchAcceptSQL, uuid.New(), stream, queued).Scan(&pos, &at); err != nil {
		return err
	}
	for i, e := range []struct{ typ, data string }{
		{"NotificationProcessing", `{"attempt":1,"worker":"host/1"}`},
		{"NotificationSent", `{"attempt":1,"provider":"smtp","provider_message_id":"<m@example.com>"}`},
	} {
		if err := conn.QueryRow(ctx, benchAppendSQL, stream, i+1, uuid.New(), e.typ, e.data).Scan(&pos, &at); err != nil {
			return err
		}
	}
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rounded(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(int(x*10+0.5)) / 10
	}
	return out
}
