package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ExportConfig says where a process sends its spans and under which name.
type ExportConfig struct {
	// URL is the full URL spans are POSTed to as OTLP/HTTP protobuf, such as
	// http://collector:4318/v1/traces. Empty: tracing is off.
	URL string
	// ServiceName is the service.name of every span: herald-serve, herald-worker, ...
	ServiceName string
	// Process is the herald.process attribute of the resource: the subcommand.
	Process string
	// Version is service.version.
	Version string
	// Headers are sent with each export: a collector's API key, typically.
	Headers map[string]string
}

// Exporter is a process's tracing: its Tracing, and Shutdown, which sends the spans still
// buffered and stops the exporter.
type Exporter struct {
	Tracing  Tracing
	Shutdown func(context.Context) error
}

// Export returns the tracing of a process under cfg: with a URL, spans are batched and exported
// over OTLP/HTTP, sampled as OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG say (the SDK reads
// them), by default every trace unless a caller's traceparent says it is not; without one,
// tracing is off and no exporter exists.
func Export(cfg ExportConfig) (Exporter, error) {
	if cfg.URL == "" {
		return Exporter{Tracing: Off(), Shutdown: func(context.Context) error { return nil }}, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.URL)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return Exporter{}, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("herald.process", cfg.Process),
	}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	// Only the W3C trace context travels: baggage a client sends would otherwise be stored in
	// the outbox and the log.
	return Exporter{Tracing: New(tp, propagation.TraceContext{}), Shutdown: tp.Shutdown}, nil
}
