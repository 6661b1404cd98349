package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/bench"
	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/redact"
)

// heraldBin is the herald binary TestMain builds: herald bench runs Herald's processes from its
// own executable, so it is tested as a real command.
var heraldBin string

func TestMain(m *testing.M) {
	// The tests run in <module>/bench.
	os.Exit(heraldtest.RunWithHerald(m, "..", &heraldBin))
}

// serviceFlags are the bench flags that point at the services the tests use.
func serviceFlags() []string {
	return []string{
		"--admin-database-url", heraldtest.AdminDatabaseURL(),
		"--rabbitmq-api", heraldtest.RabbitMQAPI(),
		"--amqp-url", heraldtest.AMQPURL(),
	}
}

// requireServices skips the test (or fails it, with HERALD_TEST_REQUIRE_SERVICES=1) when
// PostgreSQL or RabbitMQ's management API is not reachable, and returns a database to check
// the server with.
func requireServices(t *testing.T) *heraldtest.Database {
	t.Helper()
	if testing.Short() {
		t.Skip("runs Herald and the services for seconds; skipped with -short")
	}
	db := heraldtest.NewDatabase(t)
	heraldtest.NewVHost(t)
	return db
}

// runBench runs herald bench with args and -o json, and returns its report and exit error.
func runBench(t *testing.T, args ...string) (*bench.Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, append([]string{"bench", "-o", "json"}, args...)...)
	// Herald's own settings in the test's environment must not reach the bench or its processes.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// The service URLs carry the test accounts' passwords: the log shows them masked.
	t.Logf("herald bench %s\n%s", redact.Text(strings.Join(args, " ")), redact.Text(stderr.String()))
	var rep bench.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("herald bench (%v) did not print a JSON report: %v\nstdout:\n%s", err, jerr, stdout.String())
	}
	return &rep, err
}

func checkOrdered(t *testing.T, name string, s bench.Summary, count uint64) {
	t.Helper()
	if s.Count != count {
		t.Errorf("%s: %d values, want %d", name, s.Count, count)
	}
	if !(0 <= s.MinMS && s.MinMS <= s.P50MS && s.P50MS <= s.P95MS && s.P95MS <= s.P99MS && s.P99MS <= s.MaxMS && s.MaxMS > 0) {
		t.Errorf("%s: percentiles out of order: %+v", name, s)
	}
}

// checkCost checks what a run of n delivered notifications cost the services: every one took
// at least three commits (accepted, started, sent), three events in the log, and one command
// published, delivered and acknowledged.
func checkCost(t *testing.T, name string, f *bench.CostFigures, n int64) {
	t.Helper()
	if f == nil {
		t.Errorf("%s: no cost figures", name)
		return
	}
	if f.Error != "" || f.Notifications != n {
		t.Errorf("%s cost: error %q, %d notifications; want none and %d", name, f.Error, f.Notifications, n)
	}
	if f.Commits < 3 || f.RowsInserted < 3 || f.Publishes < 1 || f.Deliveries < 1 || f.Acks < 1 {
		t.Errorf("%s cost: %.2f commits, %.2f rows inserted, %.2f publishes, %.2f deliveries, %.2f acks per notification; want at least 3, 3, 1, 1, 1",
			name, f.Commits, f.RowsInserted, f.Publishes, f.Deliveries, f.Acks)
	}
	if (f.Statements == nil) == (f.StatementsNote == "") {
		t.Errorf("%s cost: statements %v, note %q; want one of them", name, f.Statements, f.StatementsNote)
	}
	// The CPU over the window, and the idle rate measured over the settling before it, beside it.
	if f.CPU == nil || f.IdleCPUPerSec == nil || f.IdleCPU == nil || f.IdleCPUPerSec.Machine <= 0 {
		t.Errorf("%s cost: CPU %+v, idle CPU per second %+v, per notification %+v; want all three, the machine busy while idle",
			name, f.CPU, f.IdleCPUPerSec, f.IdleCPU)
	}
	var logRows float64
	for _, tc := range f.Tables {
		if tc.Table == "event_log" || tc.Table == "herald_bench_skel_events" {
			logRows = tc.RowsWritten
		}
	}
	// Counts that arrive late would show as fewer than three.
	if logRows < 3 {
		t.Errorf("%s cost: %.2f event log rows per notification, want 3 (queued, processing, sent): %+v", name, logRows, f.Tables)
	}
}

func TestBenchSpawnsHeraldAndAccountsForEveryNotification(t *testing.T) {
	db := requireServices(t)
	rep, err := runBench(t, append(serviceFlags(), "-n", "200", "--spawn", "all", "--rate", "200", "--ceiling-duration", "1s", "--drain", "2m")...)
	if err != nil {
		t.Fatalf("herald bench: %v; problems: %v", err, rep.Problems)
	}

	l, d, o, st := rep.Load, rep.Delivery, rep.Outcome, rep.Status
	if !rep.OK || len(rep.Problems) > 0 {
		t.Errorf("ok = %v, problems %v", rep.OK, rep.Problems)
	}
	if l.Accepted != 200 || l.Errors != 0 || l.AcceptedPerSec <= 0 {
		t.Errorf("load: accepted %d, errors %d (%v), %.1f/s; want 200, 0 and a rate", l.Accepted, l.Errors, l.ErrorsByKind, l.AcceptedPerSec)
	}
	if d == nil {
		t.Fatal("no delivery figures from the sinks")
	}
	if d.Delivered != 200 || d.Undelivered != 0 || d.IDMismatches != 0 || d.Unexpected != 0 || d.DeliveredPerSec <= 0 {
		t.Errorf("delivery: %+v; want 200 delivered, nothing undelivered or unexpected", *d)
	}
	if o.Accepted != 200 || o.Sent != 200 || o.Failed != 0 || o.Lost != 0 || o.DrainTimedOut {
		t.Errorf("outcome: %+v; want 200 sent, none failed or lost", o)
	}
	checkOrdered(t, "API latency", l.APILatency, 200)
	checkOrdered(t, "accept→delivery", d.AcceptToDelivery, 200)
	// One in ten, chosen by a hash: about 20 of 200.
	if st.Sampled < 8 || st.Sampled > 35 || st.SeenSent != st.Sampled || st.NotSeen != 0 || st.StatusGETs < st.Sampled || st.EventsGETs != st.Sampled {
		t.Errorf("status: %+v; want about 20 sampled, all seen sent", st)
	}
	checkOrdered(t, "accept→sent", st.AcceptToSent, uint64(st.Sampled))
	checkOrdered(t, "projection lag", st.ProjectionLag, uint64(st.Sampled))
	if d != nil && (d.AcceptToDeliveryByChannel["email"].Count != 100 || d.AcceptToDeliveryByChannel["sms"].Count != 100) {
		t.Errorf("accept→delivery by channel: %+v; want 100 each", d.AcceptToDeliveryByChannel)
	}
	if st.AcceptToSent.P50MS < st.ProjectionLag.P50MS {
		t.Errorf("accept→sent p50 %.1fms below projection lag p50 %.1fms: the lag is part of it", st.AcceptToSent.P50MS, st.ProjectionLag.P50MS)
	}

	c := rep.Ceiling
	if c == nil || c.AMQP == nil || c.Error != "" {
		t.Fatalf("ceiling: %+v", c)
	}
	if c.AMQP.PublishedPerSec <= 0 || c.AMQP.ConsumedPerSec <= 0 || c.AMQP.Consumed != c.AMQP.Published {
		t.Errorf("AMQP ceiling: %+v; want rates above 0 and everything consumed", *c.AMQP)
	}
	if len(c.Postgres) != 3 {
		t.Errorf("PostgreSQL ceiling: %+v; want 1, 4 and 16 clients", c.Postgres)
	}
	for _, p := range c.Postgres {
		if p.InsertsPer <= 0 {
			t.Errorf("PostgreSQL ceiling with %d clients: %.1f inserts/s", p.Clients, p.InsertsPer)
		}
	}
	if c.DeliveredOverAMQP == nil || *c.DeliveredOverAMQP <= 0 || c.DeliveredOverPGCommits == nil || *c.DeliveredOverPGCommits <= 0 {
		t.Errorf("ratios missing: %v, %v", c.DeliveredOverAMQP, c.DeliveredOverPGCommits)
	}

	checkCost(t, "herald", rep.Cost.Herald, 200)
	if sk := c.Skeleton; sk != nil {
		checkCost(t, "skeleton", rep.Cost.Skeleton, sk.Delivered)
	}

	m := rep.Memory
	if m == nil || len(m.Processes) != 1 || m.Processes[0].PeakRSS <= 0 || m.PeakRSSSum != m.Processes[0].PeakRSS || len(m.Series) == 0 {
		t.Errorf("memory: %+v", m)
	}
	e := rep.Environment
	if e.CPUs < 1 || e.GoVersion == "" || e.PostgresVersion == "" || e.RabbitMQVersion == "" {
		t.Errorf("environment: %+v", e)
	}

	// The run cleaned up after itself.
	var exists bool
	if err := db.Pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", rep.Settings.Database).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists || rep.Settings.Database == "" {
		t.Errorf("database %q still exists after the run", rep.Settings.Database)
	}
	// Herald ran as the database's runtime role, which goes with it.
	if err := db.Pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", rep.Settings.Database+"_app").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("runtime role %s_app still exists after the run", rep.Settings.Database)
	}
	if rep.LogDir != "" {
		t.Errorf("log dir %s kept after a good run", rep.LogDir)
	}
}

func TestBenchRunsSeparateProcesses(t *testing.T) {
	requireServices(t)
	rep, err := runBench(t, append(serviceFlags(), "-n", "100", "--concurrency", "4", "--spawn", "serve,worker,projector",
		"--workers", "2", "--ceiling=false", "--env", "HERALD_RELAY_BATCH_SIZE=50", "--drain", "2m")...)
	if err != nil {
		t.Fatalf("herald bench: %v; problems: %v", err, rep.Problems)
	}
	if rep.Outcome.Sent != 100 || rep.Delivery == nil || rep.Delivery.Delivered != 100 {
		t.Errorf("outcome %+v, delivery %+v; want 100 sent and delivered", rep.Outcome, rep.Delivery)
	}
	var roles []string
	for _, p := range rep.Memory.Processes {
		roles = append(roles, p.Role)
	}
	if got := strings.Join(roles, ","); got != "projector,worker,worker,serve" {
		t.Errorf("processes %s, want projector,worker,worker,serve", got)
	}
	if rep.Ceiling != nil {
		t.Errorf("ceiling measured with --ceiling=false: %+v", rep.Ceiling)
	}
	if rep.Settings.Loop != "closed" || len(rep.Settings.Env) != 1 {
		t.Errorf("settings %+v", rep.Settings)
	}
}

// With --webhooks the bench's endpoints get every notification event, signed, and the failing
// one gets Herald's retries. The run's log has no chain (--ledger off): Herald delivers all the
// same, and no checkpoint is counted.
func TestBenchChecksWebhooks(t *testing.T) {
	requireServices(t)
	rep, err := runBench(t, append(serviceFlags(), "-n", "200", "--rate", "200", "--ceiling=false", "--drain", "2m",
		"--webhooks", "2", "--webhook-failing", "--ledger", "off")...)
	if err != nil {
		t.Fatalf("herald bench: %v; problems: %v", err, rep.Problems)
	}
	w := rep.Webhooks
	if w == nil {
		t.Fatal("no webhook figures")
	}
	// Each notification has at least NotificationQueued, NotificationProcessing and
	// NotificationSent, and each healthy endpoint gets all of them.
	if w.Endpoints != 2 || w.Expected < 2*3*200 || w.Expected%2 != 0 {
		t.Errorf("%d endpoints expecting %d events; want 2 expecting at least 1200", w.Endpoints, w.Expected)
	}
	if w.Arrived != w.Expected || w.Missing != 0 || w.WaitTimedOut {
		t.Errorf("arrived %d of %d, missing %d, timed out %v; want every event", w.Arrived, w.Expected, w.Missing, w.WaitTimedOut)
	}
	if w.BadSignatures != 0 || w.Undecodable != 0 || w.Unexpected != 0 {
		t.Errorf("webhooks: %+v; want nothing refused or unexpected", *w)
	}
	checkOrdered(t, "event→arrival", w.EventToArrival, uint64(w.Arrived))
	if w.ArrivedPerSec <= 0 || w.Seconds <= 0 {
		t.Errorf("arrived %.1f/s over %.1fs, want a rate", w.ArrivedPerSec, w.Seconds)
	}
	// The failing endpoint got requests, each answered 500, and Herald, finding it failing
	// everything, stopped posting it every event: some were never tried. How many depends on
	// when it tripped.
	if f := w.Failing; f == nil || f.Requests == 0 || f.Untried == 0 || f.Events+f.Untried != w.Expected/2 {
		t.Errorf("failing endpoint %+v; want requests, and some of the %d events left untried", f, w.Expected/2)
	}
	if !rep.OK || rep.Outcome.Sent != 200 || rep.Settings.Webhooks != 2 || !rep.Settings.WebhookFailing ||
		rep.Settings.Ledger != bench.LedgerOff || rep.CheckpointsSealed != nil {
		t.Errorf("ok %v, problems %v, sent %d, settings %+v, checkpoints %v", rep.OK, rep.Problems, rep.Outcome.Sent, rep.Settings, rep.CheckpointsSealed)
	}
}

// With --html every email carries the newsletter, and the SMTP sink still counts each one: it
// takes multipart/alternative messages as it takes plain ones. The run also seals (--ledger
// sealed): the spawned Herald signs checkpoints with the key the run made, and the report counts
// them.
func TestBenchSendsHTMLEmails(t *testing.T) {
	requireServices(t)
	rep, err := runBench(t, append(serviceFlags(), "-n", "100", "--rate", "100", "--html", "--ceiling=false", "--drain", "2m",
		"--ledger", "sealed", "--env", "HERALD_CHECKPOINT_INTERVAL=200ms")...)
	if err != nil {
		t.Fatalf("herald bench: %v; problems: %v", err, rep.Problems)
	}
	if !rep.OK || !rep.Settings.HTML || rep.Load.Accepted != 100 || rep.Load.Errors != 0 || rep.Outcome.Sent != 100 {
		t.Errorf("ok %v, problems %v, html %v, accepted %d, errors %d (%v), sent %d; want 100 accepted and sent",
			rep.OK, rep.Problems, rep.Settings.HTML, rep.Load.Accepted, rep.Load.Errors, rep.Load.ErrorsByKind, rep.Outcome.Sent)
	}
	if sealed := rep.CheckpointsSealed; rep.Settings.Ledger != bench.LedgerSealed || sealed == nil || *sealed < 1 {
		t.Errorf("ledger %q, checkpoints sealed %v; want sealed, at least one checkpoint at 200ms", rep.Settings.Ledger, sealed)
	}
	d := rep.Delivery
	if d == nil || d.Delivered != 100 || d.Undelivered != 0 || d.IDMismatches != 0 || d.Unexpected != 0 ||
		d.AcceptToDeliveryByChannel["email"].Count != 50 {
		t.Errorf("delivery %+v; want 100 delivered, 50 of them emails", d)
	}
}

// With --url the bench drives a Herald it did not start, and settles on the status API.
func TestBenchDrivesARunningHerald(t *testing.T) {
	db := requireServices(t)
	_, token, err := apikeys.NewStore(db.Pool).Create(context.Background(), "bench", herald.Scopes, "test")
	if err != nil {
		t.Fatal(err)
	}
	p := heraldtest.StartHerald(t, harness.Spec{
		Executable: heraldBin, Command: "all",
		Env: map[string]string{"HERALD_DATABASE_URL": db.URL, "HERALD_AMQP_URL": heraldtest.NewVHost(t), "HERALD_RATE_LIMIT": "0", "HERALD_LOG_LEVEL": "warn"},
	})
	t.Cleanup(func() {
		_, _ = p.Terminate(30 * time.Second)
		if t.Failed() {
			t.Logf("herald all:\n%s", p.Output())
		}
	})

	rep, err := runBench(t, append(serviceFlags(), "--url", p.URL, "--api-key", token, "-n", "100", "--sample", "5", "--ceiling=false", "--drain", "2m")...)
	if err != nil {
		t.Fatalf("herald bench: %v; problems: %v", err, rep.Problems)
	}
	if rep.Delivery != nil || rep.Memory != nil {
		t.Errorf("delivery %+v and memory %+v measured without sinks or processes", rep.Delivery, rep.Memory)
	}
	if o := rep.Outcome; o.Accepted != 100 || o.Sent != 100 || o.Lost != 0 || o.Source != "status API" {
		t.Errorf("outcome %+v; want 100 sent, read on the status API", o)
	}
	if st := rep.Status; st.Sampled < 8 || st.SeenSent != st.Sampled || st.SweepGETs < 100-st.Sampled {
		t.Errorf("status %+v; want about 20 sampled and seen sent, and the rest swept", st)
	}
	// No database of the bench's own: the notifications are in the one Herald uses.
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM notification_status WHERE status = 'sent'").Scan(&n); err != nil || n != 100 {
		t.Errorf("Herald's database has %d sent (%v), want 100", n, err)
	}
}

func TestBenchRefusesBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-n", "0"}, "-n 0"},
		{[]string{"--spawn", "serve"}, "nothing would run worker, projector"},
		{[]string{"--url", "http://127.0.0.1:1", "--spawn", "all"}, "--url drives a running Herald"},
		{[]string{"--api-key", "x"}, "--api-key goes with --url"},
		{[]string{"-o", "yaml"}, `invalid argument "yaml" for "-o, --output" flag: want table or json`},
		{[]string{"--rate", "fast"}, "invalid argument"},
		{[]string{"extra"}, "unknown command"},
		{[]string{"--webhooks", "1", "--spawn", "serve,worker,projector"}, "need all in --spawn"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := exec.Command(heraldBin, append([]string{"bench"}, tt.args...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("exit %v, output %q; want a failure mentioning %q", err, out, tt.want)
			}
		})
	}
}

func TestBenchHelpDescribesEveryFigure(t *testing.T) {
	out, err := exec.Command(heraldBin, "bench", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, want := range []string{"accepted/s", "API latency", "delivered/s", "accept→sent", "projection lag", "lost", "peak RSS", "ceiling", "ratios", "--url", "--spawn", "--env", "webhooks", "event→arrival", "--webhook-failing", "--html", "exits with status 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}
