package http_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// While another process looks at the poison queue, a request waits for it, but no longer than
// its deadline: it is then answered 503 rather than cut off, and once the other look is done
// the same request is answered.
func TestPoisonRequestWaitsForAnotherLookUntilItsDeadline(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}
	if err := cfg.Declare(ch); err != nil {
		t.Fatalf("declare queues: %v", err)
	}
	// Another process's look holds the lock.
	if _, err := ch.QueueDeclare(router.QueuePoisonLock, false, true, true, false, amqp091.Table{"x-max-length": int32(0)}); err != nil {
		t.Fatalf("hold the lock: %v", err)
	}

	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: 1 << 10, PoisonTimeout: time.Second},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log),
		nil, testLogger(t),
	).WithOperator(handlers.NewOperator(db.Pool, log, router.NewOutbox(nil), router.NewPoisonQueue(amqpURL, testLogger(t))))
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.WriteTimeout = 200 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)

	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/poison", ""},
		{http.MethodPost, "/api/v1/poison/" + uuid.NewString() + "/discard", `{"reason":"gone"}`},
	} {
		r := doRequest(t, ts.URL, req.method, req.path, req.body, jsonHeader())
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "another look at the poison queue is under way") {
			t.Errorf("%s %s while another look holds the queue: %d %s; want 503 saying another look is under way", req.method, req.path, r.status, r.body)
		}
	}

	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	r := doRequest(t, ts.URL, http.MethodGet, "/api/v1/poison", "", nil)
	if r.status != http.StatusOK || string(r.body) != "{\"parked\":[]}\n" {
		t.Errorf("GET /api/v1/poison once the other look is done: %d %s, want 200 with nothing parked", r.status, r.body)
	}
}
