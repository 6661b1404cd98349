package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/delivery/deliverytest"
	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/heraldtest"
)

// heraldBin is the binary TestMain builds from ./cmd/herald.
var heraldBin string

func TestMain(m *testing.M) {
	// The tests run in <module>/e2e.
	os.Exit(heraldtest.RunWithHerald(m, "..", &heraldBin))
}

// Timeouts of the waits. They are generous: the machine is small and shared.
const (
	readyTimeout    = 30 * time.Second
	stopTimeout     = 30 * time.Second
	deliveryTimeout = 45 * time.Second
)

// deps are what one test's Herald processes talk to: their own database, RabbitMQ vhost and sinks.
type deps struct {
	DB      *heraldtest.Database
	AMQPURL string
	SMTP    *deliverytest.SMTPSink
	SMS     *deliverytest.SMSSink
	// Token is an API key with every scope; the test client sends it to this cluster's API.
	Token string
}

// newDeps creates a fresh, migrated database with an API key, a private vhost and both sinks.
func newDeps(t *testing.T) *deps {
	t.Helper()
	return newDepsOn(t, heraldtest.NewVHost(t), "e2e")
}

// newDepsOn is newDeps with the vhost at amqpURL, and an API key named keyName.
func newDepsOn(t *testing.T, amqpURL, keyName string) *deps {
	t.Helper()
	d := &deps{
		DB:      heraldtest.NewDatabase(t),
		AMQPURL: amqpURL,
		SMTP:    deliverytest.NewSMTPSink(t),
		SMS:     deliverytest.NewSMSSink(t),
	}
	_, token, err := apikeys.NewStore(d.DB.Pool).Create(context.Background(), keyName, herald.Scopes, keyName)
	if err != nil {
		t.Fatalf("create an API key: %v", err)
	}
	d.Token = token
	return d
}

// Sender settings the processes are configured with.
const (
	smtpFrom      = "Herald <herald@e2e.test>"
	messageDomain = "e2e.test"
	smsFrom       = "+15005550006"
)

// heraldOpts says which Herald processes to start and how.
type heraldOpts struct {
	// Deps are the services the processes use; nil creates new ones.
	Deps *deps
	// Commands are the subcommands to run, one process each, started in this order: "serve",
	// "worker", "projector" or "all".
	Commands []string
	// MaxAttempts is HERALD_MAX_ATTEMPTS; 0 means 3.
	MaxAttempts int
	// Env is added to every process's environment, after the defaults.
	Env map[string]string
	// EnvFor is added to the environment of the processes of one subcommand, after Env.
	EnvFor map[string]map[string]string
	// HealthOnly names subcommands whose start is awaited on /healthz instead of /readyz.
	HealthOnly []string
}

// cluster is the Herald processes of one startHerald call.
type cluster struct {
	*deps
	// API is the base URL of the HTTP API ("http://127.0.0.1:port"), if a serve or all process
	// runs.
	API   string
	procs []*process
}

// proc returns the process running subcommand name.
func (c *cluster) proc(t *testing.T, name string) *process {
	t.Helper()
	for _, p := range c.procs {
		if p.Command == name {
			return p
		}
	}
	t.Fatalf("no %s process in this cluster", name)
	return nil
}

// startHerald starts the processes opts names and waits until each answers its readiness probe.
// They are stopped with SIGTERM when the test ends, and must then exit with status 0; if the test
// failed, the end of each process's log is printed.
func startHerald(t *testing.T, opts heraldOpts) *cluster {
	t.Helper()
	if opts.Deps == nil {
		opts.Deps = newDeps(t)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 3
	}
	c := &cluster{deps: opts.Deps}
	// Made before the cleanup below is registered, so the logs outlive the processes.
	logDir := t.TempDir()
	t.Cleanup(func() {
		// Reverse order of start, as a deployment would be taken down.
		for i := len(c.procs) - 1; i >= 0; i-- {
			p := c.procs[i]
			if err := p.stop(); err != nil {
				t.Errorf("herald %s: %v", p.Command, err)
			}
		}
		if t.Failed() {
			for _, p := range c.procs {
				p.logTail(t, 60)
			}
		}
	})
	for _, name := range opts.Commands {
		probe := "/readyz"
		if slices.Contains(opts.HealthOnly, name) {
			probe = "/healthz"
		}
		p := &process{Process: heraldtest.StartHerald(t, harness.Spec{
			Executable: heraldBin, Command: name, Env: processEnv(opts, name), LogDir: logDir,
			Probe: probe, ReadyTimeout: readyTimeout, StopTimeout: stopTimeout,
		})}
		c.procs = append(c.procs, p)
		if name == "serve" || name == "all" {
			c.API = p.URL
			host := strings.TrimPrefix(p.URL, "http://")
			tokens.Store(host, opts.Deps.Token)
			contractTests.Store(host, t)
			t.Cleanup(func() {
				tokens.Delete(host)
				contractTests.Delete(host)
			})
		}
	}
	return c
}

// processEnv is the environment of the process running subcommand name: the test's services and
// short retries, then opts.Env, then opts.EnvFor[name].
func processEnv(opts heraldOpts, name string) map[string]string {
	env := map[string]string{
		"HERALD_DATABASE_URL":           opts.Deps.DB.RuntimeURL,
		"HERALD_DATABASE_MAX_CONNS":     "6",
		"HERALD_AMQP_URL":               opts.Deps.AMQPURL,
		"HERALD_EMAIL_PROVIDER":         "smtp",
		"HERALD_SMTP_HOST":              opts.Deps.SMTP.Host(),
		"HERALD_SMTP_PORT":              strconv.Itoa(opts.Deps.SMTP.Port()),
		"HERALD_SMTP_TLS":               "none",
		"HERALD_SMTP_FROM":              smtpFrom,
		"HERALD_SMS_PROVIDER":           "http",
		"HERALD_SMS_URL":                opts.Deps.SMS.URL(),
		"HERALD_SMS_ACCOUNT_SID":        opts.Deps.SMS.AccountSID,
		"HERALD_SMS_AUTH_TOKEN":         opts.Deps.SMS.AuthToken,
		"HERALD_SMS_FROM":               smsFrom,
		"HERALD_RETRY_INITIAL_INTERVAL": "50ms",
		"HERALD_RETRY_MAX_INTERVAL":     "400ms",
		"HERALD_MAX_ATTEMPTS":           strconv.Itoa(opts.MaxAttempts),
		"HERALD_DELIVERY_TIMEOUT":       "10s",
		"HERALD_LOG_FORMAT":             "json",
	}
	maps.Copy(env, opts.Env)
	maps.Copy(env, opts.EnvFor[name])
	return env
}

// process is one running herald, started by startHerald.
type process struct {
	*harness.Process
	// judged is set once a test has stopped the process and checked how it exited.
	judged bool
}

// shutdown stops the process with SIGTERM and fails the test unless it exits with status 0 within
// stopTimeout. It returns how long the process took.
func (p *process) shutdown(t *testing.T) time.Duration {
	t.Helper()
	took, err := p.Terminate(stopTimeout)
	p.judged = true
	if err != nil {
		t.Errorf("herald %s after SIGTERM: %v (after %s), want exit status 0", p.Command, err, took)
	}
	return took
}

// stop terminates the process unless it is already gone, and reports an unclean exit.
func (p *process) stop() error {
	switch {
	case p.judged:
		return nil
	case p.Exited():
		return fmt.Errorf("exited on its own: %v", p.Err())
	}
	if _, err := p.Terminate(stopTimeout); err != nil {
		return fmt.Errorf("unclean shutdown after SIGTERM: %w", err)
	}
	return nil
}

// logTail prints the first errors and the last n lines of the process's log, leaving out
// successful HTTP requests, which only repeat what the test did.
func (p *process) logTail(t *testing.T, n int) {
	t.Helper()
	var firstErrors, lines []string
	for _, line := range strings.Split(strings.TrimRight(p.Output(), "\n"), "\n") {
		if strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"status":2`) {
			continue
		}
		if len(line) > 600 {
			line = line[:600] + "…"
		}
		if strings.Contains(line, `"level":"ERROR"`) && len(firstErrors) < 5 {
			firstErrors = append(firstErrors, line)
		}
		lines = append(lines, line)
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(firstErrors) > 0 {
		t.Logf("herald %s: first errors:\n%s", p.Command, strings.Join(firstErrors, "\n"))
	}
	t.Logf("herald %s: last %d lines of %s:\n%s", p.Command, len(lines), p.Log, strings.Join(lines, "\n"))
	keepLog(p, filepath.Base(p.Log))
}

// keepLog copies p's log as name into E2E_KEEP_LOGS, when that names a directory.
func keepLog(p *process, name string) {
	if dir := os.Getenv("E2E_KEEP_LOGS"); dir != "" {
		b, _ := os.ReadFile(p.Log)
		_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
}
