package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/tracing"
)

// TestTracingEndpoint: where spans go is Herald's setting, else OpenTelemetry's traces endpoint,
// else its base endpoint with /v1/traces; OTEL_SDK_DISABLED=true and no endpoint at all turn
// tracing off; a URL that is not http(s) is refused naming its setting, its password masked.
func TestTracingEndpoint(t *testing.T) {
	tests := []struct {
		name    string
		flag    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "nothing set", want: ""},
		{name: "blank variables", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": " ", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}, want: ""},
		{name: "herald's setting", flag: "http://collector:4318/", want: "http://collector:4318/v1/traces"},
		{name: "herald's setting wins", flag: "http://a:4318", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318"}, want: "http://a:4318/v1/traces"},
		{name: "traces endpoint as it is", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318"}, want: "https://c/custom"},
		{name: "base endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318"}, want: "http://b:4318/v1/traces"},
		{name: "disabled wins", flag: "http://a:4318", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE"}, want: ""},
		{name: "disabled false", env: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318"}, want: "http://b:4318/v1/traces"},
		{name: "base with a path", flag: "http://collector:4318/otlp/", want: "http://collector:4318/otlp/v1/traces"},
		{name: "not http", flag: "grpc://c:4317", wantErr: "--otlp-endpoint"},
		{name: "credentials", flag: "http://u:Hidd3nPw@c:4318", wantErr: "--otlp-endpoint: a URL with a user or password is refused"},
		{name: "credentials of another scheme", flag: "grpc://u:Hidd3nPw@c:4317", wantErr: "--otlp-endpoint"},
		{name: "user alone", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://Hidd3nPw@b:4318"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT: a URL with a user"},
		{name: "query on a base", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318/?api_key=Hidd3nPw"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT: a URL with a query"},
		{name: "query on the traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/v1/traces?token=Hidd3nPw"}, wantErr: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: a URL with a query"},
		{name: "fragment", flag: "http://c:4318/#Hidd3nPw", wantErr: "--otlp-endpoint: a URL with a query or fragment"},
		{name: "not a URL", flag: "http://u:Hidd3nPw@c:port", wantErr: "--otlp-endpoint: not a URL"},
		{name: "no host", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http:///v1/traces"}, wantErr: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			got, err := tracingConfig{endpoint: tc.flag}.exportURL(lookup)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "Hidd3nPw") {
					t.Fatalf("error %v, want one naming %s without the password", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("exportURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestNoExporterWithoutEndpoint: with no endpoint anywhere, a process creates no exporter: its
// tracing is off and no component is there to flush one.
func TestNoExporterWithoutEndpoint(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	var cfg processConfig
	tr, comps, err := cfg.tracingExporter(parts{api: true}, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil || tr.On() || len(comps) != 0 {
		t.Fatalf("tracing on %v, %d components, error %v; want off, none, nil", tr.On(), len(comps), err)
	}
	cfg.tracing.endpoint = "http://127.0.0.1:4318"
	tr, comps, err = cfg.tracingExporter(parts{api: true}, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil || !tr.On() || len(comps) != 1 {
		t.Fatalf("with an endpoint: tracing on %v, %d components, error %v; want on, the exporter's, nil", tr.On(), len(comps), err)
	}
	// Stopped at once, the component shuts the exporter down: nothing was recorded to flush.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := comps[0].run(ctx); err != nil {
		t.Errorf("shut an idle exporter down: %v", err)
	}
}

// TestServiceNames: each process names itself in its spans.
func TestServiceNames(t *testing.T) {
	for p, want := range map[parts]string{
		{api: true}: "herald-serve", {workers: true}: "herald-worker", {projector: true}: "herald-projector",
		{api: true, workers: true, projector: true, webhooks: true, bounces: true}: "herald-all",
		{webhooks: true}: "herald-webhooks", {bounces: true}: "herald-bounces",
	} {
		if got := p.serviceName(); got != want {
			t.Errorf("%+v: %q, want %q", p, got, want)
		}
	}
}

// TestExportHeaders: the collector's headers come from OTEL_EXPORTER_OTLP_HEADERS, overridden name
// by name by OTEL_EXPORTER_OTLP_TRACES_HEADERS, their values URL-decoded and returned as secrets; a
// malformed list is refused naming the variable and the entry's place, never the token in it.
func TestExportHeaders(t *testing.T) {
	const token = "Hidd3nTok3n-7731"
	tests := []struct {
		name    string
		env     map[string]string
		want    map[string]string
		wantErr string
	}{
		{name: "none"},
		{name: "one", env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20" + token},
			want: map[string]string{"Authorization": "Bearer " + token}},
		{name: "traces override", env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=a, x-team = b ,",
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-api-key=" + token},
			want: map[string]string{"x-api-key": token, "x-team": "b"}},
		{name: "no equals sign", env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-team=b,Bearer " + token},
			wantErr: "$OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not name=value"},
		{name: "bad name", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Bearer " + token + "=x"},
			wantErr: "$OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 1: its name is not a valid HTTP header name"},
		{name: "bad escape", env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=" + token + "%zz"},
			wantErr: "$OTEL_EXPORTER_OTLP_HEADERS: entry 1 (Authorization): its value is not URL-encoded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			got, secrets, err := exportHeaders(lookup)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if masked := redact.New(secrets...).String(tc.env["OTEL_EXPORTER_OTLP_HEADERS"] + tc.env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"]); strings.Contains(masked, token) {
					t.Errorf("the secrets returned with the error do not mask the token: %s", masked)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("exportHeaders = %v, %v; want %v", got, err, tc.want)
			}
			if masked := redact.New(secrets...).String(fmt.Sprint(got)); strings.Contains(masked, token) {
				t.Errorf("the secrets returned do not mask the token: %s", masked)
			}
		})
	}
}

// TestMalformedHeadersStopTheProcessQuietly: a process given a malformed
// OTEL_EXPORTER_OTLP_HEADERS stops before connecting anywhere, naming the variable, and nothing it
// prints holds the token.
func TestMalformedHeadersStopTheProcessQuietly(t *testing.T) {
	const token = "Hidd3nTok3n-5520"
	out, code := execHerald(t, map[string]string{
		"HERALD_OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
		"OTEL_EXPORTER_OTLP_HEADERS":         "Authorization=Bearer%20" + token + ",Bearer " + token,
		"HERALD_DATABASE_URL":                "postgres://herald@127.0.0.1:1/herald?connect_timeout=1",
	}, "serve")
	if code != 1 || !strings.Contains(out, "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not name=value") {
		t.Errorf("exit %d, output %q; want 1 and the variable named", code, out)
	}
	if strings.Contains(out, token) {
		t.Errorf("the output holds the token:\n%s", out)
	}

	// With tracing off, the headers are not used: they stop nothing.
	var cfg processConfig
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if tr, _, err := cfg.tracingExporter(parts{api: true}, nil, errors.New("malformed"), slog.New(slog.DiscardHandler)); err != nil || tr.On() {
		t.Errorf("tracing off with malformed headers: on %v, error %v; want off and no error", tr.On(), err)
	}
}

// TestOpenTelemetryLogsGoThroughTheMaskedLogger: what OpenTelemetry reports, here the exporter's
// complaint about a header it cannot parse and an export's error, reaches the process's logger,
// whose masking hides the token, and not standard error.
func TestOpenTelemetryLogsGoThroughTheMaskedLogger(t *testing.T) {
	const token = "Hidd3nTok3n-9014"
	var buf lockedBuffer
	logger := slog.New(redact.New(token).Handler(slog.NewTextHandler(&buf, nil)))
	routeOpenTelemetryLogs(logger)
	// The exporter reads the variable itself, beside the headers Herald gives it.
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Bearer "+token)
	exp, err := tracing.Export(tracing.ExportConfig{URL: "http://127.0.0.1:1/v1/traces", ServiceName: "herald-serve"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	otel.Handle(fmt.Errorf("collector answered 401 to Bearer %s", token))

	logged := buf.String()
	if !strings.Contains(logged, "parse headers") || !strings.Contains(logged, "collector answered 401") {
		t.Errorf("OpenTelemetry's reports did not reach the logger: %q", logged)
	}
	if strings.Contains(logged, token) {
		t.Errorf("the log holds the token: %s", logged)
	}
}

// TestTraceFlushIsBoundedAndQuiet: at shutdown, a collector that accepts the connection and never
// answers holds the exporter's component up for half the grace, and the component returns nil,
// logging a warning: the lost spans do not make a clean stop fail. The bound checked is the
// grace itself, which leaves a loaded machine room over the half it waits and is still well
// below the flush timeout (5 s) that a flush not bounded by the grace would take.
func TestTraceFlushIsBoundedAndQuiet(t *testing.T) {
	collector := heraldtest.SilentListener(t)

	// The exporter's goroutine goes on trying (and logging) after the component has given up,
	// beyond this test's end: the log is written under a lock.
	var buf lockedBuffer
	cfg := processConfig{grace: 2 * time.Second}
	cfg.tracing.endpoint = "http://" + collector
	tr, comps, err := cfg.tracingExporter(parts{api: true}, nil, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil || len(comps) != 1 {
		t.Fatalf("%d components, %v", len(comps), err)
	}
	_, span := tr.Start(context.Background(), "accept notification")
	span.End()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err = comps[0].run(ctx)
	took := time.Since(start)
	if err != nil {
		t.Errorf("the exporter's component returned %v, want nil", err)
	}
	if took >= cfg.grace {
		t.Errorf("the flush took %s, want half the grace, %s, and under the grace", took, cfg.grace/2)
	}
	if !strings.Contains(buf.String(), "traces not flushed") {
		t.Errorf("no warning of the lost spans: %q", buf.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
