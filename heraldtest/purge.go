package heraldtest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-notify/herald/redact"
)

// PurgeQueue empties queue in the vhost amqpURL names through RabbitMQ's management API, as an
// operator purging it by hand would: its ready messages are gone for good.
func PurgeQueue(t testing.TB, amqpURL, queue string) {
	t.Helper()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatalf("parse %s: %v", redact.URL(amqpURL), err)
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	api := strings.TrimRight(env("HERALD_TEST_RABBITMQ_API", defaultRabbitAPI), "/")
	if err := rabbitAPI(http.MethodDelete, api, "/api/queues/"+url.PathEscape(vhost)+"/"+url.PathEscape(queue)+"/contents"); err != nil {
		t.Fatalf("purge queue %s in vhost %s: %v", queue, vhost, err)
	}
}
