package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
			tokens.Store(strings.TrimPrefix(p.URL, "http://"), opts.Deps.Token)
			t.Cleanup(func() { tokens.Delete(strings.TrimPrefix(p.URL, "http://")) })
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

// The API's JSON, as far as the tests read it.

type notificationJSON struct {
	ID                string `json:"id"`
	Type              string `json:"type"`
	Recipient         string `json:"recipient"`
	Status            string `json:"status"`
	Attempts          int    `json:"attempts"`
	LastError         string `json:"last_error"`
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Version           int64  `json:"version"`
	Links             struct {
		Status  string `json:"status"`
		History string `json:"history"`
		Events  string `json:"events"`
	} `json:"links"`
}

type historyEntry struct {
	Version           int64  `json:"version"`
	Position          int64  `json:"position"`
	Event             string `json:"event"`
	Status            string `json:"status"`
	Attempt           int    `json:"attempt"`
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Error             string `json:"error"`
}

type historyJSON struct {
	ID      string         `json:"id"`
	History []historyEntry `json:"history"`
}

type eventJSON struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Version  int64           `json:"version"`
	Position int64           `json:"position"`
	Data     json.RawMessage `json:"data"`
	Metadata struct {
		CorrelationID string `json:"correlation_id"`
		CausationID   string `json:"causation_id"`
		Actor         string `json:"actor"`
	} `json:"metadata"`
}

type eventsJSON struct {
	ID     string      `json:"id"`
	Events []eventJSON `json:"events"`
}

// sendRequest is the body of POST /api/v1/notifications/send.
type sendRequest struct {
	Type      string         `json:"type"`
	Recipient string         `json:"recipient"`
	Subject   string         `json:"subject,omitempty"`
	Content   string         `json:"content"`
	Variables map[string]any `json:"variables,omitempty"`
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: withAPIKey{http.DefaultTransport}}

// tokens maps the host:port of each running API to the API key the test client sends it.
var tokens sync.Map

// withAPIKey sends the API key of the API a request goes to, unless the request has its own
// Authorization header (tests of authentication set one, or "-" for none).
type withAPIKey struct{ next http.RoundTripper }

func (t withAPIKey) RoundTrip(r *http.Request) (*http.Response, error) {
	switch auth := r.Header.Get("Authorization"); {
	case auth == "-":
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
	case auth == "":
		if token, ok := tokens.Load(r.URL.Host); ok {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+token.(string))
		}
	}
	return t.next.RoundTrip(r)
}

// send posts body, asserts 202 with a pending notification, and returns its id.
func send(t *testing.T, baseURL string, body sendRequest) string {
	t.Helper()
	return sendCorrelated(t, baseURL, body, "")
}

// sendCorrelated is send with the X-Correlation-ID header set to correlationID, unless it is "".
func sendCorrelated(t *testing.T, baseURL string, body sendRequest, correlationID string) string {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, baseURL+"/api/v1/notifications/send", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if correlationID != "" {
		req.Header.Set("X-Correlation-ID", correlationID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("send %s to %s: %v", body.Type, body.Recipient, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send %s to %s: %s, want 202 Accepted: %s", body.Type, body.Recipient, resp.Status, raw)
	}
	var n notificationJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatalf("send %s to %s: decode %s: %v", body.Type, body.Recipient, raw, err)
	}
	if n.ID == "" || n.Status != "pending" || n.Recipient != body.Recipient || n.Type != body.Type {
		t.Fatalf("send %s to %s: answer %s; want an id, status pending, and the type and recipient sent", body.Type, body.Recipient, raw)
	}
	if loc, want := resp.Header.Get("Location"), "/api/v1/notifications/"+n.ID+"/status"; loc != want {
		t.Errorf("send %s: Location %q, want %q", n.ID, loc, want)
	}
	if correlationID != "" && resp.Header.Get("X-Correlation-ID") != correlationID {
		t.Errorf("send %s: X-Correlation-ID %q, want the one sent, %q", n.ID, resp.Header.Get("X-Correlation-ID"), correlationID)
	}
	return n.ID
}

// getJSON gets url, asserts 200 and decodes the body into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := tryGetJSON(url, v); err != nil {
		t.Fatal(err)
	}
}

func tryGetJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s, want 200: %s", url, resp.Status, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("GET %s: decode %s: %w", url, raw, err)
	}
	return nil
}

// waitStatus polls the notification's status until it is want, failing at once if it reaches
// another terminal status, and returns it.
func waitStatus(t *testing.T, baseURL, id, want string, timeout time.Duration) notificationJSON {
	t.Helper()
	var n notificationJSON
	heraldtest.Eventually(t, timeout, "notification "+id+" to be "+want, func() (bool, error) {
		n = notificationJSON{}
		if err := tryGetJSON(baseURL+"/api/v1/notifications/"+id+"/status", &n); err != nil {
			return false, err
		}
		if n.Status != want && (n.Status == "sent" || n.Status == "failed") {
			t.Fatalf("notification %s is %s, want %s: %+v", id, n.Status, want, n)
		}
		return n.Status == want, fmt.Errorf("status %s after %d attempts, last error %q", n.Status, n.Attempts, n.LastError)
	})
	return n
}

// story returns a notification's history and events once the history holds at least n entries
// (the history projection may trail the status one).
func story(t *testing.T, baseURL, id string, n int) ([]historyEntry, []eventJSON) {
	t.Helper()
	var h historyJSON
	heraldtest.Eventually(t, 15*time.Second, fmt.Sprintf("history of %s to have %d entries", id, n), func() (bool, error) {
		h = historyJSON{}
		if err := tryGetJSON(baseURL+"/api/v1/notifications/"+id+"/history", &h); err != nil {
			return false, err
		}
		return len(h.History) >= n, fmt.Errorf("%d entries: %+v", len(h.History), h.History)
	})
	var e eventsJSON
	getJSON(t, baseURL+"/api/v1/notifications/"+id+"/events", &e)
	if h.ID != id || e.ID != id {
		t.Errorf("history is of %q and events of %q, want both of %q", h.ID, e.ID, id)
	}
	return h.History, e.Events
}

// checkStory asserts that history and events tell the same story: versions 1..n, increasing
// positions equal in both, the same event types, one correlation id (want, unless it is "") on
// every event.
func checkStory(t *testing.T, id string, history []historyEntry, evs []eventJSON, wantCorrelation string) {
	t.Helper()
	if len(history) != len(evs) {
		t.Errorf("%s: %d history entries but %d events", id, len(history), len(evs))
		return
	}
	for i, e := range evs {
		h := history[i]
		if e.Version != int64(i+1) || h.Version != int64(i+1) {
			t.Errorf("%s: entry %d has event version %d and history version %d, want %d", id, i, e.Version, h.Version, i+1)
		}
		if i > 0 && e.Position <= evs[i-1].Position {
			t.Errorf("%s: event v%d at position %d, not after v%d at %d", id, e.Version, e.Position, evs[i-1].Version, evs[i-1].Position)
		}
		if h.Position != e.Position || h.Event != e.Type {
			t.Errorf("%s v%d: history says %s at %d, events say %s at %d", id, e.Version, h.Event, h.Position, e.Type, e.Position)
		}
		if e.Metadata.CorrelationID == "" || e.Metadata.CorrelationID != evs[0].Metadata.CorrelationID {
			t.Errorf("%s v%d %s: correlation id %q, want the stream's first one, %q", id, e.Version, e.Type, e.Metadata.CorrelationID, evs[0].Metadata.CorrelationID)
		}
	}
	if wantCorrelation != "" && len(evs) > 0 && evs[0].Metadata.CorrelationID != wantCorrelation {
		t.Errorf("%s: correlation id %q, want the request's %q", id, evs[0].Metadata.CorrelationID, wantCorrelation)
	}
}

// eventData decodes the data of e.
func eventData(t *testing.T, e eventJSON) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("event %s v%d data %s: %v", e.Type, e.Version, e.Data, err)
	}
	return m
}

// waitQueueDepth waits until queue in the vhost holds want ready messages.
func waitQueueDepth(t *testing.T, amqpURL, queue string, want int, timeout time.Duration) {
	t.Helper()
	heraldtest.Eventually(t, timeout, fmt.Sprintf("queue %s to hold %d messages", queue, want), func() (bool, error) {
		got := heraldtest.QueueDepth(t, amqpURL, queue)
		return got == want, fmt.Errorf("it holds %d", got)
	})
}

// metric returns the sum of the samples of the Prometheus metric name at url whose labels
// include every pair in labels.
func metric(t *testing.T, url, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		for k, v := range labels {
			if !strings.Contains(rest, k+"="+strconv.Quote(v)) {
				continue lines
			}
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += f
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return sum
}

// within runs fn and fails the test if it took longer than d: for "answers at once" checks.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if took := time.Since(start); took > d {
		t.Errorf("%s took %s, want at most %s", what, took, d)
	}
}
