package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/heraldtest"
)

// readiness asks base's /readyz and returns its status code and checks.
func readiness(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /readyz: decode: %v", err)
	}
	return resp.StatusCode, body.Checks
}

// waitReadiness waits until base's /readyz answers code.
func waitReadiness(t *testing.T, base string, code int, timeout time.Duration) {
	t.Helper()
	heraldtest.Eventually(t, timeout, fmt.Sprintf("/readyz to answer %d", code), func() (bool, error) {
		got, checks := readiness(t, base)
		return got == code, fmt.Errorf("%d %v", got, checks)
	})
}

// outboxCommands returns the commands in the outbox table, by notification id, with the queue
// each is addressed to. The rows are watermill's forwarder envelopes.
func outboxCommands(t *testing.T, h *cluster) map[string]string {
	t.Helper()
	rows, err := h.DB.Pool.Query(context.Background(), `SELECT payload::text FROM outbox ORDER BY "offset"`)
	if err != nil {
		t.Fatalf("read the outbox: %v", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			t.Fatalf("read the outbox: %v", err)
		}
		var envelope struct {
			DestinationTopic string `json:"destination_topic"`
			Payload          []byte `json:"payload"`
		}
		var cmd sendCommand
		if err := json.Unmarshal([]byte(raw), &envelope); err != nil {
			t.Fatalf("outbox row %s: %v", raw, err)
		}
		if err := json.Unmarshal(envelope.Payload, &cmd); err != nil {
			t.Fatalf("outbox row %s: command %q: %v", raw, envelope.Payload, err)
		}
		if _, dup := out[cmd.NotificationID]; dup {
			t.Errorf("the outbox holds %s twice", cmd.NotificationID)
		}
		out[cmd.NotificationID] = envelope.DestinationTopic
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the outbox: %v", err)
	}
	return out
}

// The API accepts notifications while RabbitMQ is unreachable; they wait in the outbox and are
// delivered, each once, when RabbitMQ is back — also when it goes away in the middle of a batch.
func TestOutboxOutlivesRabbitMQOutage(t *testing.T) {
	t.Parallel()
	d := newDeps(t)
	broker, err := url.Parse(d.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, broker.Host, false)
	proxied := *broker
	proxied.Host = proxy.Addr()

	// Workers and projector reach RabbitMQ directly; only the API's relay goes through the proxy.
	startHerald(t, heraldOpts{Deps: d, Commands: []string{"worker", "projector"}})
	h := startHerald(t, heraldOpts{
		Deps:       d,
		Commands:   []string{"serve"},
		EnvFor:     map[string]map[string]string{"serve": {"HERALD_AMQP_URL": proxied.String()}},
		HealthOnly: []string{"serve"},
	})

	code, checks := readiness(t, h.API)
	if code != 503 || checks["rabbitmq"] == "" || checks["rabbitmq"] == "ok" || checks["postgres"] != "ok" {
		t.Errorf("/readyz with RabbitMQ away: %d %v; want 503 naming rabbitmq, postgres ok", code, checks)
	}

	type sent struct {
		id string
		c  notificationCase
	}
	var all []sent
	sendBatch := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			c := emailCase(i)
			if i%2 == 1 {
				c = smsCase(i)
			}
			within(t, 2*time.Second, "accepting a notification", func() {
				all = append(all, sent{id: sendCorrelated(t, h.API, c.req, c.correlation), c: c})
			})
		}
	}
	sendBatch(0, 10)

	want := map[string]string{}
	for _, s := range all {
		want[s.id] = map[string]string{"email": queueEmail, "sms": queueSMS}[s.c.req.Type]
	}
	if diff := cmp.Diff(want, outboxCommands(t, h)); diff != "" {
		t.Errorf("outbox while RabbitMQ is away (-want +got):\n%s", diff)
	}
	for _, q := range workQueues {
		if n := heraldtest.QueueDepth(t, d.AMQPURL, q); n != 0 {
			t.Errorf("queue %s holds %d messages while the relay cannot reach RabbitMQ", q, n)
		}
	}
	for _, s := range all {
		var n notificationJSON
		getJSON(t, h.API+"/api/v1/notifications/"+s.id+"/status", &n)
		if n.Status != "pending" {
			t.Errorf("%s is %s while its command waits in the outbox, want pending", s.id, n.Status)
		}
	}
	if n := d.SMTP.Count() + d.SMS.Count(); n != 0 {
		t.Errorf("the sinks received %d messages while RabbitMQ was away from the relay", n)
	}

	proxy.Up()
	for _, s := range all {
		checkDelivered(t, h, s.id, s.c)
	}
	waitReadiness(t, h.API, 200, readyTimeout)

	// Cut RabbitMQ off while a batch is being relayed, and accept more while it is away.
	sendBatch(10, 5)
	proxy.Down()
	waitReadiness(t, h.API, 503, readyTimeout)
	sendBatch(15, 5)
	proxy.Up()
	for _, s := range all {
		waitStatus(t, h.API, s.id, "sent", deliveryTimeout)
	}
	// A command published twice across the cut is in a work queue until a worker dismisses it.
	waitQueueDepth(t, d.AMQPURL, queueEmail, 0, 15*time.Second)
	waitQueueDepth(t, d.AMQPURL, queueSMS, 0, 15*time.Second)
	for _, s := range all {
		checkDelivered(t, h, s.id, s.c)
	}
	if n := d.SMTP.Count() + d.SMS.Count(); n != len(all) {
		t.Errorf("the sinks accepted %d messages for %d notifications", n, len(all))
	}
	if n := len(outboxCommands(t, h)); n != len(all) {
		t.Errorf("the outbox holds %d commands for %d notifications", n, len(all))
	}
}
