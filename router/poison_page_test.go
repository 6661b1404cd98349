package router_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// parkMany parks n commands in the poison queue at amqpURL, in watermill's format, publishing on
// one channel with confirms a thousand at a time. Every fifth is an SMS, the others emails; the
// notifications are unknown to any log. It returns the message ids in queue order.
func parkMany(t testing.TB, amqpURL string, n int) []string {
	t.Helper()
	ch := heraldtest.AMQPChannel(t, amqpURL)
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, n)
	var pending []*amqp091.DeferredConfirmation
	wait := func() {
		for _, dc := range pending {
			if ok, err := dc.WaitContext(context.Background()); err != nil || !ok {
				t.Fatalf("park: not confirmed (%v)", err)
			}
		}
		pending = pending[:0]
	}
	for i := range n {
		c := herald.ChannelEmail
		if i%5 == 4 {
			c = herald.ChannelSMS
		}
		id := uuid.NewString()
		dc, err := ch.PublishWithDeferredConfirm("", router.QueuePoison, true, false, amqp091.Publishing{
			DeliveryMode: amqp091.Persistent,
			Body:         fmt.Appendf(nil, `{"notification_id":%q,"channel":%q}`, uuid.NewString(), c),
			Headers: amqp091.Table{
				amqp.DefaultMessageUUIDHeaderKey:    id,
				"name":                              "SendNotification",
				middleware.ReasonForPoisonedKey:     "deliver: final: 503",
				middleware.PoisonedTopicKey:         string(c) + "_notifications",
				middleware.PoisonedHandlerKey:       "send_" + string(c),
				middleware.CorrelationIDMetadataKey: "corr-" + id,
			},
		})
		if err != nil {
			t.Fatalf("park: %v", err)
		}
		ids = append(ids, id)
		pending = append(pending, dc)
		if len(pending) == 1000 {
			wait()
		}
	}
	wait()
	return ids
}

// pageAll pages through the poison queue with op, limit at a time, and returns the message ids
// in the order the pages gave them, and how many pages it took.
func pageAll(t *testing.T, op *handlers.Operator, q handlers.ParkedQuery) (ids []string, pages int) {
	t.Helper()
	for {
		page, err := op.ParkedPage(context.Background(), q)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		if len(page.Parked) > q.Limit {
			t.Fatalf("page %d holds %d messages, more than the limit %d", pages, len(page.Parked), q.Limit)
		}
		for _, p := range page.Parked {
			ids = append(ids, p.Message.MessageID)
		}
		if page.Next == "" {
			return ids, pages
		}
		if len(page.Parked) == 0 {
			t.Fatalf("page %d is empty but names a next page", pages)
		}
		q.Cursor = page.Next
	}
}

func newPagingOperator(t *testing.T, amqpURL string) *handlers.Operator {
	return newBenchOperator(t, amqpURL)
}

func newBenchOperator(t testing.TB, amqpURL string) *handlers.Operator {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	return handlers.NewOperator(db.Pool, events.NewLog(db.Pool), router.NewOutbox(nil), router.NewPoisonQueue(amqpURL, nil))
}

// Paging through a deep poison queue visits every parked command once, in queue order, and
// leaves the queue as it was.
func TestPoisonPagesVisitEveryMessageOnce(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	const n = 3000
	want := parkMany(t, amqpURL, n)
	waitDepth(t, amqpURL, n)
	op := newPagingOperator(t, amqpURL)

	got, pages := pageAll(t, op, handlers.ParkedQuery{Limit: 50})
	if !slices.Equal(got, want) {
		t.Errorf("paging gave %d messages; want all %d, each once, in queue order", len(got), len(want))
	}
	if pages != n/50 {
		t.Errorf("took %d pages of 50 for %d messages, want %d", pages, n, n/50)
	}
	waitDepth(t, amqpURL, n)

	// A channel filter pages through that channel's commands alone.
	var wantSMS []string
	for i, id := range want {
		if i%5 == 4 {
			wantSMS = append(wantSMS, id)
		}
	}
	gotSMS, _ := pageAll(t, op, handlers.ParkedQuery{Channel: herald.ChannelSMS, Limit: 77})
	if !slices.Equal(gotSMS, wantSMS) {
		t.Errorf("paging the SMS gave %d messages; want the %d SMS, each once, in queue order", len(gotSMS), len(wantSMS))
	}
	waitDepth(t, amqpURL, n)
}

// A page after a removal starts where the page before ended: after its last message if that is
// still parked, wherever messages removed before it moved it; after the latest of the messages
// before it on its page if it is gone.
func TestPoisonPageAfterRemoval(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	want := parkMany(t, amqpURL, 30)
	waitDepth(t, amqpURL, 30)
	op := newPagingOperator(t, amqpURL)
	pq := router.NewPoisonQueue(amqpURL, nil)
	ctx := context.Background()

	first, err := op.ParkedPage(ctx, handlers.ParkedQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	remove := func(i int) {
		t.Helper()
		all, err := pq.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			if m.MessageID == want[i] {
				if _, err := pq.Remove(ctx, []handlers.ParkedKey{{NotificationID: m.NotificationID, MessageID: m.MessageID}}); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatalf("message %d is not parked", i)
	}
	next := func() []string {
		t.Helper()
		page, err := op.ParkedPage(ctx, handlers.ParkedQuery{Limit: 10, Cursor: first.Next})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range page.Parked {
			ids = append(ids, p.Message.MessageID)
		}
		return ids
	}

	remove(2) // before the cursor's message: it moves up one place
	if got := next(); !slices.Equal(got, want[10:20]) {
		t.Errorf("after removing a message before the cursor, the next page is %v, want %v", got, want[10:20])
	}
	remove(9) // the cursor's message itself
	if got := next(); !slices.Equal(got, want[10:20]) {
		t.Errorf("after removing the cursor's message, the next page is %v, want %v", got, want[10:20])
	}
	waitDepth(t, amqpURL, 28)
}

// Cursors and limits a listing did not give are refused.
func TestPoisonPageRefusesBadQueries(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	op := newPagingOperator(t, amqpURL)
	for _, q := range []handlers.ParkedQuery{
		{Limit: -1}, {Limit: handlers.MaxParkedPageSize + 1}, {Cursor: "not a cursor"}, {Cursor: "e30"}, // e30 is {}
	} {
		if _, err := op.ParkedPage(context.Background(), q); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("ParkedPage(%+v) = %v, want EINVALID", q, err)
		}
	}
}
