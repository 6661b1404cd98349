package heraldtest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/redact"
)

// AMQPChannel opens a connection to amqpURL and a channel on it, for a test to look at or
// prepare queues directly. The connection closes when the test ends; a test that needs the
// channel closed earlier (to hand back unacknowledged messages) closes it itself.
func AMQPChannel(t testing.TB, amqpURL string) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatalf("connect to RabbitMQ at %s: %v", redact.URL(amqpURL), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open a channel: %v", err)
	}
	return ch
}

// QueueDepth returns the number of messages ready for delivery in queue of the vhost amqpURL
// names, asking the broker itself (the management API's figures are sampled every few seconds).
// Messages delivered to a consumer and not yet acknowledged are not counted.
func QueueDepth(t testing.TB, amqpURL, queue string) int {
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
	if err := harness.RabbitAPI(context.Background(), RabbitMQAPI(), method, path, body, nil); err != nil {
		t.Fatalf("RabbitMQ management API: %v", err)
	}
}

// PurgeQueue empties queue in the vhost amqpURL names through RabbitMQ's management API, as an
// operator purging it by hand would: its ready messages are gone for good.
func PurgeQueue(t testing.TB, amqpURL, queue string) {
	t.Helper()
	vhost, err := harness.VHostOf(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/queues/" + url.PathEscape(vhost) + "/" + url.PathEscape(queue) + "/contents"
	if err := harness.RabbitAPI(context.Background(), RabbitMQAPI(), http.MethodDelete, path, "", nil); err != nil {
		t.Fatalf("purge queue %s in vhost %s: %v", queue, vhost, err)
	}
}
