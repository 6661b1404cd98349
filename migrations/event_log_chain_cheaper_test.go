package migrations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
)

// chainEvent is a row of event_log as a client inserts it, every hashed column set.
type chainEvent struct {
	id, stream     string
	version        int64
	typ            string
	occurred       time.Time
	data, metadata string
}

// chainEvents are events whose encodings stress the hash: a large HTML email, text outside
// ASCII, escapes that jsonb rewrites, numbers it normalises, an empty metadata object.
func chainEvents(t *testing.T) [][]chainEvent {
	t.Helper()
	html := strings.Repeat(`<p class="x">Grüße, Zoë — 😀 &amp; "quoted" \ backslash</p>`+"\n", 400)
	queued, err := json.Marshal(map[string]any{"channel": "email", "recipient": "Zoë <zoe@example.com>",
		"html": html, "html_rendered": html, "content": "Hi {{.name}}", "variables": map[string]any{"name": "Zoë", "n": 1.50}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 123456000, time.UTC)
	stream := func(n int, datas ...string) []chainEvent {
		id := uuid.NewString()
		out := make([]chainEvent, len(datas))
		types := []string{"NotificationQueued", "NotificationProcessing", "NotificationSent", "NotificationDelivered"}
		for i, d := range datas {
			md := `{"actor": "worker:w1", "correlation_id": "req-` + fmt.Sprint(n) + `"}`
			if i == 2 {
				md = `{}`
			}
			out[i] = chainEvent{id: uuid.NewString(), stream: id, version: int64(i + 1), typ: types[i],
				occurred: at.Add(time.Duration(n*10+i) * time.Millisecond), data: d, metadata: md}
		}
		return out
	}
	return [][]chainEvent{
		stream(1, string(queued), `{"attempt": 1, "worker": "host/1"}`, `{"attempt":1,"provider":"smtp","provider_message_id":"<m@x>"}`),
		stream(2, `{"channel":"sms","recipient":"+14155550123","body":"Code \u00e9 \t 1e3 \"q\""}`, `{"big": 1e3, "small": 0.000100, "neg": -0}`,
			`{"z": 1, "a": [3, 2, 1], "m": {"b": null, "a": true}}`, `{"attempt": 2}`),
	}
}

// insertChain inserts streams into db: the first stream one row per statement, the next in one
// statement, as the worker's append of several events does. It returns each event's hash, by
// stream and version.
func insertChain(t *testing.T, ctx context.Context, pool *pgxpool.Pool, streams [][]chainEvent) map[string][]byte {
	t.Helper()
	const insert = `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, occurred_at, data, metadata)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::jsonb[])
		ORDER BY 3`
	for i, s := range streams {
		rows := [][]chainEvent{s}
		if i == 0 {
			rows = nil
			for _, e := range s {
				rows = append(rows, []chainEvent{e})
			}
		}
		for _, r := range rows {
			var (
				ids, streamIDs, types, datas, metas []string
				versions                            []int64
				times                               []time.Time
			)
			for _, e := range r {
				ids, streamIDs, types, datas, metas = append(ids, e.id), append(streamIDs, e.stream), append(types, e.typ),
					append(datas, e.data), append(metas, e.metadata)
				versions, times = append(versions, e.version), append(times, e.occurred)
			}
			if _, err := pool.Exec(ctx, insert, ids, streamIDs, versions, types, times, datas, metas); err != nil {
				t.Fatalf("insert %v: %v", versions, err)
			}
		}
	}
	out := map[string][]byte{}
	rows, err := pool.Query(ctx, `SELECT stream_id::text || ' v' || stream_version, hash FROM event_log`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key  string
			hash []byte
		)
		if err := rows.Scan(&key, &hash); err != nil {
			t.Fatal(err)
		}
		out[key] = hash
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Migration 23's trigger writes, for the same events, the very hashes 00020's wrote: byte for
// byte, one row per statement or several in one; a stream begun under 00020 and continued under
// 23 verifies whole; and migrating down restores 00020's trigger.
func TestChainCheaperHashesAsBefore(t *testing.T) {
	ctx := t.Context()
	streams := chainEvents(t)
	old, p := migratedTo(t, 22)
	var hasOldBody bool
	if err := old.Pool.QueryRow(ctx, `SELECT prosrc LIKE '%event_log_hash(prev%' FROM pg_proc WHERE proname = 'event_log_chain'`).Scan(&hasOldBody); err != nil {
		t.Fatal(err)
	}
	if !hasOldBody {
		t.Fatal("migrating below 23 did not restore 00020's event_log_chain")
	}
	before := insertChain(t, ctx, old.Pool, streams)

	cheaper := heraldtest.NewDatabase(t)
	after := insertChain(t, ctx, cheaper.Pool, streams)
	if len(after) != 7 {
		t.Fatalf("%d events hashed, want 7", len(after))
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("hashes under 23 differ from 00020's (-00020 +23):\n%s", diff)
	}

	// Continued under 23, the streams 00020 began still verify, in Go, from their first event.
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	for _, s := range streams {
		last := s[len(s)-1]
		if _, err := old.Pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
			VALUES ($1, $2, $3, 'NotificationBounced', '{"reason": "5.1.1 user unknown"}')`, uuid.New(), last.stream, last.version+1); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []struct {
		name string
		db   *heraldtest.Database
		want int64
	}{{"begun under 00020", old, int64(len(before) + 2)}, {"under 23 only", cheaper, int64(len(after))}} {
		name := v.name
		rep, err := ledger.Verify(ctx, v.db.Pool, ledger.VerifyOptions{})
		if err != nil {
			t.Errorf("%s: verify: %v", name, err)
			continue
		}
		if want := v.want; rep.Events != want {
			t.Errorf("%s: verified %d events, want %d", name, rep.Events, want)
		}
	}
}
