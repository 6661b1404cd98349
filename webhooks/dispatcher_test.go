package webhooks_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/webhooks"
)

// register creates an endpoint for rcv taking types, and makes rcv trust its secret.
func (s setup) register(t *testing.T, rcv *receiver, types ...string) webhooks.Endpoint {
	t.Helper()
	ep, secret, err := s.eps.Create(context.Background(), webhooks.NewEndpoint{URL: rcv.url(), EventTypes: types}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	rcv.trust(secret)
	return ep
}

// byNotification groups arrivals by notification, in arrival order.
func byNotification(as []arrival) map[string][]string {
	out := map[string][]string{}
	for _, a := range as {
		out[a.payload.Data.NotificationID] = append(out[a.payload.Data.NotificationID], a.payload.Type)
	}
	return out
}

// TestLiveDeliveryInOrder sends every event of every notification to an endpoint taking all of
// them, once, signed, each notification's in order; and to an endpoint taking two types exactly
// those. The payload says the status after each event.
func TestLiveDeliveryInOrder(t *testing.T) {
	s := newSetup(t)
	all, some := newReceiver(t), newReceiver(t)
	s.register(t, all)
	s.register(t, some, events.TypeNotificationSent, events.TypeNotificationFailed)
	s.dispatcher(t, "d1", webhooks.SenderConfig{})

	want := map[string][]string{}
	for range 30 {
		id, types := s.sendStory(t)
		want[id] = types
	}
	total := 30 * 5
	heraldtest.Eventually(t, 30*time.Second, "every event at the endpoint taking all", func() (bool, error) {
		return len(all.got()) >= total && len(some.got()) >= 30, nil
	})
	got := all.got()
	if len(got) != total {
		t.Fatalf("%d requests arrived, want %d", len(got), total)
	}
	seen := map[string]bool{}
	for _, a := range got {
		if seen[a.id] {
			t.Errorf("webhook-id %s arrived twice", a.id)
		}
		seen[a.id] = true
		if a.id != a.payload.Data.Event.ID {
			t.Errorf("webhook-id %s, event id %s: want the same", a.id, a.payload.Data.Event.ID)
		}
	}
	for id, types := range byNotification(got) {
		if !slices.Equal(types, want[id]) {
			t.Errorf("notification %s: events arrived as %v, want %v", id, types, want[id])
		}
	}
	for _, a := range got {
		wantStatus := map[string]string{
			events.TypeNotificationQueued: "pending", events.TypeNotificationProcessing: "processing",
			events.TypeDeliveryAttemptFailed: "processing", events.TypeNotificationSent: "sent",
		}[a.payload.Type]
		if a.payload.Data.Status != wantStatus {
			t.Errorf("%s says status %q, want %q", a.payload.Type, a.payload.Data.Status, wantStatus)
			break
		}
	}
	for _, a := range some.got() {
		if a.payload.Type != events.TypeNotificationSent {
			t.Errorf("the endpoint taking NotificationSent,NotificationFailed got a %s", a.payload.Type)
		}
	}
	if _, bad := all.stats(); bad != 0 {
		t.Errorf("%d requests had a bad signature", bad)
	}
}

// TestEndpointStartsAtTheEndOfTheLog: an endpoint receives what happens after it is registered,
// not the past (a replay sends that).
func TestEndpointStartsAtTheEndOfTheLog(t *testing.T) {
	s := newSetup(t)
	s.sendStory(t)
	heraldtest.WaitLogVisible(t, s.db, 5)
	rcv := newReceiver(t)
	s.register(t, rcv)
	s.dispatcher(t, "d1", webhooks.SenderConfig{})
	id, _ := s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "the new notification's events", func() (bool, error) { return len(rcv.got()) >= 5, nil })
	for _, a := range rcv.got() {
		if a.payload.Data.NotificationID != id {
			t.Errorf("got an event of %s, from before the endpoint was registered", a.payload.Data.NotificationID)
		}
	}
}

// TestFailedDeliveriesAreRetried: an endpoint failing the first two requests for every event
// gets each a third time on the schedule, later events not held back; every attempt is kept.
func TestFailedDeliveriesAreRetried(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	rcv.failing(func(_ string, n int) bool { return n <= 2 })
	ep := s.register(t, rcv)
	s.dispatcher(t, "d1", webhooks.SenderConfig{Schedule: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, time.Hour}})
	for range 5 {
		s.sendStory(t)
	}
	heraldtest.Eventually(t, 30*time.Second, "every event after two failures each", func() (bool, error) { return len(rcv.got()) >= 25, nil })
	heraldtest.Eventually(t, 10*time.Second, "the retries to be recorded", func() (bool, error) {
		n, err := s.eps.Pending(context.Background(), ep.ID)
		return n == 0, err
	})
	atts, _, err := s.eps.Attempts(context.Background(), ep.ID, webhooks.AttemptFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string][]int{}
	for _, a := range atts {
		per[a.EventID] = append(per[a.EventID], a.Attempt)
		if a.Succeeded != (a.Attempt == 3) {
			t.Errorf("attempt %d of %s: succeeded %v", a.Attempt, a.EventID, a.Succeeded)
		}
		if a.Attempt < 3 && (a.StatusCode != 500 || a.Error == "" || a.Response == "") {
			t.Errorf("failed attempt recorded as status %d, error %q, response %q", a.StatusCode, a.Error, a.Response)
		}
		if wantTrigger := map[bool]string{true: webhooks.TriggerLive, false: webhooks.TriggerRetry}[a.Attempt == 1]; a.Trigger != wantTrigger {
			t.Errorf("attempt %d recorded as %s, want %s", a.Attempt, a.Trigger, wantTrigger)
		}
	}
	if len(per) != 25 {
		t.Errorf("attempts of %d events, want 25", len(per))
	}
	for id, as := range per {
		slices.Sort(as)
		if !slices.Equal(as, []int{1, 2, 3}) {
			t.Errorf("event %s: attempts %v, want [1 2 3]", id, as)
		}
	}
	failed, _, err := s.eps.Attempts(context.Background(), ep.ID, webhooks.AttemptFilter{Failed: true, Limit: 1000})
	if err != nil || len(failed) != 50 {
		t.Errorf("failed attempts: %d (%v), want 50", len(failed), err)
	}
}

// TestFailingEndpointIsDisabled: an endpoint that fails everything for longer than DisableAfter
// is disabled, recorded by Herald in its stream, and gets nothing more; retries stop.
func TestFailingEndpointIsDisabled(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	rcv.failing(func(string, int) bool { return true })
	ep := s.register(t, rcv)
	s.dispatcher(t, "d1", webhooks.SenderConfig{Schedule: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond},
		DisableAfter: 500 * time.Millisecond})
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "the endpoint to be disabled", func() (bool, error) {
		e, err := s.eps.Get(context.Background(), ep.ID)
		return err == nil && !e.Enabled, err
	})
	recs, err := s.eps.History(context.Background(), ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Type != events.TypeWebhookEndpointDisabled || last.Metadata.Actor != webhooks.SystemActor {
		t.Fatalf("last event of the endpoint: %s by %s, want WebhookEndpointDisabled by %s", last.Type, last.Metadata.Actor, webhooks.SystemActor)
	}
	e, _ := last.Event()
	if d := e.(*events.WebhookEndpointDisabled); d.Cause != events.DisabledFailing || d.FailingSince == nil {
		t.Errorf("disabled as %+v, want cause failing with the time it began", d)
	}
	before, _ := rcv.stats()
	// A healthy endpoint registered now shows when the next story has been dispatched.
	healthy := newReceiver(t)
	s.register(t, healthy)
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "the healthy endpoint's events", func() (bool, error) { return len(healthy.got()) >= 5, nil })
	if after, _ := rcv.stats(); after != before {
		t.Errorf("a disabled endpoint got %d more requests", after-before)
	}
}

// gatedLogReads is a dispatcher's database whose next read of the log after an offset, once
// armed, says so on reached and waits for release: it holds a live delivery between its look at
// the endpoint and its read of the log.
type gatedLogReads struct {
	webhooks.DB
	armed            atomic.Bool
	reached, release chan struct{}
}

func (g *gatedLogReads) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.Contains(sql, "FROM event_log e") && strings.Contains(sql, "(e.transaction_id, e.global_position) >") &&
		g.armed.CompareAndSwap(true, false) {
		close(g.reached)
		<-g.release
	}
	return g.DB.Query(ctx, sql, args...)
}

// stopLog is a log handler that closes stopped when a live delivery logs that it stopped.
type stopLog struct {
	once    sync.Once
	stopped chan struct{}
}

func (h *stopLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *stopLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "webhook delivery stopped" {
		h.once.Do(func() { close(h.stopped) })
	}
	return nil
}
func (h *stopLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *stopLog) WithGroup(string) slog.Handler      { return h }

// TestNoLivePostAfterADisable: an event appended after its endpoint was disabled is not posted to
// it, not even by a live delivery that looked at the endpoint, still enabled, just before the
// disable and read the log just after the event.
func TestNoLivePostAfterADisable(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	ep := s.register(t, rcv)
	gate := &gatedLogReads{DB: s.pool, reached: make(chan struct{}), release: make(chan struct{})}
	released := sync.OnceFunc(func() { close(gate.release) })
	t.Cleanup(released)
	logs := &stopLog{stopped: make(chan struct{})}
	sender := webhooks.NewSender(s.pool, s.eps, webhooks.SenderConfig{Client: webhooks.NewClient(testPolicy, webhooks.ClientOptions{Timeout: 5 * time.Second})})
	d := webhooks.NewDispatcher(gate, sender, webhooks.DispatcherConfig{Owner: "d1", Poll: 20 * time.Millisecond, Lease: 2 * time.Second, Lanes: 4,
		Logger: slog.New(logs)})
	heraldtest.RunInBackground(t, "dispatcher d1", d.Run)

	// The live delivery runs: a first story arrives.
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "the first story at the endpoint", func() (bool, error) { return len(rcv.got()) >= 5, nil })

	// The live delivery is held after its look at the endpoint (enabled) and before its read of
	// the log; meanwhile the endpoint is disabled and a second story appended.
	gate.armed.Store(true)
	select {
	case <-gate.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the live delivery did not read the log again within 10 s")
	}
	if _, err := s.eps.Disable(context.Background(), ep.ID, "tester", "no more"); err != nil {
		t.Fatal(err)
	}
	late, _ := s.sendStory(t)
	released()
	select {
	case <-logs.stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the live delivery of the disabled endpoint did not stop within 30 s")
	}
	// Whatever the stopped delivery posted has arrived: it waits for the answers before it looks
	// at the endpoint again.
	var posted int
	for _, a := range rcv.got() {
		if a.payload.Data.NotificationID == late {
			posted++
		}
	}
	if posted != 0 {
		t.Errorf("%d events appended after the disable were posted to the disabled endpoint", posted)
	}
	if n, _ := rcv.stats(); n != 5 {
		t.Errorf("the endpoint got %d requests, want the first story's 5", n)
	}
}

// TestReplayFromTheStart sends the whole log again, in position order, with the ids of the live
// delivery, and a dry run sends nothing.
func TestReplayFromTheStart(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	ep := s.register(t, rcv)
	sender := s.dispatcher(t, "d1", webhooks.SenderConfig{})
	for range 4 {
		s.sendStory(t)
	}
	heraldtest.Eventually(t, 30*time.Second, "the live delivery", func() (bool, error) { return len(rcv.got()) >= 20, nil })
	live := rcv.got()

	dry, err := sender.Replay(context.Background(), ep.ID, webhooks.ReplayRequest{DryRun: true}, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Matched != 20 || dry.Sent != 0 || len(rcv.got()) != 20 {
		t.Fatalf("dry run: %+v and %d arrivals, want 20 matched and nothing sent", dry, len(rcv.got()))
	}
	var progress []webhooks.ReplayProgress
	rep, err := sender.Replay(context.Background(), ep.ID, webhooks.ReplayRequest{}, 4, func(p webhooks.ReplayProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched != 20 || rep.Sent != 20 || rep.Failed != 0 || len(progress) == 0 {
		t.Fatalf("replay: %+v, %d progress reports", rep, len(progress))
	}
	replayed := rcv.got()[20:]
	liveIDs, replayIDs := ids(live), ids(replayed)
	slices.Sort(liveIDs)
	if !slices.Equal(liveIDs, slices.Sorted(slices.Values(replayIDs))) {
		t.Errorf("the replay sent other ids than the live delivery")
	}
	for i := 1; i < len(replayed); i++ {
		if replayed[i].payload.Data.Event.Position < replayed[i-1].payload.Data.Event.Position &&
			replayed[i].payload.Data.NotificationID == replayed[i-1].payload.Data.NotificationID {
			t.Errorf("replay: position %d after %d of the same notification", replayed[i].payload.Data.Event.Position, replayed[i-1].payload.Data.Event.Position)
		}
	}
	for id, types := range byNotification(replayed) {
		if len(types) != 5 {
			t.Errorf("replay of %s: %v", id, types)
		}
	}
	// A replay narrowed by type and position.
	positions := make([]int64, len(live))
	for i, a := range live {
		positions[i] = a.payload.Data.Event.Position
	}
	slices.Sort(positions)
	second := positions[5] // where the second story starts
	rep, err = sender.Replay(context.Background(), ep.ID, webhooks.ReplayRequest{FromPosition: second, Types: []string{events.TypeNotificationSent}}, 4, nil)
	if err != nil || rep.Matched != 3 {
		t.Errorf("replay of NotificationSent from position %d: %+v, %v; want 3 matched", second, rep, err)
	}
	if _, err := sender.Replay(context.Background(), ep.ID, webhooks.ReplayRequest{Types: []string{"Nope"}}, 4, nil); err == nil {
		t.Error("a replay of an unknown type was not refused")
	}
}

func ids(as []arrival) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.id
	}
	return out
}

// TestRotationSignsWithBothSecrets: after a rotation each request carries two signatures, one by
// each secret, so a receiver that knows either verifies it.
func TestRotationSignsWithBothSecrets(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	ep, oldSecret, err := s.eps.Create(context.Background(), webhooks.NewEndpoint{URL: rcv.url()}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	_, newSecret, err := s.eps.RotateSecret(context.Background(), ep.ID, "tester")
	if err != nil {
		t.Fatal(err)
	}
	rcv.trust(oldSecret) // a receiver not yet told of the rotation
	s.dispatcher(t, "d1", webhooks.SenderConfig{})
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "events verified with the old secret", func() (bool, error) { return len(rcv.got()) >= 5, nil })
	rcv.trust(newSecret) // and one that was
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "events verified with the new secret", func() (bool, error) { return len(rcv.got()) >= 10, nil })
	for _, a := range rcv.got() {
		if a.sigCount != 2 {
			t.Errorf("%d signatures during the overlap, want 2", a.sigCount)
		}
	}
	if _, bad := rcv.stats(); bad != 0 {
		t.Errorf("%d requests failed verification", bad)
	}
}

// TestDispatchersShareWithoutSendingTwice: three dispatchers over four endpoints deliver every
// event to each endpoint once, and the endpoints spread over them.
func TestDispatchersShareWithoutSendingTwice(t *testing.T) {
	s := newSetup(t)
	var rcvs []*receiver
	for range 4 {
		r := newReceiver(t)
		s.register(t, r)
		rcvs = append(rcvs, r)
	}
	for i := range 3 {
		s.dispatcher(t, fmt.Sprintf("d%d", i), webhooks.SenderConfig{})
	}
	for range 20 {
		s.sendStory(t)
	}
	for i, r := range rcvs {
		heraldtest.Eventually(t, 30*time.Second, fmt.Sprintf("endpoint %d's events", i), func() (bool, error) { return len(r.got()) >= 100, nil })
	}
	for i, r := range rcvs {
		if n := len(r.got()); n != 100 {
			t.Errorf("endpoint %d got %d requests, want 100", i, n)
		}
		seen := map[string]bool{}
		for _, a := range r.got() {
			if seen[a.id] {
				t.Errorf("endpoint %d got %s twice", i, a.id)
			}
			seen[a.id] = true
		}
	}
	var owners []string
	if err := s.db.Pool.QueryRow(context.Background(), `SELECT array_agg(DISTINCT lease_owner) FROM webhook_endpoints`).Scan(&owners); err != nil {
		t.Fatal(err)
	}
	if len(owners) < 2 {
		t.Errorf("the endpoints are held by %v: want them spread over the dispatchers", owners)
	}
}

// TestRefusedAddressIsAFailedAttempt: a dispatcher whose policy refuses loopback records the
// refusal as a failed attempt and never reaches the receiver.
func TestRefusedAddressIsAFailedAttempt(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	ep := s.register(t, rcv)
	strict := webhooks.NewClient(webhooks.Policy{AllowHTTP: true}, webhooks.ClientOptions{})
	s.dispatcher(t, "d1", webhooks.SenderConfig{Client: strict, Schedule: []time.Duration{time.Hour}})
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "five refused attempts", func() (bool, error) {
		atts, _, err := s.eps.Attempts(context.Background(), ep.ID, webhooks.AttemptFilter{Failed: true, Limit: 100})
		return len(atts) == 5, err
	})
	atts, _, _ := s.eps.Attempts(context.Background(), ep.ID, webhooks.AttemptFilter{Limit: 100})
	for _, a := range atts {
		if a.StatusCode != 0 || !strings.Contains(a.Error, "loopback") {
			t.Errorf("attempt recorded as status %d, error %q: want no answer and the refusal", a.StatusCode, a.Error)
		}
	}
	if n, _ := rcv.stats(); n != 0 {
		t.Errorf("the receiver on loopback got %d requests", n)
	}
}

// TestStoppedReplayReportsWhatItDid: a replay stopped midway says how far it went, so that the
// operator knows where to resume.
func TestStoppedReplayReportsWhatItDid(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	ep := s.register(t, rcv)
	sender := webhooks.NewSender(s.pool, s.eps, webhooks.SenderConfig{Client: webhooks.NewClient(testPolicy, webhooks.ClientOptions{})})
	s.sendStory(t)
	heraldtest.WaitLogVisible(t, s.db, 6)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := sender.Replay(ctx, ep.ID, webhooks.ReplayRequest{FromPosition: 1}, 2, func(webhooks.ReplayProgress) { cancel() })
	if err == nil {
		t.Fatal("a stopped replay returned no error")
	}
	if rep.Matched != 5 || rep.Sent != 5 || len(rcv.got()) != 5 {
		t.Errorf("stopped after one page: report %+v, %d arrivals; want 5 matched and sent", rep, len(rcv.got()))
	}
}

// TestDeleteDropsRetries: a deleted endpoint's pending retries go with it.
func TestDeleteDropsRetries(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	rcv.failing(func(string, int) bool { return true })
	ep := s.register(t, rcv)
	s.dispatcher(t, "d1", webhooks.SenderConfig{Schedule: []time.Duration{time.Hour}})
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "five retries pending", func() (bool, error) {
		n, err := s.eps.Pending(context.Background(), ep.ID)
		return n == 5, err
	})
	if err := s.eps.Delete(context.Background(), ep.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.eps.Pending(context.Background(), ep.ID); n != 0 || err != nil {
		t.Errorf("%d retries left after the delete (%v)", n, err)
	}
}

// TestTakingRetriesReadsOnlyWhatItTakes: with a large backlog and no statistics (a young
// database, or one nothing analyses), taking due retries walks the index in due order and stops
// at the batch — no sort of the whole backlog, no bitmap of it.
func TestTakingRetriesReadsOnlyWhatItTakes(t *testing.T) {
	s := newSetup(t)
	ep := s.register(t, newReceiver(t))
	ctx := context.Background()
	if _, err := s.db.Pool.Exec(ctx, `INSERT INTO webhook_retries (endpoint_id, event_position, attempt, trigger, due_at)
		SELECT $1, i, 2, 'live', now() - i * interval '1 ms' FROM generate_series(1, 50000) i`, ep.ID); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, webhooks.TakeDuePlan); err != nil {
		t.Fatal(err)
	}
	var plan string
	if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT TEXT) `+webhooks.TakeDueSQL, 200, "1m", 200, []string{}, nil).Scan(&plan); err != nil {
		// EXPLAIN returns one row per line; the first is enough to know it ran.
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `EXPLAIN `+webhooks.TakeDueSQL, 200, "1m", 200, []string{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	text := strings.Join(lines, "\n")
	if strings.Contains(text, "Sort") || strings.Contains(text, "Bitmap") || !strings.Contains(text, "webhook_retries_endpoint_due_idx") {
		t.Errorf("taking due retries is planned as:\n%s\nwant an index scan of webhook_retries_endpoint_due_idx, no sort, no bitmap", text)
	}
}

// TestDisableAndEnableMidBatchSendsNothingTwice: an endpoint disabled and enabled again while
// its holder is posting a batch stays with that holder; another dispatcher does not take it and
// post the same batch beside it.
func TestDisableAndEnableMidBatchSendsNothingTwice(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	rcv.gate = make(chan struct{})
	var open sync.Once
	release := func() { open.Do(func() { close(rcv.gate) }) }
	t.Cleanup(release) // before the receiver closes, which waits for the requests it holds
	ep := s.register(t, rcv)
	s.dispatcher(t, "d1", webhooks.SenderConfig{})
	s.sendStory(t)
	heraldtest.Eventually(t, 30*time.Second, "d1 to hold the endpoint and post", func() (bool, error) {
		var owner string
		err := s.db.Pool.QueryRow(context.Background(), `SELECT coalesce(lease_owner, '') FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&owner)
		return owner == "d1", err
	})
	ctx := context.Background()
	if _, err := s.eps.Disable(ctx, ep.ID, "ops", "maintenance"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.eps.Enable(ctx, ep.ID, "ops"); err != nil {
		t.Fatal(err)
	}
	// Still d1's, which renews it: no other dispatcher can take it while d1 posts the batch.
	var owner string
	if err := s.db.Pool.QueryRow(ctx, `SELECT coalesce(lease_owner, '') FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&owner); err != nil || owner != "d1" {
		t.Fatalf("after a disable and an enable the endpoint is held by %q (%v), want d1 still", owner, err)
	}
	s.dispatcher(t, "d2", webhooks.SenderConfig{})
	release()
	heraldtest.Eventually(t, 30*time.Second, "the story's events", func() (bool, error) { return len(rcv.got()) >= 5, nil })
	seen := map[string]int{}
	for _, a := range rcv.got() {
		seen[a.id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s arrived %d times", id, n)
		}
	}
}

// TestDeadEndpointIsProbedNotFlooded: an endpoint that fails every request stops getting every
// event: after TripAfter failures in a row it gets one probe per Probe, the rest wait in the log,
// and once it answers again every event reaches it (or has its retry pending).
func TestDeadEndpointIsProbedNotFlooded(t *testing.T) {
	s := newSetup(t)
	rcv := newReceiver(t)
	var down atomic.Bool
	down.Store(true)
	rcv.failing(func(string, int) bool { return down.Load() })
	ep := s.register(t, rcv)
	const probe = 100 * time.Millisecond
	s.dispatcherWith(t, webhooks.DispatcherConfig{Owner: "d1", Poll: 20 * time.Millisecond, Lease: 2 * time.Second, Lanes: 4,
		TripAfter: 5, Probe: probe}, webhooks.SenderConfig{Schedule: []time.Duration{time.Hour}})
	// Two stories trip it (ten failures); the next eighteen find it tripped.
	for range 2 {
		s.sendStory(t)
	}
	heraldtest.Eventually(t, 30*time.Second, "the first ten events to fail", func() (bool, error) {
		n, _ := rcv.stats()
		return n >= 10, nil
	})
	for range 18 {
		s.sendStory(t)
	}
	heraldtest.Eventually(t, 30*time.Second, "five more requests", func() (bool, error) {
		n, _ := rcv.stats()
		return n >= 15, nil
	})
	// Tripped, it sends one event per probe: the requests after the first ten come a probe
	// apart, where posting every event would have sent them all at once.
	times := rcv.requestTimes()[10:15]
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < probe/2 {
			t.Fatalf("requests %d and %d to a dead endpoint came %s apart: want one probe per %s", 10+i, 11+i, gap, probe)
		}
	}
	down.Store(false)
	heraldtest.Eventually(t, 30*time.Second, "every event, arrived or with a retry pending", func() (bool, error) {
		pending, err := s.eps.Pending(context.Background(), ep.ID)
		return len(rcv.got())+int(pending) >= 100, err
	})
	pending, _ := s.eps.Pending(context.Background(), ep.ID)
	seen := map[string]bool{}
	for _, a := range rcv.got() {
		if seen[a.id] {
			t.Errorf("%s arrived twice", a.id)
		}
		seen[a.id] = true
	}
	if len(seen)+int(pending) != 100 {
		t.Errorf("%d events arrived and %d wait for a retry: want the 100 events", len(seen), pending)
	}
}
