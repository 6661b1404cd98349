// Package tracing owns Herald's OpenTelemetry traces: the spans each hop of a notification opens
// (the API's send, the accepting transaction, the relay's publish, the worker's attempt, the
// provider's call, the projector's apply), what they may say about it, and how their context
// travels between processes — in the outbox's message metadata, the RabbitMQ headers made from
// it, and the metadata of the events appended to the log.
//
// A Tracing is handed to the components that open spans; its zero value is off: every span is
// the no-op one and no context is carried, so a Herald without an exporter writes exactly what
// it wrote before and pays almost nothing (see BenchmarkSendPathHooks).
//
// Spans say which notification, channel, provider, queue, projection and event they concern,
// never a recipient, a message's content or an error's text (a provider's refusal may quote the
// address it refused).
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName names Herald's tracer, as a span's instrumentation scope.
const InstrumentationName = "github.com/herald-notify/herald"

// Tracing opens Herald's spans and carries their context across processes. The zero value is
// off.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// New returns a Tracing whose spans tp records and whose context prop carries
// (propagation.TraceContext: of it, only the traceparent is written into carriers).
func New(tp trace.TracerProvider, prop propagation.TextMapPropagator) Tracing {
	return Tracing{tracer: tp.Tracer(InstrumentationName), prop: prop}
}

// Off returns a Tracing that records nothing and carries nothing: the zero value.
func Off() Tracing { return Tracing{} }

// On reports whether t records spans.
func (t Tracing) On() bool { return t.tracer != nil }

// noSpan is the span of a Tracing that is off.
var noSpan trace.Span = noop.Span{}

// NoSpan returns a span that records nothing, for a caller that opens none because tracing is
// off. Ending it ends nothing, unlike the span ctx may carry.
func NoSpan() trace.Span { return noSpan }

// Start opens a span named name, child of the span ctx carries, and returns the context that
// carries it. Off, it returns ctx as it is and NoSpan, without allocating.
func (t Tracing) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, noSpan
	}
	return t.tracer.Start(ctx, name, opts...)
}

// Inject writes the traceparent of the span ctx carries into carrier (message metadata, an
// event's trace fields); nothing when t is off or ctx carries no span. The tracestate is left
// out (see parentOnly).
func (t Tracing) Inject(ctx context.Context, carrier map[string]string) {
	if t.prop == nil || carrier == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	t.prop.Inject(ctx, parentOnly(carrier))
}

// Carrier returns the traceparent of the span ctx carries as a new map, for an event's
// metadata; nil when t is off or ctx carries no span.
func (t Tracing) Carrier(ctx context.Context) map[string]string {
	if t.prop == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	c := map[string]string{}
	t.prop.Inject(ctx, parentOnly(c))
	if len(c) == 0 {
		return nil
	}
	return c
}

// TraceparentField is the one trace context field Herald stores and sends on.
const TraceparentField = "traceparent"

// parentOnly is a carrier that keeps only the traceparent the propagator writes. A client's
// tracestate (vendors' data, up to 32 entries, some 16 KB) would otherwise be copied into
// every event of the notification, which the log keeps for ever, into the outbox, the RabbitMQ
// headers and the webhooks' payloads: the spans Herald exports still carry it to the collector.
type parentOnly map[string]string

func (c parentOnly) Get(key string) string { return c[key] }

func (c parentOnly) Set(key, value string) {
	if key == TraceparentField {
		c[key] = value
	}
}

func (c parentOnly) Keys() []string { return propagation.MapCarrier(c).Keys() }

// Extract returns ctx carrying, as its remote parent, the span context carrier holds; ctx as it
// is when t is off or carrier holds none.
func (t Tracing) Extract(ctx context.Context, carrier map[string]string) context.Context {
	if t.prop == nil || len(carrier) == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier(carrier))
}

// Attribute keys Herald's spans carry beside OpenTelemetry's semantic conventions.
const (
	AttrNotificationID = attribute.Key("herald.notification_id")
	AttrChannel        = attribute.Key("herald.channel")
	AttrPriority       = attribute.Key("herald.priority")
	AttrAttempt        = attribute.Key("herald.attempt")
	AttrProvider       = attribute.Key("herald.provider")
	AttrOutcome        = attribute.Key("herald.outcome")
	AttrProjection     = attribute.Key("herald.projection")
	AttrEventType      = attribute.Key("herald.event_type")
	AttrPosition       = attribute.Key("herald.log_position")
	AttrStreamVersion  = attribute.Key("herald.stream_version")
	AttrHandler        = attribute.Key("herald.handler")

	// OpenTelemetry's semantic conventions for HTTP and messaging.
	AttrHTTPMethod      = attribute.Key("http.request.method")
	AttrHTTPRoute       = attribute.Key("http.route")
	AttrHTTPStatus      = attribute.Key("http.response.status_code")
	AttrMessagingSystem = attribute.Key("messaging.system")
	AttrMessagingDest   = attribute.Key("messaging.destination.name")
	AttrMessagingOp     = attribute.Key("messaging.operation.type")
	AttrMessageID       = attribute.Key("messaging.message.id")
)

// Span names, one per hop; docs/operations.md lists them.
const (
	SpanSend           = "POST /api/v1/notifications/send"
	SpanAccept         = "accept notification"
	SpanRelayPublish   = "publish" // prefixed with the queue: "email_notifications publish"
	SpanAttempt        = "deliver" // prefixed with the queue: "email_notifications deliver"
	SpanProviderCall   = "send"    // prefixed with the provider: "smtp send"
	SpanProjectorApply = "apply"   // prefixed with the projection: "notification_status apply"
)
