package handlers

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/tracing"
)

// panickingProvider is a provider with a bug: its Send panics.
type panickingProvider struct{}

func (panickingProvider) Name() string { return "broken" }
func (panickingProvider) Send(context.Context, delivery.Message) (string, error) {
	panic("nil map")
}

// TestProviderCallSpanEndsWhenTheProviderPanics: a provider's panic, which the router recovers,
// still ends the call's span, as a transient failure.
func TestProviderCallSpanEndsWhenTheProviderPanics(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	d := (&Deliverer{}).WithTracing(tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), propagation.TraceContext{}))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the provider's panic did not go on")
			}
		}()
		_, _, _ = d.callProvider(context.Background(), panickingProvider{}, herald.Notification{ID: "n1", Channel: herald.ChannelEmail}, nil)
	}()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want the provider call's", len(spans))
	}
	if s := spans[0].Status(); s.Code != codes.Error {
		t.Errorf("status %v, want error", s.Code)
	}
	for _, a := range spans[0].Attributes() {
		if a.Key == tracing.AttrOutcome && a.Value.AsString() != "transient" {
			t.Errorf("outcome %q, want transient", a.Value.AsString())
		}
	}
}
