package bench_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/bench"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sampleCheckpoints is the sample run's count of checkpoints sealed.
var sampleCheckpoints = 6

func sampleReport() *bench.Report {
	amqpRatio, pgRatio := 0.0312, 0.2941
	return &bench.Report{
		ReportVersion: bench.ReportVersion,
		Started:       time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		Finished:      time.Date(2026, 11, 28, 10, 1, 2, 0, time.UTC),
		Settings: bench.Settings{Mode: "spawn", N: 20000, SMSRatio: 0.5, Loop: "open", Rate: 500, MaxInFlight: 256, Concurrency: 16,
			RequestTimeout: 30, Sample: 10, PollInterval: 20, PollRate: 500, Drain: 300, Ceiling: true, CeilingSeconds: 5,
			Spawn: []string{"all"}, Workers: 1, Env: []string{"HERALD_RELAY_BATCH_SIZE=100"}, Webhooks: 1, WebhookFailing: true,
			Ledger: bench.LedgerSealed},
		CheckpointsSealed: &sampleCheckpoints,
		Environment: bench.Environment{Hostname: "vm", CPUs: 2, CPUModel: "AMD EPYC", OS: "linux/amd64", GoVersion: "go1.26.8",
			HeraldVersion: "dev", PostgresVersion: "15.20", RabbitMQVersion: "3.10.8", LoadAverage: "1.02 0.80 0.75"},
		Load: bench.Load{Requested: 20000, Posted: 20000, Accepted: 19998, Errors: 2,
			ErrorsByKind: map[string]int64{"503 unavailable": 1, "transport: timeout": 1},
			Seconds:      40.01, AcceptedPerSec: 499.8,
			APILatency:      bench.Summary{Count: 19999, MinMS: 1.2, MeanMS: 4.1, P50MS: 3.1, P95MS: 8.24, P99MS: 15.5, MaxMS: 120.4},
			MaxStartDelayMS: 12.3, LateStarts: 3, MachineCPUBusy: 0.93, OtherCPUSeconds: 2.5},
		Delivery: &bench.Delivery{Delivered: 19998, Duplicates: 1, Seconds: 40.8, DeliveredPerSec: 490.1,
			AcceptToDelivery: bench.Summary{Count: 19998, P50MS: 55, P95MS: 90, P99MS: 140, MaxMS: 400},
			AcceptToDeliveryByChannel: map[string]bench.Summary{
				"email": {Count: 9999, P50MS: 70, P95MS: 95, P99MS: 150, MaxMS: 400},
				"sms":   {Count: 9999, P50MS: 40, P95MS: 60, P99MS: 90, MaxMS: 200},
			}},
		Status: bench.StatusFigures{SampleEvery: 10, Sampled: 2000, SeenSent: 2000, StatusGETs: 9000, EventsGETs: 2000, MeanPollGapMS: 21.3,
			AcceptToSent:  bench.Summary{Count: 2000, P50MS: 110, P95MS: 180, P99MS: 240, MaxMS: 500},
			ProjectionLag: bench.Summary{Count: 2000, P50MS: 48, P95MS: 80, P99MS: 95, MaxMS: 150}, SentViaLogFold: 12},
		Outcome: bench.Outcome{Accepted: 19998, Sent: 19998, Settled: true, DrainSeconds: 1.2, Source: "read model"},
		Memory: &bench.Memory{Processes: []bench.ProcessFigures{{Role: "all", PID: 4242, PeakRSS: 95 << 20, MaxSampledRSS: 93 << 20, CPUSeconds: 31.5}},
			Series:     []bench.RSSSample{{T: 0, Bytes: 30 << 20, PerProcess: []int64{30 << 20}}, {T: 1, Bytes: 93 << 20, PerProcess: []int64{93 << 20}}},
			PeakRSSSum: 95 << 20, MaxSampledRSS: 93 << 20, PostgresPSS: 300 << 20, RabbitMQPSS: 180 << 20, BenchPeakRSS: 40 << 20, BenchCPUSeconds: 12},
		Ceiling: &bench.CeilingReport{Seconds: 5,
			AMQP:         &bench.AMQPCeiling{Publishers: 16, ConfirmWindow: 100, Prefetch: 50, PublishedPerSec: 15800, ConsumedPerSec: 15700},
			Postgres:     []bench.PGCeiling{{Clients: 1, InsertsPer: 2800}, {Clients: 4, InsertsPer: 5300}, {Clients: 16, InsertsPer: 6666}},
			PostgresBest: 6666, DeliveredOverAMQP: &amqpRatio, DeliveredOverPGCommits: &pgRatio},
		Webhooks: &bench.WebhookFigures{Endpoints: 1, Expected: 59994, Arrived: 59994, Duplicates: 2, Seconds: 41.2, ArrivedPerSec: 1456.2,
			EventToArrival: bench.Summary{Count: 59994, P50MS: 120, P90MS: 210, P95MS: 260, P99MS: 480, MaxMS: 1200}, WaitSeconds: 0.8,
			Failing: &bench.FailingWebhook{Requests: 239976, Events: 59994,
				EventToFirstAttempt: bench.Summary{Count: 59994, P50MS: 130, P90MS: 230, P95MS: 280, P99MS: 500, MaxMS: 1300}}},
		Cost: &bench.CostReport{
			Herald: &bench.CostFigures{Notifications: 19998, Seconds: 58.2, Commits: 6.1, IdleCommitsPerSec: 35.2, BenchCommits: 240,
				RowsInserted: 7, RowsUpdated: 1, RowsDeleted: 0, RowsWritten: 8, RowsFetched: 12.5,
				Tables:         []bench.TableCost{{Table: "event_log", RowsWritten: 3}, {Table: "notification_history", RowsWritten: 3}, {Table: "notification_status", RowsWritten: 1.5}},
				StatementsNote: "pg_stat_statements not loaded",
				Publishes:      1, Confirms: 1, Deliveries: 1, Acks: 1,
				CPU:           &bench.CPUSplit{Machine: 5, Herald: 1.6, PostgreSQL: 1.5, RabbitMQ: 1.01, Bench: 0.4, Other: 0.49, Steal: 0.05},
				CPUSeconds:    &bench.CPUSplit{Machine: 99.99, Herald: 32, PostgreSQL: 30, RabbitMQ: 20.2, Bench: 8, Other: 9.79, Steal: 1},
				IdleCPUPerSec: &bench.CPUSplit{Machine: 412.4, Herald: 103.1, PostgreSQL: 137.4, RabbitMQ: 103.1, Bench: 34.4, Other: 34.4},
				IdleCPU:       &bench.CPUSplit{Machine: 1.2, Herald: 0.3, PostgreSQL: 0.4, RabbitMQ: 0.3, Bench: 0.1, Other: 0.1},
				Totals: bench.CostCounts{Commits: 121988, RowsInserted: 139986, RowsUpdated: 19998, RowsFetched: 249975, Statements: -1,
					Publishes: 19998, Confirms: 19998, Deliveries: 19998, Acks: 19998}},
			Skeleton: &bench.CostFigures{Notifications: 5000, Seconds: 17, Commits: 3.2, Rollbacks: 0.1,
				RowsInserted: 8, RowsUpdated: 1, RowsDeleted: 1, RowsWritten: 10, RowsFetched: 9.5,
				Tables:         []bench.TableCost{{Table: "herald_bench_skel_events", RowsWritten: 3}},
				StatementsNote: "pg_stat_statements not loaded",
				Publishes:      1, Confirms: 1, Deliveries: 1, Acks: 1,
				CPU:        &bench.CPUSplit{Machine: 2.4, PostgreSQL: 0.9, RabbitMQ: 0.6, Bench: 0.7, Other: 0.2},
				CPUSeconds: &bench.CPUSplit{Machine: 12, PostgreSQL: 4.5, RabbitMQ: 3, Bench: 3.5, Other: 1},
				Totals: bench.CostCounts{Commits: 16000, Rollbacks: 500, RowsInserted: 40000, RowsUpdated: 5000, RowsDeleted: 5000, RowsFetched: 47500, Statements: -1,
					Publishes: 5000, Confirms: 5000, Deliveries: 5000, Acks: 5000}},
		},
		OK:       true,
		Problems: []string{},
		Warnings: []string{"duplicates: 1 arrivals beyond a notification's first"},
	}
}

// urlRunReport is sampleReport as a failed run against --url would report it: no sinks, no
// memory, no ratios.
func urlRunReport() *bench.Report {
	r := sampleReport()
	r.Settings.Mode, r.Settings.URL, r.Settings.Ledger = "url", "http://127.0.0.1:8080", bench.LedgerUnknown
	r.Delivery, r.Memory, r.Webhooks, r.Cost, r.CheckpointsSealed = nil, nil, nil, nil, nil
	r.Ceiling.DeliveredOverAMQP, r.Ceiling.DeliveredOverPGCommits = nil, nil
	r.Load.Errors, r.Load.ErrorsByKind = 3, map[string]int64{"503 unavailable": 1, "503": 1, "transport: timeout": 1}
	r.Outcome.DrainTimedOut, r.Outcome.Source = true, "status API"
	r.OK, r.Problems = false, []string{"3 accepted notifications were neither sent nor failed after 300.0s (lost)"}
	return r
}

// interruptedRunReport is sampleReport as an interrupted closed-loop run of separate processes
// would report it, with a failed ceiling: every branch of the table sampleReport does not take.
func interruptedRunReport() *bench.Report {
	r := sampleReport()
	r.Settings.Loop, r.Settings.Rate, r.Settings.MaxInFlight = "closed", 0, 0
	r.Settings.Spawn, r.Settings.Workers, r.Settings.Env = []string{"serve", "worker", "projector"}, 3, nil
	// A report from before --ledger: no ledger line.
	r.Settings.Ledger, r.CheckpointsSealed = "", nil
	r.Load.Errors, r.Load.ErrorsByKind, r.Load.MaxStartDelayMS, r.Load.LateStarts = 0, map[string]int64{}, 0, 0
	r.Load.APILatency = bench.Summary{}
	r.Cost.Skeleton = nil
	r.Cost.Herald.Error = "count after the run: context canceled"
	r.Delivery.AcceptToDeliveryByChannel = map[string]bench.Summary{"sms": r.Delivery.AcceptToDeliveryByChannel["sms"]}
	r.Status.SampleEvery = 0
	r.Webhooks.Failing, r.Webhooks.Arrived, r.Webhooks.Missing, r.Webhooks.WaitTimedOut = nil, 59000, 994, true
	r.Outcome.Settled, r.Outcome.DrainTimedOut = false, true
	r.Memory.Processes = []bench.ProcessFigures{
		{Role: "serve", PID: 11, PeakRSS: 40 << 20, MaxSampledRSS: 39 << 20, CPUSeconds: 10},
		{Role: "worker", PID: 12, PeakRSS: 30 << 20, MaxSampledRSS: 29 << 20, CPUSeconds: 12.25},
	}
	r.Ceiling = &bench.CeilingReport{Seconds: 1, Error: "amqp ceiling: connect: refused"}
	r.Environment.PostgresVersion, r.Environment.LoadAverage = "", ""
	r.OK, r.Problems, r.Warnings = false, []string{"the run stopped after 10 of 20000 POSTs"}, []string{}
	r.LogDir = "/tmp/herald-bench-1"
	return r
}

// TestReportTableGolden pins the table, byte for byte, for the runs that between them take
// every branch of WriteTable.
func TestReportTableGolden(t *testing.T) {
	tests := []struct {
		golden string
		report *bench.Report
	}{
		{"report.golden", sampleReport()},
		{"report-url.golden", urlRunReport()},
		{"report-interrupted.golden", interruptedRunReport()},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var got bytes.Buffer
			if err := tt.report.WriteTable(&got); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.golden, got.Bytes())
		})
	}
}

// TestReportJSONGolden pins the JSON report, byte for byte: scripts read it.
func TestReportJSONGolden(t *testing.T) {
	var got bytes.Buffer
	if err := sampleReport().WriteJSON(&got); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "report.json.golden", got.Bytes())
}

// checkGolden compares got with testdata/name, or rewrites the file with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./bench -run Golden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got; go test ./bench -run Golden -update if intended):\n%s", name, diff)
	}
}

func TestReportTableOfAFailedURLRun(t *testing.T) {
	r := urlRunReport()
	var got bytes.Buffer
	if err := r.WriteTable(&got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`against http://127\.0\.0\.1:8080`, `not measured with --url`, `PROBLEM: 3 accepted`, `result: FAILED`, `(?m)÷ AMQP consumed/s +-$`} {
		if !regexp.MustCompile(want).Match(got.Bytes()) {
			t.Errorf("table lacks %q:\n%s", want, got.String())
		}
	}
	if bytes.Contains(got.Bytes(), []byte(" \n")) {
		t.Errorf("table has trailing spaces:\n%q", got.String())
	}
}

func TestReportJSONHasEveryFigure(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not one JSON object: %v", err)
	}
	paths := [][]string{
		{"load", "accepted_per_sec"}, {"load", "api_latency", "p50_ms"}, {"load", "api_latency", "p95_ms"},
		{"load", "api_latency", "p99_ms"}, {"load", "api_latency", "max_ms"}, {"load", "errors_by_kind"},
		{"delivery", "delivered_per_sec"}, {"delivery", "duplicates"}, {"status", "accept_to_sent", "p50_ms"},
		{"status", "accept_to_sent", "p99_ms"}, {"status", "projection_lag", "p50_ms"}, {"status", "projection_lag", "p99_ms"},
		{"status", "status_gets"}, {"outcome", "lost"}, {"outcome", "failed"}, {"memory", "peak_rss_sum_bytes"},
		{"memory", "series"}, {"ceiling", "amqp", "consumed_per_sec"}, {"ceiling", "postgres"},
		{"ceiling", "ratio_delivered_over_amqp_consumed"}, {"ceiling", "ratio_delivered_over_pg_commits_div_4"},
		{"environment", "cpus"}, {"environment", "go_version"}, {"environment", "postgres_version"},
		{"environment", "rabbitmq_version"}, {"settings", "n"}, {"settings", "ledger"}, {"checkpoints_sealed"}, {"started"}, {"finished"}, {"ok"},
		{"webhooks", "expected"}, {"webhooks", "arrived"}, {"webhooks", "missing"}, {"webhooks", "duplicates"},
		{"webhooks", "bad_signatures"}, {"webhooks", "event_to_arrival", "p50_ms"}, {"webhooks", "event_to_arrival", "p90_ms"},
		{"webhooks", "event_to_arrival", "p99_ms"}, {"webhooks", "event_to_arrival", "max_ms"}, {"webhooks", "failing", "requests"},
		{"cost", "herald", "commits_per_notification"}, {"cost", "herald", "rows_written_per_notification"},
		{"cost", "herald", "amqp_publishes_per_notification"}, {"cost", "herald", "amqp_deliveries_per_notification"},
		{"cost", "herald", "rows_written_by_table"}, {"cost", "herald", "statements_note"},
		{"cost", "skeleton", "commits_per_notification"}, {"cost", "skeleton", "amqp_acks_per_notification"},
		{"cost", "herald", "cpu_ms_per_notification", "machine"}, {"cost", "herald", "cpu_ms_per_notification", "herald"},
		{"cost", "herald", "cpu_ms_per_notification", "postgresql"}, {"cost", "herald", "cpu_ms_per_notification", "rabbitmq"},
		{"cost", "herald", "cpu_ms_per_notification", "bench"}, {"cost", "herald", "cpu_ms_per_notification", "other"},
		{"cost", "herald", "cpu_seconds", "machine"}, {"cost", "herald", "cpu_seconds", "postgresql"},
		{"cost", "skeleton", "cpu_ms_per_notification", "machine"}, {"cost", "skeleton", "cpu_ms_per_notification", "herald"},
		{"cost", "skeleton", "cpu_ms_per_notification", "postgresql"}, {"cost", "skeleton", "cpu_ms_per_notification", "rabbitmq"},
		{"cost", "skeleton", "cpu_ms_per_notification", "bench"}, {"cost", "skeleton", "cpu_ms_per_notification", "other"},
		{"cost", "skeleton", "cpu_seconds", "machine"}, {"cost", "skeleton", "cpu_seconds", "rabbitmq"},
	}
	for _, p := range paths {
		var v any = doc
		for _, k := range p {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if v == nil {
			t.Errorf("JSON lacks %v", p)
		}
	}
	var back bench.Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleReport(), &back); diff != "" {
		t.Errorf("JSON does not round-trip (-want +got):\n%s", diff)
	}
}

func TestReportTableShowsCPUPerNotificationInBothColumns(t *testing.T) {
	var got bytes.Buffer
	if err := sampleReport().WriteTable(&got); err != nil {
		t.Fatal(err)
	}
	// Each row: its label, Herald's figure, then the skeleton's.
	for _, want := range []string{
		`(?m)^  CPU window +58\.2s, settled before → after the load +17\.0s, settled before → after the skeleton$`,
		`(?m)^  idle CPU, before the load +412\.4 ms/s busy +-$`,
		`(?m)^  CPU \(ms\), machine busy +5\.00 \(≈1\.20 idle\) +2\.40$`,
		`(?m)^    herald +1\.60 \(≈0\.30 idle\) +- \(runs in bench\)$`,
		`(?m)^    PostgreSQL \(run db \+ cluster-wide\) +1\.50 \(≈0\.40 idle\) +0\.90$`,
		`(?m)^    RabbitMQ \(whole broker VM\) +1\.01 \(≈0\.30 idle\) +0\.60$`,
		`(?m)^    bench +0\.40 \(≈0\.10 idle\) +0\.70 \(skeleton \+ bench\)$`,
		`(?m)^    other \(rest of busy time\) +0\.49 \(≈0\.10 idle\) +0\.20$`,
		`(?m)^  CPU \(ms\) stolen \(not busy\) +0\.05 \(≈0\.00 idle\) +0\.00$`,
	} {
		if !regexp.MustCompile(want).Match(got.Bytes()) {
			t.Errorf("table lacks %q:\n%s", want, got.String())
		}
	}
}

func TestReportTableShowsNoCPUPerNotificationWhenNothingWasDelivered(t *testing.T) {
	r := sampleReport()
	sk := r.Cost.Skeleton
	sk.Notifications, sk.CPU, sk.Error = 0, nil, "nothing was delivered: no cost per notification"
	var got bytes.Buffer
	if err := r.WriteTable(&got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`(?m)^  CPU \(ms\), machine busy +5\.00 \(≈1\.20 idle\) +-$`,
		`(?m)^    herald +1\.60 \(≈0\.30 idle\) +-$`,
		`(?m)^    PostgreSQL \(run db \+ cluster-wide\) +1\.50 \(≈0\.40 idle\) +-$`,
		`(?m)^    bench +0\.40 \(≈0\.10 idle\) +-$`,
		`(?m)^    other \(rest of busy time\) +0\.49 \(≈0\.10 idle\) +-$`,
	} {
		if !regexp.MustCompile(want).Match(got.Bytes()) {
			t.Errorf("table lacks %q:\n%s", want, got.String())
		}
	}
}
