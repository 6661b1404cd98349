package e2e_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/tracing"
)

// receivedSpan is a span as an OTLP collector received it, with the service that sent it.
type receivedSpan struct {
	Service, Name             string
	TraceID, SpanID, ParentID string
	Links                     int // how many spans it links to
	Attrs                     map[string]string
}

// otlpReceiver is an OTLP/HTTP trace collector on loopback: it decodes each
// ExportTraceServiceRequest POSTed to /v1/traces and keeps its spans.
type otlpReceiver struct {
	URL string // base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it

	mu      sync.Mutex
	spans   []receivedSpan
	exports int
	errs    []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	fail := func(status int, format string, args ...any) {
		r.mu.Lock()
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
		r.mu.Unlock()
		http.Error(w, fmt.Sprintf(format, args...), status)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		fail(http.StatusNotFound, "%s %s: want POST /v1/traces", req.Method, req.URL.Path)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		fail(http.StatusUnsupportedMediaType, "content type %q, want application/x-protobuf", ct)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			fail(http.StatusBadRequest, "gzip: %v", err)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		fail(http.StatusBadRequest, "read: %v", err)
		return
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &export); err != nil {
		fail(http.StatusBadRequest, "decode ExportTraceServiceRequest: %v", err)
		return
	}
	var got []receivedSpan
	for _, rs := range export.GetResourceSpans() {
		service := attrMap(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				span := receivedSpan{Service: service, Name: s.GetName(), TraceID: hex.EncodeToString(s.GetTraceId()),
					SpanID: hex.EncodeToString(s.GetSpanId()), ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Attrs: attrMap(s.GetAttributes())}
				span.Links = len(s.GetLinks())
				got = append(got, span)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.exports++
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = strings.Trim(v.String(), " ")
		}
	}
	return m
}

// Spans returns the spans received so far, and the errors of requests refused.
func (r *otlpReceiver) Spans() ([]receivedSpan, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...), append([]string(nil), r.errs...)
}

// hop is a span a notification's trace must hold: its service, its name, and the hop it is a
// child of.
type hop struct {
	service, name string
	// eventType picks, among a projection's spans, the one applying this event.
	eventType string
	parent    string // key of the parent hop; "" for the root
}

// TestTraceFollowsANotificationAcrossProcesses: serve, worker and projector, each its own process
// exporting over OTLP/HTTP to a receiver started here, send one email and one SMS; each
// notification's trace holds, under one trace id, the API's send, the accepting transaction, the
// relay's publish, the worker's attempt, the provider's call and the projector's apply of the
// event that made it sent, each the child of the hop before it; no span names the recipient or
// carries the content; and the events in the log carry the traceparent of the span that
// appended them, and nothing of the tracestate each client sent beside its own traceparent
// (16 KB for the email, a valid 460 bytes for the SMS), whose trace the spans continue. The projector's spans, held back by a long batching delay, arrive through the
// flush of its shutdown.
func TestTraceFollowsANotificationAcrossProcesses(t *testing.T) {
	recv := newOTLPReceiver(t)
	c := startHerald(t, heraldOpts{
		Commands: []string{"serve", "worker", "projector"},
		Env: map[string]string{
			"HERALD_OTEL_EXPORTER_OTLP_ENDPOINT": recv.URL,
			// OpenTelemetry's standard batching delay, shortened so the test need not wait 5 s.
			"OTEL_BSP_SCHEDULE_DELAY": "100",
		},
		// The projector's spans are held for ten minutes: they can only arrive through the
		// flush of its shutdown.
		EnvFor: map[string]map[string]string{"projector": {"OTEL_BSP_SCHEDULE_DELAY": "600000"}},
	})

	const (
		emailTo   = "Trace Reader <trace.reader@example.com>"
		emailBody = "tracing-body-secret-4417"
		smsTo     = "+14155550188"
		smsBody   = "tracing-sms-secret-9931"
	)
	cases := []struct {
		req            sendRequest
		queue, handler string
		provider       string
		recipient      string
	}{
		{req: sendRequest{Type: "email", Recipient: emailTo, Subject: "s", Content: emailBody},
			queue: "email_notifications", provider: "smtp", recipient: "trace.reader@example.com"},
		{req: sendRequest{Type: "sms", Recipient: smsTo, Content: smsBody},
			queue: "sms_notifications", provider: "http-sms", recipient: smsTo},
	}
	// The email's client traces its request, with a tracestate of 16 KB (dropped at the API);
	// the SMS's with a valid one of some 460 bytes, which the API keeps in its spans.
	const clientTrace, clientSpan = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
	hugeState := "vendor=" + strings.Repeat("q", 16<<10)
	validState := "v1=" + strings.Repeat("q", 250) + ",v2=" + strings.Repeat("q", 200)
	ids := make([]string, len(cases))
	ids[0] = sendTraced(t, c.API, cases[0].req, "00-"+clientTrace+"-"+clientSpan+"-01", hugeState)
	ids[1] = sendTraced(t, c.API, cases[1].req, "00-6bf92f3577b34da6a3ce929d0e0e4738-20f067aa0ba902b9-01", validState)
	for _, id := range ids {
		waitStatus(t, c.API, id, "sent", deliveryTimeout)
	}
	if spans, _ := recv.Spans(); countService(spans, "herald-projector") > 0 {
		t.Fatalf("the projector exported spans before its shutdown, within its 10-minute batching delay")
	}
	c.proc(t, "projector").shutdown(t)

	for i, tc := range cases {
		id := ids[i]
		t.Run(tc.req.Type, func(t *testing.T) {

			hops := map[string]hop{
				"send":    {service: "herald-serve", name: tracing.SpanSend},
				"accept":  {service: "herald-serve", name: tracing.SpanAccept, parent: "send"},
				"publish": {service: "herald-serve", name: tc.queue + " publish", parent: "accept"},
				"attempt": {service: "herald-worker", name: tc.queue + " deliver", parent: "publish"},
				"call":    {service: "herald-worker", name: tc.provider + " send", parent: "attempt"},
				"queued":  {service: "herald-projector", name: "notification_status apply", eventType: "NotificationQueued", parent: "accept"},
				"sent":    {service: "herald-projector", name: "notification_status apply", eventType: "NotificationSent", parent: "attempt"},
			}
			var found map[string]receivedSpan
			heraldtest.Eventually(t, 30*time.Second, "the spans of every hop of "+id, func() (bool, error) {
				spans, errs := recv.Spans()
				if len(errs) > 0 {
					t.Fatalf("the receiver refused exports: %v", errs)
				}
				found = findHops(spans, id, hops)
				var missing []string
				for k := range hops {
					if _, ok := found[k]; !ok {
						missing = append(missing, k)
					}
				}
				return len(missing) == 0, fmt.Errorf("missing %v among %d spans", missing, len(spans))
			})

			traceID := found["send"].TraceID
			for k, h := range hops {
				s := found[k]
				if s.TraceID != traceID {
					t.Errorf("%s span %q is in trace %s, want the send's %s", s.Service, s.Name, s.TraceID, traceID)
				}
				if h.parent == "" {
					continue
				}
				// Every hop is its parent's child, the ones across processes too (their context
				// travels with the message or the event): none is a mere link.
				if p := found[h.parent]; s.ParentID != p.SpanID || s.Links != 0 {
					t.Errorf("%s span %q has parent %s and %d links, want %s's %q (%s) as its parent", s.Service, s.Name, s.ParentID, s.Links, p.Service, p.Name, p.SpanID)
				}
			}
			if i == 0 {
				if s := found["send"]; s.TraceID != clientTrace || s.ParentID != clientSpan {
					t.Errorf("the send is in trace %s under %s, want the client's %s under %s", s.TraceID, s.ParentID, clientTrace, clientSpan)
				}
			}
			if got := found["call"].Attrs[string(tracing.AttrOutcome)]; got != "sent" {
				t.Errorf("provider call outcome %q, want sent", got)
			}

			// Nothing of the message: not its recipient, not its content, in any span.
			spans, _ := recv.Spans()
			for _, s := range spans {
				for k, v := range s.Attrs {
					for _, secret := range []string{tc.recipient, emailBody, smsBody, emailTo} {
						if strings.Contains(v, secret) {
							t.Errorf("%s span %q attribute %s=%q holds the message's %q", s.Service, s.Name, k, v, secret)
						}
					}
				}
			}

			// The log's events carry their appender's context: the queued event the accept's,
			// the sent event the attempt's.
			var evs struct {
				Events []struct {
					Type     string          `json:"type"`
					Metadata json.RawMessage `json:"metadata"`
				} `json:"events"`
			}
			getJSON(t, c.API+"/api/v1/notifications/"+id+"/events", &evs)
			want := map[string]string{"NotificationQueued": "accept", "NotificationSent": "attempt"}
			for _, e := range evs.Events {
				// Only the traceparent: no tracestate, the client's or any.
				var md struct {
					Trace map[string]string `json:"trace"`
				}
				if err := json.Unmarshal(e.Metadata, &md); err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(e.Metadata, []byte("tracestate")) || bytes.Contains(e.Metadata, []byte("qqqq")) || len(e.Metadata) > 1024 {
					t.Errorf("%s metadata (%d bytes) holds a tracestate: %.200s", e.Type, len(e.Metadata), e.Metadata)
				}
				if _, ok := md.Trace["traceparent"]; len(md.Trace) != 1 || !ok {
					t.Errorf("%s trace has fields %v, want the traceparent alone", e.Type, slices.Sorted(maps.Keys(md.Trace)))
				}
				k, ok := want[e.Type]
				if !ok {
					continue
				}
				s := found[k]
				if tp, w := md.Trace["traceparent"], "00-"+s.TraceID+"-"+s.SpanID+"-01"; tp != w {
					t.Errorf("%s carries traceparent %q, want %q (the %s span)", e.Type, tp, w, k)
				}
				delete(want, e.Type)
			}
			if len(want) > 0 {
				t.Errorf("events %v missing from %s's stream", want, id)
			}
		})
	}
}

// findHops returns, for each hop, the span of the notification id that matches it: the send's by
// its notification id attribute, the others by their trace and their name.
func findHops(spans []receivedSpan, id string, hops map[string]hop) map[string]receivedSpan {
	found := map[string]receivedSpan{}
	var traceID string
	for _, s := range spans {
		if s.Name == tracing.SpanSend && s.Attrs[string(tracing.AttrNotificationID)] == id {
			traceID = s.TraceID
		}
	}
	if traceID == "" {
		return found
	}
	for k, h := range hops {
		for _, s := range spans {
			if s.TraceID != traceID || s.Service != h.service || s.Name != h.name {
				continue
			}
			if h.eventType != "" && s.Attrs[string(tracing.AttrEventType)] != h.eventType {
				continue
			}
			found[k] = s
		}
	}
	return found
}

func countService(spans []receivedSpan, service string) int {
	n := 0
	for _, s := range spans {
		if s.Service == service {
			n++
		}
	}
	return n
}

// sendTraced sends body as a client tracing its request does, with traceparent and tracestate
// (when not ""), and returns the notification's id.
func sendTraced(t *testing.T, baseURL string, body sendRequest, traceparent, tracestate string) string {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, baseURL+"/api/v1/notifications/send", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	if tracestate != "" {
		req.Header.Set("tracestate", tracestate)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n notificationJSON
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send: %s, %v", resp.Status, err)
	}
	return n.ID
}

// TestNoTraceContextWithoutAnEndpoint: with no OTLP endpoint anywhere, or one set but
// OTEL_SDK_DISABLED=true, Herald exports nothing and stores no trace context: the events'
// metadata are as they were before tracing existed, even when the client sends a traceparent of
// its own.
func TestNoTraceContextWithoutAnEndpoint(t *testing.T) {
	recv := newOTLPReceiver(t)
	for name, env := range map[string]map[string]string{
		"no endpoint": {
			"HERALD_OTEL_EXPORTER_OTLP_ENDPOINT": "",
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
			"OTEL_SDK_DISABLED":                  "",
		},
		"disabled": {
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
			// Set, but disabled: OpenTelemetry's switch wins over the endpoint.
			"HERALD_OTEL_EXPORTER_OTLP_ENDPOINT": recv.URL,
			"OTEL_SDK_DISABLED":                  "true",
		},
	} {
		t.Run(name, func(t *testing.T) {
			env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
			c := startHerald(t, heraldOpts{Commands: []string{"all"}, Env: env})
			id := sendTraced(t, c.API, sendRequest{Type: "sms", Recipient: "+14155550101", Content: "untraced"},
				"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=abc")
			waitStatus(t, c.API, id, "sent", deliveryTimeout)

			var evs struct {
				Events []struct {
					Type     string          `json:"type"`
					Metadata json.RawMessage `json:"metadata"`
				} `json:"events"`
			}
			getJSON(t, c.API+"/api/v1/notifications/"+id+"/events", &evs)
			if len(evs.Events) < 3 {
				t.Fatalf("%d events, want queued, processing and sent", len(evs.Events))
			}
			for _, e := range evs.Events {
				if bytes.Contains(e.Metadata, []byte("trace")) {
					t.Errorf("%s metadata %s carries a trace context with tracing off", e.Type, e.Metadata)
				}
			}
			// Stopped, a process with an exporter would flush it: nothing may arrive even then.
			c.proc(t, "all").shutdown(t)
			if spans, errs := recv.Spans(); len(spans) > 0 || len(errs) > 0 {
				t.Errorf("with tracing off the receiver got %d spans (errors %v), want none", len(spans), errs)
			}
		})
	}
}
