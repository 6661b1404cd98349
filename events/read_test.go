package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// scanPositions scans f and returns the positions read, in the order read.
func scanPositions(t *testing.T, log *events.Log, f events.Filter) []int64 {
	t.Helper()
	var got []int64
	if err := log.Scan(t.Context(), f, func(r events.Recorded) error {
		got = append(got, r.Position)
		return nil
	}); err != nil {
		t.Fatalf("Scan(%+v): %v", f, err)
	}
	return got
}

// interleavedStories appends three stories whose events interleave in the log, and returns every
// event as recorded, in log order.
func interleavedStories(t *testing.T, log *events.Log) (a, b, c string, all []events.Recorded) {
	t.Helper()
	a, b, c = uuid.NewString(), uuid.NewString(), uuid.NewString()
	md := events.Metadata{Actor: "test"}
	steps := []struct {
		stream string
		event  events.Event
	}{
		{a, queued()},
		{b, queued()},
		{a, &events.NotificationProcessing{Attempt: 1, Worker: "w1"}},
		{c, queued()},
		{b, &events.NotificationProcessing{Attempt: 1, Worker: "w2"}},
		{a, &events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 busy"}},
		{b, &events.NotificationFailed{Attempt: 1, Provider: "smtp", Error: "550 no such user", Reason: events.ReasonPermanentError}},
		{a, &events.NotificationProcessing{Attempt: 2, Worker: "w1"}},
		{a, &events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@x>"}},
	}
	version := map[string]int64{}
	for _, s := range steps {
		recs, err := log.Append(t.Context(), s.stream, version[s.stream], md, s.event)
		if err != nil {
			t.Fatal(err)
		}
		version[s.stream]++
		all = append(all, recs...)
	}
	return a, b, c, all
}

func positionsWhere(all []events.Recorded, keep func(events.Recorded) bool) []int64 {
	var out []int64
	for _, r := range all {
		if keep(r) {
			out = append(out, r.Position)
		}
	}
	return out
}

func TestScanFilters(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	a, b, _, all := interleavedStories(t, log)
	at := func(i int) time.Time { return all[i].Time }
	pos := func(i int) int64 { return all[i].Position }
	for i := 1; i < len(all); i++ {
		if !all[i].Time.After(all[i-1].Time) || all[i].Position <= all[i-1].Position {
			t.Fatalf("appends %d and %d are not ordered in time and position: %+v, %+v", i-1, i, all[i-1], all[i])
		}
	}

	tests := []struct {
		name string
		f    events.Filter
		keep func(events.Recorded) bool
	}{
		{"everything", events.Filter{}, func(events.Recorded) bool { return true }},
		{"one stream", events.Filter{Stream: a}, func(r events.Recorded) bool { return r.StreamID == a }},
		{"stream id in upper case", events.Filter{Stream: strings.ToUpper(b)}, func(r events.Recorded) bool { return r.StreamID == b }},
		{"unknown stream", events.Filter{Stream: uuid.NewString()}, func(events.Recorded) bool { return false }},
		{"one type", events.Filter{Types: []string{events.TypeNotificationProcessing}},
			func(r events.Recorded) bool { return r.Type == events.TypeNotificationProcessing }},
		{"two types", events.Filter{Types: []string{events.TypeNotificationQueued, events.TypeNotificationSent}},
			func(r events.Recorded) bool {
				return r.Type == events.TypeNotificationQueued || r.Type == events.TypeNotificationSent
			}},
		{"position range, inclusive", events.Filter{FromPosition: pos(2), ToPosition: pos(5)},
			func(r events.Recorded) bool { return r.Position >= pos(2) && r.Position <= pos(5) }},
		{"one position", events.Filter{FromPosition: pos(4), ToPosition: pos(4)},
			func(r events.Recorded) bool { return r.Position == pos(4) }},
		{"from a position", events.Filter{FromPosition: pos(6)}, func(r events.Recorded) bool { return r.Position >= pos(6) }},
		{"to a position", events.Filter{ToPosition: pos(1)}, func(r events.Recorded) bool { return r.Position <= pos(1) }},
		{"time range, inclusive", events.Filter{Since: at(3), Until: at(6)},
			func(r events.Recorded) bool { return !r.Time.Before(at(3)) && !r.Time.After(at(6)) }},
		{"since", events.Filter{Since: at(7)}, func(r events.Recorded) bool { return !r.Time.Before(at(7)) }},
		{"until", events.Filter{Until: at(0)}, func(r events.Recorded) bool { return !r.Time.After(at(0)) }},
		{"since after everything", events.Filter{Since: at(8).Add(time.Microsecond)}, func(events.Recorded) bool { return false }},
		{"limit", events.Filter{Limit: 4}, func(r events.Recorded) bool { return r.Position <= pos(3) }},
		{"limit larger than the log", events.Filter{Limit: 1000}, func(events.Recorded) bool { return true }},
		{"stream and type", events.Filter{Stream: a, Types: []string{events.TypeNotificationProcessing}},
			func(r events.Recorded) bool { return r.StreamID == a && r.Type == events.TypeNotificationProcessing }},
		{"stream, since and limit", events.Filter{Stream: a, Since: at(3), Limit: 2},
			func(r events.Recorded) bool { return r.StreamID == a && !r.Time.Before(at(3)) && r.Position <= pos(7) }},
		{"type and position range", events.Filter{Types: []string{events.TypeNotificationQueued}, FromPosition: pos(1), ToPosition: pos(8)},
			func(r events.Recorded) bool {
				return r.Type == events.TypeNotificationQueued && r.Position >= pos(1) && r.Position <= pos(8)
			}},
		{"every filter at once", events.Filter{Stream: a, Types: []string{events.TypeNotificationProcessing, events.TypeNotificationSent},
			FromPosition: pos(1), ToPosition: pos(8), Since: at(0), Until: at(8), Limit: 2},
			func(r events.Recorded) bool {
				return r.StreamID == a && (r.Type == events.TypeNotificationProcessing || r.Type == events.TypeNotificationSent) && r.Position <= pos(7)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := positionsWhere(all, tt.keep)
			got := scanPositions(t, log, tt.f)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("positions read (-want +got):\n%s", diff)
			}
		})
	}

	// What Scan hands over is what Load reads: the same events, whole.
	var scanned []events.Recorded
	if err := log.Scan(t.Context(), events.Filter{Stream: a}, func(r events.Recorded) error {
		scanned = append(scanned, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	loaded, err := log.Load(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(loaded, scanned); diff != "" {
		t.Errorf("Scan of stream %s differs from Load (-load +scan):\n%s", a, diff)
	}
}

// unusableDB fails the test on any use: the filter must be refused before anything is asked of
// the database.
type unusableDB struct{ t *testing.T }

func (d unusableDB) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	d.t.Error("Exec called")
	return pgconn.CommandTag{}, errors.New("unusable")
}

func (d unusableDB) Query(context.Context, string, ...any) (pgx.Rows, error) {
	d.t.Error("Query called")
	return nil, errors.New("unusable")
}

func (d unusableDB) QueryRow(context.Context, string, ...any) pgx.Row {
	d.t.Error("QueryRow called")
	return nil
}

func (d unusableDB) BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error) {
	d.t.Error("BeginTx called")
	return nil, errors.New("unusable")
}

func TestScanRejectsInvalidFilterBeforeQuerying(t *testing.T) {
	since := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		f     events.Filter
		field string
		want  []string
	}{
		{"unknown type", events.Filter{Types: []string{events.TypeNotificationSent, "NotificationExploded"}}, "type",
			append([]string{`unknown event type "NotificationExploded"`}, events.Types...)},
		{"two unknown types", events.Filter{Types: []string{"Sent", "notificationqueued"}}, "type",
			[]string{`unknown event types "Sent", "notificationqueued"`}},
		{"empty type", events.Filter{Types: []string{""}}, "type", []string{`unknown event type ""`}},
		{"stream that is no id", events.Filter{Stream: "ada@example.com"}, "stream", []string{`"ada@example.com" is not a stream id`}},
		{"from after to", events.Filter{FromPosition: 9, ToPosition: 3}, "from_position", []string{"9 is past the end of the range, 3"}},
		{"negative from", events.Filter{FromPosition: -1}, "from_position", []string{"-1"}},
		{"negative to", events.Filter{ToPosition: -5}, "to_position", []string{"-5"}},
		{"since after until", events.Filter{Since: since, Until: since.Add(-time.Second)}, "since",
			[]string{"2026-11-28T10:00:00Z is after the end of the range, 2026-11-28T09:59:59Z"}},
		{"negative limit", events.Filter{Limit: -1}, "limit", []string{"-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := events.NewLog(unusableDB{t})
			err := log.Scan(t.Context(), tt.f, func(events.Recorded) error {
				t.Error("callback called")
				return nil
			})
			if herald.ErrorCode(err) != herald.EINVALID {
				t.Fatalf("error %v, want EINVALID", err)
			}
			msg, ok := herald.ErrorFields(err)[tt.field]
			if !ok {
				t.Fatalf("error fields %v, want %q named", herald.ErrorFields(err), tt.field)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: %q, want it to say %q", tt.field, msg, w)
				}
			}
			if len(herald.ErrorFields(err)) != 1 {
				t.Errorf("error fields %v, want only %q", herald.ErrorFields(err), tt.field)
			}
		})
	}

	// Every fault is reported at once.
	err := events.Filter{Stream: "x", Types: []string{"Y"}, Limit: -2}.Validate()
	if got := herald.ErrorFields(err); len(got) != 3 {
		t.Errorf("fields %v, want stream, type and limit", got)
	}
	if err := (events.Filter{Types: events.Types, FromPosition: 3, ToPosition: 3, Since: since, Until: since}).Validate(); err != nil {
		t.Errorf("a valid filter: %v", err)
	}
}

// probingPool begins transactions on a real pool, and before handing each over asks it whether
// it is read only, whether a write is refused in it, and which server process runs it.
type probingPool struct {
	*pgxpool.Pool
	t        *testing.T
	opts     []pgx.TxOptions
	readOnly string
	writeErr error
	pid      uint32
}

func (p *probingPool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	p.opts = append(p.opts, opts)
	tx, err := p.Pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := tx.QueryRow(ctx, `SHOW transaction_read_only`).Scan(&p.readOnly); err != nil {
		p.t.Errorf("probe: %v", err)
	}
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&p.pid); err != nil {
		p.t.Errorf("probe: %v", err)
	}
	// A savepoint keeps the refused write from ending the transaction the scan is about to use.
	if _, err := tx.Exec(ctx, `SAVEPOINT probe`); err != nil {
		p.t.Errorf("probe: %v", err)
	}
	_, p.writeErr = tx.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
		VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'NotificationQueued', '{}')`)
	if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT probe`); err != nil {
		p.t.Errorf("probe: %v", err)
	}
	return tx, nil
}

// A scan reads in a READ ONLY transaction, which the database itself keeps from writing, and
// which takes no transaction id: however long it stays open, the log's consumers, which wait for
// every transaction with an id older than the events they read, do not wait for it.
func TestScanIsReadOnlyAndHoldsNoConsumerBack(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	probe := &probingPool{Pool: db.Pool, t: t}
	log := events.NewLog(probe)
	for range 3 {
		if _, err := log.Append(ctx, uuid.NewString(), 0, events.Metadata{}, queued()); err != nil {
			t.Fatal(err)
		}
	}

	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		done <- log.Scan(ctx, events.Filter{}, func(events.Recorded) error {
			if n++; n == 1 {
				close(inside)
				select {
				case <-release:
				case <-ctx.Done(): // the test failed: let the pool close
				}
			}
			return nil
		})
	}()
	select {
	case <-inside:
	case err := <-done:
		t.Fatalf("scan ended before its first event: %v", err)
	}

	if len(probe.opts) != 1 || probe.opts[0].AccessMode != pgx.ReadOnly {
		t.Errorf("transactions begun with %+v, want one READ ONLY", probe.opts)
	}
	if probe.readOnly != "on" {
		t.Errorf("transaction_read_only = %q inside the scan, want on", probe.readOnly)
	}
	var pgErr *pgconn.PgError
	if !errors.As(probe.writeErr, &pgErr) || pgErr.Code != "25006" {
		t.Errorf("an INSERT inside the scan's transaction: error %v, want read_only_sql_transaction (25006)", probe.writeErr)
	}

	// While the scan is open: its server process holds no transaction id...
	var xid *string
	if err := db.Pool.QueryRow(ctx, `SELECT backend_xid::text FROM pg_stat_activity WHERE pid = $1`, probe.pid).Scan(&xid); err != nil {
		t.Fatalf("pg_stat_activity of the scan: %v", err)
	}
	if xid != nil {
		t.Errorf("the scan's transaction holds transaction id %s; a consumer of the log would wait for it", *xid)
	}
	// ...so an event committed meanwhile becomes readable by the projector (other tests on the
	// server may hold it back for a moment; the scan, which stays open, must not).
	recs, err := events.NewLog(db.Pool).Append(ctx, uuid.NewString(), 0, events.Metadata{}, queued())
	if err != nil {
		t.Fatal(err)
	}
	heraldtest.Eventually(t, 20*time.Second, "the event appended during the scan to be visible to consumers", func() (bool, error) {
		var visible bool
		err := db.Pool.QueryRow(ctx, `SELECT transaction_id < pg_snapshot_xmin(pg_current_snapshot())
			FROM event_log WHERE event_id = $1`, recs[0].ID).Scan(&visible)
		return visible, err
	})
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("scan: %v", err)
	}
}

func TestScanStopsOnCallbackError(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	_, _, _, all := interleavedStories(t, log)

	stop := errors.New("enough")
	var seen []int64
	err := log.Scan(t.Context(), events.Filter{}, func(r events.Recorded) error {
		seen = append(seen, r.Position)
		if len(seen) == 2 {
			return fmt.Errorf("after two: %w", stop)
		}
		return nil
	})
	if !errors.Is(err, stop) || err.Error() != "after two: enough" {
		t.Errorf("error %v, want the callback's own error, unwrapped", err)
	}
	if want := []int64{all[0].Position, all[1].Position}; !slices.Equal(seen, want) {
		t.Errorf("read %v before stopping, want %v", seen, want)
	}
	// The pool is fine afterwards.
	if got := scanPositions(t, log, events.Filter{}); len(got) != len(all) {
		t.Errorf("a scan after a stopped one read %d events, want %d", len(got), len(all))
	}

	// A log bound to a transaction cannot open a read-only one of its own.
	tx, err := db.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if err := log.In(tx).Scan(t.Context(), events.Filter{}, func(events.Recorded) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("Scan of a log in a transaction: error %v, want a refusal", err)
	}
}

// insertAt appends an event with a time of the test's choosing, as a server whose clock steps
// would: the log checks versions on Append only.
func insertAt(t *testing.T, pool *pgxpool.Pool, stream string, version int64, at time.Time, e events.Event) {
	t.Helper()
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, occurred_at, data)
		VALUES (gen_random_uuid(), $1, $2, $3, $4, $5)`, stream, version, e.EventType(), at, data); err != nil {
		t.Fatal(err)
	}
}

// As of an instant, a stream is its events up to the first that occurred after it: a clock that
// stepped back cannot tear a hole in a stream.
func TestAsOf(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	const (
		s1 = "00000000-0000-7000-8000-000000000001" // an ordinary story
		s4 = "00000000-0000-7000-8000-000000000002" // version 2 carries a time before version 1's
		s2 = "00000000-0000-7000-8000-000000000003" // version 3 carries a time before version 2's
		s3 = "00000000-0000-7000-8000-000000000004" // accepted late
	)
	insertAt(t, db.Pool, s1, 1, at(10), queued())
	insertAt(t, db.Pool, s1, 2, at(20), &events.NotificationProcessing{Attempt: 1})
	insertAt(t, db.Pool, s1, 3, at(30), &events.NotificationSent{Attempt: 1, Provider: "smtp"})
	insertAt(t, db.Pool, s2, 1, at(15), queued())
	insertAt(t, db.Pool, s2, 2, at(35), &events.NotificationProcessing{Attempt: 1})
	insertAt(t, db.Pool, s2, 3, at(22), &events.DeliveryAttemptFailed{Attempt: 1, Error: "421"})
	insertAt(t, db.Pool, s2, 4, at(40), &events.NotificationProcessing{Attempt: 2})
	insertAt(t, db.Pool, s3, 1, at(50), queued())
	insertAt(t, db.Pool, s4, 1, at(60), queued())
	insertAt(t, db.Pool, s4, 2, at(12), &events.NotificationProcessing{Attempt: 1})

	type state struct {
		Status   herald.Status
		Attempts int
		Error    string
		Version  int64
	}
	tests := []struct {
		at   time.Time
		want map[string]state
	}{
		{at(5), map[string]state{}},
		{at(10), map[string]state{s1: {herald.StatusPending, 0, "", 1}}},
		{at(27), map[string]state{s1: {herald.StatusProcessing, 1, "", 2}, s2: {herald.StatusPending, 0, "", 1}}},
		{at(35), map[string]state{s1: {herald.StatusSent, 1, "", 3}, s2: {herald.StatusProcessing, 1, "421", 3}}},
		{at(1000), map[string]state{
			s1: {herald.StatusSent, 1, "", 3}, s2: {herald.StatusProcessing, 2, "421", 4},
			s3: {herald.StatusPending, 0, "", 1}, s4: {herald.StatusProcessing, 1, "", 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.at.Format(time.TimeOnly), func(t *testing.T) {
			got := map[string]state{}
			var order []string
			err := log.ScanStreamsAsOf(t.Context(), tt.at, func(n herald.Notification) error {
				got[n.ID] = state{n.Status, n.Attempts, n.LastError, n.Version}
				order = append(order, n.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ScanStreamsAsOf (-want +got):\n%s", diff)
			}
			if !slices.IsSorted(order) || len(order) != len(got) {
				t.Errorf("notifications came in the order %v, want each once, by id", order)
			}
			for _, id := range []string{s1, s2, s3, s4} {
				n, recs, err := log.NotificationAsOf(t.Context(), id, tt.at)
				w, exists := tt.want[id]
				if !exists {
					if herald.ErrorCode(err) != herald.ENOTFOUND || !strings.Contains(herald.ErrorMessage(err), "did not exist at "+tt.at.Format(time.RFC3339)) {
						t.Errorf("%s: error %v, want ENOTFOUND saying it did not exist at %s", id, err, tt.at.Format(time.RFC3339))
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				if g := (state{n.Status, n.Attempts, n.LastError, n.Version}); g != w || int64(len(recs)) != w.Version {
					t.Errorf("NotificationAsOf(%s) = %+v from %d events, want %+v", id, g, len(recs), w)
				}
			}
		})
	}

	stop := errors.New("stop")
	calls := 0
	err := log.ScanStreamsAsOf(t.Context(), at(1000), func(herald.Notification) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("a callback that fails: error %v after %d calls, want its own error after 1", err, calls)
	}
}

// loadLog fills the log with events streams of five events each (Queued, Processing,
// DeliveryAttemptFailed, Processing, Sent), interleaved as a busy log would have them: stream s's
// version v is event number (v-1)*streams + s + 1, which occurred that many milliseconds after
// base. INSERT … SELECT: the log is append-only, but inserting is what it allows. Each statement
// inserts a slice of 20,000 events in a short transaction of its own, so as not to hold back the
// log's consumers in tests running beside this one on the server.
func loadLog(t *testing.T, pool *pgxpool.Pool, streams int, base time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const slice = 20_000
	for first := 1; first <= streams*5; first += slice {
		last := min(first+slice-1, streams*5)
		_, err := pool.Exec(ctx, `
INSERT INTO event_log (event_id, stream_id, stream_version, event_type, occurred_at, data, metadata)
SELECT gen_random_uuid(),
	('00000000-0000-7000-8000-' || lpad(to_hex(k.s), 12, '0'))::uuid,
	k.v,
	(ARRAY['NotificationQueued', 'NotificationProcessing', 'DeliveryAttemptFailed', 'NotificationProcessing', 'NotificationSent'])[k.v],
	$2::timestamptz + i * interval '1 millisecond',
	CASE k.v
		WHEN 1 THEN jsonb_build_object('channel', 'email', 'recipient', 'r' || k.s || '@example.com', 'content', 'Hi', 'body', 'Hi')
		WHEN 2 THEN '{"attempt": 1, "worker": "w"}'
		WHEN 3 THEN '{"attempt": 1, "provider": "smtp", "error": "421 try later"}'
		WHEN 4 THEN '{"attempt": 2, "worker": "w"}'
		ELSE '{"attempt": 2, "provider": "smtp", "provider_message_id": "<m@example.com>"}'
	END,
	'{"actor": "load"}'
FROM generate_series($3::int, $4::int) AS i,
	LATERAL (SELECT (i - 1) % $1 AS s, (i - 1) / $1 + 1 AS v) AS k
ORDER BY i`, streams, base, first, last)
		if err != nil {
			t.Fatalf("load events %d-%d into the log: %v", first, last, err)
		}
	}
}

// heapSampler records the largest heap in use seen, against a baseline taken after a collection.
type heapSampler struct {
	base, peak uint64
}

func newHeapSampler() *heapSampler {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &heapSampler{base: m.HeapInuse, peak: m.HeapInuse}
}

func (h *heapSampler) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.peak = max(h.peak, m.HeapInuse)
}

func (h *heapSampler) growthMB() float64 { return float64(h.peak-h.base) / (1 << 20) }

// Reading the whole log holds one event at a time: the heap does not grow with the log. (Holding
// the 200,000 events read here would take well over 60 MB.)
func TestScanInConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 200,000 events")
	}
	const streams, total = 40_000, 200_000
	const maxGrowthMB = 30
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	start := time.Now()
	loadLog(t, db.Pool, streams, base)
	t.Logf("loaded %d events in %s", total, time.Since(start).Round(time.Millisecond))

	t.Run("scan", func(t *testing.T) {
		heap := newHeapSampler()
		var (
			n    int
			last int64
		)
		start := time.Now()
		err := log.Scan(t.Context(), events.Filter{}, func(r events.Recorded) error {
			if r.Position <= last {
				return fmt.Errorf("position %d after %d", r.Position, last)
			}
			last = r.Position
			if n++; n%10_000 == 0 {
				heap.sample()
			}
			return nil
		})
		elapsed := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		heap.sample()
		if n != total {
			t.Errorf("scanned %d events, want %d", n, total)
		}
		t.Logf("scanned %d events in %s: %.0f events/s; heap in use grew by at most %.1f MB",
			n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), heap.growthMB())
		if heap.growthMB() > maxGrowthMB {
			t.Errorf("heap in use grew by %.1f MB while scanning, want under %d MB", heap.growthMB(), maxGrowthMB)
		}
	})

	t.Run("replay", func(t *testing.T) {
		// Up to event 180,000: streams 0-19,999 have all five events (sent), the others four
		// (processing their second attempt).
		asOf := base.Add(180_000 * time.Millisecond)
		heap := newHeapSampler()
		counts := map[herald.Status]int{}
		var n int
		start := time.Now()
		err := log.ScanStreamsAsOf(t.Context(), asOf, func(nt herald.Notification) error {
			counts[nt.Status]++
			if n++; n%5_000 == 0 {
				heap.sample()
			}
			return nil
		})
		elapsed := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		heap.sample()
		want := map[herald.Status]int{herald.StatusSent: streams / 2, herald.StatusProcessing: streams / 2}
		if diff := cmp.Diff(want, counts); diff != "" {
			t.Errorf("statuses as of event 180,000 (-want +got):\n%s", diff)
		}
		t.Logf("replayed %d notifications (180,000 events) in %s: %.0f events/s; heap in use grew by at most %.1f MB",
			n, elapsed.Round(time.Millisecond), 180_000/elapsed.Seconds(), heap.growthMB())
		if heap.growthMB() > maxGrowthMB {
			t.Errorf("heap in use grew by %.1f MB while replaying, want under %d MB", heap.growthMB(), maxGrowthMB)
		}
	})

	t.Run("stop early", func(t *testing.T) {
		stop := errors.New("stop")
		start := time.Now()
		err := log.Scan(t.Context(), events.Filter{}, func(events.Recorded) error { return stop })
		if err != stop {
			t.Fatalf("error %v, want the callback's", err)
		}
		t.Logf("a scan of %d events stopped after the first in %s", total, time.Since(start).Round(time.Microsecond))
		if got := scanPositions(t, log, events.Filter{Limit: 3}); len(got) != 3 {
			t.Errorf("after a stopped scan, a scan with limit 3 read %d events", len(got))
		}
	})
}
