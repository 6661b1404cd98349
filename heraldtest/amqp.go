package heraldtest

import (
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/redact"
)

func queueDepth(t testing.TB, amqpURL, queue string) int {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", redact.URL(amqpURL), err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", queue, err)
	}
	return q.Messages
}
