package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/http/openapitest"
)

// The API's JSON, as far as the tests read it.

type notificationJSON struct {
	ID                string `json:"id"`
	Type              string `json:"type"`
	Recipient         string `json:"recipient"`
	Status            string `json:"status"`
	Priority          string `json:"priority"`
	Attempts          int    `json:"attempts"`
	LastError         string `json:"last_error"`
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Version           int64  `json:"version"`
	Links             struct {
		Status  string `json:"status"`
		History string `json:"history"`
		Events  string `json:"events"`
	} `json:"links"`
}

type historyEntry struct {
	Version           int64  `json:"version"`
	Position          int64  `json:"position"`
	Event             string `json:"event"`
	Status            string `json:"status"`
	Attempt           int    `json:"attempt"`
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Error             string `json:"error"`
	Reason            string `json:"reason"`
	Template          string `json:"template"`
}

type historyJSON struct {
	ID      string         `json:"id"`
	History []historyEntry `json:"history"`
}

type eventJSON struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Version  int64           `json:"version"`
	Position int64           `json:"position"`
	Data     json.RawMessage `json:"data"`
	Metadata struct {
		CorrelationID string `json:"correlation_id"`
		CausationID   string `json:"causation_id"`
		Actor         string `json:"actor"`
	} `json:"metadata"`
}

type eventsJSON struct {
	ID     string      `json:"id"`
	Events []eventJSON `json:"events"`
}

// sendRequest is the body of POST /api/v1/notifications/send.
type sendRequest struct {
	Type      string         `json:"type"`
	Recipient string         `json:"recipient"`
	Subject   string         `json:"subject,omitempty"`
	Content   string         `json:"content"`
	HTML      string         `json:"html,omitempty"`
	Variables map[string]any `json:"variables,omitempty"`
	Template  string         `json:"template,omitempty"`
	// Attachments: filename, content_type and content (standard base64) each.
	Attachments []map[string]string `json:"attachments,omitempty"`
	// Priority is high, normal or low; empty leaves it out.
	Priority string `json:"priority,omitempty"`
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: withAPIKey{contract}}

// contract checks every exchange of the test client with a running API against the API's
// OpenAPI document, and fails the test that started that API on a mismatch.
var contract = &openapitest.Transport{Checker: mustLoadContract(), Next: http.DefaultTransport,
	Report: func(r *http.Request) func(string, ...any) {
		if t, ok := contractTests.Load(r.URL.Host); ok {
			return t.(testing.TB).Errorf
		}
		return nil
	}}

// contractTests maps the host:port of each running API to the test that started it.
var contractTests sync.Map

func mustLoadContract() *openapitest.Checker {
	c, err := openapitest.Load()
	if err != nil {
		panic(err)
	}
	return c
}

// tokens maps the host:port of each running API to the API key the test client sends it.
var tokens sync.Map

// withAPIKey sends the API key of the API a request goes to, unless the request has its own
// Authorization header (tests of authentication set one, or "-" for none).
type withAPIKey struct{ next http.RoundTripper }

func (t withAPIKey) RoundTrip(r *http.Request) (*http.Response, error) {
	switch auth := r.Header.Get("Authorization"); {
	case auth == "-":
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
	case auth == "":
		if token, ok := tokens.Load(r.URL.Host); ok {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+token.(string))
		}
	}
	return t.next.RoundTrip(r)
}

// send posts body, asserts 202 with a pending notification, and returns its id.
func send(t *testing.T, baseURL string, body sendRequest) string {
	t.Helper()
	return sendCorrelated(t, baseURL, body, "")
}

// sendCorrelated is send with the X-Correlation-ID header set to correlationID, unless it is "".
func sendCorrelated(t *testing.T, baseURL string, body sendRequest, correlationID string) string {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, baseURL+"/api/v1/notifications/send", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if correlationID != "" {
		req.Header.Set("X-Correlation-ID", correlationID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("send %s to %s: %v", body.Type, body.Recipient, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send %s to %s: %s, want 202 Accepted: %s", body.Type, body.Recipient, resp.Status, raw)
	}
	var n notificationJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatalf("send %s to %s: decode %s: %v", body.Type, body.Recipient, raw, err)
	}
	if n.ID == "" || n.Status != "pending" || n.Recipient != body.Recipient || n.Type != body.Type {
		t.Fatalf("send %s to %s: answer %s; want an id, status pending, and the type and recipient sent", body.Type, body.Recipient, raw)
	}
	if loc, want := resp.Header.Get("Location"), "/api/v1/notifications/"+n.ID+"/status"; loc != want {
		t.Errorf("send %s: Location %q, want %q", n.ID, loc, want)
	}
	if correlationID != "" && resp.Header.Get("X-Correlation-ID") != correlationID {
		t.Errorf("send %s: X-Correlation-ID %q, want the one sent, %q", n.ID, resp.Header.Get("X-Correlation-ID"), correlationID)
	}
	return n.ID
}

// getJSON gets url, asserts 200 and decodes the body into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := tryGetJSON(url, v); err != nil {
		t.Fatal(err)
	}
}

func tryGetJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s, want 200: %s", url, resp.Status, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("GET %s: decode %s: %w", url, raw, err)
	}
	return nil
}

// waitStatus polls the notification's status until it is want, failing at once if it reaches
// another terminal status, and returns it.
func waitStatus(t *testing.T, baseURL, id, want string, timeout time.Duration) notificationJSON {
	t.Helper()
	var n notificationJSON
	heraldtest.Eventually(t, timeout, "notification "+id+" to be "+want, func() (bool, error) {
		n = notificationJSON{}
		if err := tryGetJSON(baseURL+"/api/v1/notifications/"+id+"/status", &n); err != nil {
			return false, err
		}
		if n.Status != want && (n.Status == "sent" || n.Status == "failed") {
			t.Fatalf("notification %s is %s, want %s: %+v", id, n.Status, want, n)
		}
		return n.Status == want, fmt.Errorf("status %s after %d attempts, last error %q", n.Status, n.Attempts, n.LastError)
	})
	return n
}

// story returns a notification's history and events once the history holds at least n entries
// (the history projection may trail the status one).
func story(t *testing.T, baseURL, id string, n int) ([]historyEntry, []eventJSON) {
	t.Helper()
	var h historyJSON
	heraldtest.Eventually(t, 15*time.Second, fmt.Sprintf("history of %s to have %d entries", id, n), func() (bool, error) {
		h = historyJSON{}
		if err := tryGetJSON(baseURL+"/api/v1/notifications/"+id+"/history", &h); err != nil {
			return false, err
		}
		return len(h.History) >= n, fmt.Errorf("%d entries: %+v", len(h.History), h.History)
	})
	var e eventsJSON
	getJSON(t, baseURL+"/api/v1/notifications/"+id+"/events", &e)
	if h.ID != id || e.ID != id {
		t.Errorf("history is of %q and events of %q, want both of %q", h.ID, e.ID, id)
	}
	return h.History, e.Events
}

// checkStory asserts that history and events tell the same story: versions 1..n, increasing
// positions equal in both, the same event types, one correlation id (want, unless it is "") on
// every event.
func checkStory(t *testing.T, id string, history []historyEntry, evs []eventJSON, wantCorrelation string) {
	t.Helper()
	if len(history) != len(evs) {
		t.Errorf("%s: %d history entries but %d events", id, len(history), len(evs))
		return
	}
	for i, e := range evs {
		h := history[i]
		if e.Version != int64(i+1) || h.Version != int64(i+1) {
			t.Errorf("%s: entry %d has event version %d and history version %d, want %d", id, i, e.Version, h.Version, i+1)
		}
		if i > 0 && e.Position <= evs[i-1].Position {
			t.Errorf("%s: event v%d at position %d, not after v%d at %d", id, e.Version, e.Position, evs[i-1].Version, evs[i-1].Position)
		}
		if h.Position != e.Position || h.Event != e.Type {
			t.Errorf("%s v%d: history says %s at %d, events say %s at %d", id, e.Version, h.Event, h.Position, e.Type, e.Position)
		}
		if e.Metadata.CorrelationID == "" || e.Metadata.CorrelationID != evs[0].Metadata.CorrelationID {
			t.Errorf("%s v%d %s: correlation id %q, want the stream's first one, %q", id, e.Version, e.Type, e.Metadata.CorrelationID, evs[0].Metadata.CorrelationID)
		}
	}
	if wantCorrelation != "" && len(evs) > 0 && evs[0].Metadata.CorrelationID != wantCorrelation {
		t.Errorf("%s: correlation id %q, want the request's %q", id, evs[0].Metadata.CorrelationID, wantCorrelation)
	}
}

// eventData decodes the data of e.
func eventData(t *testing.T, e eventJSON) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("event %s v%d data %s: %v", e.Type, e.Version, e.Data, err)
	}
	return m
}

// waitQueueDepth waits until queue in the vhost holds want ready messages.
func waitQueueDepth(t *testing.T, amqpURL, queue string, want int, timeout time.Duration) {
	t.Helper()
	heraldtest.Eventually(t, timeout, fmt.Sprintf("queue %s to hold %d messages", queue, want), func() (bool, error) {
		got := heraldtest.QueueDepth(t, amqpURL, queue)
		return got == want, fmt.Errorf("it holds %d", got)
	})
}

// metric returns the sum of the samples of the Prometheus metric name at url whose labels
// include every pair in labels.
func metric(t *testing.T, url, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		for k, v := range labels {
			if !strings.Contains(rest, k+"="+strconv.Quote(v)) {
				continue lines
			}
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += f
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return sum
}

// within runs fn and fails the test if it took longer than d: for "answers at once" checks.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if took := time.Since(start); took > d {
		t.Errorf("%s took %s, want at most %s", what, took, d)
	}
}
