package harness_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/heraldtest"
)

// The test binary doubles as a fake herald: Start runs it with HARNESS_FAKE_HERALD set, and it
// then behaves as HERALD_FAKE says instead of running the tests.
func TestMain(m *testing.M) {
	if os.Getenv("HARNESS_FAKE_HERALD") == "1" {
		fakeHerald(os.Getenv("HERALD_FAKE"))
		return
	}
	os.Exit(m.Run())
}

// fakeHerald is a herald that is ready at once ("ready"), exits at once with status 3 ("exit"),
// or never becomes ready and ignores SIGTERM ("stuck"). It prints its secret setting, which
// Output must mask.
func fakeHerald(mode string) {
	println("token is " + os.Getenv("HERALD_SMS_AUTH_TOKEN") + " and url is " + os.Getenv("HERALD_DATABASE_URL"))
	if mode == "exit" {
		os.Exit(3)
	}
	addr := os.Getenv("HERALD_HTTP_ADDR") + os.Getenv("HERALD_OPS_ADDR")
	status := http.StatusOK
	if mode == "stuck" {
		status = http.StatusServiceUnavailable
		signal.Ignore(syscall.SIGTERM)
	}
	go func() {
		_ = http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
		}))
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	<-stop
	os.Exit(0)
}

func fakeSpec(t *testing.T, mode string) harness.Spec {
	t.Setenv("HARNESS_FAKE_HERALD", "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return harness.Spec{
		Executable: exe, Command: "worker", LogDir: t.TempDir(),
		Env: map[string]string{
			"HERALD_FAKE":            mode,
			"HERALD_SMS_AUTH_TOKEN":  "s3cret-token",
			"HERALD_DATABASE_URL":    "postgres://herald:db-password@127.0.0.1/herald",
			"HERALD_OPS_ADDR":        "127.0.0.1:1", // replaced by a free port
			"HERALD_RETRY_MAX_TIMES": "3",
		},
		ReadyTimeout: 10 * time.Second,
		StopTimeout:  2 * time.Second,
	}
}

func TestStartWaitsForReadinessAndTerminateStopsCleanly(t *testing.T) {
	p, err := harness.Start(context.Background(), fakeSpec(t, "ready"))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	resp, err := http.Get(p.URL + "/readyz")
	if err != nil {
		t.Fatalf("ready process does not answer: %v", err)
	}
	resp.Body.Close()
	if _, err := p.Terminate(5 * time.Second); err != nil {
		t.Errorf("terminate: %v, want exit status 0", err)
	}
	out := p.Output()
	if strings.Contains(out, "s3cret-token") || strings.Contains(out, "db-password") {
		t.Errorf("output shows a secret: %q", out)
	}
	if !strings.Contains(out, "token is xxxxx") {
		t.Errorf("output %q, want the token masked", out)
	}
	if _, err := p.Terminate(time.Second); err == nil {
		t.Error("terminating a process that had exited: no error")
	}
}

func TestStartReportsAProcessThatExits(t *testing.T) {
	p, err := harness.Start(context.Background(), fakeSpec(t, "exit"))
	if err == nil || !strings.Contains(err.Error(), "herald worker exited before it was ready (exit status 3)") {
		t.Fatalf("error %v, want the exit before readiness", err)
	}
	if p == nil || !strings.Contains(p.Tail(5), "token is xxxxx") {
		t.Fatalf("want the process back, with its output masked")
	}
}

func TestStartGivesUpAndKillsAProcessThatIsNeverReady(t *testing.T) {
	spec := fakeSpec(t, "stuck")
	spec.ReadyTimeout = 500 * time.Millisecond
	p, err := harness.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "/readyz did not answer 200 within 500ms (last: 503 Service Unavailable") {
		t.Fatalf("error %v, want the readiness timeout with the last answer", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("the process still runs after Start gave up on it")
	}
}

func TestRedactSetting(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"HERALD_SMS_AUTH_TOKEN=abc", "HERALD_SMS_AUTH_TOKEN=…"},
		{"HERALD_SMTP_PASSWORD=abc", "HERALD_SMTP_PASSWORD=…"},
		{"HERALD_API_KEY=abc", "HERALD_API_KEY=…"},
		{"HERALD_DATABASE_URL=postgres://u:pw@h/db", "HERALD_DATABASE_URL=postgres://u:xxxxx@h/db"},
		{"HERALD_WORKER_CONCURRENCY=8", "HERALD_WORKER_CONCURRENCY=8"},
	} {
		if got := harness.RedactSetting(tt.in); got != tt.want {
			t.Errorf("RedactSetting(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCreateDatabaseWithRuntimeRoleAndDrop(t *testing.T) {
	heraldtest.NewDatabase(t) // skips, or fails, when PostgreSQL is missing
	ctx := context.Background()
	db, err := harness.CreateDatabase(ctx, heraldtest.AdminDatabaseURL(), harness.DatabaseOptions{Prefix: "herald_harness_", Migrate: true, RuntimeRole: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, db.RuntimeURL)
	if err != nil {
		t.Fatalf("connect as the runtime role: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM event_log").Scan(&n); err != nil {
		t.Errorf("the runtime role cannot read the migrated log: %v", err)
	}
	conn.Close(ctx)
	if err := db.Drop(ctx); err != nil {
		t.Fatalf("drop: %v", err)
	}
	admin, err := pgx.Connect(ctx, heraldtest.AdminDatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var left int
	if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname = $2)`,
		db.Name, db.Runtime).Scan(&left); err != nil || left != 0 {
		t.Errorf("after Drop, %d of the database and its role are left (%v)", left, err)
	}
}

func TestCreateDatabaseOnAMissingServerIsUnreachable(t *testing.T) {
	_, err := harness.CreateDatabase(context.Background(), "postgres://u:hidden@127.0.0.1:1/postgres?connect_timeout=2", harness.DatabaseOptions{})
	var unreachable *harness.UnreachableError
	if !errors.As(err, &unreachable) {
		t.Fatalf("error %v, want an UnreachableError", err)
	}
	if strings.Contains(err.Error(), "hidden") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestCreateVHostAndDelete(t *testing.T) {
	heraldtest.NewVHost(t) // skips, or fails, when RabbitMQ is missing
	ctx := context.Background()
	v, err := harness.CreateVHost(ctx, heraldtest.RabbitMQAPI(), heraldtest.AMQPURL(), harness.RandomName("herald_harness_"))
	if err != nil {
		t.Fatal(err)
	}
	if name, err := harness.VHostOf(v.AMQPURL); err != nil || name != v.Name {
		t.Errorf("AMQP URL %s names vhost %q (%v), want %q", v.AMQPURL, name, err, v.Name)
	}
	if err := v.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := harness.RabbitAPI(ctx, heraldtest.RabbitMQAPI(), http.MethodGet, "/api/vhosts/"+v.Name, "", nil); err == nil {
		t.Error("the vhost is still there after Delete")
	}
}
