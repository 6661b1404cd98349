package http_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// The operator's endpoints run against the real operator and event log; only the poison queue
// is in memory (router's tests run the real one).

// memoryParked is a poison queue in memory.
type memoryParked struct {
	mu   sync.Mutex
	msgs []handlers.ParkedMessage
	// walkTime is how long a walk takes, as one deep in a large queue does.
	walkTime time.Duration
}

func (q *memoryParked) List(context.Context) ([]handlers.ParkedMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.msgs), nil
}

func (q *memoryParked) Walk(ctx context.Context, fn func(handlers.ParkedMessage) bool) error {
	time.Sleep(q.walkTime)
	msgs, _ := q.List(ctx)
	for _, m := range msgs {
		if !fn(m) {
			return nil
		}
	}
	return nil
}

func (q *memoryParked) Remove(_ context.Context, keys []handlers.ParkedKey) (map[string]int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	removed := map[string]int{}
	q.msgs = slices.DeleteFunc(q.msgs, func(m handlers.ParkedMessage) bool {
		hit := slices.Contains(keys, handlers.ParkedKey{NotificationID: m.NotificationID, MessageID: m.MessageID}) ||
			slices.Contains(keys, handlers.ParkedKey{NotificationID: m.NotificationID})
		if hit && m.NotificationID != "" {
			removed[m.NotificationID]++
			return true
		}
		return false
	})
	return removed, nil
}

func (q *memoryParked) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

type poisonAPI struct {
	url    string
	log    *events.Log
	parked *memoryParked
}

func newPoisonAPI(t *testing.T) *poisonAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	parked := &memoryParked{}
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: 1 << 10},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log),
		nil, testLogger(t),
	).WithOperator(handlers.NewOperator(db.Pool, log, router.NewOutbox(nil), parked))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &poisonAPI{url: ts.URL, log: log, parked: parked}
}

var workerMD = events.Metadata{CorrelationID: "req-1", CausationID: "cmd-1", Actor: "worker:w1"}

// notification records a notification on channel c whose story is evs after being queued, and
// parks a message for it when parked is set.
func (a *poisonAPI) notification(t *testing.T, c herald.Channel, recipient string, parked bool, evs ...events.Event) string {
	t.Helper()
	id := uuid.NewString()
	q := &events.NotificationQueued{Channel: c, Recipient: recipient, Content: "hi", Body: "hi"}
	if _, err := a.log.Append(context.Background(), id, 0, events.Metadata{CorrelationID: "req-1", Actor: "api"}, q); err != nil {
		t.Fatal(err)
	}
	if _, err := a.log.Append(context.Background(), id, 1, workerMD, evs...); err != nil {
		t.Fatal(err)
	}
	if parked {
		a.parked.mu.Lock()
		a.parked.msgs = append(a.parked.msgs, handlers.ParkedMessage{NotificationID: id, Channel: c, MessageID: "m-" + id})
		a.parked.mu.Unlock()
	}
	return id
}

var (
	failedTwice = []events.Event{
		&events.NotificationProcessing{Attempt: 1},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "p", Error: "503"},
		&events.NotificationProcessing{Attempt: 2},
		&events.NotificationFailed{Attempt: 2, Provider: "p", Error: "503 again", Reason: events.ReasonAttemptsExhausted},
	}
	sentOnce = []events.Event{
		&events.NotificationProcessing{Attempt: 1},
		&events.NotificationSent{Attempt: 1, Provider: "p"},
	}
)

type parkedResponse struct {
	Parked []struct {
		ID        string     `json:"id"`
		Type      string     `json:"type"`
		Recipient string     `json:"recipient"`
		Status    string     `json:"status"`
		Reason    string     `json:"reason"`
		Error     string     `json:"error"`
		Attempts  int        `json:"attempts"`
		FailedAt  *time.Time `json:"failed_at"`
		Stale     bool       `json:"stale"`
		MessageID string     `json:"message_id"`
	} `json:"parked"`
}

type actionResponse struct {
	ID      string `json:"id"`
	Action  string `json:"action"`
	Status  string `json:"status"`
	Version int64  `json:"version"`
	Removed int    `json:"removed"`
}

func TestListParked(t *testing.T) {
	api := newPoisonAPI(t)
	sms := api.notification(t, herald.ChannelSMS, "+14155550123", true, failedTwice...)
	email := api.notification(t, herald.ChannelEmail, "ada@example.com", true, failedTwice...)
	recs, err := api.log.Load(context.Background(), sms)
	if err != nil {
		t.Fatal(err)
	}
	failedAt := recs[len(recs)-1].Time

	// The channel filter is "type", as everywhere else; "channel", its deprecated name, still works.
	r := doRequest(t, api.url, http.MethodGet, "/api/v1/poison?type=sms", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /api/v1/poison?type=sms: %d %s", r.status, r.body)
	}
	if old := doRequest(t, api.url, http.MethodGet, "/api/v1/poison?channel=sms", "", nil); old.status != http.StatusOK || string(old.body) != string(r.body) {
		t.Errorf("GET /api/v1/poison?channel=sms: %d %s, want what ?type=sms answers: %s", old.status, old.body, r.body)
	}
	got := decodeJSON[parkedResponse](t, r)
	if len(got.Parked) != 1 {
		t.Fatalf("listed %d parked, want the SMS only: %s", len(got.Parked), r.body)
	}
	p := got.Parked[0]
	if p.ID != sms || p.Type != "sms" || p.Recipient != "+14155550123" || p.Status != "failed" || p.Reason != events.ReasonAttemptsExhausted ||
		p.Error != "503 again" || p.Attempts != 2 || p.FailedAt == nil || !p.FailedAt.Equal(failedAt) || p.Stale || p.MessageID != "m-"+sms {
		t.Errorf("parked SMS = %+v; want it failed after 2 attempts at %s, attempts_exhausted, its error and message id", p, failedAt)
	}

	r = doRequest(t, api.url, http.MethodGet, "/api/v1/poison", "", nil)
	var ids []string
	for _, p := range decodeJSON[parkedResponse](t, r).Parked {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{sms, email}) {
		t.Errorf("GET /api/v1/poison listed %v, want %v (in queue order)", ids, []string{sms, email})
	}

	for query, field := range map[string]string{
		"?channel=fax": "channel", "?type=fax": "type", "?type=sms&channel=email": "channel", "?status=failed": "status", "?limit=0": "limit", "?limit=501": "limit", "?limit=x": "limit",
		"?cursor=nonsense": "cursor",
	} {
		r := doRequest(t, api.url, http.MethodGet, "/api/v1/poison"+query, "", nil)
		e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
		if r.status != http.StatusUnprocessableEntity || e.Error.Fields[field] == "" {
			t.Errorf("GET /api/v1/poison%s: %d %s, want 422 naming %s", query, r.status, r.body, field)
		}
	}
}

// GET /api/v1/poison answers a page at a time, in queue order, with the cursor and the path of
// the next page; following them visits every parked message once.
func TestListParkedPages(t *testing.T) {
	api := newPoisonAPI(t)
	var want []string
	for i := range 7 {
		c := herald.ChannelEmail
		if i%2 == 1 {
			c = herald.ChannelSMS
		}
		want = append(want, api.notification(t, c, "+14155550123", true, failedTwice...))
	}
	type pageResponse struct {
		Parked []struct {
			ID string `json:"id"`
		} `json:"parked"`
		NextCursor string `json:"next_cursor"`
		Next       string `json:"next"`
	}

	var got []string
	var sizes []int
	path := "/api/v1/poison?limit=3"
	for path != "" {
		r := doRequest(t, api.url, http.MethodGet, path, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		page := decodeJSON[pageResponse](t, r)
		sizes = append(sizes, len(page.Parked))
		for _, p := range page.Parked {
			got = append(got, p.ID)
		}
		if (page.Next == "") != (page.NextCursor == "") || (page.Next != "" && !strings.Contains(page.Next, "cursor="+page.NextCursor)) {
			t.Fatalf("GET %s: next %q does not carry next_cursor %q", path, page.Next, page.NextCursor)
		}
		path = page.Next
		if len(sizes) > 5 {
			t.Fatalf("more than 5 pages of 3 for 7 messages: %v", sizes)
		}
	}
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("pages of 3 gave %v in pages of %v; want %v in pages of [3 3 1]", got, sizes, want)
	}

	// Without a limit, a page holds up to 50.
	r := doRequest(t, api.url, http.MethodGet, "/api/v1/poison?channel=sms", "", nil)
	if page := decodeJSON[pageResponse](t, r); len(page.Parked) != 3 || page.NextCursor != "" {
		t.Errorf("GET /api/v1/poison?channel=sms: %s; want the 3 SMS and no next page", r.body)
	}
}

// A page deep in a large queue takes longer than the server's write timeout allows the rest of
// the API; it is answered all the same.
func TestSlowPoisonPageOutlivesWriteTimeout(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	parked := &memoryParked{walkTime: 600 * time.Millisecond}
	parked.msgs = append(parked.msgs, handlers.ParkedMessage{NotificationID: uuid.NewString(), Channel: herald.ChannelSMS, MessageID: "m-1"})
	srv := heraldhttp.NewServer(
		heraldhttp.Config{MaxBodyBytes: 1 << 10},
		handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log),
		nil, testLogger(t),
	).WithOperator(handlers.NewOperator(db.Pool, log, router.NewOutbox(nil), parked))
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.WriteTimeout = 200 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)

	resp, err := http.Get(ts.URL + "/api/v1/poison")
	if err != nil {
		t.Fatalf("GET /api/v1/poison with a walk slower than the write timeout: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"m-1"`) {
		t.Errorf("GET /api/v1/poison: %d %s (%v); want 200 with the parked message", resp.StatusCode, body, err)
	}
}

func TestRequeueAndDiscardEndpoints(t *testing.T) {
	api := newPoisonAPI(t)
	toRequeue := api.notification(t, herald.ChannelSMS, "+14155550123", true, failedTwice...)
	toDiscard := api.notification(t, herald.ChannelEmail, "ada@example.com", true, failedTwice...)
	sent := api.notification(t, herald.ChannelEmail, "bob@example.com", false, sentOnce...)

	r := doRequest(t, api.url, http.MethodPost, "/api/v1/poison/"+strings.ToUpper(toRequeue)+"/requeue",
		`{"actor":"alice","reason":"gateway fixed"}`, jsonHeader())
	if r.status != http.StatusOK {
		t.Fatalf("requeue: %d %s", r.status, r.body)
	}
	want := actionResponse{ID: toRequeue, Action: "requeued", Status: "pending", Version: 6, Removed: 1}
	if diff := cmp.Diff(want, decodeJSON[actionResponse](t, r)); diff != "" {
		t.Errorf("requeue answer (-want +got):\n%s", diff)
	}
	last := lastEvent(t, api.log, toRequeue)
	if e, ok := last.event.(*events.NotificationRequeued); !ok || e.Actor != "alice" || e.Reason != "gateway fixed" || e.Attempts != 2 ||
		last.md.Actor != "alice" || last.md.CausationID != r.header.Get("X-Correlation-ID") || last.md.CorrelationID != "req-1" {
		t.Errorf("last event %T %+v with %+v; want NotificationRequeued by alice, caused by the request", last.event, last.event, last.md)
	}

	// A discard needs a reason; without one nothing happens.
	r = doRequest(t, api.url, http.MethodPost, "/api/v1/poison/"+toDiscard+"/discard", `{"actor":"bob"}`, jsonHeader())
	e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
	if r.status != http.StatusUnprocessableEntity || e.Error.Code != herald.EINVALID || e.Error.Fields["reason"] == "" {
		t.Errorf("discard without a reason: %d %s, want 422 naming reason", r.status, r.body)
	}
	if api.parked.count() != 1 {
		t.Errorf("%d messages parked after a refused discard, want 1", api.parked.count())
	}

	// No actor: "api".
	r = doRequest(t, api.url, http.MethodPost, "/api/v1/poison/"+toDiscard+"/discard", `{"reason":"mailbox closed"}`, nil)
	if r.status != http.StatusOK {
		t.Fatalf("discard: %d %s", r.status, r.body)
	}
	want = actionResponse{ID: toDiscard, Action: "discarded", Status: "failed", Version: 6, Removed: 1}
	if diff := cmp.Diff(want, decodeJSON[actionResponse](t, r)); diff != "" {
		t.Errorf("discard answer (-want +got):\n%s", diff)
	}
	last = lastEvent(t, api.log, toDiscard)
	if e, ok := last.event.(*events.NotificationDiscarded); !ok || e.Actor != "api" || e.Reason != "mailbox closed" {
		t.Errorf("last event %T %+v; want NotificationDiscarded by api", last.event, last.event)
	}
	if api.parked.count() != 0 {
		t.Errorf("%d messages parked after requeue and discard, want none", api.parked.count())
	}

	tests := []struct {
		name, path, body, contentType string
		status                        int
		code                          string
	}{
		{"sent, not parked", "/api/v1/poison/" + sent + "/requeue", "", "", http.StatusConflict, herald.ECONFLICT},
		{"already discarded", "/api/v1/poison/" + toDiscard + "/discard", `{"reason":"again"}`, "", http.StatusConflict, herald.ECONFLICT},
		{"unknown", "/api/v1/poison/" + uuid.NewString() + "/requeue", "", "", http.StatusNotFound, herald.ENOTFOUND},
		{"not a uuid", "/api/v1/poison/nope/discard", `{"reason":"r"}`, "", http.StatusNotFound, herald.ENOTFOUND},
		{"unknown field", "/api/v1/poison/" + toRequeue + "/requeue", `{"Actor":"x"}`, "", http.StatusUnprocessableEntity, herald.EINVALID},
		{"not a string", "/api/v1/poison/" + toRequeue + "/requeue", `{"actor":1}`, "", http.StatusUnprocessableEntity, herald.EINVALID},
		{"twice", "/api/v1/poison/" + toRequeue + "/requeue", `{"actor":"a","actor":"b"}`, "", http.StatusUnprocessableEntity, herald.EINVALID},
		{"empty actor", "/api/v1/poison/" + toRequeue + "/requeue", `{"actor":""}`, "", http.StatusUnprocessableEntity, herald.EINVALID},
		{"not JSON", "/api/v1/poison/" + toRequeue + "/requeue", `{"actor":`, "", http.StatusBadRequest, "malformed_json"},
		{"not an object", "/api/v1/poison/" + toRequeue + "/requeue", `["a"]`, "", http.StatusBadRequest, "malformed_json"},
		{"text", "/api/v1/poison/" + toRequeue + "/requeue", `actor=a`, "text/plain", http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"too large", "/api/v1/poison/" + toRequeue + "/requeue", `{"reason":"` + strings.Repeat("x", 2<<10) + `"}`, "", http.StatusRequestEntityTooLarge, "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header http.Header
			if tt.contentType != "" {
				header = http.Header{"Content-Type": {tt.contentType}}
			}
			before := api.version(t, toRequeue)
			r := doRequest(t, api.url, http.MethodPost, tt.path, tt.body, header)
			e := decodeErrorBody(t, r.header.Get("Content-Type"), r.body)
			if r.status != tt.status || e.Error.Code != tt.code {
				t.Errorf("POST %s %s: %d %s, want %d with code %s", tt.path, tt.body, r.status, r.body, tt.status, tt.code)
			}
			if after := api.version(t, toRequeue); after != before {
				t.Errorf("a refused request moved %s from version %d to %d", toRequeue, before, after)
			}
		})
	}

	r = doRequest(t, api.url, http.MethodGet, "/api/v1/poison/"+toRequeue+"/requeue", "", nil)
	if r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET on requeue: %d, want 405", r.status)
	}
}

func TestPoisonEndpointsNeedAnOperator(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	srv := heraldhttp.NewServer(heraldhttp.Config{}, handlers.NewAcceptor(db.Pool, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(db.Pool, log), nil, testLogger(t))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	r := doRequest(t, ts.URL, http.MethodGet, "/api/v1/poison", "", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("GET /api/v1/poison without an operator: %d %s, want 404", r.status, r.body)
	}
}

type recordedEvent struct {
	event events.Event
	md    events.Metadata
}

func lastEvent(t *testing.T, log *events.Log, id string) recordedEvent {
	t.Helper()
	recs, err := log.Load(context.Background(), id)
	if err != nil || len(recs) == 0 {
		t.Fatalf("load %s: %d events, %v", id, len(recs), err)
	}
	r := recs[len(recs)-1]
	e, err := r.Event()
	if err != nil {
		t.Fatal(err)
	}
	return recordedEvent{event: e, md: r.Metadata}
}

func (a *poisonAPI) version(t *testing.T, id string) int64 {
	t.Helper()
	n, _, err := a.log.Notification(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return n.Version
}
