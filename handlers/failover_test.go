package handlers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

// TestDeliverRecordsTheFailoverRoute: an attempt that a channel's first provider fails and its
// second takes is one attempt, recorded as sent by the second, with the first's error in
// failed_over_from; an attempt both fail is one failed attempt, recorded the same way.
func TestDeliverRecordsTheFailoverRoute(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	primary := &fakeProvider{name: "smtp", channel: herald.ChannelEmail, results: []sendResult{
		{err: errors.New("dial tcp 127.0.0.1:25: connect: connection refused")},
		{err: errors.New("dial tcp 127.0.0.1:25: connect: connection refused")},
	}}
	secondary := &fakeProvider{name: "smtp-2", channel: herald.ChannelEmail, results: []sendResult{
		{err: errors.New("421 4.3.2 try later")},
		{id: "m-2@example.com"},
	}}
	f, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{Failures: 10, Timeout: time.Minute}, primary, secondary)
	if err != nil {
		t.Fatal(err)
	}
	d := handlers.NewDeliverer(eventLog, map[herald.Channel]delivery.Provider{herald.ChannelEmail: f}, deliverPolicy, "w1",
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	id := queue(t, eventLog, queuedOn(herald.ChannelEmail))
	cmd := commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}

	checkOutcome(t, d.Deliver(context.Background(), cmd, cmdMD(1)), retryLater, nil)
	checkOutcome(t, d.Deliver(context.Background(), cmd, cmdMD(2)), delivered, nil)

	recs, err := eventLog.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []events.Event
	for _, r := range recs {
		if r.Type == events.TypeNotificationSent || r.Type == events.TypeDeliveryAttemptFailed {
			e, err := r.Event()
			if err != nil {
				t.Fatal(err)
			}
			outcomes = append(outcomes, e)
		}
	}
	refused := []events.PassedOver{{Provider: "smtp", Error: "dial tcp 127.0.0.1:25: connect: connection refused"}}
	want := []events.Event{
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp-2", Error: "421 4.3.2 try later", FailedOverFrom: refused},
		&events.NotificationSent{Attempt: 2, Provider: "smtp-2", ProviderMessageID: "m-2@example.com", FailedOverFrom: refused},
	}
	if diff := cmp.Diff(want, outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	n, _, err := eventLog.NotificationNow(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != herald.StatusSent || n.Attempts != 2 || n.Provider != "smtp-2" {
		t.Errorf("notification = %s after %d attempts via %s, want sent after 2 via smtp-2", n.Status, n.Attempts, n.Provider)
	}
}

// TestDeliverPermanentRefusalAfterFailoverIsRetried: the primary failing transiently and the
// secondary refusing for good (its own relaying denied) is a failed attempt that will be retried,
// not a failed notification: without the secondary, the primary's outage would have been retried.
// failed_over_from still records the primary's error, and the attempt's error names both.
func TestDeliverPermanentRefusalAfterFailoverIsRetried(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	eventLog := events.NewLog(db.Pool)
	primary := &fakeProvider{name: "smtp", channel: herald.ChannelEmail, results: []sendResult{
		{err: errors.New("dial tcp 127.0.0.1:25: connect: connection refused")},
	}}
	secondary := &fakeProvider{name: "smtp-2", channel: herald.ChannelEmail, results: []sendResult{
		{err: delivery.Permanent(errors.New("550 5.7.1 relaying denied"))},
	}}
	f, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{Failures: 10, Timeout: time.Minute}, primary, secondary)
	if err != nil {
		t.Fatal(err)
	}
	d := handlers.NewDeliverer(eventLog, map[herald.Channel]delivery.Provider{herald.ChannelEmail: f}, deliverPolicy, "w1",
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	id := queue(t, eventLog, queuedOn(herald.ChannelEmail))
	cmd := commands.SendNotification{NotificationID: id, Channel: herald.ChannelEmail}

	checkOutcome(t, d.Deliver(context.Background(), cmd, cmdMD(1)), retryLater, nil)

	recs, err := eventLog.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Type != events.TypeDeliveryAttemptFailed {
		t.Fatalf("last event is %s, want %s", last.Type, events.TypeDeliveryAttemptFailed)
	}
	e, err := last.Event()
	if err != nil {
		t.Fatal(err)
	}
	want := &events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp-2",
		Error:          "smtp-2 refused: 550 5.7.1 relaying denied (not final: smtp failed transiently before it: dial tcp 127.0.0.1:25: connect: connection refused)",
		FailedOverFrom: []events.PassedOver{{Provider: "smtp", Error: "dial tcp 127.0.0.1:25: connect: connection refused"}}}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("outcome (-want +got):\n%s", diff)
	}
	n, _, err := eventLog.NotificationNow(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status == herald.StatusFailed || n.Attempts != 1 || n.Attempts >= deliverPolicy.MaxAttempts {
		t.Errorf("notification = %s after %d attempts, want not failed, with attempts left", n.Status, n.Attempts)
	}

	// The primary is back: the retry goes out through it.
	checkOutcome(t, d.Deliver(context.Background(), cmd, cmdMD(2)), delivered, nil)
	if n, _, err = eventLog.NotificationNow(context.Background(), id); err != nil || n.Status != herald.StatusSent || n.Provider != "smtp" {
		t.Errorf("after the retry: %s via %s (err %v), want sent via smtp", n.Status, n.Provider, err)
	}
}
