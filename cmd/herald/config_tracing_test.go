package main

import (
	"context"
	"strings"
	"testing"
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
		{name: "not http", flag: "grpc://u:Hidd3nPw@c:4317", wantErr: "--otlp-endpoint"},
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
	tr, comps, err := cfg.tracingExporter(parts{api: true})
	if err != nil || tr.On() || len(comps) != 0 {
		t.Fatalf("tracing on %v, %d components, error %v; want off, none, nil", tr.On(), len(comps), err)
	}
	cfg.tracing.endpoint = "http://127.0.0.1:4318"
	tr, comps, err = cfg.tracingExporter(parts{api: true})
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
