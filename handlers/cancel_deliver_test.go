package handlers_test

import (
	"context"
	"errors"
	"testing"

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
	d := newDeliverer(eventLog, "w1", sms)
	q := queuedOn(herald.ChannelSMS)
	id := queue(t, eventLog, q)

	n, err := handlers.NewCanceller(db.Pool, eventLog).Cancel(t.Context(), id, operatorCanceler, "order withdrawn")
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
	d := newDeliverer(eventLog, "w1", sms)
	q := queuedOn(herald.ChannelSMS)
	id := queue(t, eventLog, q)
	cmd := commands.SendNotification{NotificationID: id, Channel: herald.ChannelSMS}

	checkOutcome(t, d.Deliver(t.Context(), cmd, cmdMD(1)), retryLater, nil)
	if _, err := handlers.NewCanceller(db.Pool, eventLog).Cancel(t.Context(), id, operatorCanceler, ""); err != nil {
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
	_, err := handlers.NewCanceller(db.Pool, racing).Cancel(t.Context(), id, operatorCanceler, "")
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
