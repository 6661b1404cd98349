package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/tracing"
)

// tracingConfig says where a process exports its traces: Herald's own setting, else
// OpenTelemetry's standard variables; with none, tracing is off and no exporter exists.
type tracingConfig struct {
	endpoint string
}

func (c *tracingConfig) register(s *settings) {
	s.URL(&c.endpoint, "otlp-endpoint", "HERALD_OTEL_EXPORTER_OTLP_ENDPOINT", "",
		"OTLP/HTTP collector to export traces to, such as http://127.0.0.1:4318 (/v1/traces is added); empty: "+
			"$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else $OTEL_EXPORTER_OTLP_ENDPOINT, else no tracing; "+
			"OTEL_SDK_DISABLED=true turns tracing off")
}

// exportURL is the URL spans are POSTed to, "" when tracing is off. lookup reads the
// environment: OTEL_SDK_DISABLED=true wins; then --otlp-endpoint and
// OTEL_EXPORTER_OTLP_ENDPOINT, base URLs to which /v1/traces is added, as OpenTelemetry's
// specification says; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is taken as it is.
func (c tracingConfig) exportURL(lookup func(string) (string, bool)) (string, error) {
	env := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return "", nil
	}
	var setting, u string
	switch {
	case c.endpoint != "":
		setting, u = "--otlp-endpoint", tracesURL(c.endpoint)
	case env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		setting, u = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	case env("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		setting, u = "OTEL_EXPORTER_OTLP_ENDPOINT", tracesURL(env("OTEL_EXPORTER_OTLP_ENDPOINT"))
	default:
		return "", nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "", fmt.Errorf("%s %s: want an http:// or https:// URL such as http://127.0.0.1:4318", setting, redact.URL(u))
	}
	return u, nil
}

// tracesURL is the traces URL of an OTLP base URL.
func tracesURL(base string) string { return strings.TrimRight(base, "/") + "/v1/traces" }

// serviceName names the process p runs in its spans: herald-serve, herald-worker, ...
func (p parts) serviceName() string {
	switch {
	case p.api && p.workers:
		return "herald-all"
	case p.api:
		return "herald-serve"
	case p.workers:
		return "herald-worker"
	case p.projector:
		return "herald-projector"
	case p.webhooks:
		return "herald-webhooks"
	case p.bounces:
		return "herald-bounces"
	}
	return "herald"
}

// tracingExporter returns the process's tracing under cfg and, when it exports, the component
// that flushes and shuts its exporter down: the first to start, so the last to stop, once every
// span is ended. Off, there is no exporter and no component.
func (cfg *processConfig) tracingExporter(p parts) (tracing.Tracing, []component, error) {
	u, err := cfg.tracing.exportURL(os.LookupEnv)
	if err != nil || u == "" {
		return tracing.Off(), nil, err
	}
	exp, err := tracing.Export(tracing.ExportConfig{URL: u, ServiceName: p.serviceName(),
		Process: strings.TrimPrefix(p.serviceName(), "herald-"), Version: version})
	if err != nil {
		return tracing.Off(), nil, err
	}
	return exp.Tracing, []component{{name: "trace exporter", run: func(ctx context.Context) error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := exp.Shutdown(sctx); err != nil {
			return fmt.Errorf("flush traces: %w", err)
		}
		return nil
	}}}, nil
}
