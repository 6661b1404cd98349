package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
)

// operatorCanceler may cancel any notification, as an operator on the machine.
var operatorCanceler = handlers.Canceler{Actor: "ops", Any: true}

// TestDeliverCancelled: the command of a notification cancelled before any attempt is
// acknowledged, nothing is sent and nothing is appended.
func TestDeliverCancelled(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	sms := &fakeProvider{name: "http-sms", channel: herald.ChannelSMS}
	d := newDeliverer(eventLog, "w1", sms).WithConns(db.Pool)
	q := queuedOn(herald.ChannelSMS)
	id := queue(t, eventLog, q)

	n, err := handlers.NewCanceller(db.Pool, eventLog, deliverPolicy.Lease).Cancel(t.Context(), id, operatorCanceler, "order withdrawn")
	if err != nil || n.Status != herald.StatusCancelled {
		t.Fatalf("Cancel = %v, %v", n, err)
	}
	for i := range 2 { // and once more, as a redelivered command
		checkOutcome(t, d.Deliver(t.Context(), commands.SendNotification{NotificationID: id, Channel: herald.ChannelSMS}, cmdMD(i)), delivered, nil)
	}
	checkCalls(t, sms, nil)
	checkStream(t, eventLog, id, stream(by(apiMD, q),
		by(events.Metadata{CorrelationID: "req-7", Actor: "ops"}, &events.NotificationCancelled{Actor: "ops", Reason: "order withdrawn"})))
}

// TestDeliverRetryFindsCancelled: a notification cancelled while it waits between attempts gets
// no further attempt: the retry (the router running the handler again) acknowledges it.
func TestDeliverRetryFindsCancelled(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	transient := errors.New("503 try later")
	sms := &fakeProvider{name: "http-sms", channel: herald.ChannelSMS, results: []sendResult{{err: transient}}}
	d := newDeliverer(eventLog, "w1", sms).WithConns(db.Pool)
	q := queuedOn(herald.ChannelSMS)
	id := queue(t, eventLog, q)
	cmd := commands.SendNotification{NotificationID: id, Channel: herald.ChannelSMS}

	checkOutcome(t, d.Deliver(t.Context(), cmd, cmdMD(1)), retryLater, nil)
	if _, err := handlers.NewCanceller(db.Pool, eventLog, deliverPolicy.Lease).Cancel(t.Context(), id, operatorCanceler, ""); err != nil {
		t.Fatalf("cancel between attempts: %v", err)
	}
	checkOutcome(t, d.Deliver(t.Context(), cmd, cmdMD(1)), delivered, nil)

	checkCalls(t, sms, []delivery.Message{message(id, q, 1)})
	checkStream(t, eventLog, id, stream(by(apiMD, q),
		by(cmdMD(1), &events.NotificationProcessing{Attempt: 1, Worker: "w1"},
			&events.DeliveryAttemptFailed{Attempt: 1, Provider: "http-sms", Error: transient.Error()}),
		by(events.Metadata{CorrelationID: "req-7", Actor: "ops"}, &events.NotificationCancelled{Actor: "ops"})))
}

// racingLog is the log with a worker that starts an attempt of stream just before the first
// append the canceller makes: the cancel loses the race for the version it decided on.
type racingLog struct {
	*events.Log
	t       *testing.T
	started bool
}

func (l *racingLog) Append(ctx context.Context, stream string, expected int64, md events.Metadata, evs ...events.Event) ([]events.Recorded, error) {
	if !l.started {
		l.started = true
		if _, err := l.Log.Append(ctx, stream, expected, cmdMD(1), &events.NotificationProcessing{Attempt: 1, Worker: "w1"}); err != nil {
			l.t.Fatalf("the worker's start: %v", err)
		}
	}
	return l.Log.Append(ctx, stream, expected, md, evs...)
}

// TestCancelLosesToAnAttempt: a cancel decided on a pending notification whose append finds that
// a worker started an attempt meanwhile decides again on the stream as it now is, and refuses:
// the attempt is in flight.
func TestCancelLosesToAnAttempt(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	id := queue(t, eventLog, queuedOn(herald.ChannelEmail))
	racing := &racingLog{Log: eventLog, t: t}
	_, err := handlers.NewCanceller(db.Pool, racing, deliverPolicy.Lease).Cancel(t.Context(), id, operatorCanceler, "")
	if !racing.started {
		t.Fatal("the canceller never tried to append")
	}
	if !errors.Is(err, handlers.ErrNotCancellable) || herald.ErrorFields(err)["status"] != "processing" {
		t.Errorf("cancel after an attempt started: %v, want ErrNotCancellable naming processing", err)
	}
	recs, err := eventLog.Load(t.Context(), id)
	if err != nil || len(recs) != 2 || recs[1].Type != events.TypeNotificationProcessing {
		t.Errorf("stream %v, %v: want queued and the attempt, and nothing of the cancel", recs, err)
	}
}

// appendCounting is the log, counting the canceller's appends and the versions they expect.
type appendCounting struct {
	*events.Log
	expected []int64
}

func (l *appendCounting) Append(ctx context.Context, stream string, expected int64, md events.Metadata, evs ...events.Event) ([]events.Recorded, error) {
	l.expected = append(l.expected, expected)
	return l.Log.Append(ctx, stream, expected, md, evs...)
}

// TestCancelAbandonedAttempt: a notification whose worker died mid-attempt (an attempt open past
// the lease, judged on the database's clock) is cancelled: its abandonment and the cancel are one
// append at the version the cancel decided on, and the command the reconciler sends again is
// acknowledged without sending. Within the lease the same cancel is refused: the attempt may be
// going out.
func TestCancelAbandonedAttempt(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	q := queuedOn(herald.ChannelSMS)
	id := queue(t, eventLog, q)
	// The worker that started attempt 1 died without an outcome.
	if _, err := eventLog.Append(t.Context(), id, 1, cmdMD(1), &events.NotificationProcessing{Attempt: 1, Worker: "w-dead"}); err != nil {
		t.Fatal(err)
	}

	counting := &appendCounting{Log: eventLog}
	_, err := handlers.NewCanceller(db.Pool, counting, time.Hour).Cancel(t.Context(), id, operatorCanceler, "")
	if !errors.Is(err, handlers.ErrNotCancellable) || len(counting.expected) != 0 {
		t.Fatalf("cancel within the lease: %v after %d appends, want ErrNotCancellable and none", err, len(counting.expected))
	}

	// A lease short enough that the attempt is past it by the time the cancel reads the stream.
	lease := 50 * time.Millisecond
	heraldtest.Eventually(t, 5*time.Second, "the open attempt to pass its lease on the database's clock", func() (bool, error) {
		_, now, err := eventLog.NotificationNow(t.Context(), id)
		recs, lerr := eventLog.Load(t.Context(), id)
		if err != nil || lerr != nil {
			return false, errors.Join(err, lerr)
		}
		age := now.Sub(recs[1].Time)
		return age >= lease, fmt.Errorf("age %s", age)
	})
	n, err := handlers.NewCanceller(db.Pool, counting, lease).Cancel(t.Context(), id, operatorCanceler, "worker gone")
	if err != nil || n.Status != herald.StatusCancelled || n.Version != 4 {
		t.Fatalf("cancel past the lease = %s v%d, %v; want cancelled at v4", n.Status, n.Version, err)
	}
	if !cmp.Equal(counting.expected, []int64{2}) {
		t.Errorf("appends expected versions %v, want one at 2", counting.expected)
	}
	md := events.Metadata{CorrelationID: "req-7", Actor: "ops"}
	checkStream(t, eventLog, id, stream(by(apiMD, q),
		by(cmdMD(1), &events.NotificationProcessing{Attempt: 1, Worker: "w-dead"}),
		by(md, &events.DeliveryAttemptFailed{Attempt: 1, Error: abandonedText},
			&events.NotificationCancelled{Actor: "ops", Reason: "worker gone"})))

	// The reconciler's command finds it cancelled: nothing is sent.
	sms := &fakeProvider{name: "http-sms", channel: herald.ChannelSMS}
	d := newDeliverer(eventLog, "w2", sms).WithConns(db.Pool)
	checkOutcome(t, d.Deliver(t.Context(), commands.SendNotification{NotificationID: id, Channel: herald.ChannelSMS}, cmdMD(2)), delivered, nil)
	checkCalls(t, sms, nil)
}
