package handlers_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/templatestore"
)

func TestDecideRelease(t *testing.T) {
	now := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	sendAt := now.Add(-time.Second)
	scheduled := func(at time.Time) events.Event {
		return &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi", SendAt: &at}
	}
	for _, tt := range []struct {
		name    string
		given   []events.Event
		now     time.Time
		want    []events.Event
		wantErr error
	}{
		{"due", []events.Event{scheduled(sendAt)}, now, []events.Event{&events.NotificationReleased{SendAt: sendAt}}, nil},
		{"due to the instant", []events.Event{scheduled(now)}, now, []events.Event{&events.NotificationReleased{SendAt: now}}, nil},
		{"not due yet", []events.Event{scheduled(now.Add(time.Millisecond))}, now, nil, handlers.ErrNotDue},
		{"released already", []events.Event{scheduled(sendAt), &events.NotificationReleased{SendAt: sendAt}}, now, nil, handlers.ErrNotScheduled},
		{"under way", []events.Event{scheduled(sendAt), &events.NotificationReleased{SendAt: sendAt}, &events.NotificationProcessing{Attempt: 1}},
			now, nil, handlers.ErrNotScheduled},
		{"never scheduled", []events.Event{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi"}},
			now, nil, handlers.ErrNotScheduled},
		{"failed", []events.Event{scheduled(sendAt), &events.NotificationFailed{Reason: events.ReasonPermanentError}}, now, nil, handlers.ErrNotScheduled},
		{"no stream", nil, now, nil, handlers.ErrNotQueued},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handlers.DecideRelease(given(tt.given...), tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// A scheduled notification waits for no worker: the reconciler never takes it for stalled,
// however long it has waited.
func TestDecideRecoverLeavesScheduledAlone(t *testing.T) {
	at := time.Now().Add(time.Hour)
	n := given(&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi", SendAt: &at})
	if _, err := handlers.DecideRecover(n, handlers.Stall{Idle: 365 * 24 * time.Hour}, time.Minute); !errors.Is(err, handlers.ErrNotStalled) {
		t.Errorf("DecideRecover(scheduled) error %v, want %v", err, handlers.ErrNotStalled)
	}
}

// scheduledWritten counts what accepting writes, with the schedule rows.
type scheduledWritten struct {
	Written   written
	Scheduled int
}

func (e *idempotencyEnv) scheduledWritten(t *testing.T) scheduledWritten {
	t.Helper()
	w := scheduledWritten{Written: e.written(t)}
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM scheduled_notifications`).Scan(&w.Scheduled); err != nil {
		t.Fatal(err)
	}
	return w
}

// A send with send_at writes its event and its schedule row, and no command: on the batch path
// (no idempotency key) and on the transaction path (with one).
func TestAcceptScheduled(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	for _, key := range []string{"", "k"} {
		at := time.Now().Add(time.Hour).Truncate(time.Microsecond).In(time.FixedZone("", -5*3600))
		req := welcome(key)
		req.SendAt = &at
		before := env.scheduledWritten(t)
		a := env.accept(t, ctx, req)
		if a.Status != herald.StatusScheduled || !a.SendAt.Equal(at) {
			t.Errorf("key %q: accepted %s with send_at %v, want scheduled for %v", key, a.Status, a.SendAt, at)
		}
		after := env.scheduledWritten(t)
		if after.Written.Events != before.Written.Events+1 || after.Written.Outbox != before.Written.Outbox || after.Scheduled != before.Scheduled+1 {
			t.Errorf("key %q: wrote %+v after %+v: want one event, one schedule row, no command", key, after, before)
		}
		var due time.Time
		if err := env.pool.QueryRow(ctx, `SELECT due_at FROM scheduled_notifications WHERE notification_id = $1`, a.ID).Scan(&due); err != nil {
			t.Fatal(err)
		}
		if !due.Equal(at) {
			t.Errorf("key %q: due_at %v, want %v", key, due, at)
		}
		n, _, err := env.log.Notification(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n.Status != herald.StatusScheduled || !n.SendAt.Equal(at) {
			t.Errorf("key %q: the log folds to %s with send_at %v", key, n.Status, n.SendAt)
		}
	}
}

// A send_at in the past, now, or beyond the limit is refused naming send_at, with every other
// fault of the request, and nothing is written.
func TestAcceptRefusesSendAt(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	before := env.scheduledWritten(t)
	for _, tt := range []struct {
		name   string
		at     time.Time
		change func(*handlers.SendRequest)
		fields []string
	}{
		{"in the past", time.Now().Add(-time.Minute), nil, []string{"send_at"}},
		{"now", time.Now(), nil, []string{"send_at"}},
		{"past the limit", time.Now().Add(handlers.DefaultMaxScheduleAhead + time.Minute), nil, []string{"send_at"}},
		{"past, with a key", time.Now().Add(-time.Hour), func(r *handlers.SendRequest) { r.IdempotencyKey = "k" }, []string{"send_at"}},
		{"past, with another fault", time.Now().Add(-time.Hour), func(r *handlers.SendRequest) { r.Recipient = "nobody" },
			[]string{"recipient", "send_at"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := welcome("")
			req.SendAt = &tt.at
			if tt.change != nil {
				tt.change(&req)
			}
			_, err := env.acceptor.Accept(ctx, req)
			if herald.ErrorCode(err) != herald.EINVALID {
				t.Fatalf("error %v, want %s", err, herald.EINVALID)
			}
			var got []string
			for f := range herald.ErrorFields(err) {
				got = append(got, f)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.fields, got); diff != "" {
				t.Errorf("fields %v (-want +got):\n%s", herald.ErrorFields(err), diff)
			}
			if diff := cmp.Diff(before, env.scheduledWritten(t)); diff != "" {
				t.Errorf("a refused request wrote (-before +after):\n%s", diff)
			}
		})
	}
}

// The idempotency key's request includes send_at: the same instant (written with any offset)
// replays, another instant is another request.
func TestIdempotencyKeyWithSendAt(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	at := time.Now().Add(time.Hour).UTC()
	req := welcome("k")
	req.SendAt = &at
	first := env.accept(t, ctx, req)

	sameInstant := at.In(time.FixedZone("", 2*3600))
	req.SendAt = &sameInstant
	if again := env.accept(t, ctx, req); again.ID != first.ID || !again.Replayed {
		t.Errorf("the same send_at at another offset answered %s (replayed %v), want %s replayed", again.ID, again.Replayed, first.ID)
	}

	before := env.scheduledWritten(t)
	later := at.Add(time.Minute)
	req.SendAt = &later
	_, err := env.acceptor.Accept(ctx, req)
	wantIdempotencyKeyError(t, err)
	unscheduled := welcome("k")
	_, err = env.acceptor.Accept(ctx, unscheduled)
	wantIdempotencyKeyError(t, err)
	if diff := cmp.Diff(before, env.scheduledWritten(t)); diff != "" {
		t.Errorf("a refused request wrote (-before +after):\n%s", diff)
	}
}

// A worker handed the command of a notification still scheduled starts no attempt.
func TestDecideStartScheduled(t *testing.T) {
	at := t0.Add(time.Hour)
	n := given(&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi", SendAt: &at})
	if evs, err := handlers.DecideStart(n, policy, t0, "w"); !errors.Is(err, handlers.ErrScheduled) {
		t.Errorf("DecideStart(scheduled) = %v, %v; want %v", evs, err, handlers.ErrScheduled)
	}
}

// send_at combines with everything else a send carries: a stored template by name with
// attachments, and inline HTML with an idempotency key; each is scheduled, keeps what it
// carries, and stores its files at once.
func TestAcceptScheduledCombines(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	store := templatestore.New(db.Pool)
	log := events.NewLog(db.Pool)
	a := handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits).WithTemplates(store)
	if _, err := store.Create(ctx, "welcome", templatestore.Draft{Channel: herald.ChannelEmail, Subject: "Welcome, {{.name}}",
		Content: "Hello {{.name}}", Variables: []events.TemplateVariable{{Name: "name"}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(10 * time.Minute)
	for _, req := range []handlers.SendRequest{
		{Type: "email", Recipient: "ada@example.com", Template: "welcome", Variables: map[string]any{"name": "Ada"},
			Attachments: []handlers.Attachment{pdf("a.pdf", "%PDF-1 a")}, SendAt: &at},
		{Type: "email", Recipient: "ada@example.com", HTML: "<p>Hi {{.name}}</p>", Variables: map[string]any{"name": "Ada"},
			IdempotencyKey: "html-later", Attachments: []handlers.Attachment{pdf("b.pdf", "%PDF-1 b")}, SendAt: &at},
	} {
		acc, err := a.Accept(ctx, req)
		if err != nil {
			t.Fatalf("accept %+v: %v", req, err)
		}
		n, recs, err := log.Notification(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		e, err := recs[0].Event()
		if err != nil {
			t.Fatal(err)
		}
		q := e.(*events.NotificationQueued)
		if n.Status != herald.StatusScheduled || q.SendAt == nil || !q.SendAt.Equal(at) || len(q.Attachments) != 1 ||
			(req.Template != "" && (q.Template == nil || q.Template.Name != "welcome")) || (req.HTML != "" && q.RenderedHTML == "") {
			t.Errorf("accepted %+v as %s: %+v", req, n.Status, q)
		}
	}
	if got := countRows(t, db, "attachments"); got != 2 {
		t.Errorf("%d files stored, want 2", got)
	}
	if got := countRows(t, db, "scheduled_notifications"); got != 2 {
		t.Errorf("%d schedule rows, want 2", got)
	}
	if got := countRows(t, db, "outbox"); got != 0 {
		t.Errorf("%d commands, want none before the release", got)
	}
}

// The reconciler takes a scheduled notification for stalled however long it waits: it waits for
// no worker, and has no command to lose. Nor is it one of the read model's candidates.
func TestReconcilerLeavesScheduledAlone(t *testing.T) {
	env := newReconcileEnv(t)
	ctx := context.Background()
	at := time.Now().Add(time.Hour)
	scheduled := queue(t, env.log, &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123",
		Content: "hi", Body: "hi", SendAt: &at})
	pending := env.accept(t, herald.ChannelSMS)
	env.forwardAll(t)
	env.project(t, 0, scheduled, pending)
	heraldtest.Eventually(t, 10*time.Second, "both to be idle", func() (bool, error) {
		var idle int
		err := env.db.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_status
			WHERE updated_at < now() - $1::double precision * interval '1 second'`, reconcileAfter.Seconds()+0.1).Scan(&idle)
		return idle == 2, err
	})
	report, err := env.rec.Reconcile(ctx)
	if err != nil || report.Candidates != 1 || !cmp.Equal(report.Recovered, []string{pending}) {
		t.Errorf("Reconcile = %+v, %v; want only %s a candidate, and recovered", report, err, pending)
	}
	if types := env.types(t, scheduled); len(types) != 1 {
		t.Errorf("the scheduled notification's stream is %v, want its NotificationQueued alone", types)
	}
}

// A retry with the same idempotency key answers the first notification even once its send_at
// has passed, or when its template is archived since: the request was valid when it was
// accepted, and a refusal now would lead the client to send it again under a new key.
func TestIdempotentRetryAfterSendAtPassed(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	accepted := time.Now()
	at := accepted.Add(1200 * time.Millisecond)
	req := welcome("k")
	req.SendAt = &at
	first := env.accept(t, ctx, req)

	later := env.acceptor.WithClock(func() time.Time { return accepted.Add(1500 * time.Millisecond) })
	before := env.scheduledWritten(t)
	again, err := later.Accept(ctx, req)
	if err != nil {
		t.Fatalf("retry after send_at: %v, want the first notification replayed", err)
	}
	if again.ID != first.ID || !again.Replayed {
		t.Errorf("retry answered %s (replayed %v), want %s replayed", again.ID, again.Replayed, first.ID)
	}
	if diff := cmp.Diff(before, env.scheduledWritten(t)); diff != "" {
		t.Errorf("a replay wrote (-before +after):\n%s", diff)
	}

	// Another request under that key, or the same one from another API key, is still refused
	// for its send_at: only the request the key recorded replays.
	other := req
	other.Content = "Another"
	if _, err := later.Accept(ctx, other); herald.ErrorCode(err) != herald.EINVALID || herald.ErrorFields(err)["send_at"] == "" {
		t.Errorf("another request with the key: error %v, want EINVALID naming send_at", err)
	}
	otherKey, _ := asKey(t, "other")
	if _, err := later.Accept(otherKey, req); herald.ErrorCode(err) != herald.EINVALID || herald.ErrorFields(err)["send_at"] == "" {
		t.Errorf("the request from another API key: error %v, want EINVALID naming send_at", err)
	}
	if diff := cmp.Diff(before, env.scheduledWritten(t)); diff != "" {
		t.Errorf("a refused request wrote (-before +after):\n%s", diff)
	}
}
