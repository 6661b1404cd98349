package events_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// Every way of appending an event writes the same row for it: Append of one and of several,
// QueueAppend and QueueAppendAll in a batch, QueueStart and a Group. Only what the database or
// the moment decides differs (position, transaction, time and the chain's hash), and the event's
// own id and stream, which each append is given.
func TestAppendPathsWriteTheSameRow(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	g := events.NewGroup(db.Pool, log)
	ctx := context.Background()
	md := events.Metadata{CorrelationID: "corr-1", CausationID: "cmd-1", Actor: "test",
		Trace: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	e := queued()
	e.HTML, e.RenderedHTML = `<p class="a">{{.n}} &amp; co</p>`, `<p class="a">Ada &amp; co</p>`
	next := &events.NotificationProcessing{Attempt: 1, Worker: "w"}

	// inBatch appends with queue in a batch of its own: the event it returns is filled in once
	// the batch has run.
	inBatch := func(queue func(b *pgx.Batch, stream string) (*events.Recorded, error)) func(string) (events.Recorded, error) {
		return func(stream string) (events.Recorded, error) {
			b := &pgx.Batch{}
			rec, err := queue(b, stream)
			if err != nil {
				return events.Recorded{}, err
			}
			err = db.Pool.SendBatch(ctx, b).Close()
			return *rec, err
		}
	}
	paths := []struct {
		name   string
		append func(stream string) (events.Recorded, error)
	}{
		{"Append", func(stream string) (events.Recorded, error) {
			recs, err := log.Append(ctx, stream, 0, md, e)
			return first(recs), err
		}},
		{"Append of several", func(stream string) (events.Recorded, error) {
			recs, err := log.Append(ctx, stream, 0, md, e, next)
			return first(recs), err
		}},
		{"QueueAppend", inBatch(func(b *pgx.Batch, stream string) (*events.Recorded, error) {
			return log.QueueAppend(b, stream, 0, md, e)
		})},
		{"QueueAppendAll", inBatch(func(b *pgx.Batch, stream string) (*events.Recorded, error) {
			recs, err := log.QueueAppendAll(b, stream, 0, md, e)
			if err != nil {
				return nil, err
			}
			return &recs[0], nil
		})},
		{"QueueAppendAll of several", inBatch(func(b *pgx.Batch, stream string) (*events.Recorded, error) {
			recs, err := log.QueueAppendAll(b, stream, 0, md, e, next)
			if err != nil {
				return nil, err
			}
			return &recs[0], nil
		})},
		{"QueueStart", inBatch(func(b *pgx.Batch, stream string) (*events.Recorded, error) {
			return log.QueueStart(b, stream, md, e)
		})},
		{"Group", func(stream string) (events.Recorded, error) {
			recs, err := g.Append(ctx, stream, 0, md, e)
			return first(recs), err
		}},
	}

	// row is the event's row as stored, less the columns that depend on when and where it was
	// appended; a column added to event_log shows here without a change to the test.
	row := func(stream string) (id string, rest map[string]any) {
		t.Helper()
		err := db.Pool.QueryRow(ctx, `SELECT event_id::text,
			to_jsonb(l) - '{global_position,transaction_id,occurred_at,hash,event_id,stream_id}'::text[]
			FROM event_log l WHERE stream_id = $1 AND stream_version = 1`, stream).Scan(&id, &rest)
		if err != nil {
			t.Fatalf("row of %s: %v", stream, err)
		}
		return id, rest
	}

	var want map[string]any
	for _, p := range paths {
		stream := uuid.NewString()
		rec, err := p.append(stream)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		id, got := row(stream)
		if u, err := uuid.Parse(id); err != nil || u.Version() != 7 || id != rec.ID {
			t.Errorf("%s: stored event id %s, recorded %s: want the same UUIDv7", p.name, id, rec.ID)
		}
		if rec.StreamID != stream || rec.Version != 1 || rec.Type != e.EventType() || rec.Position == 0 || rec.Time.IsZero() {
			t.Errorf("%s: recorded %s v%d %s at position %d, %v; want v1 of %s with its position and time",
				p.name, rec.StreamID, rec.Version, rec.Type, rec.Position, rec.Time, stream)
		}
		if diff := cmp.Diff(md, rec.Metadata); diff != "" {
			t.Errorf("%s: recorded metadata (-appended +recorded):\n%s", p.name, diff)
		}
		if want == nil {
			want = got
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s stores another row than %s (-%s +%s):\n%s", p.name, paths[0].name, paths[0].name, p.name, diff)
		}
	}
	if want["metadata"] == nil || want["data"] == nil || want["event_type"] != e.EventType() {
		t.Errorf("stored row %v, want its data, metadata and type", want)
	}
}

func first(recs []events.Recorded) events.Recorded {
	if len(recs) == 0 {
		return events.Recorded{}
	}
	return recs[0]
}
