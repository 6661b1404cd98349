package http

import (
	"context"
	"net/http"

	chimw "github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/tracing"
)

// traceSend opens the server span of a send, continuing the trace of a client that sends a W3C
// traceparent. The span names the route and the status, and send adds the notification's id:
// nothing of the request's body or headers.
func (s *Server) traceSend(next http.Handler) http.Handler {
	t := s.cfg.Tracing
	if !t.On() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.Extract(r.Context(), headerCarrier(r.Header))
		ctx, span := t.Start(ctx, tracing.SpanSend, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				tracing.AttrHTTPMethod.String(r.Method),
				tracing.AttrHTTPRoute.String(sendRoute),
			))
		defer span.End()
		ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))
		span.SetAttributes(tracing.AttrHTTPStatus.Int(ww.Status()))
		if ww.Status() >= 500 {
			span.SetStatus(codes.Error, http.StatusText(ww.Status()))
		}
	})
}

// traceAccepted names the accepted notification in the send's span. Off, it does nothing: the
// attribute's slice would cost the send an allocation for a span that records nothing.
func (s *Server) traceAccepted(ctx context.Context, id string) {
	if !s.cfg.Tracing.On() {
		return
	}
	trace.SpanFromContext(ctx).SetAttributes(tracing.AttrNotificationID.String(id))
}

// sendRoute is the send's route, as the span names it.
const sendRoute = "/api/v1/notifications/send"

// maxTracestate is the longest tracestate the send's spans keep. The W3C specification lets a
// receiver drop one it will not carry; a client's may run to kilobytes, repeated in each span.
const maxTracestate = 512

// headerCarrier returns the trace context fields of h (traceparent, and a tracestate of at most
// maxTracestate bytes) as a map, the carrier package tracing reads.
func headerCarrier(h http.Header) map[string]string {
	var out map[string]string
	for _, k := range (propagation.TraceContext{}).Fields() {
		if v := h.Get(k); v != "" && (k != "tracestate" || len(v) <= maxTracestate) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
