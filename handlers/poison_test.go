package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// The operator runs against the real event log and the real outbox; only the poison queue is
// faked (router's tests run the real one against RabbitMQ), so that the tests can say what is
// parked and make its removal fail.

// fakeParked is a poison queue in memory, removing messages as router.PoisonQueue does.
type fakeParked struct {
	mu        sync.Mutex
	msgs      []handlers.ParkedMessage
	removeErr error
	removes   int
}

var _ handlers.ParkedQueue = (*fakeParked)(nil)

func (q *fakeParked) List(context.Context) ([]handlers.ParkedMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.msgs), nil
}

func (q *fakeParked) Walk(ctx context.Context, fn func(handlers.ParkedMessage) bool) error {
	msgs, _ := q.List(ctx)
	for _, m := range msgs {
		if !fn(m) {
			return nil
		}
	}
	return nil
}

func (q *fakeParked) Remove(_ context.Context, keys []handlers.ParkedKey) (map[string]int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.removes++
	if q.removeErr != nil {
		return nil, q.removeErr
	}
	removed := map[string]int{}
	q.msgs = slices.DeleteFunc(q.msgs, func(m handlers.ParkedMessage) bool {
		if m.NotificationID == "" {
			return false
		}
		if !slices.Contains(keys, handlers.ParkedKey{NotificationID: m.NotificationID, MessageID: m.MessageID}) &&
			!slices.Contains(keys, handlers.ParkedKey{NotificationID: m.NotificationID}) {
			return false
		}
		removed[m.NotificationID]++
		return true
	})
	return removed, nil
}

func (q *fakeParked) park(m handlers.ParkedMessage) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
}

// messageIDs returns the ids of the parked messages of notification id.
func (q *fakeParked) messageIDs(id string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, m := range q.msgs {
		if m.NotificationID == id {
			out = append(out, m.MessageID)
		}
	}
	return out
}

// parkedFor is the message a worker parks for notification id on channel c.
func parkedFor(id string, c herald.Channel) handlers.ParkedMessage {
	return handlers.ParkedMessage{
		NotificationID: id, Channel: c, MessageID: uuid.NewString(), CorrelationID: apiMD.CorrelationID,
		Reason: "deliver " + id + ": final", Queue: string(c) + "_notifications", Handler: "send_" + string(c),
	}
}

// operatorEnv is an operator over a fresh database and a fake poison queue.
type operatorEnv struct {
	pool   *pgxpool.Pool
	log    *events.Log
	parked *fakeParked
	op     *handlers.Operator
}

func newOperatorEnv(t *testing.T, outbox handlers.Outbox) *operatorEnv {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	env := &operatorEnv{pool: db.Pool, log: events.NewLog(db.Pool), parked: &fakeParked{}}
	if outbox == nil {
		outbox = router.NewOutbox(nil)
	}
	env.op = handlers.NewOperator(db.Pool, env.log, outbox, env.parked)
	return env
}

// failedStory is a notification whose two attempts failed: the last of them failed it.
func failedStory() []events.Event {
	return []events.Event{
		&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "p", Error: "503 busy"},
		&events.NotificationProcessing{Attempt: 2, Worker: "w1"},
		&events.NotificationFailed{Attempt: 2, Provider: "p", Error: "503 still busy", Reason: events.ReasonAttemptsExhausted},
	}
}

var sentStory = []events.Event{
	&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
	&events.NotificationSent{Attempt: 1, Provider: "p", ProviderMessageID: "pm-1"},
}

// notification queues a notification on channel c and appends story after it; with parked, a
// message is parked for it. It returns the notification's id.
func (e *operatorEnv) notification(t *testing.T, c herald.Channel, story []events.Event, parked bool) string {
	t.Helper()
	id := queue(t, e.log, queuedOn(c))
	if len(story) > 0 {
		if _, err := e.log.Append(context.Background(), id, 1, cmdMD(1), story...); err != nil {
			t.Fatalf("append story of %s: %v", id, err)
		}
	}
	if parked {
		e.parked.park(parkedFor(id, c))
	}
	return id
}

func (e *operatorEnv) version(t *testing.T, id string) int64 {
	t.Helper()
	n, _, err := e.log.Notification(context.Background(), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return n.Version
}

// outboxCommand is an outbox row unwrapped: the queue it is for, the command and its metadata.
type outboxCommand struct {
	Queue    string
	Command  commands.SendNotification
	Metadata map[string]string
}

func outboxCommands(t *testing.T, pool *pgxpool.Pool) []outboxCommand {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT payload::text FROM outbox ORDER BY "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []outboxCommand
	for _, p := range payloads {
		var env struct {
			DestinationTopic string            `json:"destination_topic"`
			Payload          []byte            `json:"payload"`
			Metadata         map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(p), &env); err != nil {
			t.Fatalf("outbox payload is not a forwarder envelope: %v\n%s", err, p)
		}
		c := outboxCommand{Queue: env.DestinationTopic, Metadata: env.Metadata}
		if err := json.Unmarshal(env.Payload, &c.Command); err != nil {
			t.Fatalf("envelope payload is not a command: %v\n%q", err, env.Payload)
		}
		out = append(out, c)
	}
	return out
}

// opMD is the metadata of the events an operator action appends: the notification's own
// correlation id, caused by the operator's request.
func opMD(actor string) events.Metadata {
	return events.Metadata{CorrelationID: apiMD.CorrelationID, CausationID: "op-req-1", Actor: actor}
}

func operatorCtx() context.Context {
	return herald.WithCorrelationID(context.Background(), "op-req-1")
}

func checkCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := herald.ErrorCode(err); got != code {
		t.Fatalf("error %v has code %q, want %q", err, got, code)
	}
}

func TestRequeueRecordsEventAndCommandThenUnparks(t *testing.T) {
	env := newOperatorEnv(t, nil)
	id := env.notification(t, herald.ChannelSMS, failedStory(), true)
	other := env.notification(t, herald.ChannelEmail, failedStory(), true)

	results, err := env.op.Requeue(operatorCtx(), handlers.Selection{IDs: []string{strings.ToUpper(id)}}, "ops", "gateway fixed")
	if err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	want := []handlers.Result{{ID: id, Action: handlers.ActionRequeued, Status: herald.StatusPending, Version: 6, Removed: 1}}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	checkStream(t, env.log, id, stream(
		by(apiMD, queuedOn(herald.ChannelSMS)),
		by(cmdMD(1), failedStory()...),
		by(opMD("ops"), &events.NotificationRequeued{Actor: "ops", Reason: "gateway fixed", Attempts: 2}),
	))
	wantCmds := []outboxCommand{{
		Queue:    router.QueueSMS,
		Command:  commands.SendNotification{NotificationID: id, Channel: herald.ChannelSMS},
		Metadata: map[string]string{"correlation_id": apiMD.CorrelationID},
	}}
	got := outboxCommands(t, env.pool)
	for i := range got {
		// Only the correlation id matters here; watermill adds the command's name and more.
		got[i].Metadata = map[string]string{"correlation_id": got[i].Metadata["correlation_id"]}
	}
	if diff := cmp.Diff(wantCmds, got); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
	if ids := env.parked.messageIDs(id); len(ids) != 0 {
		t.Errorf("%s still has parked messages %v", id, ids)
	}
	if ids := env.parked.messageIDs(other); len(ids) != 1 {
		t.Errorf("the other notification %s has parked messages %v, want its one untouched", other, ids)
	}
	n, _, err := env.log.Notification(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != herald.StatusPending || n.RoundStart != 2 || n.Attempts != 2 {
		t.Errorf("after the requeue the notification is %s with attempts %d and round start %d, want pending, 2, 2", n.Status, n.Attempts, n.RoundStart)
	}
}

// The event and the command are one transaction: an outbox that fails leaves no event either.
func TestRequeueIsOneTransaction(t *testing.T) {
	env := newOperatorEnv(t, failingOutbox{})
	id := env.notification(t, herald.ChannelSMS, failedStory(), true)

	results, err := env.op.Requeue(operatorCtx(), handlers.Selection{IDs: []string{id}}, "ops", "")
	if err == nil || !errors.Is(err, errOutboxDown) {
		t.Fatalf("Requeue with a failing outbox: %v, %v; want an error wrapping %v", results, err, errOutboxDown)
	}
	if len(results) != 0 {
		t.Errorf("results %+v, want none", results)
	}
	if v := env.version(t, id); v != 5 {
		t.Errorf("stream %s is at version %d, want 5: the requeue event must roll back with the command", id, v)
	}
	if n := len(outboxCommands(t, env.pool)); n != 0 {
		t.Errorf("outbox holds %d commands, want none", n)
	}
	if ids := env.parked.messageIDs(id); len(ids) != 1 {
		t.Errorf("%s has parked messages %v, want its one still parked", id, ids)
	}
}

var errOutboxDown = errors.New("outbox down")

// failingOutbox stores the command, then fails, as an insert that breaks late would.
type failingOutbox struct{}

func (failingOutbox) Send(ctx context.Context, tx pgx.Tx, cmd commands.SendNotification) error {
	if err := router.NewOutbox(nil).Send(ctx, tx, cmd); err != nil {
		return err
	}
	return errOutboxDown
}

// One notification that cannot be acted on refuses the whole batch: nothing is appended, queued
// or removed, and the error names each offender.
func TestOperatorRefusesTheWholeBatch(t *testing.T) {
	env := newOperatorEnv(t, nil)
	failed := env.notification(t, herald.ChannelSMS, failedStory(), true)
	sent := env.notification(t, herald.ChannelEmail, sentStory, false)
	unknown := uuid.NewString()

	tests := []struct {
		name       string
		discard    bool
		ids        []string
		actor      string
		reason     string
		code       string
		wantFields []string
	}{
		{name: "malformed id", ids: []string{failed, "not-a-uuid"}, actor: "ops", code: herald.EINVALID, wantFields: []string{"not-a-uuid"}},
		{name: "unknown and sent", ids: []string{failed, unknown, sent}, actor: "ops", code: herald.ENOTFOUND, wantFields: []string{sent, unknown}},
		{name: "sent and not parked", ids: []string{failed, sent}, actor: "ops", code: herald.ECONFLICT, wantFields: []string{sent}},
		{name: "no actor", ids: []string{failed}, actor: " ", code: herald.EINVALID, wantFields: []string{"actor"}},
		{name: "reason with NUL", ids: []string{failed}, actor: "ops", reason: "a\x00b", code: herald.EINVALID, wantFields: []string{"reason"}},
		{name: "discard without reason", discard: true, ids: []string{failed}, actor: "ops", code: herald.EINVALID, wantFields: []string{"reason"}},
		{name: "discard of unknown", discard: true, ids: []string{failed, unknown}, actor: "ops", reason: "r", code: herald.ENOTFOUND, wantFields: []string{unknown}},
		{name: "nothing named", ids: nil, actor: "ops", code: herald.EINVALID, wantFields: []string{"ids"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := env.op.Requeue
			if tt.discard {
				act = env.op.Discard
			}
			results, err := act(operatorCtx(), handlers.Selection{IDs: tt.ids}, tt.actor, tt.reason)
			if len(results) != 0 {
				t.Errorf("results %+v, want none", results)
			}
			checkCode(t, err, tt.code)
			if got := slices.Sorted(maps.Keys(herald.ErrorFields(err))); !slices.Equal(got, slices.Sorted(slices.Values(tt.wantFields))) {
				t.Errorf("error %v names %v, want %v", err, got, tt.wantFields)
			}
			if v := env.version(t, failed); v != 5 {
				t.Errorf("the failed notification is at version %d, want 5: nothing may be appended", v)
			}
			if n := len(outboxCommands(t, env.pool)); n != 0 {
				t.Errorf("outbox holds %d commands, want none", n)
			}
			if env.parked.removes != 0 {
				t.Errorf("the poison queue was asked to remove messages %d times, want never", env.parked.removes)
			}
		})
	}
}

func TestDiscard(t *testing.T) {
	env := newOperatorEnv(t, nil)
	id := env.notification(t, herald.ChannelEmail, failedStory(), true)

	results, err := env.op.Discard(operatorCtx(), handlers.Selection{IDs: []string{id}}, "ops", "mailbox closed")
	if err != nil {
		t.Fatalf("Discard: %v", err)
	}
	want := []handlers.Result{{ID: id, Action: handlers.ActionDiscarded, Status: herald.StatusFailed, Version: 6, Removed: 1}}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	checkStream(t, env.log, id, stream(
		by(apiMD, queuedOn(herald.ChannelEmail)),
		by(cmdMD(1), failedStory()...),
		by(opMD("ops"), &events.NotificationDiscarded{Actor: "ops", Reason: "mailbox closed"}),
	))
	if n := len(outboxCommands(t, env.pool)); n != 0 {
		t.Errorf("a discard queued %d commands, want none", n)
	}
	if ids := env.parked.messageIDs(id); len(ids) != 0 {
		t.Errorf("%s still has parked messages %v", id, ids)
	}

	// Discarded and no longer parked: there is nothing left to discard.
	_, err = env.op.Discard(operatorCtx(), handlers.Selection{IDs: []string{id}}, "ops", "again")
	checkCode(t, err, herald.ECONFLICT)
	if v := env.version(t, id); v != 6 {
		t.Errorf("a second discard moved the stream to version %d, want 6", v)
	}

	// An operator may still change their mind.
	results, err = env.op.Requeue(operatorCtx(), handlers.Selection{IDs: []string{id}}, "ops", "address fixed")
	if err != nil {
		t.Fatalf("Requeue after discard: %v", err)
	}
	if len(results) != 1 || results[0].Action != handlers.ActionRequeued || results[0].Status != herald.StatusPending || results[0].Removed != 0 {
		t.Errorf("requeue after discard: %+v, want requeued, pending, nothing removed", results)
	}
}

// A parked message whose notification moved on — requeued and sent since, or discarded — is
// stale: the listing says so, and an action on it only removes it.
func TestStaleParkedMessagesAreOnlyRemoved(t *testing.T) {
	env := newOperatorEnv(t, nil)
	ctx := operatorCtx()
	sent := env.notification(t, herald.ChannelSMS, sentStory, true)
	discarded := env.notification(t, herald.ChannelEmail, append(failedStory(),
		&events.NotificationDiscarded{Actor: "someone", Reason: "r"}), true)
	failed := env.notification(t, herald.ChannelSMS, failedStory(), true)
	orphan := uuid.NewString()
	env.parked.park(parkedFor(orphan, herald.ChannelSMS))

	parked, err := env.op.Parked(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID    string
		Stale bool
		Known bool
	}
	var got []row
	for _, p := range parked {
		got = append(got, row{p.Message.NotificationID, p.Stale, p.Notification.Version > 0})
	}
	// Failed ones first, then stale ones, then those the log does not know.
	want := []row{{failed, false, true}, {sent, true, true}, {discarded, true, true}, {orphan, false, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parked (-want +got):\n%s", diff)
	}

	versions := map[string]int64{sent: env.version(t, sent), discarded: env.version(t, discarded)}
	results, err := env.op.Requeue(ctx, handlers.Selection{IDs: []string{sent}}, "ops", "")
	if err != nil {
		t.Fatalf("Requeue of a stale message: %v", err)
	}
	wantResults := []handlers.Result{{ID: sent, Action: handlers.ActionRemoved, Status: herald.StatusSent, Version: versions[sent], Removed: 1}}
	if diff := cmp.Diff(wantResults, results); diff != "" {
		t.Errorf("requeue of a sent notification (-want +got):\n%s", diff)
	}
	results, err = env.op.Discard(ctx, handlers.Selection{IDs: []string{discarded, orphan}}, "ops", "clean up")
	if err != nil {
		t.Fatalf("Discard of stale and orphaned messages: %v", err)
	}
	wantResults = []handlers.Result{
		{ID: discarded, Action: handlers.ActionRemoved, Status: herald.StatusFailed, Version: versions[discarded], Removed: 1},
		{ID: orphan, Action: handlers.ActionRemoved, Removed: 1},
	}
	if diff := cmp.Diff(wantResults, results); diff != "" {
		t.Errorf("discard of stale and orphaned messages (-want +got):\n%s", diff)
	}
	for id, v := range versions {
		if got := env.version(t, id); got != v {
			t.Errorf("%s moved from version %d to %d: removing a stale message appends nothing", id, v, got)
		}
	}
	if n := len(outboxCommands(t, env.pool)); n != 0 {
		t.Errorf("outbox holds %d commands, want none", n)
	}
	if ids := env.parked.messageIDs(failed); len(ids) != 1 {
		t.Errorf("the failed notification's messages are %v, want its one untouched", ids)
	}
}

// If the parked messages cannot be removed after the event is committed, the error says so, the
// event stands, and the message, now stale, is removed by the next action.
func TestRemovalFailureLeavesAStaleMessage(t *testing.T) {
	env := newOperatorEnv(t, nil)
	ctx := operatorCtx()
	id := env.notification(t, herald.ChannelSMS, failedStory(), true)
	env.parked.removeErr = errors.New("RabbitMQ went away")

	results, err := env.op.Requeue(ctx, handlers.Selection{IDs: []string{id}}, "ops", "")
	if err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("Requeue with RabbitMQ gone: %v; want an error saying the message stays behind, stale", err)
	}
	if len(results) != 1 || results[0].Action != handlers.ActionRequeued || results[0].Removed != 0 {
		t.Errorf("results %+v, want the requeue reported, with nothing removed", results)
	}
	if v := env.version(t, id); v != 6 {
		t.Errorf("stream at version %d, want 6: the requeue stands", v)
	}
	parked, err := env.op.Parked(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || !parked[0].Stale || parked[0].Notification.Status != herald.StatusPending {
		t.Fatalf("Parked = %+v, want the one message, stale, of a pending notification", parked)
	}

	env.parked.removeErr = nil
	results, err = env.op.Requeue(ctx, handlers.Selection{IDs: []string{id}}, "ops", "")
	if err != nil {
		t.Fatalf("second Requeue: %v", err)
	}
	// The notification is pending: its parked message cannot be told from a command RabbitMQ
	// dead-lettered, so it is sent again rather than dropped — a second command, which the
	// worker acknowledges without a second send.
	if len(results) != 1 || results[0].Action != handlers.ActionResent || results[0].Removed != 1 {
		t.Errorf("second requeue: %+v, want the command resent and the stale message removed", results)
	}
	if v := env.version(t, id); v != 6 {
		t.Errorf("stream at version %d after the second requeue, want still 6", v)
	}
	if n := len(outboxCommands(t, env.pool)); n != 2 {
		t.Errorf("outbox holds %d commands, want the requeue's and the resend's", n)
	}
}

// A command parked again between the requeue's commit and its removal (the requeued notification
// failed again already) is a new message, and stays parked.
func TestRequeueRemovesOnlyTheMessagesItSaw(t *testing.T) {
	reparking := &reparkingOutbox{}
	env := newOperatorEnv(t, reparking)
	reparking.parked = env.parked
	id := env.notification(t, herald.ChannelSMS, failedStory(), true)
	old := env.parked.messageIDs(id)

	results, err := env.op.Requeue(operatorCtx(), handlers.Selection{IDs: []string{id}}, "ops", "")
	if err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	if len(results) != 1 || results[0].Removed != 1 {
		t.Errorf("results %+v, want one message removed", results)
	}
	got := env.parked.messageIDs(id)
	if len(got) != 1 || got[0] != reparking.newID {
		t.Errorf("parked messages of %s: %v, want only the new one %s (the old one was %v)", id, got, reparking.newID, old)
	}
}

// reparkingOutbox stores the command and parks a new message for it, as a worker that received
// and failed it at once would.
type reparkingOutbox struct {
	parked *fakeParked
	newID  string
}

func (o *reparkingOutbox) Send(ctx context.Context, tx pgx.Tx, cmd commands.SendNotification) error {
	if err := router.NewOutbox(nil).Send(ctx, tx, cmd); err != nil {
		return err
	}
	m := parkedFor(cmd.NotificationID, cmd.Channel)
	o.newID = m.MessageID
	o.parked.park(m)
	return nil
}

func TestParkedJoinsTheLog(t *testing.T) {
	env := newOperatorEnv(t, nil)
	ctx := context.Background()
	sms := env.notification(t, herald.ChannelSMS, failedStory(), true)
	email := env.notification(t, herald.ChannelEmail, failedStory(), true)
	env.parked.park(handlers.ParkedMessage{MessageID: "junk", Unreadable: "the message is a \"Other\", not a SendNotification command"})

	recs, err := env.log.Load(ctx, sms)
	if err != nil {
		t.Fatal(err)
	}
	failedAt := recs[len(recs)-1].Time

	all, err := env.op.Parked(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[2].Message.MessageID != "junk" {
		t.Fatalf("Parked listed %d messages (%+v), want 3 with the unreadable one last", len(all), all)
	}
	smsOnly, err := env.op.Parked(ctx, herald.ChannelSMS)
	if err != nil {
		t.Fatal(err)
	}
	if len(smsOnly) != 1 {
		t.Fatalf("Parked(sms) listed %d messages, want 1", len(smsOnly))
	}
	p := smsOnly[0]
	if p.Message.NotificationID != sms || p.Channel() != herald.ChannelSMS || p.Notification.Recipient != queuedOn(herald.ChannelSMS).Recipient ||
		p.Notification.Status != herald.StatusFailed || p.Notification.Attempts != 2 || p.Stale || p.Discarded ||
		p.FailReason != events.ReasonAttemptsExhausted || p.FailError != "503 still busy" || !p.FailedAt.Equal(failedAt) {
		t.Errorf("Parked(sms) = %+v; want the failed SMS with its recipient, 2 attempts, reason, error and failure time %s", p, failedAt)
	}

	// --all, of one channel.
	results, err := env.op.Requeue(operatorCtx(), handlers.Selection{All: true, Channel: herald.ChannelEmail}, "ops", "")
	if err != nil {
		t.Fatalf("Requeue all email: %v", err)
	}
	if len(results) != 1 || results[0].ID != email || results[0].Action != handlers.ActionRequeued {
		t.Errorf("requeue of all email: %+v, want only %s requeued", results, email)
	}
	if v := env.version(t, sms); v != 5 {
		t.Errorf("the SMS moved to version %d, want 5: --channel email leaves it", v)
	}
}

func TestShow(t *testing.T) {
	env := newOperatorEnv(t, nil)
	ctx := context.Background()
	id := env.notification(t, herald.ChannelSMS, failedStory(), true)

	d, err := env.op.Show(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var evs []string
	for _, h := range d.History {
		evs = append(evs, h.Event)
	}
	wantEvs := []string{events.TypeNotificationQueued, events.TypeNotificationProcessing, events.TypeDeliveryAttemptFailed,
		events.TypeNotificationProcessing, events.TypeNotificationFailed}
	if !slices.Equal(evs, wantEvs) || len(d.Messages) != 1 || d.Notification.Status != herald.StatusFailed {
		t.Errorf("Show = %+v; want the failed notification, its one message and the history %v", d, wantEvs)
	}
	_, err = env.op.Show(ctx, uuid.NewString())
	checkCode(t, err, herald.ENOTFOUND)
	_, err = env.op.Show(ctx, "nope")
	checkCode(t, err, herald.EINVALID)
}

// A command parked while its notification is still under way (dead-lettered past a delivery
// limit) is sent again by a requeue, with no event, and cannot be discarded.
func TestParkedCommandOfANotificationUnderWayIsResent(t *testing.T) {
	env := newOperatorEnv(t, nil)
	ctx := operatorCtx()
	underWay := env.notification(t, herald.ChannelEmail, []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "c", Body: "b"},
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
	}, true)
	version := env.version(t, underWay)

	_, err := env.op.Discard(ctx, handlers.Selection{IDs: []string{underWay}}, "ops", "why")
	checkCode(t, err, herald.ECONFLICT)
	if ids := env.parked.messageIDs(underWay); len(ids) != 1 {
		t.Fatalf("a refused discard left %v parked, want the one message", ids)
	}

	results, err := env.op.Requeue(ctx, handlers.Selection{IDs: []string{underWay}}, "ops", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []handlers.Result{{ID: underWay, Action: handlers.ActionResent, Status: herald.StatusProcessing, Version: version, Removed: 1}}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("requeue of a notification under way (-want +got):\n%s", diff)
	}
	if got := env.version(t, underWay); got != version {
		t.Errorf("version moved from %d to %d: resending appends nothing", version, got)
	}
	cmds := outboxCommands(t, env.pool)
	if len(cmds) != 1 || cmds[0].Command.NotificationID != underWay || cmds[0].Queue != "email_notifications" {
		t.Errorf("outbox holds %+v, want the notification's command once", cmds)
	}
	if ids := env.parked.messageIDs(underWay); len(ids) != 0 {
		t.Errorf("still parked: %v", ids)
	}
}
