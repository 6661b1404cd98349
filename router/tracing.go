package router

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/tracing"
)

// tracedPublisher opens the relay's span around each command it publishes: a child of the span
// that stored the command (its context is in the message's metadata, from the outbox), whose own
// context replaces it in the metadata, and so in the RabbitMQ headers the worker reads.
type tracedPublisher struct {
	message.Publisher
	tracing tracing.Tracing
}

func (p tracedPublisher) Publish(queue string, msgs ...*message.Message) error {
	for _, msg := range msgs {
		ctx := p.tracing.Extract(msg.Context(), msg.Metadata)
		ctx, span := p.tracing.Start(ctx, queue+" "+tracing.SpanRelayPublish, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				tracing.AttrMessagingSystem.String("rabbitmq"),
				tracing.AttrMessagingDest.String(queue),
				tracing.AttrMessagingOp.String("send"),
				tracing.AttrMessageID.String(msg.UUID),
			))
		p.tracing.Inject(ctx, msg.Metadata)
		if err := p.publish(queue, msg, span); err != nil {
			return err
		}
	}
	return nil
}

// publish publishes msg under span, which it ends even if the publisher panics. A failure is
// marked with a fixed description: the broker's reply is in the relay's log, not in the trace.
func (p tracedPublisher) publish(queue string, msg *message.Message, span trace.Span) (err error) {
	defer func() { endPublish(span, err) }()
	return p.Publisher.Publish(queue, msg)
}

// publishFailed is the status description of a failed publish's span.
const publishFailed = "publish failed"

// endPublish ends a publish's span, marked failed with publishFailed when err is set.
func endPublish(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, publishFailed)
	}
	span.End()
}

// startAttempt opens the worker's span for one delivery attempt of cmd, read from queue: a child
// of the relay's publish, whose context the message's headers carry.
func startAttempt(ctx context.Context, t tracing.Tracing, msg *message.Message, queue, handler string, cmd *commands.SendNotification) (context.Context, trace.Span) {
	if !t.On() {
		return ctx, tracing.NoSpan()
	}
	ctx = t.Extract(ctx, msg.Metadata)
	return t.Start(ctx, queue+" "+tracing.SpanAttempt, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			tracing.AttrMessagingSystem.String("rabbitmq"),
			tracing.AttrMessagingDest.String(queue),
			tracing.AttrMessagingOp.String("process"),
			tracing.AttrMessageID.String(msg.UUID),
			tracing.AttrHandler.String(handler),
			tracing.AttrNotificationID.String(cmd.NotificationID),
			tracing.AttrChannel.String(string(cmd.Channel)),
		))
}

// maxApplyAge is the age beyond which an event's apply opens no span (see traceApplied).
const maxApplyAge = 10 * time.Minute

// errAttemptPanicked is what an attempt's span records of a panic: the panic goes on.
var errAttemptPanicked = errors.New("attempt panicked")

// endAttempt closes an attempt's span. An error's text may quote the recipient a provider
// refused: the span says only that the attempt failed.
func endAttempt(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "attempt failed")
	}
	span.End()
}

// traceApplied records a span for each event of a batch projection applied that carries a
// trace context: a child of the span that appended the event, from the start of the batch to
// its commit, so that a notification's trace ends where its status changes. An event appended
// more than maxApplyAge before the batch gets none: a new projection, or one catching up after
// an outage, replays history, and a span for each old event would flood the collector with
// spans added to traces long finished.
func traceApplied(t tracing.Tracing, projection string, recs []events.Recorded, start, end time.Time) {
	if !t.On() {
		return
	}
	for _, rec := range recs {
		if len(rec.Metadata.Trace) == 0 || start.Sub(rec.Time) > maxApplyAge {
			continue
		}
		ctx := t.Extract(context.Background(), rec.Metadata.Trace)
		_, span := t.Start(ctx, projection+" "+tracing.SpanProjectorApply, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithTimestamp(start),
			trace.WithAttributes(
				tracing.AttrProjection.String(projection),
				tracing.AttrEventType.String(rec.Type),
				tracing.AttrNotificationID.String(rec.StreamID),
				tracing.AttrStreamVersion.Int64(rec.Version),
				tracing.AttrPosition.Int64(rec.Position),
			))
		span.End(trace.WithTimestamp(end))
	}
}
