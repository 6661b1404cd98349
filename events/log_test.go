package events_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

func queued() *events.NotificationQueued {
	return &events.NotificationQueued{
		Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi {{.n}}",
		Variables: map[string]any{"n": "Ada"}, Body: "Hi Ada", RenderedSubject: "Notification",
	}
}

func TestAppendAndLoad(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	stream := uuid.NewString()
	md := events.Metadata{CorrelationID: "corr-1", Actor: "test"}

	first, err := log.Append(ctx, stream, 0, md, queued())
	if err != nil {
		t.Fatalf("append v1: %v", err)
	}
	second, err := log.Append(ctx, stream, 1, md,
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
		&events.NotificationSent{Attempt: 1, Provider: "smtp", ProviderMessageID: "<x@y>"})
	if err != nil {
		t.Fatalf("append v2-3: %v", err)
	}
	if len(first) != 1 || len(second) != 2 {
		t.Fatalf("recorded %d and %d events, want 1 and 2", len(first), len(second))
	}
	if second[0].Version != 2 || second[1].Version != 3 || second[0].Position >= second[1].Position || second[0].Position <= first[0].Position {
		t.Errorf("versions/positions out of order: %+v", append(first, second...))
	}

	got, err := log.Load(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	want := append(first, second...)
	opts := cmp.Options{
		cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
		// JSONB normalises the encoding; compare the decoded events instead.
		cmp.Transformer("decode", func(r events.Recorded) any {
			e, err := r.Event()
			if err != nil {
				return err.Error()
			}
			r.Data = nil
			return struct {
				R events.Recorded
				E events.Event
			}{r, e}
		}),
	}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("Load (-appended +loaded):\n%s", diff)
	}

	n, _, err := log.Notification(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != herald.StatusSent || n.Attempts != 1 || n.Version != 3 || n.ProviderMessageID != "<x@y>" || n.Body != "Hi Ada" {
		t.Errorf("folded notification = %+v", n)
	}

	if _, _, err := log.Notification(ctx, uuid.NewString()); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("unknown stream: error %v, want ENOTFOUND", err)
	}
}

// NotificationNow reads the database's clock with the stream: no earlier than the events it reads
// were stamped, no later than a clock read after it.
func TestNotificationNow(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	stream := uuid.NewString()
	// An HTML email: NotificationNow reads it without its templates, and folds the same.
	e := queued()
	e.Channel, e.Recipient, e.Subject, e.RenderedSubject = herald.ChannelEmail, "ada@example.com", "Hi {{.name}}", "Hi Ada"
	e.HTML, e.RenderedHTML = "<p>{{.name}}</p>", "<p>Ada</p>"
	recs, err := log.Append(ctx, stream, 0, events.Metadata{}, e)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := log.Notification(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	n, now, err := log.NotificationNow(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var after time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if now.Before(recs[0].Time) || now.After(after) {
		t.Errorf("database clock %s, want between the event's time %s and %s", now, recs[0].Time, after)
	}
	if diff := cmp.Diff(want, n); diff != "" {
		t.Errorf("NotificationNow folded otherwise than Notification (-want +got):\n%s", diff)
	}
	if _, _, err := log.NotificationNow(ctx, uuid.NewString()); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("unknown stream: error %v, want ENOTFOUND", err)
	}
}

func TestAppendRejectsWrongExpectedVersion(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	stream := uuid.NewString()
	if _, err := log.Append(ctx, stream, 0, events.Metadata{}, queued()); err != nil {
		t.Fatal(err)
	}

	for _, expected := range []int64{0, 2, 7} {
		_, err := log.Append(ctx, stream, expected, events.Metadata{}, &events.NotificationProcessing{Attempt: 1})
		if !errors.Is(err, events.ErrConflict) || herald.ErrorCode(err) != herald.ECONFLICT {
			t.Errorf("append at expected v%d of a v1 stream: error %v, want ErrConflict/ECONFLICT", expected, err)
		}
	}
	recs, err := log.Load(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Errorf("stream holds %d events after rejected appends, want 1", len(recs))
	}
}

// Two writers that read the same version race to append: exactly one wins, every time.
func TestConcurrentAppendsOneWinner(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	const streams, writers = 20, 8
	for i := 0; i < streams; i++ {
		stream := uuid.NewString()
		if _, err := log.Append(ctx, stream, 0, events.Metadata{}, queued()); err != nil {
			t.Fatal(err)
		}
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			wins      int
			conflicts int
			start     = make(chan struct{})
		)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := log.Append(ctx, stream, 1, events.Metadata{}, &events.NotificationProcessing{Attempt: 1})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, events.ErrConflict):
					conflicts++
				default:
					t.Errorf("append: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins != 1 || conflicts != writers-1 {
			t.Fatalf("stream %d: %d wins and %d conflicts, want 1 and %d", i, wins, conflicts, writers-1)
		}
	}
}

// The database itself refuses to change history, whoever asks.
func TestLogIsAppendOnly(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	stream := uuid.NewString()
	if _, err := log.Append(ctx, stream, 0, events.Metadata{}, queued()); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE event_log SET event_type = 'NotificationSent'`,
		`UPDATE event_log SET data = '{}' WHERE stream_id = '` + stream + `'`,
		`DELETE FROM event_log`,
		`DELETE FROM event_log WHERE stream_id = '` + stream + `'`,
		`TRUNCATE event_log`,
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error %v, want the append-only refusal", stmt, err)
		}
	}
	recs, err := log.Load(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Type != events.TypeNotificationQueued {
		t.Errorf("after refused changes the stream is %+v", recs)
	}
}

// Event data keeps markup as it is, not as \u003c escapes: an HTML email's event would grow by a
// fifth otherwise. It reads back the same.
func TestAppendKeepsMarkupUnescaped(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	e := queued()
	e.HTML, e.RenderedHTML = `<p class="a">{{.name}} &amp; co</p>`, `<p class="a">Ada &amp; co</p>`
	recs, err := log.Append(t.Context(), uuid.NewString(), 0, events.Metadata{}, e)
	if err != nil {
		t.Fatal(err)
	}
	if data := string(recs[0].Data); !strings.Contains(data, `<p class=\"a\">Ada &amp; co</p>`) {
		t.Errorf("recorded data %s, want the markup unescaped", data)
	}
	loaded, err := log.Load(t.Context(), recs[0].StreamID)
	if err != nil {
		t.Fatal(err)
	}
	back, err := loaded[0].Event()
	if err != nil {
		t.Fatal(err)
	}
	if got := back.(*events.NotificationQueued).RenderedHTML; got != e.RenderedHTML {
		t.Errorf("read back %q, want %q", got, e.RenderedHTML)
	}
}

// QueueAppend appends in a pgx batch as Append does: at the expected version it records the
// event with its position and time; at another it fails the batch with ErrConflict/ECONFLICT
// and appends nothing.
func TestQueueAppend(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	stream := uuid.NewString()
	if _, err := log.Append(ctx, stream, 0, events.Metadata{}, queued()); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	rec, err := log.QueueAppend(b, stream, 1, events.Metadata{Actor: "a"}, &events.NotificationProcessing{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if rec.Version != 2 || rec.Position == 0 || rec.Time.IsZero() {
		t.Errorf("recorded %+v, want v2 with its position and time", rec)
	}
	for _, expected := range []int64{1, 5} {
		b := &pgx.Batch{}
		if _, err := log.QueueAppend(b, stream, expected, events.Metadata{}, &events.NotificationProcessing{Attempt: 2}); err != nil {
			t.Fatal(err)
		}
		err := db.Pool.SendBatch(ctx, b).Close()
		if !errors.Is(err, events.ErrConflict) || herald.ErrorCode(err) != herald.ECONFLICT {
			t.Errorf("append at expected v%d of a v2 stream: error %v, want ErrConflict/ECONFLICT", expected, err)
		}
	}
	if recs, err := log.Load(ctx, stream); err != nil || len(recs) != 2 {
		t.Errorf("stream holds %d events (%v) after rejected appends, want 2", len(recs), err)
	}
}
