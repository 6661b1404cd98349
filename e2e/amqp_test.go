package e2e_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/heraldtest"
)

// sendCommand is the SendNotification command as it travels through RabbitMQ.
type sendCommand struct {
	NotificationID string `json:"notification_id"`
	Channel        string `json:"channel"`
}

// peekCommands returns the notification ids of the commands in queue, leaving them there: they
// are fetched unacknowledged and handed back when the channel closes, as they would be if their
// consumer died.
func peekCommands(t *testing.T, amqpURL, queue string) []string {
	t.Helper()
	ch := heraldtest.AMQPChannel(t, amqpURL)
	var ids []string
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			break
		}
		var cmd sendCommand
		if err := json.Unmarshal(d.Body, &cmd); err != nil {
			t.Errorf("message in %s %q: %v", queue, d.Body, err)
		}
		ids = append(ids, cmd.NotificationID)
	}
	// Closing the channel returns every unacknowledged message to the queue.
	if err := ch.Close(); err != nil {
		t.Fatalf("close channel: %v", err)
	}
	return ids
}

// publishCommand puts a SendNotification command on queue the way Herald's relay does
// (watermill-amqp's format: the JSON command as body, the message uuid and the command name as
// headers) and waits for the broker's confirm.
func publishCommand(t *testing.T, amqpURL, queue string, cmd sendCommand) {
	t.Helper()
	body, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	ch := heraldtest.AMQPChannel(t, amqpURL)
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("enable publisher confirms: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The default exchange routes to the queue of the same name, which Herald declared; the
	// mandatory flag turns a missing queue into a returned message instead of silence.
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	confirm, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp091.Publishing{
		Headers: amqp091.Table{
			"_watermill_message_uuid": uuid.NewString(),
			"name":                    "SendNotification",
		},
		DeliveryMode: amqp091.Persistent,
		Body:         body,
	})
	if err != nil {
		t.Fatalf("publish to %s: %v", queue, err)
	}
	acked, err := confirm.WaitContext(ctx)
	if err != nil || !acked {
		t.Fatalf("publish to %s: confirmed %t, %v", queue, acked, err)
	}
	select {
	case r := <-returns:
		t.Fatalf("publish to %s: returned: %d %s", queue, r.ReplyCode, r.ReplyText)
	default:
	}
}
