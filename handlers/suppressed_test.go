package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/suppressions"
)

// TestDeliverSuppressed: a notification whose recipient is on the suppression list fails,
// reason suppressed, without a call to its provider, and its command is acknowledged (not
// parked); once the suppression is lifted, the next notification to the recipient is sent.
func TestDeliverSuppressed(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	eventLog := events.NewLog(db.Pool)
	list := suppressions.New(db.Pool)
	email := &fakeProvider{name: "fake-smtp", channel: herald.ChannelEmail}
	d := newDeliverer(eventLog, "w1", email).WithSuppressions(list).WithConns(db.Pool)

	// Listed under another spelling of the address than the one the notification carries.
	sup, err := list.Add(ctx, suppressions.Add{Channel: herald.ChannelEmail, Recipient: "ADA@example.com", Reason: "mailbox closed"}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	q := queuedOn(herald.ChannelEmail)
	id := queue(t, eventLog, q)
	err = d.Deliver(ctx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}, cmdMD(1))
	checkOutcome(t, err, delivered, nil)
	checkCalls(t, email, nil)
	wantErr := "recipient suppressed (manual: mailbox closed) since " + sup.CreatedAt.UTC().Format(time.RFC3339)
	checkStream(t, eventLog, id, stream(by(apiMD, q), by(cmdMD(1),
		&events.NotificationFailed{Attempt: 0, Error: wantErr, Reason: events.ReasonSuppressed})))

	// A redelivery of the same command (its acknowledgement lost) is acknowledged again.
	err = d.Deliver(ctx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}, cmdMD(2))
	checkOutcome(t, err, delivered, nil)
	checkCalls(t, email, nil)

	// A notification that failed for another reason is parked again on redelivery, even while
	// its recipient is suppressed.
	permanent := queue(t, eventLog, q)
	if _, err := eventLog.Append(ctx, permanent, 1, cmdMD(3), &events.NotificationProcessing{Attempt: 1, Worker: "w1"},
		&events.NotificationFailed{Attempt: 1, Provider: "fake-smtp", Error: "550 no such user", Reason: events.ReasonPermanentError}); err != nil {
		t.Fatal(err)
	}
	err = d.Deliver(ctx, commands.SendNotification{NotificationID: permanent, Channel: herald.ChannelEmail}, cmdMD(4))
	checkOutcome(t, err, givenUp, handlers.ErrAlreadyFailed)

	if _, err := list.Remove(ctx, herald.ChannelEmail, "ada@example.com", "ops", "mailbox open again"); err != nil {
		t.Fatal(err)
	}
	// The suppressed one's redelivery is acknowledged however the list changed since.
	err = d.Deliver(ctx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}, cmdMD(5))
	checkOutcome(t, err, delivered, nil)
	checkCalls(t, email, nil)
	id2 := queue(t, eventLog, q)
	err = d.Deliver(ctx, commands.SendNotification{NotificationID: id2, Channel: herald.ChannelEmail}, cmdMD(6))
	checkOutcome(t, err, delivered, nil)
	checkCalls(t, email, []delivery.Message{message(id2, q, 1)})
}

// TestDecideSuppressed keeps an abandoned attempt's outcome and replaces only the new attempt;
// a start that begins no attempt is left as it is.
func TestDecideSuppressed(t *testing.T) {
	sup := suppressions.Suppression{Cause: events.SuppressedHardBounce, Reason: "5.1.1 user unknown",
		CreatedAt: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	n := herald.Notification{ID: "n1", Attempts: 1}
	start := []events.Event{
		&events.DeliveryAttemptFailed{Attempt: 1, Error: "abandoned"},
		&events.NotificationProcessing{Attempt: 2, Worker: "w"},
	}
	got, failed := handlers.DecideSuppressed(start, n, sup)
	if !failed || len(got) != 2 || got[0] != start[0] {
		t.Fatalf("DecideSuppressed = %v, %v", got, failed)
	}
	f, ok := got[1].(*events.NotificationFailed)
	if !ok || f.Reason != events.ReasonSuppressed || f.Attempt != 1 ||
		f.Error != "recipient suppressed (hard_bounce: 5.1.1 user unknown) since 2026-12-05T10:00:00Z" {
		t.Errorf("second event = %#v", got[1])
	}
	exhausted := []events.Event{&events.NotificationFailed{Attempt: 3, Reason: events.ReasonAttemptsExhausted}}
	if got, failed := handlers.DecideSuppressed(exhausted, n, sup); failed || got[0] != exhausted[0] {
		t.Errorf("DecideSuppressed of a failure = %v, %v", got, failed)
	}
	expiring := sup
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	expiring.ExpiresAt = &until
	if e := handlers.SuppressedError(expiring); !strings.HasSuffix(e, " until 2027-01-01T00:00:00Z") {
		t.Errorf("SuppressedError = %q", e)
	}
}
