package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
)

// cancelAnswer is the API's answer to a cancel: the notification, or the error.
type cancelAnswer struct {
	code   int
	status string // the notification's status, or the one a 409 names
	body   string
}

// postCancel posts body to path of the API at base, with the cluster's key and extra headers.
func postCancel(t *testing.T, base, path, body string) cancelAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := cancelAnswer{code: resp.StatusCode, body: string(raw)}
	var v struct {
		Status string `json:"status"`
		Error  struct {
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("POST %s: %d %s: %v", path, resp.StatusCode, raw, err)
	}
	a.status = v.Status
	if a.code != http.StatusOK {
		a.status = v.Error.Fields["status"]
	}
	return a
}

// sendWithKey sends an SMS to recipient with an Idempotency-Key and returns its id.
func sendWithKey(t *testing.T, base, recipient, key string) string {
	t.Helper()
	return sendBodyWithKey(t, base, `{"type":"sms","recipient":"`+recipient+`","content":"Your order ships today"}`, key).ID
}

// sendBodyWithKey sends body with an Idempotency-Key and returns the 202's notification.
func sendBodyWithKey(t *testing.T, base, body, key string) notificationJSON {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/notifications/send", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n notificationJSON
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send with key %s: %d, %v", key, resp.StatusCode, err)
	}
	return n
}

// streamTypesOf is every notification's stream in the test's database, as its event types in
// order.
func streamTypesOf(t *testing.T, d *deps) map[string][]string {
	t.Helper()
	rows, err := d.DB.Pool.Query(context.Background(), `SELECT stream_id, event_type FROM event_log ORDER BY stream_id, stream_version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id, typ string
		if err := rows.Scan(&id, &typ); err != nil {
			t.Fatal(err)
		}
		out[id] = append(out[id], typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ackedUnsent reports whether p logged that it acknowledged the command of cancelled
// notification id without sending it.
func ackedUnsent(p *process, id string) bool {
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, `"msg":"command of a cancelled notification acknowledged unsent"`) && strings.Contains(line, id) {
			return true
		}
	}
	return false
}

// TestCancelViaAPIAndCLI: notifications waiting for a worker are cancelled by id and by
// idempotency key through the API and by id from the CLI; one waiting between attempts is
// cancelled during its retry's backoff. When the workers get to them they send only the one left
// alone, acknowledge the others' commands unsent, and nothing is left queued. A cancel of a sent
// notification is refused, by the API and the CLI alike.
func TestCancelViaAPIAndCLI(t *testing.T) {
	d := newDeps(t)
	// No worker yet: every command waits in its queue.
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"serve", "projector"}})
	byID := send(t, c.API, sendRequest{Type: "sms", Recipient: "+14155550101", Content: "one"})
	byKey := sendWithKey(t, c.API, "+14155550102", "order-2")
	byCLI := send(t, c.API, sendRequest{Type: "sms", Recipient: "+14155550103", Content: "three"})
	kept := send(t, c.API, sendRequest{Type: "sms", Recipient: "+14155550104", Content: "four"})

	if a := postCancel(t, c.API, "/api/v1/notifications/"+byID+"/cancel", `{"reason":"order withdrawn"}`); a.code != http.StatusOK || a.status != "cancelled" {
		t.Fatalf("cancel by id: %d %s", a.code, a.body)
	}
	if a := postCancel(t, c.API, "/api/v1/notifications/cancel", `{"idempotency_key":"order-2"}`); a.code != http.StatusOK || a.status != "cancelled" {
		t.Fatalf("cancel by idempotency key: %d %s", a.code, a.body)
	}
	if a := postCancel(t, c.API, "/api/v1/notifications/cancel", `{"idempotency_key":"order-9"}`); a.code != http.StatusNotFound {
		t.Errorf("cancel by an unknown key: %d %s, want 404", a.code, a.body)
	}
	var results struct {
		Results []struct {
			ID        string `json:"id"`
			Cancelled bool   `json:"cancelled"`
			Status    string `json:"status"`
			Error     *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"results"`
	}
	out := mustRunCLI(t, c, "notifications", "cancel", byCLI, "--actor", "ops", "--reason", "customer called", "-o", "json")
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results.Results) != 1 || !results.Results[0].Cancelled ||
		results.Results[0].Status != "cancelled" || results.Results[0].ID != byCLI {
		t.Fatalf("herald notifications cancel -o json: %v\n%s", err, out)
	}
	waitStatus(t, c.API, byCLI, "cancelled", deliveryTimeout)
	if hist, _ := story(t, c.API, byCLI, 2); hist[1].Event != "NotificationCancelled" || hist[1].Reason != "customer called" {
		t.Errorf("history of the CLI's cancel: %+v", hist)
	}
	var listed struct {
		Notifications []notificationJSON `json:"notifications"`
	}
	heraldtest.Eventually(t, deliveryTimeout, "three cancelled notifications listed", func() (bool, error) {
		listed.Notifications = nil
		if err := tryGetJSON(c.API+"/api/v1/notifications?status=cancelled", &listed); err != nil {
			return false, err
		}
		return len(listed.Notifications) == 3, fmt.Errorf("%d listed", len(listed.Notifications))
	})

	// A retry waits 5 s, long enough to cancel the notification between its attempts.
	d.SMS.FailTimes("+14155550105", 2, http.StatusServiceUnavailable)
	w := startHerald(t, heraldOpts{Deps: d, Commands: []string{"worker"}, MaxAttempts: 5, Env: map[string]string{
		"HERALD_RETRY_INITIAL_INTERVAL": "5s", "HERALD_RETRY_MAX_INTERVAL": "5s"}}).proc(t, "worker")
	retried := send(t, c.API, sendRequest{Type: "sms", Recipient: "+14155550105", Content: "five"})
	waitStatus(t, c.API, kept, "sent", deliveryTimeout)
	heraldtest.Eventually(t, deliveryTimeout, "the first attempt of "+retried+" to fail", func() (bool, error) {
		var n notificationJSON
		if err := tryGetJSON(c.API+"/api/v1/notifications/"+retried+"/status", &n); err != nil {
			return false, err
		}
		return n.Status == "processing" && n.LastError != "", fmt.Errorf("%s, last error %q", n.Status, n.LastError)
	})
	if a := postCancel(t, c.API, "/api/v1/notifications/"+retried+"/cancel", ""); a.code != http.StatusOK {
		t.Fatalf("cancel between attempts: %d %s", a.code, a.body)
	}
	for _, id := range []string{byID, byKey, byCLI, retried} {
		heraldtest.Eventually(t, deliveryTimeout, "the worker to acknowledge "+id+" unsent", func() (bool, error) {
			return ackedUnsent(w, id), nil
		})
	}
	waitQueueDepth(t, d.AMQPURL, "sms_notifications", 0, deliveryTimeout)
	streams := streamTypesOf(t, d)
	for _, id := range []string{byID, byKey, byCLI} {
		if want := []string{"NotificationQueued", "NotificationCancelled"}; !slices.Equal(streams[id], want) {
			t.Errorf("stream %s: %v, want %v", id, streams[id], want)
		}
	}
	if want := []string{"NotificationQueued", "NotificationProcessing", "DeliveryAttemptFailed", "NotificationCancelled"}; !slices.Equal(streams[retried], want) {
		t.Errorf("stream of the one cancelled between attempts: %v, want %v", streams[retried], want)
	}
	if got := d.SMS.Messages(); len(got) != 1 || got[0].To != "+14155550104" {
		t.Errorf("the gateway accepted %+v, want only the one left alone", got)
	}
	if n := d.SMS.Attempts("+14155550105"); n != 1 {
		t.Errorf("the gateway saw %d attempts to the one cancelled between attempts, want 1", n)
	}

	// Too late: both the API and the CLI refuse, naming the status.
	if a := postCancel(t, c.API, "/api/v1/notifications/"+kept+"/cancel", ""); a.code != http.StatusConflict || a.status != "sent" {
		t.Errorf("cancel of a sent notification: %d %s, want 409 naming sent", a.code, a.body)
	}
	res := runCLI(t, c, "notifications", "cancel", kept, byID)
	if res.code == 0 || !strings.Contains(res.stdout, kept) || !strings.Contains(res.stdout, "not cancelled") ||
		!strings.Contains(res.stdout, "is sent") || !strings.Contains(res.stdout, "is cancelled") {
		t.Errorf("herald notifications cancel of a sent and a cancelled one: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestCancelRace: notifications are cancelled while workers take them. The expected version
// settles each race: every stream holds exactly one of NotificationCancelled and
// NotificationSent, the gateway received exactly the sent ones, and each API answer agrees with
// the log: 200 for the cancelled, 409 for the sent.
func TestCancelRace(t *testing.T) {
	c := startHerald(t, heraldOpts{Commands: []string{"all"}})
	const n = 120
	answers := make([]cancelAnswer, n)
	ids := make([]string, n)
	recipient := func(i int) string { return fmt.Sprintf("+1415560%04d", i) }
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := g; i < n; i += 6 {
				if i%4 == 3 {
					// Its attempt takes a while: a cancel finds it in flight.
					c.SMS.Delay(recipient(i), 300*time.Millisecond)
				}
				ids[i] = send(t, c.API, sendRequest{Type: "sms", Recipient: recipient(i), Content: "race"})
				// A spread of times at which the cancel arrives, around the time a worker takes the
				// command (the relay forwards it, RabbitMQ hands it over): not a wait for anything.
				time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
				answers[i] = postCancel(t, c.API, "/api/v1/notifications/"+ids[i]+"/cancel", `{"reason":"race"}`)
			}
		})
	}
	wg.Wait()

	var cancelled, sent []string
	for i, a := range answers {
		switch {
		case a.code == http.StatusOK && a.status == "cancelled":
			cancelled = append(cancelled, ids[i])
		case a.code == http.StatusConflict && (a.status == "processing" || a.status == "sent"):
			sent = append(sent, ids[i])
		default:
			t.Fatalf("cancel of %s: %d %s, want 200 cancelled or 409 naming processing or sent", ids[i], a.code, a.body)
		}
	}
	var streams map[string][]string
	heraldtest.Eventually(t, deliveryTimeout, "every notification to end cancelled or sent", func() (bool, error) {
		streams = streamTypesOf(t, c.deps)
		for _, id := range ids {
			last := streams[id][len(streams[id])-1]
			if last != "NotificationCancelled" && last != "NotificationSent" {
				return false, fmt.Errorf("%s ends with %s", id, last)
			}
		}
		return true, nil
	})
	for i, id := range ids {
		s := streams[id]
		nc, ns := count(s, "NotificationCancelled"), count(s, "NotificationSent")
		if nc+ns != 1 {
			t.Errorf("stream %s: %v, want exactly one of NotificationCancelled and NotificationSent", id, s)
			continue
		}
		if (nc == 1) != slices.Contains(cancelled, id) {
			t.Errorf("stream %s: %v, but the API answered %d %s", id, s, answers[i].code, answers[i].body)
		}
		if got, want := len(c.SMS.Received(recipient(i))), ns; got != want {
			t.Errorf("the gateway received %d messages for %s, whose stream is %v", got, id, s)
		}
	}
	waitQueueDepth(t, c.AMQPURL, "sms_notifications", 0, deliveryTimeout)
	// A worker whose start lost the version to a cancel says so in its log, and its retry then
	// acknowledges the command: the closest races.
	lost := strings.Count(c.proc(t, "all").Output(), "is no longer at version")
	t.Logf("%d notifications: %d cancelled, %d sent before the cancel reached them; %d worker appends lost to a cancel", n, len(cancelled), len(sent), lost)
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
