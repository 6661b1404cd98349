package router

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// The projector reads a NotificationQueued without what was sent, and every other event whole.
func TestProjectorReadsTheLogWithoutContent(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	id := uuid.NewString()
	queued := &events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com",
		Subject: "Hi {{.n}}", Content: "Hello {{.n}}", Variables: map[string]any{"n": "Ada"}, HTML: "<p>{{.n}}</p>",
		RenderedSubject: "Hi Ada", Body: "Hello Ada", RenderedHTML: "<p>Ada</p>",
		Template: &events.TemplateRef{Name: "welcome", Version: 2}}
	if _, err := log.Append(ctx, id, 0, events.Metadata{}, queued,
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 busy"}); err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, db, 2)

	p := NewProjector(db.Pool, ProjectorConfig{BatchSize: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)), projections.Status{})
	offsets := eventLogOffsets()
	if err := p.join(ctx, offsets, "content-test"); err != nil {
		t.Fatal(err)
	}
	schema := eventLogSchema{batchSize: 10}
	sel, err := schema.SelectQuery(sql.SelectQueryParams{Topic: TopicEventLog, ConsumerGroup: "content-test", OffsetsAdapter: offsets})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, sel.Query, sel.Args...)
	if err != nil {
		t.Fatal(err)
	}
	var got []events.Recorded
	for rows.Next() {
		row, err := schema.UnmarshalMessage(sql.UnmarshalMessageParams{Row: rows})
		if err != nil {
			t.Fatal(err)
		}
		r, err := recordedFromMessage(row.Msg)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d events, want 2", len(got))
	}

	var data map[string]any
	if err := json.Unmarshal(got[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	for _, key := range events.QueuedContentKeys {
		if _, ok := data[key]; ok {
			t.Errorf("the projector read NotificationQueued with %q: %s", key, got[0].Data)
		}
	}
	e, err := got[0].Event()
	if err != nil {
		t.Fatal(err)
	}
	n := events.Evolve(herald.Notification{}, got[0], e)
	if n.Channel != herald.ChannelEmail || n.Recipient != "a@example.com" || n.Status != herald.StatusPending {
		t.Errorf("folded %+v, want the email to a@example.com, pending", n)
	}
	if h := events.HistoryEntry(got[0], e); h.Template != "welcome@2" {
		t.Errorf("history entry names template %q, want welcome@2", h.Template)
	}
	if failed, err := got[1].Event(); err != nil || failed.(*events.DeliveryAttemptFailed).Error != "421 busy" {
		t.Errorf("DeliveryAttemptFailed read as %+v (%v), want it whole", failed, err)
	}
}
