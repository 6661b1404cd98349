package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/http/openapitest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/router"
)

// apiMaxBody is the body limit of the API under test: small enough to cross easily, large
// enough for an SMS of 1600 multi-byte characters.
const apiMaxBody = 16 << 10

// testAPI is Herald's API over a fresh database, served on a local port.
type testAPI struct {
	url  string
	pool *pgxpool.Pool
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: apiMaxBody},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log),
		[]heraldhttp.Check{{Name: "postgres", Ready: db.Pool.Ping}},
		testLogger(t),
	)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &testAPI{url: ts.URL, pool: db.Pool}
}

// response is an answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request and reads the whole answer. header may be nil.
func (a *testAPI) do(t *testing.T, method, path, body string, header http.Header) response {
	t.Helper()
	return doRequest(t, a.url, method, path, body, header)
}

func doRequest(t *testing.T, base, method, path, body string, header http.Header) response {
	t.Helper()
	r, err := tryRequest(t, base, method, path, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryRequest is doRequest for a goroutine of the test's own, which may not end the test: it
// returns what doRequest fails the test with.
func tryRequest(t *testing.T, base, method, path, body string, header http.Header) (response, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return response{}, err
	}
	for name, values := range header {
		req.Header[name] = values
	}
	c, err := loadContract()
	if err != nil {
		return response{}, err
	}
	resp, err := openapitest.Client(t, c).Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// loadContract loads the API's OpenAPI document once for every test: doRequest checks each
// exchange against it. The servers under test mostly run without API keys, so the document's
// security is not checked here (the end-to-end tests check it).
var loadContract = sync.OnceValues(func() (*openapitest.Checker, error) { return openapitest.Load(openapitest.IgnoreSecurity()) })

func contract(t *testing.T) *openapitest.Checker {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// notificationResponse is a notification as the API shows it.
type notificationResponse struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Recipient string    `json:"recipient"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Links     struct {
		Status  string `json:"status"`
		History string `json:"history"`
		Events  string `json:"events"`
	} `json:"links"`
}

func decodeJSON[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer is not the JSON expected: %v\n%s", err, r.body)
	}
	return v
}

// send posts body and requires a 202.
func (a *testAPI) send(t *testing.T, body string, header http.Header) (notificationResponse, response) {
	t.Helper()
	h := jsonHeader()
	for name, values := range header {
		h[name] = values
	}
	r := a.do(t, http.MethodPost, "/api/v1/notifications/send", body, h)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST send %s: status %d, want 202; body: %s", body, r.status, r.body)
	}
	return decodeJSON[notificationResponse](t, r), r
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// project applies Herald's projections to the streams of ids by hand, as the projector would.
func project(t *testing.T, pool *pgxpool.Pool, ids ...string) {
	t.Helper()
	ctx := t.Context()
	log := events.NewLog(pool)
	for _, id := range ids {
		recs, err := log.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatalf("project %s: no events", id)
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for _, rec := range recs {
				if err := (projections.Status{}).Apply(ctx, tx, rec); err != nil {
					return err
				}
				if err := (projections.History{}).Apply(ctx, tx, rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("project %s: %v", id, err)
		}
	}
}

// outboxCommand is an outbox row unwrapped: the forwarder's envelope and the command inside.
type outboxCommand struct {
	DestinationTopic string
	EnvelopeMetadata map[string]string
	Command          map[string]any
}

func outboxCommands(t *testing.T, pool *pgxpool.Pool) []outboxCommand {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT payload::text FROM outbox ORDER BY "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []outboxCommand
	for _, p := range payloads {
		var env struct {
			DestinationTopic string            `json:"destination_topic"`
			UUID             string            `json:"uuid"`
			Payload          []byte            `json:"payload"`
			Metadata         map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(p), &env); err != nil {
			t.Fatalf("outbox payload is not a forwarder envelope: %v\n%s", err, p)
		}
		var cmd map[string]any
		if err := json.Unmarshal(env.Payload, &cmd); err != nil {
			t.Fatalf("envelope payload is not a JSON command: %v\n%q", err, env.Payload)
		}
		out = append(out, outboxCommand{DestinationTopic: env.DestinationTopic, EnvelopeMetadata: env.Metadata, Command: cmd})
	}
	return out
}

func TestSendRecordsEventAndCommand(t *testing.T) {
	api := newTestAPI(t)
	tests := []struct {
		name          string
		body          string
		correlationID string // sent by the client; "" sends none
		wantType      string
		wantRecipient string
		wantTopic     string
	}{
		{
			name:     "email",
			body:     `{"type":"email","recipient":"ada@example.com","subject":"Hi {{.name}}","content":"Hello {{.name}}!","variables":{"name":"Ada"}}`,
			wantType: "email", wantRecipient: "ada@example.com", wantTopic: "email_notifications",
		},
		{
			name:     "sms",
			body:     `{"type":"sms","recipient":"+14155550123","content":"Your code is {{.code}}","variables":{"code":"1234"}}`,
			wantType: "sms", wantRecipient: "+14155550123", wantTopic: "sms_notifications",
		},
		{
			name:          "client's correlation id",
			body:          `{"type":"email","recipient":"grace@example.com","content":"Hi"}`,
			correlationID: "client-req-7f3a",
			wantType:      "email", wantRecipient: "grace@example.com", wantTopic: "email_notifications",
		},
		{
			name:          "unprintable correlation id is replaced",
			body:          `{"type":"sms","recipient":"+447911123456","content":"Hi"}`,
			correlationID: "has spaces in it",
			wantType:      "sms", wantRecipient: "+447911123456", wantTopic: "sms_notifications",
		},
		{
			name:     "SMS of 1600 two-byte characters",
			body:     `{"type":"sms","recipient":"+14155550123","content":"` + strings.Repeat("é", 1600) + `"}`,
			wantType: "sms", wantRecipient: "+14155550123", wantTopic: "sms_notifications",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header http.Header
			if tt.correlationID != "" {
				header = http.Header{"X-Correlation-Id": {tt.correlationID}}
			}
			n, r := api.send(t, tt.body, header)

			corr := r.header.Get("X-Correlation-ID")
			switch {
			case tt.correlationID == "" || strings.Contains(tt.correlationID, " "):
				if _, err := uuid.Parse(corr); err != nil {
					t.Errorf("X-Correlation-ID = %q, want an id Herald made", corr)
				}
			case corr != tt.correlationID:
				t.Errorf("X-Correlation-ID = %q, want the client's %q", corr, tt.correlationID)
			}
			if _, err := uuid.Parse(n.ID); err != nil {
				t.Fatalf("id %q is not a UUID: %v", n.ID, err)
			}
			base := "/api/v1/notifications/" + n.ID
			if got := r.header.Get("Location"); got != base+"/status" {
				t.Errorf("Location = %q, want %q", got, base+"/status")
			}
			got := []string{n.Type, n.Recipient, n.Status, n.Links.Status, n.Links.History, n.Links.Events}
			want := []string{tt.wantType, tt.wantRecipient, "pending", base + "/status", base + "/history", base + "/events"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("type, recipient, status, links (-want +got):\n%s", diff)
			}
			if n.Version != 1 || n.Attempts != 0 || n.CreatedAt.IsZero() {
				t.Errorf("version %d, attempts %d, created_at %v: want 1, 0 and a time", n.Version, n.Attempts, n.CreatedAt)
			}

			// The log holds exactly the NotificationQueued event, with the request's correlation id.
			rows, err := api.pool.Query(t.Context(),
				`SELECT event_type, stream_version, metadata->>'correlation_id' FROM event_log WHERE stream_id = $1`, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			type logRow struct {
				Type          string
				Version       int64
				CorrelationID string
			}
			logged, err := pgx.CollectRows(rows, pgx.RowToStructByPos[logRow])
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]logRow{{"NotificationQueued", 1, corr}}, logged); diff != "" {
				t.Errorf("event_log rows of the stream (-want +got):\n%s", diff)
			}

			// The outbox holds exactly one command for it, enveloped for the channel's queue.
			cmds := outboxCommands(t, api.pool)
			if len(cmds) != i+1 {
				t.Errorf("outbox has %d rows after %d accepted notifications", len(cmds), i+1)
			}
			var mine []outboxCommand
			for _, c := range cmds {
				if c.Command["notification_id"] == n.ID {
					mine = append(mine, c)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("outbox has %d commands for %s, want 1: %+v", len(mine), n.ID, cmds)
			}
			wantCmd := map[string]any{"notification_id": n.ID, "channel": tt.wantType}
			if diff := cmp.Diff(wantCmd, mine[0].Command); diff != "" {
				t.Errorf("command (-want +got):\n%s", diff)
			}
			if mine[0].DestinationTopic != tt.wantTopic {
				t.Errorf("destination_topic = %q, want %q", mine[0].DestinationTopic, tt.wantTopic)
			}
			if got := mine[0].EnvelopeMetadata["correlation_id"]; got != corr {
				t.Errorf("command's correlation_id = %q, want %q", got, corr)
			}
		})
	}
}

type historyResponse struct {
	ID      string `json:"id"`
	History []struct {
		Version  int64     `json:"version"`
		Position int64     `json:"position"`
		Event    string    `json:"event"`
		Status   string    `json:"status"`
		At       time.Time `json:"at"`
		Attempt  int       `json:"attempt"`
		Error    string    `json:"error"`
	} `json:"history"`
}

type eventsResponse struct {
	ID     string `json:"id"`
	Events []struct {
		ID       string          `json:"id"`
		Type     string          `json:"type"`
		Version  int64           `json:"version"`
		Position int64           `json:"position"`
		Time     time.Time       `json:"time"`
		Data     json.RawMessage `json:"data"`
		Metadata struct {
			CorrelationID string `json:"correlation_id"`
			Actor         string `json:"actor"`
		} `json:"metadata"`
	} `json:"events"`
}

// asMap decodes a JSON body generically, for comparing two answers as a whole.
func asMap(t *testing.T, r response) map[string]any {
	t.Helper()
	return decodeJSON[map[string]any](t, r)
}

func TestReadAfterSend(t *testing.T) {
	api := newTestAPI(t)
	n, sent := api.send(t, `{"type":"email","recipient":"ada@example.com","content":"Hello {{.name}}!",
		"variables":{"name":"Ada","order":{"total":12345678901234567890,"items":[1,2.5]}}}`, nil)
	corr := sent.header.Get("X-Correlation-ID")
	base := "/api/v1/notifications/" + n.ID

	// Before any projection: the answers come from the log.
	status := api.do(t, http.MethodGet, base+"/status", "", nil)
	if status.status != http.StatusOK {
		t.Fatalf("GET status: %d, want 200; body: %s", status.status, status.body)
	}
	if got := decodeJSON[notificationResponse](t, status); got.Status != "pending" || got.ID != n.ID || got.Version != 1 {
		t.Errorf("GET status = %+v, want %s pending at version 1", got, n.ID)
	}
	// The 202 described the notification exactly as a read of it does.
	if diff := cmp.Diff(asMap(t, sent), asMap(t, status)); diff != "" {
		t.Errorf("POST answer and GET status differ (-post +get):\n%s", diff)
	}

	history := api.do(t, http.MethodGet, base+"/history", "", nil)
	if history.status != http.StatusOK {
		t.Fatalf("GET history: %d, want 200; body: %s", history.status, history.body)
	}
	h := decodeJSON[historyResponse](t, history)
	if len(h.History) != 1 {
		t.Fatalf("history has %d entries, want 1: %s", len(h.History), history.body)
	}
	if got := h.History[0]; h.ID != n.ID || got.Event != "NotificationQueued" || got.Status != "pending" ||
		got.Version != 1 || got.Position <= 0 || !got.At.Equal(n.CreatedAt) {
		t.Errorf("history = %s, want one NotificationQueued entry, pending, v1, at %v", history.body, n.CreatedAt)
	}

	evs := api.do(t, http.MethodGet, base+"/events", "", nil)
	if evs.status != http.StatusOK {
		t.Fatalf("GET events: %d, want 200; body: %s", evs.status, evs.body)
	}
	e := decodeJSON[eventsResponse](t, evs)
	if len(e.Events) != 1 {
		t.Fatalf("events has %d entries, want 1: %s", len(e.Events), evs.body)
	}
	ev := e.Events[0]
	if ev.Type != "NotificationQueued" || ev.Version != 1 || ev.Position != h.History[0].Position ||
		!ev.Time.Equal(n.CreatedAt) || ev.Metadata.CorrelationID != corr || ev.Metadata.Actor != "api" {
		t.Errorf("event = %+v, want NotificationQueued v1 at position %d, time %v, correlation %q, actor api",
			ev, h.History[0].Position, n.CreatedAt, corr)
	}
	if _, err := uuid.Parse(ev.ID); err != nil {
		t.Errorf("event id %q is not a UUID", ev.ID)
	}
	dec := json.NewDecoder(strings.NewReader(string(ev.Data)))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		t.Fatalf("event data: %v", err)
	}
	wantData := map[string]any{
		"channel":   "email",
		"recipient": "ada@example.com",
		"content":   "Hello {{.name}}!",
		"variables": map[string]any{
			"name":  "Ada",
			"order": map[string]any{"total": json.Number("12345678901234567890"), "items": []any{json.Number("1"), json.Number("2.5")}},
		},
		"rendered_subject": "Notification",
		"body":             "Hello Ada!",
	}
	if diff := cmp.Diff(wantData, data); diff != "" {
		t.Errorf("event data (-want +got):\n%s", diff)
	}

	// After the projections have applied the stream, the answers come from the read models
	// and say the same.
	project(t, api.pool, n.ID)
	if got := countRows(t, api.pool, "notification_status"); got != 1 {
		t.Fatalf("notification_status has %d rows after projecting, want 1", got)
	}
	for _, tc := range []struct {
		path   string
		before response
	}{{base + "/status", status}, {base + "/history", history}} {
		after := api.do(t, http.MethodGet, tc.path, "", nil)
		if after.status != http.StatusOK {
			t.Fatalf("GET %s after projecting: %d; body: %s", tc.path, after.status, after.body)
		}
		if diff := cmp.Diff(asMap(t, tc.before), asMap(t, after)); diff != "" {
			t.Errorf("GET %s from the log and from the projection differ (-log +projection):\n%s", tc.path, diff)
		}
	}

	// A read model is what the status endpoint now serves: mark its row and see the mark.
	if _, err := api.pool.Exec(t.Context(),
		`UPDATE notification_status SET attempts = 9 WHERE notification_id = $1`, n.ID); err != nil {
		t.Fatal(err)
	}
	if got := decodeJSON[notificationResponse](t, api.do(t, http.MethodGet, base+"/status", "", nil)); got.Attempts != 9 {
		t.Errorf("GET status after projecting shows attempts %d, want the projection's 9", got.Attempts)
	}
}

func TestRejectedSendWritesNothing(t *testing.T) {
	api := newTestAPI(t)
	email := func(fields string) string {
		return `{"type":"email","recipient":"ada@example.com",` + fields + `}`
	}
	tests := []struct {
		name        string
		contentType string // "" means application/json
		body        string
		wantStatus  int
		wantCode    string
		wantFields  []string
	}{
		{name: "malformed JSON", body: `{"type":"email",`, wantStatus: 400, wantCode: "malformed_json"},
		{name: "unknown field", body: email(`"content":"Hi","cc":"b@example.com"`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"cc"}},
		{name: "unknown type", body: `{"type":"fax","recipient":"+14155550123","content":"Hi"}`, wantStatus: 422, wantCode: "invalid", wantFields: []string{"type"}},
		{name: "invalid email", body: `{"type":"email","recipient":"not-an-email","content":"Hi"}`, wantStatus: 422, wantCode: "invalid", wantFields: []string{"recipient"}},
		{
			name: "email header injection", body: `{"type":"email","recipient":"a@example.com\r\nBcc: x@example.com","content":"Hi"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"recipient"},
		},
		{name: "two email recipients", body: `{"type":"email","recipient":"a@example.com, b@example.com","content":"Hi"}`, wantStatus: 422, wantCode: "invalid", wantFields: []string{"recipient"}},
		{name: "SMS not E.164", body: `{"type":"sms","recipient":"0044 20 7183","content":"Hi"}`, wantStatus: 422, wantCode: "invalid", wantFields: []string{"recipient"}},
		{name: "empty content", body: email(`"content":""`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"}},
		{name: "blank content", body: email(`"content":"  \n "`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"}},
		{name: "content that does not parse", body: email(`"content":"Hello {{.name","variables":{"name":"Ada"}`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"}},
		{name: "missing variable", body: email(`"content":"Hi {{.who}}"`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"variables.who"}},
		{name: "subject on SMS", body: `{"type":"sms","recipient":"+14155550123","subject":"Hi","content":"Hi"}`, wantStatus: 422, wantCode: "invalid", wantFields: []string{"subject"}},
		{name: "subject with a newline", body: email(`"subject":"Hi\nBcc: x@example.com","content":"Hi"`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"subject"}},
		{
			name: "subject rendering a newline", body: email(`"subject":"Hi {{.name}}","content":"Hi","variables":{"name":"Ada\r\nBcc: x@example.com"}`),
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"subject"},
		},
		{
			name: "SMS body over 1600 characters", body: `{"type":"sms","recipient":"+14155550123","content":"` + strings.Repeat("x", 1601) + `"}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"},
		},
		{
			name: "SMS rendering over 1600 characters", body: `{"type":"sms","recipient":"+14155550123","content":"{{.a}}{{.a}}","variables":{"a":"` + strings.Repeat("y", 801) + `"}}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"},
		},
		{
			name: "several problems at once", body: `{"type":"sms","recipient":"12345","subject":"Hi","content":""}`,
			wantStatus: 422, wantCode: "invalid", wantFields: []string{"content", "recipient", "subject"},
		},
		{
			name: "body over the limit", body: email(`"content":"` + strings.Repeat("z", apiMaxBody) + `"`),
			wantStatus: 413, wantCode: "too_large",
		},
		{name: "wrong Content-Type", contentType: "text/plain", body: email(`"content":"Hi"`), wantStatus: 415, wantCode: "unsupported_media_type"},
		// PostgreSQL's jsonb cannot hold the character U+0000: such input must be refused as
		// invalid, not fail the write.
		{name: "NUL in content", body: email(`"content":"Hi\u0000there"`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"content"}},
		{name: "NUL in an unused variable", body: email(`"content":"Hi","variables":{"x":"a\u0000b"}`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"variables.x"}},
		{name: "NUL in subject", body: email(`"subject":"Hi\u0000","content":"Hi"`), wantStatus: 422, wantCode: "invalid", wantFields: []string{"subject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			r := api.do(t, http.MethodPost, "/api/v1/notifications/send", tt.body, http.Header{"Content-Type": {ct}})
			if r.status != tt.wantStatus {
				t.Errorf("status = %d, want %d; body: %s", r.status, tt.wantStatus, r.body)
			}
			e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
			if e.Error.Code != tt.wantCode {
				t.Errorf("error.code = %q, want %q", e.Error.Code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantFields, sortedKeys(e.Error.Fields), cmpEmptyNil); diff != "" {
				t.Errorf("error.fields (-want +got):\n%s\nbody: %s", diff, r.body)
			}
			for _, table := range []string{"event_log", "outbox"} {
				if n := countRows(t, api.pool, table); n != 0 {
					t.Errorf("%s has %d rows after a rejected request, want 0", table, n)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	api := newTestAPI(t)
	// A notification exists, so that "not found" cannot mean "nothing works".
	n, _ := api.send(t, `{"type":"sms","recipient":"+14155550123","content":"Hi"}`, nil)
	unknown := uuid.Must(uuid.NewV7()).String()
	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     string
	}{
		{http.MethodGet, "/api/v1/notifications/" + unknown + "/status", 404, "not_found"},
		{http.MethodGet, "/api/v1/notifications/" + unknown + "/history", 404, "not_found"},
		{http.MethodGet, "/api/v1/notifications/" + unknown + "/events", 404, "not_found"},
		{http.MethodGet, "/api/v1/notifications/abc/status", 404, "not_found"},
		{http.MethodGet, "/api/v1/notifications/abc/history", 404, "not_found"},
		{http.MethodGet, "/api/v1/notifications/abc/events", 404, "not_found"},
		{http.MethodGet, "/api/v1/notifications/" + strings.ReplaceAll(n.ID, "-", "") + "/status", 404, "not_found"},
		{http.MethodGet, "/api/v1/notifications/" + n.ID, 404, "route_not_found"},
		{http.MethodGet, "/api/v1/nope", 404, "route_not_found"},
		{http.MethodGet, "/", 404, "route_not_found"},
		{http.MethodGet, "/api/v1/notifications/send", 405, "method_not_allowed"},
		{http.MethodDelete, "/api/v1/notifications/" + n.ID + "/status", 405, "method_not_allowed"},
		{http.MethodPost, "/healthz", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := api.do(t, tt.method, tt.path, "", nil)
			if r.status != tt.wantStatus {
				t.Errorf("status = %d, want %d; body: %s", r.status, tt.wantStatus, r.body)
			}
			e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
			if e.Error.Code != tt.wantCode {
				t.Errorf("error.code = %q, want %q", e.Error.Code, tt.wantCode)
			}
			if r.header.Get("X-Correlation-ID") == "" {
				t.Error("error answer has no X-Correlation-ID")
			}
		})
	}
	// The notification that exists is found, by the same routes.
	for _, what := range []string{"status", "history", "events"} {
		if r := api.do(t, http.MethodGet, "/api/v1/notifications/"+n.ID+"/"+what, "", nil); r.status != http.StatusOK {
			t.Errorf("GET %s of an existing notification: %d; body: %s", what, r.status, r.body)
		}
	}
}

// TestMethodNotAllowedSaysWhatIs checks the Allow header HTTP requires on a 405.
func TestMethodNotAllowedSaysWhatIs(t *testing.T) {
	srv := heraldhttp.NewServer(heraldhttp.Config{}, &fakeAcceptor{}, emptyReader{}, nil, testLogger(t))
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/notifications/send", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status = %d, want 405", rec.Code)
	}
	if got := rec.Header().Values("Allow"); !slices.Contains(got, http.MethodPost) {
		t.Errorf("Allow = %q, want it to list POST (RFC 9110 §15.5.6)", got)
	}
}

type listResponse struct {
	Notifications []notificationResponse `json:"notifications"`
	NextCursor    string                 `json:"next_cursor"`
	Next          string                 `json:"next"`
}

// listAll follows a listing from query to its last page and returns the ids in order and the
// size of every page.
func (a *testAPI) listAll(t *testing.T, query url.Values) ([]string, []int) {
	t.Helper()
	var (
		ids   []string
		sizes []int
	)
	path := "/api/v1/notifications?" + query.Encode()
	for page := 0; ; page++ {
		if page > 20 {
			t.Fatalf("listing %s does not end", query.Encode())
		}
		r := a.do(t, http.MethodGet, path, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d; body: %s", path, r.status, r.body)
		}
		l := decodeJSON[listResponse](t, r)
		sizes = append(sizes, len(l.Notifications))
		for _, n := range l.Notifications {
			ids = append(ids, n.ID)
		}
		if l.NextCursor == "" {
			if l.Next != "" {
				t.Errorf("last page of %s has next %q without next_cursor", query.Encode(), l.Next)
			}
			return ids, sizes
		}
		next, err := url.Parse(l.Next)
		if err != nil {
			t.Fatalf("next %q: %v", l.Next, err)
		}
		if got := next.Query().Get("cursor"); got != l.NextCursor {
			t.Errorf("next %q carries cursor %q, want next_cursor %q", l.Next, got, l.NextCursor)
		}
		for name := range query {
			if name != "cursor" && next.Query().Get(name) != query.Get(name) {
				t.Errorf("next %q lost %s=%s", l.Next, name, query.Get(name))
			}
		}
		path = l.Next
	}
}

func TestList(t *testing.T) {
	api := newTestAPI(t)
	types := []string{"email", "sms", "sms", "email", "sms", "email", "sms"}
	var sent []notificationResponse
	for i, typ := range types {
		recipient := "user@example.com"
		if typ == "sms" {
			recipient = "+1415555012" + string(rune('0'+i))
		}
		n, _ := api.send(t, `{"type":"`+typ+`","recipient":"`+recipient+`","content":"Message"}`, nil)
		sent = append(sent, n)
	}
	// Not projected yet: the listing serves only the read model.
	if ids, _ := api.listAll(t, url.Values{}); len(ids) != 0 {
		t.Errorf("listing before projecting = %v, want none", ids)
	}
	ids := make([]string, len(sent))
	for i, n := range sent {
		ids[i] = n.ID
	}
	project(t, api.pool, ids...)

	// One notification moves on to processing.
	processing := sent[4].ID
	if _, err := events.NewLog(api.pool).Append(t.Context(), processing, 1, events.Metadata{Actor: "test"},
		&events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	project(t, api.pool, processing)

	newestFirst := func(keep func(i int) bool) []string {
		var out []string
		for i := len(sent) - 1; i >= 0; i-- {
			if keep(i) {
				out = append(out, sent[i].ID)
			}
		}
		return out
	}
	tests := []struct {
		name      string
		query     url.Values
		want      []string
		wantPages []int
	}{
		{
			name:  "all, default page",
			query: url.Values{},
			want:  newestFirst(func(int) bool { return true }), wantPages: []int{7},
		},
		{
			name:  "all, pages of 3",
			query: url.Values{"limit": {"3"}},
			want:  newestFirst(func(int) bool { return true }), wantPages: []int{3, 3, 1},
		},
		{
			name:  "pages of 7 end without an empty page",
			query: url.Values{"limit": {"7"}},
			want:  newestFirst(func(int) bool { return true }), wantPages: []int{7},
		},
		{
			name:  "sms",
			query: url.Values{"type": {"sms"}, "limit": {"3"}},
			want:  newestFirst(func(i int) bool { return types[i] == "sms" }), wantPages: []int{3, 1},
		},
		{
			name:  "email",
			query: url.Values{"type": {"email"}},
			want:  newestFirst(func(i int) bool { return types[i] == "email" }), wantPages: []int{3},
		},
		{
			name:  "pending",
			query: url.Values{"status": {"pending"}, "limit": {"4"}},
			want:  newestFirst(func(i int) bool { return sent[i].ID != processing }), wantPages: []int{4, 2},
		},
		{
			name:  "processing",
			query: url.Values{"status": {"processing"}},
			want:  []string{processing}, wantPages: []int{1},
		},
		{
			name:  "pending sms, pages of 2",
			query: url.Values{"status": {"pending"}, "type": {"sms"}, "limit": {"2"}},
			want:  newestFirst(func(i int) bool { return types[i] == "sms" && sent[i].ID != processing }), wantPages: []int{2, 1},
		},
		{
			name:  "sent",
			query: url.Values{"status": {"sent"}},
			want:  nil, wantPages: []int{0},
		},
		{
			name:  "by recipient",
			query: url.Values{"recipient": {"user@example.com"}, "limit": {"2"}},
			want:  newestFirst(func(i int) bool { return types[i] == "email" }), wantPages: []int{2, 1},
		},
		{
			name:  "accepted since an hour ago, until in a minute",
			query: url.Values{"created_from": {time.Now().Add(-time.Hour).Format(time.RFC3339)}, "created_before": {time.Now().Add(time.Minute).Format(time.RFC3339)}},
			want:  newestFirst(func(int) bool { return true }), wantPages: []int{7},
		},
		{
			name:  "accepted before an hour ago",
			query: url.Values{"created_before": {time.Now().Add(-time.Hour).Format(time.RFC3339)}},
			want:  nil, wantPages: []int{0},
		},
		{
			name:  "accepted from the last one on",
			query: url.Values{"created_from": {sent[len(sent)-1].CreatedAt.Format(time.RFC3339Nano)}},
			want:  []string{sent[len(sent)-1].ID}, wantPages: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := api.listAll(t, tt.query)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ids, newest first (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPages, pages); diff != "" {
				t.Errorf("page sizes (-want +got):\n%s", diff)
			}
		})
	}

	// The listing shows each notification as its status does.
	r := api.do(t, http.MethodGet, "/api/v1/notifications?status=processing", "", nil)
	listed := decodeJSON[struct {
		Notifications []map[string]any `json:"notifications"`
	}](t, r).Notifications
	status := asMap(t, api.do(t, http.MethodGet, "/api/v1/notifications/"+processing+"/status", "", nil))
	if len(listed) != 1 {
		t.Fatalf("status=processing listed %d notifications, want 1", len(listed))
	}
	if diff := cmp.Diff(status, listed[0]); diff != "" {
		t.Errorf("listed notification and its status differ (-status +listed):\n%s", diff)
	}
}

func TestListRejectsBadParameters(t *testing.T) {
	api := newTestAPI(t)
	tests := []struct {
		query      string
		wantFields []string
	}{
		{"limit=0", []string{"limit"}},
		{"limit=-1", []string{"limit"}},
		{"limit=abc", []string{"limit"}},
		{"limit=501", []string{"limit"}},
		{"status=bogus", []string{"status"}},
		{"type=fax", []string{"type"}},
		{"cursor=garbage", []string{"cursor"}},
		{"cursor=" + url.QueryEscape("bm90LWEtY3Vyc29y"), []string{"cursor"}},
		{"sort=created_at", []string{"sort"}},
		{"limit=abc&status=bogus&type=fax&page=2", []string{"limit", "page", "status", "type"}},
		{"created_from=yesterday", []string{"created_from"}},
		{"created_before=2026-11-28", []string{"created_before"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := api.do(t, http.MethodGet, "/api/v1/notifications?"+tt.query, "", nil)
			if r.status != http.StatusUnprocessableEntity {
				t.Errorf("status = %d, want 422; body: %s", r.status, r.body)
			}
			e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
			if e.Error.Code != "invalid" {
				t.Errorf("error.code = %q, want invalid", e.Error.Code)
			}
			if diff := cmp.Diff(tt.wantFields, sortedKeys(e.Error.Fields)); diff != "" {
				t.Errorf("error.fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	api := newTestAPI(t)
	r := api.do(t, http.MethodGet, "/healthz", "", nil)
	if r.status != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200; body: %s", r.status, r.body)
	}
	r = api.do(t, http.MethodGet, "/readyz", "", nil)
	if r.status != http.StatusOK {
		t.Errorf("GET /readyz over a live database: %d, want 200; body: %s", r.status, r.body)
	}
	want := map[string]any{"status": "ready", "checks": map[string]any{"postgres": "ok"}}
	if diff := cmp.Diff(want, asMap(t, r)); diff != "" {
		t.Errorf("GET /readyz (-want +got):\n%s", diff)
	}
}

func TestReadiness(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial tcp 127.0.0.1:5672: connection refused") }
	hung := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name       string
		checks     []heraldhttp.Check
		wantStatus int
		want       map[string]any
	}{
		{
			name:       "no checks",
			wantStatus: 200,
			want:       map[string]any{"status": "ready", "checks": map[string]any{}},
		},
		{
			name:       "all ready",
			checks:     []heraldhttp.Check{{Name: "postgres", Ready: ok}, {Name: "rabbitmq", Ready: ok}},
			wantStatus: 200,
			want:       map[string]any{"status": "ready", "checks": map[string]any{"postgres": "ok", "rabbitmq": "ok"}},
		},
		{
			name:       "one down",
			checks:     []heraldhttp.Check{{Name: "postgres", Ready: ok}, {Name: "rabbitmq", Ready: down}},
			wantStatus: 503,
			want: map[string]any{"status": "not_ready", "checks": map[string]any{
				"postgres": "ok", "rabbitmq": "dial tcp 127.0.0.1:5672: connection refused"}},
		},
		{
			name:       "one hung",
			checks:     []heraldhttp.Check{{Name: "postgres", Ready: hung}, {Name: "rabbitmq", Ready: ok}},
			wantStatus: 503,
			want: map[string]any{"status": "not_ready", "checks": map[string]any{
				"postgres": context.DeadlineExceeded.Error(), "rabbitmq": "ok"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Without an acceptor and a reader the server is a worker's: health only.
			srv := heraldhttp.NewServer(heraldhttp.Config{}, nil, nil, tt.checks, slog.New(slog.NewTextHandler(io.Discard, nil)))
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			r := doRequest(t, ts.URL, http.MethodGet, "/readyz", "", nil)
			if r.status != tt.wantStatus {
				t.Errorf("status = %d, want %d; body: %s", r.status, tt.wantStatus, r.body)
			}
			if diff := cmp.Diff(tt.want, asMap(t, r)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if r := doRequest(t, ts.URL, http.MethodGet, "/healthz", "", nil); r.status != http.StatusOK {
				t.Errorf("GET /healthz: %d, want 200", r.status)
			}
			if r := doRequest(t, ts.URL, http.MethodPost, "/api/v1/notifications/send", `{}`, jsonHeader()); r.status != http.StatusNotFound {
				t.Errorf("POST send on a health-only server: %d, want 404", r.status)
			}
		})
	}
}

// A dependency's error may quote its connection string; /readyz, which anyone may ask, must
// not pass its password on.
func TestReadinessMasksSecrets(t *testing.T) {
	const token = "Pl4nted-token-9f3a"
	checks := []heraldhttp.Check{
		{Name: "postgres", Ready: func(context.Context) error {
			return errors.New(`cannot parse "postgres://herald:Pl4nted-pg-pass@db:bad/herald"`)
		}},
		{Name: "gateway", Ready: func(context.Context) error { return errors.New("refused token " + token) }},
	}
	srv := heraldhttp.NewServer(heraldhttp.Config{Secrets: redact.New(token)}, nil, nil, checks, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	r := doRequest(t, ts.URL, http.MethodGet, "/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503; body: %s", r.status, r.body)
	}
	want := map[string]any{"status": "not_ready", "checks": map[string]any{
		"postgres": `cannot parse "postgres://herald:xxxxx@db:bad/herald"`,
		"gateway":  "refused token xxxxx",
	}}
	if diff := cmp.Diff(want, asMap(t, r)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

// TestListPagesThroughTies checks that notifications created in the same microsecond are
// neither skipped nor repeated across pages.
func TestListPagesThroughTies(t *testing.T) {
	api := newTestAPI(t)
	tie := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	created := []time.Time{tie.Add(time.Second), tie, tie, tie, tie, tie, tie.Add(-time.Second)}
	var want []string // newest first: created_at, then id, descending
	ids := make([]string, len(created))
	for i := range created {
		ids[i] = uuid.NewString()
	}
	for i, at := range created {
		if _, err := api.pool.Exec(t.Context(), `
INSERT INTO notification_status (notification_id, channel, recipient, status, version, position, created_at, updated_at)
VALUES ($1, 'sms', '+14155550123', 'pending', 1, $2, $3, $3)`, ids[i], i+1, at); err != nil {
			t.Fatal(err)
		}
	}
	tied := slices.Clone(ids[1:6])
	slices.Sort(tied)
	slices.Reverse(tied)
	want = append(append(append(want, ids[0]), tied...), ids[6])

	for _, limit := range []string{"1", "2", "3", "5"} {
		got, _ := api.listAll(t, url.Values{"limit": {limit}})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("limit=%s: ids (-want +got):\n%s", limit, diff)
		}
	}
}

// TestSendOutlivesItsRequest hands the server a request whose client has already gone: the
// acceptor's transaction is detached from the request, so the notification is still recorded
// whole, event and command.
func TestSendOutlivesItsRequest(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := sendRequest(t, "application/json", `{"type":"sms","recipient":"+14155550123","content":"Hi"}`).WithContext(ctx)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, r)

	if rec.Code != http.StatusAccepted {
		t.Errorf("status = %d, want 202: the acceptor's write does not depend on the client; body: %s", rec.Code, rec.Body)
	}
	queued, commanded := countRows(t, db.Pool, "event_log"), countRows(t, db.Pool, "outbox")
	if queued != 1 || commanded != 1 {
		t.Errorf("after a cancelled request: %d events and %d commands, want 1 of each", queued, commanded)
	}
}

// TestConcurrentSends checks that simultaneous requests each record their own notification.
func TestConcurrentSends(t *testing.T) {
	api := newTestAPI(t)
	const n = 24
	type result struct {
		status int
		id     string
		err    error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			body := `{"type":"email","recipient":"user` + string(rune('a'+i)) + `@example.com","content":"Hi"}`
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, api.url+"/api/v1/notifications/send", strings.NewReader(body))
			if err != nil {
				results <- result{err: err}
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			var got notificationResponse
			err = json.NewDecoder(resp.Body).Decode(&got)
			results <- result{status: resp.StatusCode, id: got.ID, err: err}
		}()
	}
	seen := map[string]bool{}
	for range n {
		r := <-results
		if r.err != nil || r.status != http.StatusAccepted {
			t.Errorf("POST send: status %d, error %v", r.status, r.err)
			continue
		}
		if seen[r.id] {
			t.Errorf("id %s handed out twice", r.id)
		}
		seen[r.id] = true
	}
	if got := countRows(t, api.pool, "event_log"); got != len(seen) {
		t.Errorf("event_log has %d rows for %d accepted notifications", got, len(seen))
	}
	cmds := outboxCommands(t, api.pool)
	commanded := map[string]int{}
	for _, c := range cmds {
		id, _ := c.Command["notification_id"].(string)
		commanded[id]++
	}
	for id := range seen {
		if commanded[id] != 1 {
			t.Errorf("%s has %d commands in the outbox, want 1", id, commanded[id])
		}
	}
	if len(cmds) != len(seen) {
		t.Errorf("outbox has %d rows for %d accepted notifications", len(cmds), len(seen))
	}
}
