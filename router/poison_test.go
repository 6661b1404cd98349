package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// declarePoison declares Herald's queues in the vhost at amqpURL as router.Topology does.
func declarePoison(t *testing.T, amqpURL string) {
	t.Helper()
	ch := heraldtest.AMQPChannel(t, amqpURL)
	defer ch.Close()
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}
	if err := cfg.Declare(ch); err != nil {
		t.Fatalf("declare %s: %v", router.QueuePoison, err)
	}
}

// parkedCommand is a command to park: its message id, the body, and the command's name.
type parkedCommand struct {
	messageID string
	body      string
	name      string
}

func sendCommand(id string, c herald.Channel) parkedCommand {
	return parkedCommand{
		messageID: uuid.NewString(),
		body:      fmt.Sprintf(`{"notification_id":%q,"channel":%q}`, id, c),
		name:      "SendNotification",
	}
}

// park publishes cmds to the poison queue as watermill's poison middleware does, through
// watermill-amqp's publisher: the command as body, and as headers the message id, the command's
// name, the correlation id and what the middleware adds.
func park(t *testing.T, amqpURL string, cmds ...parkedCommand) {
	t.Helper()
	cfg := amqp.NewDurableQueueConfig(amqpURL)
	cfg.Queue.Arguments = amqp091.Table{"x-queue-type": "quorum"}
	cfg.Publish.ConfirmDelivery = true
	pub, err := amqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("publisher: %v", err)
	}
	defer pub.Close()
	for _, c := range cmds {
		msg := message.NewMessage(c.messageID, []byte(c.body))
		msg.Metadata.Set("name", c.name)
		msg.Metadata.Set(middleware.CorrelationIDMetadataKey, "corr-"+c.messageID)
		msg.Metadata.Set(middleware.ReasonForPoisonedKey, "deliver: final: 503")
		msg.Metadata.Set(middleware.PoisonedTopicKey, "sms_notifications")
		msg.Metadata.Set(middleware.PoisonedHandlerKey, "send_sms")
		msg.Metadata.Set(middleware.PoisonedSubscriberKey, "")
		if err := pub.Publish(router.QueuePoison, msg); err != nil {
			t.Fatalf("park %s: %v", c.messageID, err)
		}
	}
}

// waitDepth waits until the poison queue holds want ready messages: messages a closed channel
// hands back are ready again a moment after the close.
func waitDepth(t *testing.T, amqpURL string, want int) {
	t.Helper()
	heraldtest.Eventually(t, 10*time.Second, fmt.Sprintf("the poison queue to hold %d messages", want), func() (bool, error) {
		got := heraldtest.QueueDepth(t, amqpURL, router.QueuePoison)
		return got == want, fmt.Errorf("it holds %d", got)
	})
}

// seen is what the tests compare of a parked message.
type seen struct {
	NotificationID string
	Channel        herald.Channel
	MessageID      string
	CorrelationID  string
	Reason         string
	Queue          string
	Handler        string
	Unreadable     bool
	Body           string
}

func seenOf(msgs []handlers.ParkedMessage) []seen {
	out := make([]seen, len(msgs))
	for i, m := range msgs {
		out[i] = seen{m.NotificationID, m.Channel, m.MessageID, m.CorrelationID, m.Reason, m.Queue, m.Handler, m.Unreadable != "", string(m.Body)}
	}
	return out
}

func expect(c parkedCommand, id string, ch herald.Channel) seen {
	return seen{id, ch, c.messageID, "corr-" + c.messageID, "deliver: final: 503", "sms_notifications", "send_sms", id == "", c.body}
}

var bySeen = cmpopts.SortSlices(func(a, b seen) bool {
	return a.MessageID+a.Body < b.MessageID+b.Body
})

func TestPoisonQueueListsWithoutTaking(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	ctx := context.Background()

	a, b := uuid.NewString(), uuid.NewString()
	a1, b1 := sendCommand(a, herald.ChannelSMS), sendCommand(strings.ToUpper(b), herald.ChannelEmail)
	other := parkedCommand{messageID: uuid.NewString(), body: `{"x":1}`, name: "SomethingElse"}
	notJSON := parkedCommand{messageID: uuid.NewString(), body: `{not json`, name: "SendNotification"}
	park(t, amqpURL, a1, b1, other, notJSON)
	want := []seen{expect(a1, a, herald.ChannelSMS), expect(b1, b, herald.ChannelEmail), expect(other, "", ""), expect(notJSON, "", "")}

	q := router.NewPoisonQueue(amqpURL, nil)
	for look := 1; look <= 2; look++ {
		msgs, err := q.List(ctx)
		if err != nil {
			t.Fatalf("look %d: List: %v", look, err)
		}
		if diff := cmp.Diff(want, seenOf(msgs), bySeen); diff != "" {
			t.Errorf("look %d: List (-want +got):\n%s", look, diff)
		}
		for _, m := range msgs {
			if m.Headers["name"] == "" || m.Headers["_watermill_message_uuid"] != m.MessageID {
				t.Errorf("look %d: message %s headers %v, want watermill's name and message id among them", look, m.MessageID, m.Headers)
			}
			// The poison queue is classic: looking is not counted against a delivery limit.
			if m.Deliveries != 0 {
				t.Errorf("look %d: message %s has %d deliveries counted, want none", look, m.MessageID, m.Deliveries)
			}
		}
		// Looking takes nothing: every message is back, ready.
		waitDepth(t, amqpURL, len(want))
	}
}

func TestPoisonQueueRemovesExactlyTheNamedMessages(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	ctx := context.Background()

	a, b, c := uuid.NewString(), uuid.NewString(), uuid.NewString()
	a1, a2, b1, c1, c2 := sendCommand(a, herald.ChannelSMS), sendCommand(a, herald.ChannelSMS),
		sendCommand(b, herald.ChannelSMS), sendCommand(c, herald.ChannelEmail), sendCommand(c, herald.ChannelEmail)
	junk := parkedCommand{messageID: uuid.NewString(), body: `{}`, name: "SendNotification"}
	// a1 twice: the same command parked twice (its first park's acknowledgement was lost).
	park(t, amqpURL, a1, a2, b1, c1, c2, a1, junk)
	waitDepth(t, amqpURL, 7)

	q := router.NewPoisonQueue(amqpURL, nil)
	removed, err := q.Remove(ctx, []handlers.ParkedKey{
		{NotificationID: a},                             // every message of a
		{NotificationID: b, MessageID: "not-b1s-id"},    // no message of b has that id
		{NotificationID: c, MessageID: c2.messageID},    // one message of c
		{NotificationID: uuid.NewString()},              // nothing parked
		{NotificationID: "", MessageID: junk.messageID}, // unreadable messages are never removed
	})
	if err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if diff := cmp.Diff(map[string]int{a: 3, c: 1}, removed); diff != "" {
		t.Errorf("removed per notification (-want +got):\n%s", diff)
	}
	waitDepth(t, amqpURL, 3)
	msgs, err := q.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []seen{expect(b1, b, herald.ChannelSMS), expect(c1, c, herald.ChannelEmail), expect(junk, "", "")}
	if diff := cmp.Diff(want, seenOf(msgs), bySeen); diff != "" {
		t.Errorf("left parked (-want +got):\n%s", diff)
	}
}

func TestPoisonQueueMissing(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	q := router.NewPoisonQueue(amqpURL, nil)
	_, err := q.List(context.Background())
	if !errors.Is(err, router.ErrPoisonQueueMissing) || !strings.Contains(err.Error(), "start a worker or serve once") {
		t.Errorf("List of a vhost without the queue: %v, want %v", err, router.ErrPoisonQueueMissing)
	}
	_, err = q.Remove(context.Background(), []handlers.ParkedKey{{NotificationID: uuid.NewString()}})
	if !errors.Is(err, router.ErrPoisonQueueMissing) {
		t.Errorf("Remove from a vhost without the queue: %v, want %v", err, router.ErrPoisonQueueMissing)
	}
	// Nothing was declared on the way.
	ch := heraldtest.AMQPChannel(t, amqpURL)
	if _, err := ch.QueueDeclarePassive(router.QueuePoison, true, false, false, false, nil); err == nil {
		t.Errorf("the poison queue exists after List and Remove; they must declare nothing")
	}
}

func TestPoisonQueueUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := router.NewPoisonQueue("amqp://guest:guest@127.0.0.1:1/", nil).List(ctx)
	if herald.ErrorCode(err) != herald.EUNAVAILABLE {
		t.Errorf("List from a closed port: %v, want an %s error", err, herald.EUNAVAILABLE)
	}
}

// A context that is done stops List and Remove, and hands every message back.
func TestPoisonQueueStopsWithItsContext(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	var cmds []parkedCommand
	var ids []string
	for range 50 {
		id := uuid.NewString()
		ids = append(ids, id)
		cmds = append(cmds, sendCommand(id, herald.ChannelSMS))
	}
	park(t, amqpURL, cmds...)
	waitDepth(t, amqpURL, len(cmds))
	q := router.NewPoisonQueue(amqpURL, nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.List(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: %v, want %v", err, context.Canceled)
	}
	var keys []handlers.ParkedKey
	for _, id := range ids {
		keys = append(keys, handlers.ParkedKey{NotificationID: id})
	}
	if _, err := q.Remove(ctx, keys); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove with a cancelled context: %v, want %v", err, context.Canceled)
	}

	// Cancelled once it holds messages: whatever it took goes back. (Should the listing finish
	// first, the test still holds; it only proves less.)
	ctx, cancel = context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		defer cancel()
		deadline := time.Now().Add(10 * time.Second)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			if n, err := readyMessages(amqpURL); err == nil && n < len(cmds) {
				return
			}
		}
	}()
	if _, err := q.List(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("List cancelled midway: %v, want nil or %v", err, context.Canceled)
	}
	cancel()
	<-watching
	waitDepth(t, amqpURL, len(cmds))
	msgs, err := q.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.NotificationID)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("after a cancelled listing the queue holds %d commands, want the %d parked", len(got), len(ids))
	}
}

// readyMessages returns how many messages the poison queue holds ready, for goroutines that
// cannot fail the test.
func readyMessages(amqpURL string) (int, error) {
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	q, err := ch.QueueDeclarePassive(router.QueuePoison, true, false, false, false, nil)
	return q.Messages, err
}
