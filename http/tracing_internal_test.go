package http

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/herald-notify/herald/tracing"
)

// TestTraceAcceptedCostsNothingOff: with tracing off, naming the accepted notification in the
// send's span allocates nothing; on, the span gets the notification's id.
func TestTraceAcceptedCostsNothingOff(t *testing.T) {
	off := &Server{}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { off.traceAccepted(ctx, "n1") }); n != 0 {
		t.Errorf("off: %v allocations per send, want 0", n)
	}

	rec := tracetest.NewSpanRecorder()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), propagation.TraceContext{})
	on := &Server{cfg: Config{Tracing: tr}}
	sctx, span := tr.Start(ctx, tracing.SpanSend)
	on.traceAccepted(sctx, "n1")
	span.End()
	var got string
	for _, a := range rec.Ended()[0].Attributes() {
		if a.Key == tracing.AttrNotificationID {
			got = a.Value.AsString()
		}
	}
	if got != "n1" {
		t.Errorf("on: the send's span names notification %q, want n1", got)
	}
}

// TestHeaderCarrierDropsALongTracestate: a client's tracestate longer than maxTracestate is
// dropped at the edge, its traceparent kept; a short one is kept.
func TestHeaderCarrierDropsALongTracestate(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	long := make([]byte, 16<<10)
	for i := range long {
		long[i] = 'a'
	}
	h := http.Header{}
	h.Set("traceparent", tp)
	h.Set("tracestate", "k="+string(long))
	if c := headerCarrier(h); c["traceparent"] != tp || c["tracestate"] != "" {
		t.Errorf("16 KB tracestate: carrier holds traceparent %q and %d bytes of tracestate, want it dropped", c["traceparent"], len(c["tracestate"]))
	}
	h.Set("tracestate", "vendor=abc")
	if c := headerCarrier(h); c["tracestate"] != "vendor=abc" {
		t.Errorf("short tracestate: %q, want it kept", c["tracestate"])
	}
}
