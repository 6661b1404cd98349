package handlers

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/tracing"
)

// endSpan ends span, marked failed with status when err is set. An error's text may quote a
// recipient or a provider's answer about one: the span gets status, never err's text.
func endSpan(span trace.Span, err error, status string) {
	if err != nil {
		span.SetStatus(codes.Error, status)
	}
	span.End()
}

// startProviderCall opens the span of attempt n's call to its channel's provider, named for the
// provider (the first of a failover chain; endProviderCall renames it for the one that answered).
func (d *Deliverer) startProviderCall(ctx context.Context, provider string, n herald.Notification) (context.Context, trace.Span) {
	if !d.tracing.On() {
		return ctx, tracing.NoSpan()
	}
	return d.tracing.Start(ctx, provider+" "+tracing.SpanProviderCall, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			tracing.AttrNotificationID.String(n.ID),
			tracing.AttrChannel.String(string(n.Channel)),
			tracing.AttrAttempt.Int(n.Attempts),
			tracing.AttrProvider.String(provider),
		))
}

// endProviderCall ends a provider call's span with the provider that answered and the outcome:
// sent, transient or permanent. The provider's error is not recorded: it may quote the recipient.
func endProviderCall(span trace.Span, route delivery.Route, err error) {
	if !span.IsRecording() {
		return
	}
	outcome := "sent"
	switch {
	case err != nil && delivery.IsPermanent(err):
		outcome = "permanent"
	case err != nil:
		outcome = "transient"
	}
	if route.Provider != "" {
		span.SetName(route.Provider + " " + tracing.SpanProviderCall)
		span.SetAttributes(tracing.AttrProvider.String(route.Provider))
	}
	span.SetAttributes(tracing.AttrOutcome.String(outcome))
	endSpan(span, err, "provider call failed: "+outcome)
}
