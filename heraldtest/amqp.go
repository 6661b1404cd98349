package heraldtest

import (
	"net/url"
	"strings"
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

// RabbitAPI calls RabbitMQ's management API (HERALD_TEST_RABBITMQ_API) with method, path and a
// JSON body, and fails the test unless it answers 2xx. "{vhost}" in path is replaced by the
// escaped name of the vhost amqpURL names.
func RabbitAPI(t testing.TB, amqpURL, method, path, body string) {
	t.Helper()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	path = strings.ReplaceAll(path, "{vhost}", url.PathEscape(strings.TrimPrefix(u.Path, "/")))
	api := strings.TrimRight(env("HERALD_TEST_RABBITMQ_API", defaultRabbitAPI), "/")
	if err := rabbitAPIBody(method, api, path, body); err != nil {
		t.Fatalf("RabbitMQ management API: %v", err)
	}
}
