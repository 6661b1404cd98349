package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
)

// The handler runs against the real event log: what it appends, at which versions and with which
// metadata, is read back from PostgreSQL. Only the provider is faked, because it is the edge the
// handler does not own and the one whose timing the tests must control.

var deliverPolicy = handlers.Policy{MaxAttempts: 3, Lease: time.Minute}

// abandonedText is what the handler records for an attempt whose worker vanished.
const abandonedText = "attempt abandoned: no outcome was recorded within the lease (worker stopped or lost its connection)"

// apiMD is stamped on the NotificationQueued event, as the API would.
var apiMD = events.Metadata{CorrelationID: "req-7", CausationID: "http-7", Actor: "api"}

// cmdMD is the metadata of the i-th SendNotification command handled by worker w1.
func cmdMD(i int) events.Metadata {
	return events.Metadata{CorrelationID: "req-7", CausationID: fmt.Sprintf("cmd-%d", i), Actor: "worker:w1"}
}

// sendResult is a scripted answer of the fake provider.
type sendResult struct {
	id  string
	err error
}

// fakeProvider records every Send and answers from results, in order, then with success. When send
// is set it answers instead: tests use it to block the provider or to look at its context.
type fakeProvider struct {
	name    string
	channel herald.Channel
	send    func(ctx context.Context, m delivery.Message) (string, error)

	mu      sync.Mutex
	results []sendResult
	calls   []delivery.Message
}

var _ delivery.Provider = (*fakeProvider)(nil)

func (p *fakeProvider) Name() string { return p.name }

func (p *fakeProvider) Send(ctx context.Context, m delivery.Message) (string, error) {
	p.mu.Lock()
	p.calls = append(p.calls, m)
	r := sendResult{id: fmt.Sprintf("%s-unscripted-%d", p.name, m.Attempt)}
	if len(p.results) > 0 {
		r, p.results = p.results[0], p.results[1:]
	}
	p.mu.Unlock()
	if p.send != nil {
		return p.send(ctx, m)
	}
	return r.id, r.err
}

func (p *fakeProvider) Calls() []delivery.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func newDeliverer(store handlers.Store, worker string, providers ...*fakeProvider) *handlers.Deliverer {
	m := make(map[herald.Channel]delivery.Provider, len(providers))
	for _, p := range providers {
		m[p.channel] = p
	}
	return handlers.NewDeliverer(store, m, deliverPolicy, worker, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// queuedOn returns the NotificationQueued event of a notification on channel c: templates that
// differ from what they render to, so the test sees which of them reaches the provider.
func queuedOn(c herald.Channel) *events.NotificationQueued {
	if c == herald.ChannelSMS {
		return &events.NotificationQueued{
			Channel: c, Recipient: "+14155550123", Content: "Your code is {{.code}}",
			Variables: map[string]any{"code": "1234"}, Body: "Your code is 1234",
		}
	}
	return &events.NotificationQueued{
		Channel: c, Recipient: "ada@example.com", Subject: "Hello {{.name}}", Content: "Hi {{.name}}, your code is {{.code}}",
		Variables: map[string]any{"name": "Ada", "code": "1234"}, RenderedSubject: "Hello Ada", Body: "Hi Ada, your code is 1234",
		HTML: "<p>Hi {{.name}}, your code is <b>{{.code}}</b></p>", RenderedHTML: "<p>Hi Ada, your code is <b>1234</b></p>",
	}
}

// queue starts a new notification's stream with q and returns its id.
func queue(t *testing.T, eventLog *events.Log, q *events.NotificationQueued) string {
	t.Helper()
	id := uuid.NewString()
	if _, err := eventLog.Append(context.Background(), id, 0, apiMD, q); err != nil {
		t.Fatalf("queue %s: %v", id, err)
	}
	return id
}

// message is what the provider should receive for attempt of notification id, queued as q.
func message(id string, q *events.NotificationQueued, attempt int) delivery.Message {
	return delivery.Message{
		NotificationID: id, Attempt: attempt, Channel: q.Channel,
		Recipient: q.Recipient, Subject: q.RenderedSubject, Body: q.Body, HTML: q.RenderedHTML,
	}
}

// logged is an event as a stream holds it, decoded.
type logged struct {
	Version  int64
	Type     string
	Event    events.Event
	Metadata events.Metadata
}

// by returns evs as appended with md; stream numbers them.
func by(md events.Metadata, evs ...events.Event) []logged {
	out := make([]logged, len(evs))
	for i, e := range evs {
		out[i] = logged{Type: e.EventType(), Event: e, Metadata: md}
	}
	return out
}

// stream returns parts in order, numbered from version 1.
func stream(parts ...[]logged) []logged {
	out := slices.Concat(parts...)
	for i := range out {
		out[i].Version = int64(i + 1)
	}
	return out
}

// checkStream compares notification id's stream in the log with want.
func checkStream(t *testing.T, eventLog *events.Log, id string, want []logged) {
	t.Helper()
	recs, err := eventLog.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	var got []logged
	var position int64
	for i, r := range recs {
		if r.StreamID != id || r.ID == "" || r.Position <= position || r.Time.IsZero() {
			t.Errorf("event %d recorded as %+v: want stream %s, an id, a time and a position after %d", i, r, id, position)
		}
		position = r.Position
		e, err := r.Event()
		if err != nil {
			t.Fatalf("decode %s v%d: %v", id, r.Version, err)
		}
		got = append(got, logged{Version: r.Version, Type: r.Type, Event: e, Metadata: r.Metadata})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stream %s (-want +got):\n%s", id, diff)
	}
}

// outcome is how a Deliver call should end.
type outcome int

const (
	delivered  outcome = iota // nil: acknowledge the command
	retryLater                // an error that is not final: redeliver the command
	givenUp                   // a final error: park the command
)

func (o outcome) String() string {
	return [...]string{"nil", "an error worth retrying", "a final error"}[o]
}

// checkOutcome checks that err means want and, if is is set, wraps is.
func checkOutcome(t *testing.T, err error, want outcome, is error) {
	t.Helper()
	var ok bool
	switch want {
	case delivered:
		ok = err == nil
	case retryLater:
		ok = err != nil && !handlers.Final(err)
	case givenUp:
		ok = handlers.Final(err)
	}
	if !ok {
		t.Errorf("Deliver returned %v, want %s", err, want)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("Deliver returned %v, want it to wrap %v", err, is)
	}
}

func checkCalls(t *testing.T, p *fakeProvider, want []delivery.Message) {
	t.Helper()
	if diff := cmp.Diff(want, p.Calls()); diff != "" {
		t.Errorf("%s provider calls (-want +got):\n%s", p.name, diff)
	}
}

func TestDeliver(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	transient := errors.New("421 4.3.0 mailbox busy, try again later")
	permanent := delivery.Permanent(errors.New("550 5.1.1 no such user"))

	type step struct {
		want outcome
		is   error
	}
	tests := []struct {
		name       string
		channel    herald.Channel // of the notification
		cmdChannel herald.Channel // of the command; the notification's when empty
		notQueued  bool           // the command names a notification that has no stream
		results    []sendResult   // the provider's answers, in order
		steps      []step         // one Deliver call each, the i-th with cmdMD(i+1)
		sends      []int          // the attempts the provider receives
		appended   []logged       // what the calls append after NotificationQueued
	}{
		{
			name:    "first delivery succeeds",
			channel: herald.ChannelEmail,
			results: []sendResult{{id: "<m1@smtp>"}},
			steps:   []step{{want: delivered}},
			sends:   []int{1},
			appended: by(cmdMD(1),
				&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
				&events.NotificationSent{Attempt: 1, Provider: "fake-smtp", ProviderMessageID: "<m1@smtp>"}),
		},
		{
			name:    "sms goes to the sms provider without a subject",
			channel: herald.ChannelSMS,
			results: []sendResult{{id: "SM1"}},
			steps:   []step{{want: delivered}},
			sends:   []int{1},
			appended: by(cmdMD(1),
				&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
				&events.NotificationSent{Attempt: 1, Provider: "fake-sms", ProviderMessageID: "SM1"}),
		},
		{
			// A gateway that took the message but answered without an id Herald could read.
			name:    "accepted without a provider id is sent, never retried",
			channel: herald.ChannelSMS,
			results: []sendResult{{id: ""}, {err: errors.New("must not be called")}},
			steps:   []step{{want: delivered}, {want: delivered}},
			sends:   []int{1},
			appended: by(cmdMD(1),
				&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
				&events.NotificationSent{Attempt: 1, Provider: "fake-sms"}),
		},
		{
			name:    "redelivered command of a sent notification is acknowledged without sending",
			channel: herald.ChannelEmail,
			results: []sendResult{{id: "<m1@smtp>"}, {err: errors.New("must not be called")}},
			steps:   []step{{want: delivered}, {want: delivered}, {want: delivered}},
			sends:   []int{1},
			appended: by(cmdMD(1),
				&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
				&events.NotificationSent{Attempt: 1, Provider: "fake-smtp", ProviderMessageID: "<m1@smtp>"}),
		},
		{
			name:    "transient error then success",
			channel: herald.ChannelEmail,
			results: []sendResult{{err: transient}, {id: "<m2@smtp>"}},
			steps:   []step{{want: retryLater, is: transient}, {want: delivered}},
			sends:   []int{1, 2},
			appended: slices.Concat(
				by(cmdMD(1),
					&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
					&events.DeliveryAttemptFailed{Attempt: 1, Provider: "fake-smtp", Error: transient.Error()}),
				by(cmdMD(2),
					&events.NotificationProcessing{Attempt: 2, Worker: "w1"},
					&events.NotificationSent{Attempt: 2, Provider: "fake-smtp", ProviderMessageID: "<m2@smtp>"})),
		},
		{
			name:    "transient errors until the attempts run out",
			channel: herald.ChannelEmail,
			results: []sendResult{{err: transient}, {err: transient}, {err: transient}, {id: "must not be called"}},
			steps: []step{
				{want: retryLater, is: transient},
				{want: retryLater, is: transient},
				{want: givenUp, is: transient},
				// A redelivered command is parked again, without another attempt.
				{want: givenUp, is: handlers.ErrAlreadyFailed},
			},
			sends: []int{1, 2, 3},
			appended: slices.Concat(
				by(cmdMD(1),
					&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
					&events.DeliveryAttemptFailed{Attempt: 1, Provider: "fake-smtp", Error: transient.Error()}),
				by(cmdMD(2),
					&events.NotificationProcessing{Attempt: 2, Worker: "w1"},
					&events.DeliveryAttemptFailed{Attempt: 2, Provider: "fake-smtp", Error: transient.Error()}),
				by(cmdMD(3),
					&events.NotificationProcessing{Attempt: 3, Worker: "w1"},
					&events.NotificationFailed{Attempt: 3, Provider: "fake-smtp", Error: transient.Error(), Reason: events.ReasonAttemptsExhausted})),
		},
		{
			name:    "permanent error fails the notification at once",
			channel: herald.ChannelEmail,
			results: []sendResult{{err: permanent}, {id: "must not be called"}},
			steps:   []step{{want: givenUp, is: permanent}, {want: givenUp, is: handlers.ErrAlreadyFailed}},
			sends:   []int{1},
			appended: by(cmdMD(1),
				&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
				&events.NotificationFailed{Attempt: 1, Provider: "fake-smtp", Error: "550 5.1.1 no such user", Reason: events.ReasonPermanentError}),
		},
		{
			name:      "unknown notification",
			channel:   herald.ChannelEmail,
			notQueued: true,
			steps:     []step{{want: givenUp, is: handlers.ErrNotQueued}},
		},
		{
			name:       "command for another channel than the notification's",
			channel:    herald.ChannelEmail,
			cmdChannel: herald.ChannelSMS,
			steps:      []step{{want: givenUp}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			email := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail}
			sms := &fakeProvider{name: "fake-sms", channel: herald.ChannelSMS}
			used, unused := email, sms
			if tt.channel == herald.ChannelSMS {
				used, unused = sms, email
			}
			used.results = tt.results
			d := newDeliverer(eventLog, "w1", email, sms).WithConns(db.Pool).WithOutcomes(events.NewGroup(db.Pool, eventLog))

			q := queuedOn(tt.channel)
			id := uuid.NewString()
			if !tt.notQueued {
				id = queue(t, eventLog, q)
			}
			cmd := commands.SendNotification{NotificationID: id, Channel: tt.channel}
			if tt.cmdChannel != "" {
				cmd.Channel = tt.cmdChannel
			}

			for i, s := range tt.steps {
				err := d.Deliver(context.Background(), cmd, cmdMD(i+1))
				t.Logf("Deliver #%d: %v", i+1, err)
				checkOutcome(t, err, s.want, s.is)
			}

			var want []delivery.Message
			for _, attempt := range tt.sends {
				want = append(want, message(id, q, attempt))
			}
			checkCalls(t, used, want)
			checkCalls(t, unused, nil)
			if tt.notQueued {
				checkStream(t, eventLog, id, nil)
				return
			}
			checkStream(t, eventLog, id, stream(by(apiMD, q), tt.appended))
		})
	}
}

// An attempt without an outcome belongs to the worker that started it until its lease runs out;
// after that it is presumed abandoned and the next command takes over. The lease is judged on the
// database's clock, which stamped the attempt's start: the clock of the worker judging it may be
// far ahead (it must not take over a live attempt and send again) or far behind (it must not
// wait on a dead one for ever).
func TestDeliverOpenAttempt(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	otherMD := func(i int) events.Metadata {
		return events.Metadata{CorrelationID: "req-7", CausationID: fmt.Sprintf("cmd-w0-%d", i), Actor: "worker:w0"}
	}
	transientFailure := func(a int) events.Event {
		return &events.DeliveryAttemptFailed{Attempt: a, Provider: "fake-smtp", Error: "421 busy"}
	}

	tests := []struct {
		name string
		// given is what another worker, w0, appended after NotificationQueued, with otherMD(i) for
		// the i-th event; the last is the open attempt.
		given []events.Event
		// after the lease: what Deliver returns, what it sends and what it appends.
		want     outcome
		sends    []int
		appended []events.Event
	}{
		{
			name:  "first attempt abandoned",
			given: []events.Event{&events.NotificationProcessing{Attempt: 1, Worker: "w0"}},
			want:  delivered,
			sends: []int{2},
			appended: []events.Event{
				&events.DeliveryAttemptFailed{Attempt: 1, Error: abandonedText},
				&events.NotificationProcessing{Attempt: 2, Worker: "w1"},
				&events.NotificationSent{Attempt: 2, Provider: "fake-smtp", ProviderMessageID: "<m@smtp>"},
			},
		},
		{
			name: "last attempt abandoned",
			given: []events.Event{
				&events.NotificationProcessing{Attempt: 1, Worker: "w0"}, transientFailure(1),
				&events.NotificationProcessing{Attempt: 2, Worker: "w0"}, transientFailure(2),
				&events.NotificationProcessing{Attempt: 3, Worker: "w0"},
			},
			want: givenUp,
			appended: []events.Event{
				&events.NotificationFailed{Attempt: 3, Error: abandonedText, Reason: events.ReasonAttemptsExhausted},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			q := queuedOn(herald.ChannelEmail)
			id := queue(t, eventLog, q)
			given := by(apiMD, q)
			var openedAt time.Time
			for i, e := range tt.given {
				recs, err := eventLog.Append(ctx, id, int64(i+1), otherMD(i+1), e)
				if err != nil {
					t.Fatalf("append %T: %v", e, err)
				}
				openedAt = recs[0].Time
				given = append(given, by(otherMD(i+1), e)...)
			}
			provider := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail, results: []sendResult{{id: "<m@smtp>"}}}
			d := newDeliverer(eventLog, "w1", provider).WithConns(db.Pool)
			cmd := commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}

			// Within the lease: w0 may be sending right now, so w1 must neither send nor append,
			// though w1's clock runs a day ahead and says the lease ran out long ago.
			ahead := d.WithClock(func() time.Time { return time.Now().Add(24 * time.Hour) })
			err := ahead.Deliver(ctx, cmd, cmdMD(1))
			checkOutcome(t, err, retryLater, handlers.ErrAttemptInProgress)
			checkCalls(t, provider, nil)
			checkStream(t, eventLog, id, stream(given))

			// Past a short lease, by the database's clock, w1 takes over, though its clock runs a
			// day behind and says the attempt has not even started.
			lease := 300 * time.Millisecond
			waitDatabaseAge(t, db.Pool, openedAt, lease)
			past := handlers.NewDeliverer(eventLog, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
				handlers.Policy{MaxAttempts: deliverPolicy.MaxAttempts, Lease: lease}, "w1", slog.New(slog.NewTextHandler(io.Discard, nil))).
				WithClock(func() time.Time { return time.Now().Add(-24 * time.Hour) })
			err = past.Deliver(ctx, cmd, cmdMD(2))
			checkOutcome(t, err, tt.want, nil)
			var want []delivery.Message
			for _, attempt := range tt.sends {
				want = append(want, message(id, q, attempt))
			}
			checkCalls(t, provider, want)
			checkStream(t, eventLog, id, stream(given, by(cmdMD(2), tt.appended...)))
		})
	}
}

// A worker whose clock strays from the database's says so, once a minute at most, and one in step
// with it says nothing.
func TestDeliverWarnsOfClockSkew(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	tests := []struct {
		name     string
		offset   time.Duration
		warnings int
	}{
		{name: "in step", offset: 0, warnings: 0},
		{name: "an hour ahead", offset: time.Hour, warnings: 1},
		{name: "an hour behind", offset: -time.Hour, warnings: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			provider := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail}
			d := handlers.NewDeliverer(eventLog, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
				deliverPolicy, "w1", slog.New(slog.NewTextHandler(&logs, nil))).
				WithClock(func() time.Time { return time.Now().Add(tt.offset) })
			for i := range 3 {
				id := queue(t, eventLog, queuedOn(herald.ChannelEmail))
				err := d.Deliver(context.Background(), commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}, cmdMD(i))
				checkOutcome(t, err, delivered, nil)
			}
			if got := strings.Count(logs.String(), "clock_skew="); got != tt.warnings {
				t.Errorf("%d clock skew warnings in three deliveries, want %d:\n%s", got, tt.warnings, logs.String())
			}
		})
	}
}

// waitDatabaseAge waits until, by the database's clock, more than age has passed since at.
func waitDatabaseAge(t *testing.T, pool *pgxpool.Pool, at time.Time, age time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		var past bool
		err := pool.QueryRow(ctx, `SELECT statement_timestamp() - $1::timestamptz > $2::interval`, at, age.String()).Scan(&past)
		if err != nil {
			t.Fatalf("wait until %s after %s by the database's clock: %v", age, at, err)
		}
		if past {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s after %s never came by the database's clock", age, at)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// blockingProvider returns a provider whose Send signals entered and then waits for release; then
// answers with answer.
func blockingProvider(entered chan<- struct{}, release <-chan struct{}, answer func(ctx context.Context) (string, error)) *fakeProvider {
	return &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail, send: func(ctx context.Context, m delivery.Message) (string, error) {
		entered <- struct{}{}
		<-release
		return answer(ctx)
	}}
}

// A worker shutting down cancels the context of the commands it is handling. A send that is under
// way must still finish and its outcome be recorded, or the next attempt duplicates it.
func TestDeliverShutdownMidSend(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	q := queuedOn(herald.ChannelEmail)
	id := queue(t, eventLog, q)

	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	observed := make(chan error, 1)
	provider := blockingProvider(entered, release, func(ctx context.Context) (string, error) {
		// The test cancelled the handler's context before releasing the provider.
		select {
		case <-ctx.Done():
			observed <- fmt.Errorf("send context done: %w", ctx.Err())
		default:
			observed <- ctx.Err()
		}
		return "<m1@smtp>", nil
	})
	d := newDeliverer(eventLog, "w1", provider)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- d.Deliver(ctx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}, cmdMD(1))
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("Deliver returned %v before calling the provider", err)
	}
	cancel()
	releaseOnce()

	if err := <-observed; err != nil {
		t.Errorf("after the handler's context was cancelled, the provider's context was not live: %v", err)
	}
	checkOutcome(t, <-done, delivered, nil)
	checkCalls(t, provider, []delivery.Message{message(id, q, 1)})
	checkStream(t, eventLog, id, stream(by(apiMD, q), by(cmdMD(1),
		&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
		&events.NotificationSent{Attempt: 1, Provider: "fake-smtp", ProviderMessageID: "<m1@smtp>"})))
}

// The command's deadline bounds the provider's attempt, and an attempt cut short by it is still
// recorded after the deadline has passed.
func TestDeliverDeadline(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	cmd := func(id string) commands.SendNotification {
		return commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}
	}

	t.Run("reaches the provider", func(t *testing.T) {
		q := queuedOn(herald.ChannelEmail)
		id := queue(t, eventLog, q)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		deadline, _ := ctx.Deadline()

		type seen struct {
			deadline time.Time
			ok       bool
		}
		saw := make(chan seen, 1)
		provider := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail, send: func(ctx context.Context, m delivery.Message) (string, error) {
			d, ok := ctx.Deadline()
			saw <- seen{d, ok}
			return "<m1@smtp>", nil
		}}
		err := newDeliverer(eventLog, "w1", provider).Deliver(ctx, cmd(id), cmdMD(1))
		checkOutcome(t, err, delivered, nil)
		s := <-saw
		if !s.ok || s.deadline.Before(start) || s.deadline.After(deadline) {
			t.Errorf("provider saw deadline %v (set: %v), want one in (%v, %v]", s.deadline, s.ok, start, deadline)
		}
		checkStream(t, eventLog, id, stream(by(apiMD, q), by(cmdMD(1),
			&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
			&events.NotificationSent{Attempt: 1, Provider: "fake-smtp", ProviderMessageID: "<m1@smtp>"})))
	})

	t.Run("cuts the send short", func(t *testing.T) {
		q := queuedOn(herald.ChannelEmail)
		id := queue(t, eventLog, q)
		// The deadline covers deciding, before the provider, too: long enough that it is the send
		// it cuts short on a loaded machine.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		entered := make(chan struct{}, 1)
		provider := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail, send: func(ctx context.Context, m delivery.Message) (string, error) {
			entered <- struct{}{}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(10 * time.Second):
				// Fail rather than hang when the deadline does not reach the provider.
				return "", errors.New("the command's deadline never reached the provider")
			}
		}}
		err := newDeliverer(eventLog, "w1", provider).Deliver(ctx, cmd(id), cmdMD(1))
		select {
		case <-entered:
		default:
			t.Fatal("the deadline passed before the provider was called")
		}
		checkOutcome(t, err, retryLater, context.DeadlineExceeded)
		checkCalls(t, provider, []delivery.Message{message(id, q, 1)})
		checkStream(t, eventLog, id, stream(by(apiMD, q), by(cmdMD(1),
			&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
			&events.DeliveryAttemptFailed{Attempt: 1, Provider: "fake-smtp", Error: context.DeadlineExceeded.Error()})))
	})
}

// Two workers handling the same notification at once (a redelivered command, a duplicate from the
// relay) start one attempt between them, and only that attempt reaches the provider.
func TestDeliverConcurrent(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	outcomes := events.NewGroup(db.Pool, eventLog) // shared by the workers, as in one process
	workers := []string{"w1", "w2"}
	mdOf := func(worker string) events.Metadata {
		return events.Metadata{CorrelationID: "req-7", CausationID: "cmd-" + worker, Actor: "worker:" + worker}
	}

	for round := range 10 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			q := queuedOn(herald.ChannelEmail)
			id := queue(t, eventLog, q)
			cmd := commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}

			entered := make(chan struct{}, len(workers))
			release := make(chan struct{})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			t.Cleanup(releaseOnce)
			provider := blockingProvider(entered, release, func(context.Context) (string, error) { return "<m1@smtp>", nil })

			type result struct {
				worker string
				err    error
			}
			results := make(chan result, len(workers))
			start := make(chan struct{})
			for _, w := range workers {
				d := newDeliverer(eventLog, w, provider).WithConns(db.Pool).WithOutcomes(outcomes)
				go func() {
					<-start
					results <- result{w, d.Deliver(context.Background(), cmd, mdOf(w))}
				}()
			}
			close(start)

			// The winner blocks in the provider until released, so the loser must give way first.
			var loser *result
			sends := 0
			for loser == nil || sends == 0 {
				select {
				case <-entered:
					sends++
					if sends > 1 {
						t.Fatal("both workers reached the provider")
					}
				case r := <-results:
					if loser != nil {
						t.Fatalf("neither worker reached the provider: %s returned %v, %s returned %v", loser.worker, loser.err, r.worker, r.err)
					}
					loser = &r
				}
			}
			releaseOnce()
			winner := <-results

			checkOutcome(t, winner.err, delivered, nil)
			checkOutcome(t, loser.err, retryLater, nil)
			if !errors.Is(loser.err, events.ErrConflict) && !errors.Is(loser.err, handlers.ErrAttemptInProgress) {
				t.Errorf("loser %s returned %v, want a conflict or an attempt in progress", loser.worker, loser.err)
			}
			checkCalls(t, provider, []delivery.Message{message(id, q, 1)})
			checkStream(t, eventLog, id, stream(by(apiMD, q), by(mdOf(winner.worker),
				&events.NotificationProcessing{Attempt: 1, Worker: winner.worker},
				&events.NotificationSent{Attempt: 1, Provider: "fake-smtp", ProviderMessageID: "<m1@smtp>"})))
		})
	}
}
