package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ratelimit"
	"github.com/herald-notify/herald/suppressions"
)

// scriptedLimiter waits as told: hold blocks each Wait until ctx ends, saying on entered (when
// set) that a Wait has begun; otherwise it pauses for delay and lets the send go. It records
// who asked.
type scriptedLimiter struct {
	hold    bool
	entered chan struct{}
	delay   time.Duration

	mu    sync.Mutex
	asked []string
}

func (l *scriptedLimiter) Wait(ctx context.Context, provider string, p herald.Priority) error {
	l.mu.Lock()
	l.asked = append(l.asked, provider+"/"+string(p))
	l.mu.Unlock()
	if l.hold {
		if l.entered != nil {
			l.entered <- struct{}{}
		}
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(l.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *scriptedLimiter) calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.asked...)
}

// eventTypes lists the types of stream's events, in order.
func eventTypes(t *testing.T, eventLog *events.Log, stream string) []string {
	t.Helper()
	recs, err := eventLog.Load(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Type)
	}
	return out
}

// Waiting for the provider's rate limit is not an attempt: a wait cut short (shutdown) records
// nothing, spends no attempt and calls no provider; the attempts that follow are numbered as if
// it never happened. The limiter is asked with the provider's name and the notification's
// priority.
func TestRateLimitWaitIsNotAnAttempt(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	provider := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail,
		results: []sendResult{{err: errors.New("421 try again later")}}}
	q := queuedOn(herald.ChannelEmail)
	q.Priority = herald.PriorityHigh
	id := queue(t, eventLog, q)
	cmd := commandFor(id, herald.ChannelEmail)

	held := &scriptedLimiter{hold: true, entered: make(chan struct{}, 2)}
	open := &scriptedLimiter{}
	heldD := newDeliverer(eventLog, "w1", provider).WithRateLimiter(held)
	openD := newDeliverer(eventLog, "w1", provider).WithRateLimiter(open)

	// The first attempt fails and is recorded as attempt 1.
	if err := openD.Deliver(context.Background(), cmd, cmdMD(1)); err == nil || handlers.Final(err) {
		t.Fatalf("first attempt: %v, want a retryable error", err)
	}
	before := eventTypes(t, eventLog, id)

	// Then a wait for the limit ends without a token, twice: nothing is recorded or sent, and the
	// command is retried, not parked. The deadline covers the reads that decide the attempt
	// before the wait too: long enough that it is the wait it cuts short.
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := heldD.Deliver(ctx, cmd, cmdMD(2+i))
		cancel()
		if err == nil || handlers.Final(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a wait cut short: %v, want a retryable error wrapping the context's", err)
		}
		select {
		case <-held.entered:
		default:
			t.Fatalf("wait %d: the deadline passed before the wait for the limit began", i+1)
		}
	}
	if diff := cmp.Diff(before, eventTypes(t, eventLog, id)); diff != "" {
		t.Errorf("events after waits cut short (-before +after):\n%s", diff)
	}
	if n := len(provider.Calls()); n != 1 {
		t.Errorf("the provider was called %d times; want once, before the waits", n)
	}

	// The next attempt is attempt 2, and it succeeds.
	if err := openD.Deliver(context.Background(), cmd, cmdMD(4)); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	n, _, err := eventLog.Notification(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != herald.StatusSent || n.Attempts != 2 {
		t.Errorf("after a failed attempt, two waits and a send: %s after %d attempts; want sent after 2", n.Status, n.Attempts)
	}
	want := []string{"fake-smtp/high", "fake-smtp/high"}
	if diff := cmp.Diff(want, held.calls()); diff != "" {
		t.Errorf("the held limiter was asked (-want +got):\n%s", diff)
	}

	// A redelivered command of a sent notification asks no limit: nothing is sent.
	if err := openD.Deliver(context.Background(), cmd, cmdMD(5)); err != nil {
		t.Fatalf("redelivered: %v", err)
	}
	if got := len(open.calls()); got != 2 {
		t.Errorf("the open limiter was asked %d times; want 2, once per attempt", got)
	}
}

// The attempt's timeout starts once the wait for the limit is over: a wait longer than the
// timeout leaves the attempt its whole time.
func TestRateLimitWaitDoesNotCountAgainstTheTimeout(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	const timeout = 2 * time.Second
	var left time.Duration
	provider := &fakeProvider{name: "fake-sms", channel: herald.ChannelSMS,
		send: func(ctx context.Context, m delivery.Message) (string, error) {
			deadline, ok := ctx.Deadline()
			if !ok {
				return "", errors.New("the attempt has no deadline")
			}
			left = time.Until(deadline)
			return "SM1", nil
		}}
	d := handlers.NewDeliverer(eventLog, map[herald.Channel]delivery.Provider{herald.ChannelSMS: provider},
		handlers.Policy{MaxAttempts: 3, Lease: time.Minute, Timeout: timeout}, "w1", slog.New(slog.NewTextHandler(io.Discard, nil))).
		WithRateLimiter(&scriptedLimiter{delay: timeout + 500*time.Millisecond})
	id := queue(t, eventLog, queuedOn(herald.ChannelSMS))
	if err := d.Deliver(context.Background(), commandFor(id, herald.ChannelSMS), cmdMD(1)); err != nil {
		t.Fatalf("deliver after a wait longer than the timeout: %v", err)
	}
	if left < timeout/2 {
		t.Errorf("the provider had %s of its %s left; the wait was counted against the attempt", left, timeout)
	}
}

func commandFor(id string, c herald.Channel) commands.SendNotification {
	return commands.SendNotification{NotificationID: id, Channel: c}
}

// The deliverer bounds the attempt by the policy's Timeout itself (the router has no timeout
// middleware): a provider that hangs is cut off, and the attempt recorded as failed.
func TestDelivererBoundsTheAttempt(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	// The timeout bounds deciding as well as the attempt: long enough that deciding fits on a
	// loaded machine, and it is the hanging provider that it cuts off.
	const timeout = 2 * time.Second
	entered := make(chan struct{}, 1)
	provider := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail,
		send: func(ctx context.Context, m delivery.Message) (string, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		}}
	d := handlers.NewDeliverer(eventLog, map[herald.Channel]delivery.Provider{herald.ChannelEmail: provider},
		handlers.Policy{MaxAttempts: 3, Lease: time.Minute, Timeout: timeout}, "w1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	id := queue(t, eventLog, queuedOn(herald.ChannelEmail))
	started := time.Now()
	err := d.Deliver(context.Background(), commandFor(id, herald.ChannelEmail), cmdMD(1))
	if err == nil || handlers.Final(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a hanging provider: %v, want a retryable deadline error", err)
	}
	select {
	case <-entered:
	default:
		t.Fatal("the timeout passed before the provider was called")
	}
	if took, limit := time.Since(started), timeout+5*time.Second; took > limit {
		t.Errorf("the attempt took %s; its timeout is %s", took, timeout)
	}
	want := []string{events.TypeNotificationQueued, events.TypeNotificationProcessing, events.TypeDeliveryAttemptFailed}
	if diff := cmp.Diff(want, eventTypes(t, eventLog, id)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// gateLimiter blocks each Wait until its gate is opened, and says when a Wait has begun.
type gateLimiter struct {
	waiting chan struct{}
	gate    chan struct{}
}

func (l *gateLimiter) Wait(ctx context.Context, provider string, p herald.Priority) error {
	l.waiting <- struct{}{}
	select {
	case <-l.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A recipient who opts out while their message waits for the provider's rate is not sent to: the
// list is asked again once the wait is over, and the notification fails, reason suppressed.
func TestSuppressedDuringRateLimitWait(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	eventLog := events.NewLog(db.Pool)
	list := suppressions.New(db.Pool)
	sms := &fakeProvider{name: "fake-sms", channel: herald.ChannelSMS}
	limiter := &gateLimiter{waiting: make(chan struct{}, 1), gate: make(chan struct{})}
	d := newDeliverer(eventLog, "w1", sms).WithSuppressions(list).WithRateLimiter(limiter).WithConns(db.Pool)
	q := queuedOn(herald.ChannelSMS)
	id := queue(t, eventLog, q)

	done := make(chan error, 1)
	go func() { done <- d.Deliver(ctx, commandFor(id, herald.ChannelSMS), cmdMD(1)) }()
	select {
	case <-limiter.waiting:
	case err := <-done:
		t.Fatalf("Deliver returned %v before waiting for the rate limit", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver never waited for the rate limit")
	}
	if err := list.OptOut(ctx, q.Recipient, "STOP"); err != nil {
		t.Fatal(err)
	}
	close(limiter.gate)
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver did not return after the wait")
	}
	checkOutcome(t, err, delivered, nil)
	checkCalls(t, sms, nil)
	want := []string{events.TypeNotificationQueued, events.TypeNotificationFailed}
	if diff := cmp.Diff(want, eventTypes(t, eventLog, id)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	recs, err := eventLog.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	e, err := recs[1].Event()
	if err != nil {
		t.Fatal(err)
	}
	if f := e.(*events.NotificationFailed); f.Reason != events.ReasonSuppressed {
		t.Errorf("failed with reason %q; want %q", f.Reason, events.ReasonSuppressed)
	}
}

// tooLongLimiter ends every wait as the limiter's longest wait does.
type tooLongLimiter struct{}

func (tooLongLimiter) Wait(ctx context.Context, provider string, p herald.Priority) error {
	return fmt.Errorf("%w (5m0s) of %s", ratelimit.ErrWaitTooLong, provider)
}

// A wait that lasts the limiter's longest wait sends the command back to its queue: the error is
// neither final (the command would be parked) nor one to try again in the process, and nothing is
// recorded or sent.
func TestRateLimitWaitTooLongRequeues(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	provider := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail}
	d := newDeliverer(eventLog, "w1", provider).WithRateLimiter(tooLongLimiter{})
	id := queue(t, eventLog, queuedOn(herald.ChannelEmail))
	err := d.Deliver(context.Background(), commandFor(id, herald.ChannelEmail), cmdMD(1))
	if err == nil || handlers.Final(err) || !handlers.Requeue(err) || !errors.Is(err, ratelimit.ErrWaitTooLong) {
		t.Fatalf("a wait past the longest wait: %v, want a requeue error wrapping ErrWaitTooLong, not final", err)
	}
	if diff := cmp.Diff([]string{events.TypeNotificationQueued}, eventTypes(t, eventLog, id)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if n := len(provider.Calls()); n != 0 {
		t.Errorf("the provider was called %d times; want none", n)
	}
}
