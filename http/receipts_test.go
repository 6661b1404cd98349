package http_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/receipts"
	"github.com/herald-notify/herald/receipts/receiptstest"
	"github.com/herald-notify/herald/router"
)

// The gateway reaches Herald at this public URL, through a proxy: the test server's own address
// is another, and the signature is over this one.
const (
	receiptsPublicURL = "https://herald.example.com"
	receiptsToken     = "gateway-auth-token-0123456789"
)

// receiptsAPI is Herald's API with the SMS receipts over a fresh database, connecting as the
// runtime role as the services do.
type receiptsAPI struct {
	url     string
	owner   *pgxpool.Pool
	runtime *pgxpool.Pool
	reg     *prometheus.Registry
	optOuts *receiptstest.OptOuts
	logs    *syncBuffer
	// reader is an API key's header with the read scope: the API's own routes need one, the
	// gateway's do not.
	reader http.Header
}

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newReceiptsAPI(t *testing.T, rc func(*heraldhttp.SMSReceipts)) *receiptsAPI {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	runtime, err := pgxpool.New(t.Context(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runtime.Close)
	a := &receiptsAPI{owner: db.Pool, runtime: runtime, reg: prometheus.NewRegistry(), optOuts: &receiptstest.OptOuts{}, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	verifier, err := receipts.NewVerifier(receiptsPublicURL, receiptsToken)
	if err != nil {
		t.Fatal(err)
	}
	cfg := heraldhttp.SMSReceipts{Verifier: verifier, Status: receipts.NewRecorder(runtime, logger), OptOuts: a.optOuts}
	if rc != nil {
		rc(&cfg)
	}
	log := events.NewLog(runtime)
	keys := apikeys.NewStore(runtime)
	_, token, err := keys.Create(t.Context(), "auditor", []herald.Scope{herald.ScopeRead}, "test")
	if err != nil {
		t.Fatal(err)
	}
	a.reader = bearer(token)
	srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: apiMaxBody, Metrics: a.reg},
		handlers.NewAcceptor(runtime, log, router.NewOutbox(nil), handlers.DefaultLimits),
		projections.NewReader(runtime, log), nil, logger).
		WithAuth(keys, heraldhttp.RateLimit{}).
		WithReceipts(cfg)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if strings.Contains(a.logs.String(), receiptsToken) {
			t.Errorf("the log shows the gateway's auth token:\n%s", a.logs.String())
		}
	})
	a.url = ts.URL
	return a
}

// sentSMS appends a notification sent through the gateway as message sid, and returns its id.
func (a *receiptsAPI) sentSMS(t *testing.T, sid string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	_, err := events.NewLog(a.runtime).Append(t.Context(), id, 0, events.Metadata{Actor: "test", CorrelationID: "send-" + sid},
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+15550100001", Content: "hi", Body: "hi"},
		&events.NotificationProcessing{Attempt: 1},
		&events.NotificationSent{Attempt: 1, Provider: "http-sms", ProviderMessageID: sid})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// post sends form to path as the gateway does, with signature sig ("" sends none).
func (a *receiptsAPI) post(t *testing.T, path string, form url.Values, sig string) response {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if sig != "" {
		h.Set(receipts.SignatureHeader, sig)
	}
	return doRequest(t, a.url, http.MethodPost, path, form.Encode(), h)
}

// postSigned posts form to path signed as the gateway signs it: over the public URL.
func (a *receiptsAPI) postSigned(t *testing.T, path string, form url.Values) response {
	t.Helper()
	return a.post(t, path, form, receipts.Sign(receiptsToken, receiptsPublicURL+path, form))
}

// callbacks is the metric's count of kind callbacks with outcome.
func (a *receiptsAPI) callbacks(t *testing.T, kind, outcome string) float64 {
	t.Helper()
	families, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "herald_sms_callbacks_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["callback"] == kind && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func (a *receiptsAPI) logSize(t *testing.T) int {
	t.Helper()
	return countRows(t, a.owner, "event_log")
}

func statusForm(sid, status string) url.Values {
	return url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {status}, "SmsStatus": {status},
		"AccountSid": {"AC0123"}, "To": {"+15550100001"}, "From": {"+15005550006"}, "ApiVersion": {"2010-04-01"}}
}

func TestSMSStatusDelivered(t *testing.T) {
	a := newReceiptsAPI(t, nil)
	id := a.sentSMS(t, "SMd1")

	r := a.postSigned(t, receipts.StatusPath, statusForm("SMd1", "delivered"))
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delivered callback: %d %s, want 204 and no body", r.status, r.body)
	}
	recs, err := events.NewLog(a.owner).Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Type != events.TypeNotificationDelivered || last.Metadata.Actor != "gateway:http-sms" ||
		last.Metadata.CorrelationID != "send-SMd1" || last.Metadata.CausationID != r.header.Get(heraldhttp.CorrelationHeader) {
		t.Fatalf("last event %s %+v, want NotificationDelivered by gateway:http-sms, the notification's correlation id and the callback's (%s) as the cause",
			last.Type, last.Metadata, r.header.Get(heraldhttp.CorrelationHeader))
	}
	project(t, a.owner, id)
	st := doRequest(t, a.url, http.MethodGet, "/api/v1/notifications/"+id+"/status", "", a.reader)
	if st.status != http.StatusOK || !strings.Contains(string(st.body), `"status":"delivered"`) {
		t.Errorf("status after the callback: %d %s, want delivered", st.status, st.body)
	}
	if got := a.callbacks(t, "status", "recorded"); got != 1 {
		t.Errorf("recorded callbacks metric = %v, want 1", got)
	}

	// The gateway retries: the same callback again writes nothing, and is answered the same.
	before := a.logSize(t)
	r = a.postSigned(t, receipts.StatusPath, statusForm("SMd1", "delivered"))
	if r.status != http.StatusNoContent {
		t.Errorf("repeated callback: %d %s, want 204", r.status, r.body)
	}
	// A late report that contradicts the first is not recorded either; it is logged.
	r = a.postSigned(t, receipts.StatusPath, statusForm("SMd1", "undelivered"))
	if r.status != http.StatusNoContent {
		t.Errorf("contradicting callback: %d %s, want 204", r.status, r.body)
	}
	if after := a.logSize(t); after != before {
		t.Errorf("repeated callbacks grew the log from %d to %d events", before, after)
	}
	if got := a.callbacks(t, "status", "duplicate"); got != 2 {
		t.Errorf("duplicate callbacks metric = %v, want 2", got)
	}
	if !strings.Contains(a.logs.String(), "contradicts the recorded status") {
		t.Errorf("the contradicting report was not logged:\n%s", a.logs.String())
	}
}

func TestSMSStatusUndelivered(t *testing.T) {
	a := newReceiptsAPI(t, nil)
	id := a.sentSMS(t, "SMu1")
	form := statusForm("SMu1", "undelivered")
	form.Set("ErrorCode", "30003")
	form.Set("ErrorMessage", "Unreachable destination handset")
	if r := a.postSigned(t, receipts.StatusPath, form); r.status != http.StatusNoContent {
		t.Fatalf("undelivered callback: %d %s, want 204", r.status, r.body)
	}
	recs, err := events.NewLog(a.owner).Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	e, err := recs[len(recs)-1].Event()
	if err != nil {
		t.Fatal(err)
	}
	want := &events.NotificationUndelivered{Provider: "http-sms", ProviderMessageID: "SMu1", ProviderStatus: "undelivered",
		ErrorCode: "30003", Error: "Unreachable destination handset"}
	if diff := cmp.Diff(events.Event(want), e); diff != "" {
		t.Errorf("recorded event (-want +got):\n%s", diff)
	}
	project(t, a.owner, id)
	st := doRequest(t, a.url, http.MethodGet, "/api/v1/notifications/"+id+"/status", "", a.reader)
	if !strings.Contains(string(st.body), `"status":"undelivered"`) || !strings.Contains(string(st.body), "30003") {
		t.Errorf("status after the callback: %s, want undelivered with error 30003", st.body)
	}
}

// Anything that is not the gateway's signature over the public URL and the very parameters
// posted is refused with 403, and writes nothing.
func TestSMSStatusRefusesForgeries(t *testing.T) {
	a := newReceiptsAPI(t, nil)
	a.sentSMS(t, "SMf1")
	form := statusForm("SMf1", "delivered")
	tampered := statusForm("SMf1", "delivered")
	tampered.Set("MessageStatus", "undelivered")
	tests := []struct {
		name string
		form url.Values
		sig  string
	}{
		{"unsigned", form, ""},
		{"signed with another token", form, receipts.Sign("not-the-token", receiptsPublicURL+receipts.StatusPath, form)},
		{"signed for the address Herald sees, not the public URL", form, receipts.Sign(receiptsToken, a.url+receipts.StatusPath, form)},
		{"signed for another path", form, receipts.Sign(receiptsToken, receiptsPublicURL+receipts.InboundPath, form)},
		{"a parameter tampered with", tampered, receipts.Sign(receiptsToken, receiptsPublicURL+receipts.StatusPath, form)},
		{"garbage", form, "c2lnbmF0dXJl"},
	}
	before := a.logSize(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.post(t, receipts.StatusPath, tt.form, tt.sig)
			if r.status != http.StatusForbidden {
				t.Fatalf("%d %s, want 403", r.status, r.body)
			}
			e := decodeJSON[errorResponse](t, r)
			if e.Error.Code != herald.EFORBIDDEN || !strings.Contains(e.Error.Message, "signature") {
				t.Errorf("error %+v, want code forbidden naming the signature", e.Error)
			}
		})
	}
	if after := a.logSize(t); after != before {
		t.Errorf("forged callbacks grew the log from %d to %d events", before, after)
	}
	if got := a.callbacks(t, "status", "forged"); got != float64(len(tests)) {
		t.Errorf("forged callbacks metric = %v, want %d", got, len(tests))
	}
	if !strings.Contains(a.logs.String(), "level=WARN") || !strings.Contains(a.logs.String(), "missing or wrong gateway signature") {
		t.Errorf("forged callbacks not logged at warn:\n%s", a.logs.String())
	}
}

func TestSMSStatusWritesNothing(t *testing.T) {
	a := newReceiptsAPI(t, nil)
	a.sentSMS(t, "SMn1")
	tests := []struct {
		name       string
		form       url.Values
		wantStatus int
		outcome    string
	}{
		{"unmatched", statusForm("SMnobody", "delivered"), http.StatusNotFound, "unmatched"},
		{"queued", statusForm("SMn1", "queued"), http.StatusNoContent, "intermediate"},
		{"sent", statusForm("SMn1", "sent"), http.StatusNoContent, "intermediate"},
		{"read", statusForm("SMn1", "read"), http.StatusNoContent, "intermediate"},
		{"no message id", url.Values{"MessageStatus": {"delivered"}}, http.StatusUnprocessableEntity, "invalid"},
	}
	before := a.logSize(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.postSigned(t, receipts.StatusPath, tt.form)
			if r.status != tt.wantStatus {
				t.Errorf("%d %s, want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantStatus >= 400 {
				if e := decodeJSON[errorResponse](t, r); e.Error.Code == "" {
					t.Errorf("no JSON error: %s", r.body)
				}
			}
		})
	}
	if after := a.logSize(t); after != before {
		t.Errorf("the log grew from %d to %d events", before, after)
	}
	for outcome, want := range map[string]float64{"unmatched": 1, "intermediate": 3, "invalid": 1, "recorded": 0} {
		if got := a.callbacks(t, "status", outcome); got != want {
			t.Errorf("%s callbacks metric = %v, want %v", outcome, got, want)
		}
	}
	// Larger than the body limit: refused, nothing written.
	big := statusForm("SMn1", "delivered")
	big.Set("ErrorMessage", strings.Repeat("x", apiMaxBody))
	if r := a.postSigned(t, receipts.StatusPath, big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized callback: %d %s, want 413", r.status, r.body)
	}
	if after := a.logSize(t); after != before {
		t.Errorf("the oversized callback grew the log from %d to %d events", before, after)
	}
	// Not a form: refused before anything is read.
	r := doRequest(t, a.url, http.MethodPost, receipts.StatusPath, `{"MessageSid":"SMn1"}`, jsonHeader())
	if r.status != http.StatusUnsupportedMediaType {
		t.Errorf("JSON body: %d %s, want 415", r.status, r.body)
	}
}

// Without a verifier (no public URL or no auth token), the routes exist only to say so.
func TestSMSReceiptsOff(t *testing.T) {
	a := newReceiptsAPI(t, func(c *heraldhttp.SMSReceipts) { c.Verifier = nil })
	a.sentSMS(t, "SMoff")
	for _, path := range []string{receipts.StatusPath, receipts.InboundPath} {
		r := a.postSigned(t, path, statusForm("SMoff", "delivered"))
		if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "off on this server") {
			t.Errorf("%s: %d %s, want 404 saying receipts are off", path, r.status, r.body)
		}
	}
	if got := a.logSize(t); got != 3 {
		t.Errorf("the log holds %d events, want the 3 of the notification", got)
	}
}

func TestSMSInbound(t *testing.T) {
	a := newReceiptsAPI(t, nil)
	inbound := func(sid, body, optOutType string) url.Values {
		f := url.Values{"MessageSid": {sid}, "From": {"+15550100001"}, "To": {"+15005550006"}, "Body": {body}, "AccountSid": {"AC0123"}}
		if optOutType != "" {
			f.Set("OptOutType", optOutType)
		}
		return f
	}
	for _, f := range []url.Values{inbound("SMi1", " Stop ", ""), inbound("SMi2", "thanks", ""), inbound("SMi3", "START", "START")} {
		r := a.postSigned(t, receipts.InboundPath, f)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/xml; charset=utf-8" ||
			string(r.body) != `<?xml version="1.0" encoding="UTF-8"?><Response></Response>` {
			t.Errorf("inbound %q: %d %q %s, want 200 and an empty TwiML response", f.Get("Body"), r.status, r.header.Get("Content-Type"), r.body)
		}
	}
	// Forged: refused, and nobody is opted out.
	if r := a.post(t, receipts.InboundPath, inbound("SMi4", "STOP", ""), "Zm9yZ2Vk"); r.status != http.StatusForbidden {
		t.Errorf("forged inbound: %d %s, want 403", r.status, r.body)
	}
	want := []receiptstest.Call{
		{Op: "opt_out", Recipient: "+15550100001", Detail: "STOP from gateway message SMi1"},
		{Op: "opt_in", Recipient: "+15550100001", Detail: "START from gateway message SMi3"},
	}
	if diff := cmp.Diff(want, a.optOuts.Calls()); diff != "" {
		t.Errorf("opt-outs (-want +got):\n%s", diff)
	}
	for outcome, n := range map[string]float64{"opt_out": 1, "opt_in": 1, "none": 1, "forged": 1} {
		if got := a.callbacks(t, "inbound", outcome); got != n {
			t.Errorf("inbound %s metric = %v, want %v", outcome, got, n)
		}
	}
}

// Without a place to keep opt-outs, the inbound route says so and takes nothing in.
func TestSMSInboundWithoutOptOuts(t *testing.T) {
	a := newReceiptsAPI(t, func(c *heraldhttp.SMSReceipts) { c.OptOuts = nil })
	r := a.postSigned(t, receipts.InboundPath, url.Values{"MessageSid": {"SMx"}, "From": {"+15550100001"}, "Body": {"STOP"}})
	if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "opt-outs are off") {
		t.Errorf("%d %s, want 404 saying opt-outs are off", r.status, r.body)
	}
}

// A callback to the URL that names its notification is matched by it: recorded once sent, 409
// for a notification sent as another message, 503 with Retry-After while it is not sent, 404
// for a notification that failed; only the first writes anything. The name is under the
// signature: a report signed for one notification cannot be posted for another.
func TestSMSStatusNamedNotification(t *testing.T) {
	a := newReceiptsAPI(t, func(rc *heraldhttp.SMSReceipts) {
		rc.Status = rc.Status.(*receipts.Recorder).WithWait(200 * time.Millisecond)
	})
	path := func(id string) string { return receipts.StatusPath + "?notification=" + url.QueryEscape(id) }
	sent := a.sentSMS(t, "SMn1")
	other := a.sentSMS(t, "SMn2")
	processing := uuid.Must(uuid.NewV7()).String()
	failed := uuid.Must(uuid.NewV7()).String()
	log := events.NewLog(a.runtime)
	queued := &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+15550100001", Content: "hi", Body: "hi"}
	if _, err := log.Append(t.Context(), processing, 0, events.Metadata{}, queued, &events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(t.Context(), failed, 0, events.Metadata{}, queued, &events.NotificationProcessing{Attempt: 1},
		&events.NotificationFailed{Attempt: 1, Provider: "http-sms", Reason: events.ReasonAttemptsExhausted, Error: "timeout"}); err != nil {
		t.Fatal(err)
	}

	before := a.logSize(t)
	forged := statusForm("SMn2", "delivered")
	if r := a.post(t, path(sent), forged, receipts.Sign(receiptsToken, receiptsPublicURL+path(other), forged)); r.status != http.StatusForbidden {
		t.Errorf("a report signed for another notification: %d %s, want 403", r.status, r.body)
	}
	if r := a.postSigned(t, path(sent), statusForm("SMn2", "delivered")); r.status != http.StatusConflict {
		t.Errorf("a report of another message: %d %s, want 409", r.status, r.body)
	}
	r := a.postSigned(t, path(processing), statusForm("SMn3", "delivered"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("a report before the send is recorded: %d %s (Retry-After %q), want 503 with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := a.postSigned(t, path(failed), statusForm("SMn4", "delivered")); r.status != http.StatusNotFound {
		t.Errorf("a report of a failed notification: %d %s, want 404", r.status, r.body)
	}
	if r := a.postSigned(t, receipts.StatusPath+"?notification=SMn1", statusForm("SMn1", "delivered")); r.status != http.StatusUnprocessableEntity {
		t.Errorf("a report naming no notification id: %d %s, want 422", r.status, r.body)
	}
	if after := a.logSize(t); after != before {
		t.Errorf("refused reports grew the log from %d to %d events", before, after)
	}
	for outcome, want := range map[string]float64{"forged": 1, "mismatched": 1, "early": 1, "unmatched": 1, "invalid": 1} {
		if got := a.callbacks(t, "status", outcome); got != want {
			t.Errorf("%s callbacks metric = %v, want %v", outcome, got, want)
		}
	}

	if r := a.postSigned(t, path(sent), statusForm("SMn1", "delivered")); r.status != http.StatusNoContent {
		t.Fatalf("the report of the message sent: %d %s, want 204", r.status, r.body)
	}
	recs, err := events.NewLog(a.owner).Load(t.Context(), sent)
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last.Type != events.TypeNotificationDelivered || last.Version != 4 {
		t.Errorf("last event %s v%d, want NotificationDelivered v4", last.Type, last.Version)
	}
}
