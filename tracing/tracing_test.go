package tracing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/tracing"
)

// clientContext is a context carrying a caller's remote span, as an incoming traceparent makes.
func clientContext(t testing.TB) context.Context {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if !trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("the client's traceparent did not parse")
	}
	return ctx
}

// TestOffRecordsAndCarriesNothing: the zero Tracing, Off and Export without a URL record no span
// and put no trace context anywhere, even under a caller's traceparent: what Herald stores is
// what it stored before tracing.
func TestOffRecordsAndCarriesNothing(t *testing.T) {
	exp, err := tracing.Export(tracing.ExportConfig{ServiceName: "herald-serve"})
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown of no exporter: %v", err)
	}
	for name, tr := range map[string]tracing.Tracing{"zero": {}, "Off": tracing.Off(), "Export without URL": exp.Tracing} {
		t.Run(name, func(t *testing.T) {
			if tr.On() {
				t.Error("On, want off")
			}
			ctx, span := tr.Start(clientContext(t), "x")
			if span.IsRecording() {
				t.Error("span is recording")
			}
			if c := tr.Carrier(ctx); c != nil {
				t.Errorf("Carrier = %v, want nil", c)
			}
			md := map[string]string{"name": "SendNotification"}
			tr.Inject(ctx, md)
			if len(md) != 1 {
				t.Errorf("Inject wrote %v", md)
			}
			if got := tr.Extract(context.Background(), map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}); trace.SpanContextFromContext(got).IsValid() {
				t.Error("Extract read a span context")
			}
		})
	}
}

// TestCarrierContinuesTheTrace: a span's context, carried as a map (message metadata, event
// metadata), makes the span started from it its child in the same trace.
func TestCarrierContinuesTheTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), propagation.TraceContext{})
	if !tr.On() {
		t.Fatal("off, want on")
	}
	ctx, parent := tr.Start(clientContext(t), "accept")
	carrier := tr.Carrier(ctx)
	parent.End()
	if carrier["traceparent"] == "" {
		t.Fatalf("carrier %v has no traceparent", carrier)
	}
	_, child := tr.Start(tr.Extract(context.Background(), carrier), "deliver")
	child.End()

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	p, c := spans[0], spans[1]
	if p.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("accept is in trace %s, want the client's", p.SpanContext().TraceID())
	}
	if c.SpanContext().TraceID() != p.SpanContext().TraceID() || c.Parent().SpanID() != p.SpanContext().SpanID() {
		t.Errorf("deliver: trace %s parent %s, want accept's trace %s and span %s", c.SpanContext().TraceID(),
			c.Parent().SpanID(), p.SpanContext().TraceID(), p.SpanContext().SpanID())
	}
	if !c.Parent().IsRemote() {
		t.Error("deliver's parent is not remote, want it read from the carrier")
	}
}

// BenchmarkSendPathHooks runs what a send costs in tracing calls from the API to the projector —
// six spans opened and ended, the context carried into the outbox's metadata, read back by the
// relay and the worker, stamped on two events and read by the projector — off and on. Off, every
// call is a no-op with no allocation: a send without an exporter costs what it cost before.
func BenchmarkSendPathHooks(b *testing.B) {
	// No span processor: what is measured is the spans' making, not their export.
	on := tracing.New(sdktrace.NewTracerProvider(), propagation.TraceContext{})
	for name, tr := range map[string]tracing.Tracing{"off": tracing.Off(), "on": on} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			base := context.Background()
			md := map[string]string{"name": "SendNotification"}
			applied := make([]map[string]string, 2)
			for b.Loop() {
				ctx, send := tr.Start(base, tracing.SpanSend)
				ctx, accept := tr.Start(ctx, tracing.SpanAccept)
				queued := tr.Carrier(ctx)
				tr.Inject(ctx, md)
				accept.End()
				send.End()
				rctx, publish := tr.Start(tr.Extract(base, md), "email_notifications publish")
				tr.Inject(rctx, md)
				publish.End()
				wctx, attempt := tr.Start(tr.Extract(base, md), "email_notifications deliver")
				sent := tr.Carrier(wctx)
				_, call := tr.Start(wctx, "smtp send")
				call.End()
				attempt.End()
				applied[0], applied[1] = queued, sent
				for _, c := range applied {
					if len(c) == 0 {
						continue
					}
					_, apply := tr.Start(tr.Extract(base, c), "notification_status apply")
					apply.End()
				}
			}
		})
	}
}

// TestCarriersHoldOnlyTheTraceparent: a caller's tracestate, however long, is never written into
// a carrier (an event's metadata, the outbox's message, RabbitMQ's headers): only the traceparent.
func TestCarriersHoldOnlyTheTraceparent(t *testing.T) {
	var members []string
	for i := range 32 {
		members = append(members, fmt.Sprintf("vendor%d=%s", i, strings.Repeat("x", 240)))
	}
	state := strings.Join(members, ",")
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": state})
	if got := trace.SpanContextFromContext(ctx).TraceState().Len(); got != 32 {
		t.Fatalf("the client's tracestate parsed to %d members, want 32", got)
	}
	tr := tracing.New(sdktrace.NewTracerProvider(), propagation.TraceContext{})
	ctx, span := tr.Start(ctx, "accept")
	defer span.End()

	md := map[string]string{"name": "SendNotification"}
	tr.Inject(ctx, md)
	for name, c := range map[string]map[string]string{"Carrier": tr.Carrier(ctx), "Inject": md} {
		if c["traceparent"] == "" {
			t.Errorf("%s: %v has no traceparent", name, c)
		}
		for k, v := range c {
			if k == "tracestate" || strings.Contains(v, "vendor0") {
				t.Errorf("%s wrote %s (%d bytes): the client's tracestate", name, k, len(v))
			}
		}
	}
}

// TestExportHonoursTheSampler: the exporter samples as OTEL_TRACES_SAMPLER says; unset, every
// trace, and a caller's unsampled traceparent is respected.
func TestExportHonoursTheSampler(t *testing.T) {
	sampled := func(t *testing.T, parent context.Context) bool {
		t.Helper()
		exp, err := tracing.Export(tracing.ExportConfig{URL: "http://127.0.0.1:1/v1/traces", ServiceName: "herald-serve"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = exp.Shutdown(context.Background()) }()
		_, span := exp.Tracing.Start(parent, "x")
		defer span.End()
		return span.SpanContext().IsSampled()
	}
	unsampled := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	if !sampled(t, context.Background()) || sampled(t, unsampled) {
		t.Error("default: want every trace sampled, unless the caller's is not")
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	if sampled(t, context.Background()) {
		t.Error("always_off: a trace is sampled")
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0")
	if sampled(t, context.Background()) || !sampled(t, clientContext(t)) {
		t.Error("parentbased_traceidratio 0: want a root unsampled, a sampled caller's trace sampled")
	}
}
