package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/heraldtest"
)

// bodyReceiver is a webhook receiver on loopback that keeps the bodies it was posted.
type bodyReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

// newBodyReceiver starts a receiver that accepts every request.
func newBodyReceiver(t *testing.T) *bodyReceiver {
	t.Helper()
	rc := &bodyReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, string(b))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// about counts the bodies that mention s.
func (rc *bodyReceiver) about(s string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, b := range rc.bodies {
		if strings.Contains(b, s) {
			n++
		}
	}
	return n
}

// An endpoint registered through the API of a running herald all receives a notification's
// events, and the CLI and the API show the same endpoint and the same deliveries, as the same JSON.
func TestWebhookEndpointThroughTheAPIAndTheCLI(t *testing.T) {
	t.Parallel()
	rc := newBodyReceiver(t)
	h := startHerald(t, heraldOpts{Commands: []string{"all"}, Env: map[string]string{
		"HERALD_WEBHOOK_ALLOW_PRIVATE": "true", "HERALD_WEBHOOK_ALLOW_HTTP": "true", "HERALD_WEBHOOK_POLL_INTERVAL": "50ms",
	}})

	resp, body := postJSON(t, h.API+"/api/v1/webhooks", `{"url":"`+rc.URL+`/hook","event_types":["NotificationQueued","NotificationSent"]}`)
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || resp.StatusCode != http.StatusCreated || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("POST /api/v1/webhooks: %s %s", resp.Status, body)
	}
	id := send(t, h.API, sendRequest{Type: "email", Recipient: "hooks@example.com", Content: "Hello"})
	waitStatus(t, h.API, id, "sent", 30*time.Second)
	heraldtest.Eventually(t, 30*time.Second, "the endpoint to receive the notification's two events", func() (bool, error) {
		return rc.about(id) == 2, nil
	})

	// Compared once nothing moves any more: the live delivery has gone past the last event.
	var stream struct {
		Events []struct {
			Position int64 `json:"position"`
		} `json:"events"`
	}
	getJSON(t, h.API+"/api/v1/notifications/"+id+"/events", &stream)
	last := stream.Events[len(stream.Events)-1].Position
	self := h.API + "/api/v1/webhooks/" + created.ID
	var api, cli any
	heraldtest.Eventually(t, 15*time.Second, "the endpoint's delivery to settle past the notification's events", func() (bool, error) {
		var e struct {
			LastSuccessAt *time.Time `json:"last_success_at"`
			Position      int64      `json:"position"`
		}
		err := tryGetJSON(self, &e)
		return e.LastSuccessAt != nil && e.Position >= last, err
	})
	getJSON(t, self, &api)
	if err := json.Unmarshal([]byte(mustRunCLI(t, h, "webhooks", "show", created.ID, "-o", "json")), &cli); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(api, cli); diff != "" {
		t.Errorf("GET %s and herald webhooks show -o json differ (-api +cli):\n%s", self, diff)
	}
	if strings.Contains(mustRunCLI(t, h, "webhooks", "list"), "whsec_") {
		t.Errorf("herald webhooks list shows a secret")
	}

	api, cli = nil, nil
	getJSON(t, self+"/deliveries", &api)
	if err := json.Unmarshal([]byte(mustRunCLI(t, h, "webhooks", "deliveries", created.ID, "-o", "json")), &cli); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(api, cli); diff != "" {
		t.Errorf("GET %s/deliveries and herald webhooks deliveries -o json differ (-api +cli):\n%s", self, diff)
	}
	var page struct {
		Attempts []struct {
			EventType string `json:"event_type"`
			Trigger   string `json:"trigger"`
			Succeeded bool   `json:"succeeded"`
		} `json:"attempts"`
	}
	getJSON(t, self+"/deliveries", &page)
	if len(page.Attempts) != 2 || page.Attempts[0].EventType != "NotificationSent" || page.Attempts[0].Trigger != "live" || !page.Attempts[0].Succeeded {
		t.Errorf("deliveries: %+v, want the live NotificationQueued and NotificationSent, newest first", page)
	}

	// A change made from the CLI is the API's too, with its actor.
	mustRunCLI(t, h, "webhooks", "disable", created.ID, "--reason", "maintenance", "--actor", "ops-ann")
	var changes struct {
		Events []struct {
			Type     string `json:"type"`
			Metadata struct {
				Actor string `json:"actor"`
			} `json:"metadata"`
		} `json:"events"`
	}
	getJSON(t, self+"/events", &changes)
	if n := len(changes.Events); n != 2 || changes.Events[1].Type != "WebhookEndpointDisabled" || changes.Events[1].Metadata.Actor != "ops-ann" ||
		changes.Events[0].Metadata.Actor != "apikey:e2e" {
		t.Errorf("the endpoint's stream: %+v, want its creation by apikey:e2e and its disabling by ops-ann", changes)
	}
}
