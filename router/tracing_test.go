package router

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/tracing"
)

// recording returns a Tracing whose ended spans rec holds.
func recording() (tracing.Tracing, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), propagation.TraceContext{}), rec
}

// publisherFunc is a message.Publisher whose Publish is a function: the broker's answer.
type publisherFunc func(string, ...*message.Message) error

func (f publisherFunc) Publish(topic string, msgs ...*message.Message) error {
	return f(topic, msgs...)
}
func (publisherFunc) Close() error { return nil }

// TestPublishSpanSaysOnlyThatItFailed: a failed publish marks the relay's span with a fixed
// description, never the broker's reply; a publisher that panics still ends the span.
func TestPublishSpanSaysOnlyThatItFailed(t *testing.T) {
	tr, rec := recording()
	const reply = "NOT_FOUND - no queue 'email_notifications' in vhost 'secret-vhost'"
	failing := tracedPublisher{Publisher: publisherFunc(func(string, ...*message.Message) error { return errors.New(reply) }), tracing: tr}
	if err := failing.Publish("email_notifications", message.NewMessage("m1", nil)); err == nil || err.Error() != reply {
		t.Fatalf("Publish = %v, want the broker's error", err)
	}
	panicking := tracedPublisher{Publisher: publisherFunc(func(string, ...*message.Message) error { panic("broken channel") }), tracing: tr}
	func() {
		defer func() { _ = recover() }()
		_ = panicking.Publish("email_notifications", message.NewMessage("m2", nil))
	}()

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want the failed publish's and the panicked one's", len(spans))
	}
	if s := spans[0].Status(); s.Code != codes.Error || s.Description != publishFailed || strings.Contains(s.Description, "secret-vhost") {
		t.Errorf("failed publish: status %v %q, want error %q", s.Code, s.Description, publishFailed)
	}
}

// TestAttemptSpanEndsWhenTheDelivererPanics: a panic in the deliverer, which the router's
// recoverer turns into an error, still ends the attempt's span, marked failed.
func TestAttemptSpanEndsWhenTheDelivererPanics(t *testing.T) {
	tr, rec := recording()
	// A deliverer with no store panics on its first read of it.
	d := handlers.NewDeliverer(nil, map[herald.Channel]delivery.Provider{herald.ChannelEmail: namedProvider{}}, handlers.Policy{}, "test/1", slog.Default())
	w := &Workers{cfg: WorkerConfig{Tracing: tr}, deliverer: d, worker: "test/1"}
	h := w.handle(herald.ChannelEmail, herald.PriorityNormal)
	ctx := cqrs.CtxWithOriginalMessage(context.Background(), message.NewMessage("m1", nil))
	panicked := func() (p any) {
		defer func() { p = recover() }()
		_ = h(ctx, &commands.SendNotification{NotificationID: "n1", Channel: herald.ChannelEmail})
		return nil
	}()
	if panicked == nil {
		t.Fatal("the deliverer did not panic: the test proves nothing")
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want the attempt's", len(spans))
	}
	if s := spans[0].Status(); s.Code != codes.Error || s.Description != "attempt failed" {
		t.Errorf("attempt status %v %q, want error %q", s.Code, s.Description, "attempt failed")
	}
}

// namedProvider is a provider the deliverer never reaches in these tests.
type namedProvider struct{}

func (namedProvider) Name() string { return "smtp" }
func (namedProvider) Send(context.Context, delivery.Message) (string, error) {
	return "", errors.New("not reached")
}

// TestApplySpansSkipHistory: a projection applying events appended long ago (a new projection,
// one catching up) opens no span for them; a recent event gets its span.
func TestApplySpansSkipHistory(t *testing.T) {
	tr, rec := recording()
	now := time.Now()
	trace := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	recs := []events.Recorded{
		{StreamID: "old", Type: "NotificationSent", Time: now.Add(-3 * time.Hour), Metadata: events.Metadata{Trace: trace}},
		{StreamID: "recent", Type: "NotificationSent", Time: now.Add(-time.Minute), Metadata: events.Metadata{Trace: trace}},
		{StreamID: "untraced", Type: "NotificationSent", Time: now},
	}
	traceApplied(tr, "notification_status", recs, now, now.Add(time.Millisecond))
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d apply spans, want 1: the recent event's", len(spans))
	}
	for _, a := range spans[0].Attributes() {
		if a.Key == tracing.AttrNotificationID && a.Value.AsString() != "recent" {
			t.Errorf("the span applies %q, want recent", a.Value.AsString())
		}
	}
}
