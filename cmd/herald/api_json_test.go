package main

// The tests here hold the CLI's -o json to what the API answers about the same notification.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// getJSON asks the API for path and decodes its 200 answer as JSON of any shape.
func getJSON(t *testing.T, base, path string) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s (%v)", path, resp.StatusCode, body, err)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
	return v
}

// deliveredThroughTheAPI accepts a notification through the API on a scratch database, records
// a delivery that failed once and then went through, and projects it. It returns the database,
// the API's base URL and the notification's id.
func deliveredThroughTheAPI(t *testing.T) (*heraldtest.Database, string, string) {
	t.Helper()
	commandSettings(t)
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: 1 << 16},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, slog.New(slog.DiscardHandler))
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)

	resp, err := http.Post(api.URL+"/api/v1/notifications/send", "application/json",
		strings.NewReader(`{"type":"email","recipient":"ada@example.com","content":"Hi {{.name}} <3","variables":{"name":"Ada"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		ID string `json:"id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST send: %d (%v)", resp.StatusCode, err)
	}
	id := accepted.ID
	// A delivery that failed once, then went through with a provider's message id.
	if _, err := log.Append(t.Context(), id, 1, events.Metadata{Actor: "worker:test/1"},
		&events.NotificationProcessing{Attempt: 1, Worker: "test/1"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"},
		&events.NotificationProcessing{Attempt: 2, Worker: "test/1"},
		&events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@example.com>"}); err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, db, 5)
	mustRunHerald(t, "projections", "rebuild", "--all", "--progress", "none", "--database-url", db.URL)

	return db, api.URL, id
}

// The CLI and the API print the same JSON for the same notification: notifications show's
// notification is the API's status answer, and its history the entries of the API's history
// answer, for a notification accepted through the API, delivered, and projected.
func TestNotificationsShowPrintsWhatTheAPIAnswers(t *testing.T) {
	db, apiURL, id := deliveredThroughTheAPI(t)

	status := getJSON(t, apiURL, "/api/v1/notifications/"+id+"/status")
	history := getJSON(t, apiURL, "/api/v1/notifications/"+id+"/history").(map[string]any)["history"]
	if s := status.(map[string]any)["status"]; s != "sent" {
		t.Fatalf("the API says %v, want sent: the notification was not projected", s)
	}
	for _, format := range []string{"json", "jsonl"} {
		out := mustRunHerald(t, "notifications", "show", id, "-o", format, "--database-url", db.URL)
		var shown struct {
			Notification any `json:"notification"`
			History      any `json:"history"`
		}
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&shown); err != nil {
			t.Fatalf("-o %s: %v\n%s", format, err, out)
		}
		if diff := cmp.Diff(status, shown.Notification); diff != "" {
			t.Errorf("-o %s: the notification differs from the API's status (-api +cli):\n%s", format, diff)
		}
		if diff := cmp.Diff(history, shown.History); diff != "" {
			t.Errorf("-o %s: the history differs from the API's (-api +cli):\n%s", format, diff)
		}
	}

	table := squeezeSpaces(mustRunHerald(t, "notifications", "show", id, "--database-url", db.URL))
	for _, want := range []string{"notification " + id, "status sent", "attempts 2", "provider message id <m@example.com>",
		"VERSION AT EVENT STATUS ATTEMPT ACTOR DETAIL", "DeliveryAttemptFailed processing 1 worker:test/1 via smtp, error: 421 try later"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	for _, tt := range []struct{ id, want string }{
		{"nope", `"nope" is not a notification id`},
		{"0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e", "0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e"},
	} {
		if _, err := runHerald(t, "notifications", "show", tt.id, "--database-url", db.URL); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("show %s: %v, want an error saying %q", tt.id, err, tt.want)
		}
	}
}

// poison show prints a notification's state and history as the API does: its history entries
// are the API's (with provider_message_id), its notification the API's status.
func TestPoisonShowPrintsWhatTheAPIAnswers(t *testing.T) {
	db, apiURL, id := deliveredThroughTheAPI(t)
	status := getJSON(t, apiURL, "/api/v1/notifications/"+id+"/status")
	history := getJSON(t, apiURL, "/api/v1/notifications/"+id+"/history").(map[string]any)["history"]

	amqpURL := heraldtest.NewVHost(t)
	declareQueues(t, amqpURL)
	out := mustRunHerald(t, "poison", "show", id, "-o", "json", "--database-url", db.URL, "--amqp-url", amqpURL)
	var shown struct {
		ID           string `json:"id"`
		Notification any    `json:"notification"`
		Parked       []any  `json:"parked"`
		History      any    `json:"history"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shown); err != nil {
		t.Fatalf("poison show -o json: %v\n%s", err, out)
	}
	if shown.ID != id || len(shown.Parked) != 0 {
		t.Errorf("poison show of a notification that is not parked: id %s, %d parked", shown.ID, len(shown.Parked))
	}
	if diff := cmp.Diff(status, shown.Notification); diff != "" {
		t.Errorf("the notification differs from the API's status (-api +cli):\n%s", diff)
	}
	if diff := cmp.Diff(history, shown.History); diff != "" {
		t.Errorf("the history differs from the API's (-api +cli):\n%s", diff)
	}
}

// declareQueues declares Herald's queues in the vhost at amqpURL, as a worker or serve does at
// start-up.
func declareQueues(t *testing.T, amqpURL string) {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}
	if err := cfg.Declare(ch); err != nil {
		t.Fatalf("declare Herald's queues: %v", err)
	}
}
