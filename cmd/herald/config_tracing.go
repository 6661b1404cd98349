package main

import (
	"cmp"
	"context"
	"log/slog"

	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"

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
// specification says; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is taken as it is. A URL with
// credentials or a query is refused: the exporter would drop them without a word, and a
// collector's key belongs in OTEL_EXPORTER_OTLP_HEADERS, which Herald masks.
func (c tracingConfig) exportURL(lookup func(string) (string, bool)) (string, error) {
	env := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return "", nil
	}
	var setting, raw string
	base := true
	switch {
	case c.endpoint != "":
		setting, raw = "--otlp-endpoint", c.endpoint
	case env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		setting, raw, base = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), false
	case env("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		setting, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", env("OTEL_EXPORTER_OTLP_ENDPOINT")
	default:
		return "", nil
	}
	p, err := url.Parse(raw)
	switch {
	case err != nil:
		// The parser's error quotes the URL, password and all.
		return "", fmt.Errorf("%s: not a URL; want one such as http://127.0.0.1:4318", setting)
	case p.User != nil:
		return "", fmt.Errorf("%s: a URL with a user or password is refused; give the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS", setting)
	case p.RawQuery != "" || p.ForceQuery || p.Fragment != "":
		return "", fmt.Errorf("%s: a URL with a query or fragment is refused; give the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS", setting)
	case (p.Scheme != "http" && p.Scheme != "https") || p.Host == "":
		return "", fmt.Errorf("%s %s: want an http:// or https:// URL such as http://127.0.0.1:4318", setting, redact.URL(raw))
	}
	if !base {
		return p.String(), nil
	}
	return p.JoinPath("v1", "traces").String(), nil
}

// exportHeaders returns the headers sent with each export: OTEL_EXPORTER_OTLP_HEADERS, overridden
// name by name by OTEL_EXPORTER_OTLP_TRACES_HEADERS, each a comma-separated list of
// name=value, values URL-encoded, as OpenTelemetry's specification says. They typically carry a
// collector's API key: a malformed list is an error naming the variable and the entry's place,
// never its text. secrets, returned even with an error, are the entries' values, and the whole of
// a malformed one, so that the logs mask them.
func exportHeaders(lookup func(string) (string, bool)) (headers map[string]string, secrets []string, err error) {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		v, _ := lookup(name)
		for i, entry := range strings.Split(v, ",") {
			if strings.TrimSpace(entry) == "" {
				continue
			}
			k, raw, ok := strings.Cut(entry, "=")
			if !ok {
				secrets = append(secrets, strings.TrimSpace(entry))
				err = cmp.Or(err, fmt.Errorf("$%s: entry %d is not name=value", name, i+1))
				continue
			}
			secrets = append(secrets, strings.TrimSpace(raw))
			k = strings.TrimSpace(k)
			if !validHeaderName(k) {
				secrets = append(secrets, strings.TrimSpace(entry))
				err = cmp.Or(err, fmt.Errorf("$%s: entry %d: its name is not a valid HTTP header name", name, i+1))
				continue
			}
			val, uerr := url.PathUnescape(raw)
			if uerr != nil {
				err = cmp.Or(err, fmt.Errorf("$%s: entry %d (%s): its value is not URL-encoded", name, i+1, k))
				continue
			}
			val = strings.TrimSpace(val)
			secrets = append(secrets, val)
			if headers == nil {
				headers = map[string]string{}
			}
			headers[k] = val
		}
	}
	if err != nil {
		return nil, secrets, err
	}
	return headers, secrets, nil
}

// validHeaderName reports whether k is an HTTP header name: one or more of RFC 9110's tchar.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r > 0x7e || !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

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
// span is ended. Off, there is no exporter and no component. headers are the export's headers
// and headersErr what was wrong with them (see exportHeaders): an error only when tracing is on.
// What OpenTelemetry has to say, an export that failed or a setting it could not read, goes to
// logger, through its masking of secrets.
func (cfg *processConfig) tracingExporter(p parts, headers map[string]string, headersErr error, logger *slog.Logger) (tracing.Tracing, []component, error) {
	u, err := cfg.tracing.exportURL(os.LookupEnv)
	if err != nil || u == "" {
		return tracing.Off(), nil, err
	}
	if headersErr != nil {
		return tracing.Off(), nil, headersErr
	}
	routeOpenTelemetryLogs(logger)
	exp, err := tracing.Export(tracing.ExportConfig{URL: u, Headers: headers, ServiceName: p.serviceName(),
		Process: strings.TrimPrefix(p.serviceName(), "herald-"), Version: version})
	if err != nil {
		return tracing.Off(), nil, err
	}
	flush := min(flushTimeout, cfg.grace/2)
	if cfg.grace <= 0 {
		flush = flushTimeout
	}
	return exp.Tracing, []component{{name: "trace exporter", run: func(ctx context.Context) error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flush)
		defer cancel()
		// Spans are worth a warning, not the process's exit status: a collector that is away
		// must not turn a clean stop into a failure, nor hold it up beyond flush.
		if err := exp.Shutdown(sctx); err != nil {
			logger.Warn("traces not flushed at shutdown; the spans still buffered are lost", "error", err, "timeout", flush)
		}
		return nil
	}}}, nil
}

// flushTimeout bounds the flush of the spans a process still holds when it stops, within half
// its shutdown grace.
const flushTimeout = 5 * time.Second

// routeOpenTelemetryLogs sends what OpenTelemetry reports (an export that failed, a setting it
// could not read) to logger instead of standard error, where it would bypass the masking of
// secrets. OpenTelemetry's handler and logger are process-wide: only main's wiring sets them.
func routeOpenTelemetryLogs(logger *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("OpenTelemetry", "error", err)
	}))
	otel.SetLogger(logr.FromSlogHandler(logger.Handler()))
}
