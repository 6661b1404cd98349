package e2e_test

import (
	"net/http"
	"testing"

	"github.com/herald-notify/herald/heraldtest"
)

// A command RabbitMQ cannot route — its work queue deleted by hand — is not taken as published:
// it stays in the outbox while the queue cannot be declared again (here RabbitMQ refuses Herald
// the right to declare queues), and is delivered, once, when it can.
func TestUnroutableCommandWaitsForItsQueue(t *testing.T) {
	t.Parallel()
	d := newDeps(t)
	h := startHerald(t, heraldOpts{Deps: d, Commands: []string{"serve"}})

	heraldtest.RabbitAPI(t, d.AMQPURL, http.MethodDelete, "/api/queues/{vhost}/"+queueEmail, "")
	heraldtest.RabbitAPI(t, d.AMQPURL, http.MethodPut, "/api/permissions/{vhost}/guest",
		`{"configure":"^$","write":".*","read":".*"}`)

	c := emailCase(1)
	id := sendCorrelated(t, h.API, c.req, c.correlation)

	// The publish comes back unroutable, declaring the queues again is refused: not ready.
	waitReadiness(t, h.API, http.StatusServiceUnavailable, readyTimeout)
	if code, checks := readiness(t, h.API); code != http.StatusServiceUnavailable || checks["rabbitmq"] == "ok" || checks["postgres"] != "ok" {
		t.Errorf("/readyz with %s missing: %d %v; want 503 naming rabbitmq, postgres ok", queueEmail, code, checks)
	}
	if _, ok := outboxCommands(t, h)[id]; !ok {
		t.Errorf("the outbox lost the command of %s while its queue is missing", id)
	}
	var n notificationJSON
	getJSON(t, h.API+"/api/v1/notifications/"+id+"/status", &n)
	if n.Status != "pending" {
		t.Errorf("%s is %s while its queue is missing, want pending", id, n.Status)
	}

	heraldtest.RabbitAPI(t, d.AMQPURL, http.MethodPut, "/api/permissions/{vhost}/guest",
		`{"configure":".*","write":".*","read":".*"}`)
	waitReadiness(t, h.API, http.StatusOK, readyTimeout)
	waitQueueDepth(t, d.AMQPURL, queueEmail, 1, readyTimeout)

	startHerald(t, heraldOpts{Deps: d, Commands: []string{"worker", "projector"}})
	checkDelivered(t, h, id, c)
}

// A work queue deleted while workers consume from it: RabbitMQ cancels their consumers, the
// workers declare it again and go on, nothing is parked for it, and what is sent next is
// delivered.
func TestWorkQueueDeletedUnderWorkers(t *testing.T) {
	t.Parallel()
	d := newDeps(t)
	h := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}})

	before := emailCase(1)
	checkDelivered(t, h, sendCorrelated(t, h.API, before.req, before.correlation), before)

	heraldtest.RabbitAPI(t, d.AMQPURL, http.MethodDelete, "/api/queues/{vhost}/"+queueEmail, "")
	after := emailCase(2)
	checkDelivered(t, h, sendCorrelated(t, h.API, after.req, after.correlation), after)
	if n := heraldtest.QueueDepth(t, d.AMQPURL, queuePoison); n != 0 {
		t.Errorf("the poison queue holds %d messages after a work queue was deleted, want none", n)
	}
}
