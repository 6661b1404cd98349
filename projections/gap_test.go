package projections_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// A projection applies version v+1 of a stream over v only. An event at or below the version it
// holds is a duplicate and changes nothing; anything past v+1, or v>1 of a stream it has never
// seen, is a *GapError naming the stream and both versions, and nothing of its batch is written.
func TestProjectionsRefuseVersionGaps(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)

	stream, other := uuid.NewString(), uuid.NewString()
	for _, id := range []string{stream, other} {
		if _, err := log.Append(ctx, id, 0, events.Metadata{},
			&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"},
			&events.NotificationProcessing{Attempt: 1, Worker: "w"},
			&events.DeliveryAttemptFailed{Attempt: 1, Provider: "p", Error: "e"},
			&events.NotificationProcessing{Attempt: 2, Worker: "w"},
			&events.NotificationSent{Attempt: 2, Provider: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := log.Load(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	o, err := log.Load(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	batch := func(recs ...events.Recorded) []events.Recorded { return recs }

	for _, p := range projections.All() {
		t.Run(p.Name(), func(t *testing.T) {
			if _, err := db.Pool.Exec(ctx, `TRUNCATE `+p.TableName()); err != nil {
				t.Fatal(err)
			}
			apply := func(recs []events.Recorded) error {
				return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return p.ApplyBatch(ctx, tx, recs) })
			}
			// The table's rows, as text, to see that a refused or duplicate batch changed nothing.
			snapshot := func() string {
				var s string
				if err := db.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '') FROM `+p.TableName()+` t`).Scan(&s); err != nil {
					t.Fatal(err)
				}
				return s
			}

			if err := apply(batch(v[0], v[1])); err != nil {
				t.Fatalf("v1, v2 of a new stream: %v", err)
			}
			atV2 := snapshot()
			for _, dup := range [][]events.Recorded{batch(v[1]), batch(v[0], v[1]), batch(v[1], v[0])} {
				if err := apply(dup); err != nil {
					t.Errorf("duplicate batch of versions %d..: %v, want a no-op", dup[0].Version, err)
				}
			}
			if diff := cmp.Diff(atV2, snapshot()); diff != "" {
				t.Errorf("a duplicate changed the table:\n%s", diff)
			}

			gaps := []struct {
				name             string
				recs             []events.Recorded
				applied, version int64
				stream           string
			}{
				{"v4 over v2", batch(v[3]), 2, 4, stream},
				{"v3 then v5", batch(v[2], v[4]), 3, 5, stream},
				{"another stream first, then v4 over v2", batch(o[0], v[3]), 2, 4, stream},
				{"v2 of a stream never seen", batch(o[1]), 0, 2, other},
			}
			for _, g := range gaps {
				err := apply(g.recs)
				var gap *projections.GapError
				if !errors.As(err, &gap) {
					t.Errorf("%s: %v, want a *GapError", g.name, err)
					continue
				}
				want := projections.GapError{Projection: p.Name(), Stream: g.stream, Applied: g.applied, Version: g.version, Position: gap.Position}
				if diff := cmp.Diff(want, *gap); diff != "" {
					t.Errorf("%s (-want +got):\n%s", g.name, diff)
				}
				for _, part := range []string{g.stream, "version " + strconv.FormatInt(g.version, 10), p.Name()} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("%s: %q does not name %q", g.name, err, part)
					}
				}
			}
			if diff := cmp.Diff(atV2, snapshot()); diff != "" {
				t.Errorf("a refused batch changed the table:\n%s", diff)
			}

			if err := apply(batch(v[1], v[2], v[3], v[4])); err != nil {
				t.Fatalf("v2 (again) to v5: %v", err)
			}
			var version int64
			if err := db.Pool.QueryRow(ctx, `SELECT max(version) FROM `+p.TableName()+` WHERE notification_id = $1`, stream).Scan(&version); err != nil {
				t.Fatal(err)
			}
			if version != 5 {
				t.Errorf("stream at version %d after v2..v5, want 5", version)
			}
		})
	}
}
