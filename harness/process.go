package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-notify/herald/redact"
)

// Spec says how to start one herald process.
type Spec struct {
	// Executable is the herald binary; Command its subcommand ("serve", "worker", "projector",
	// "all", "webhooks serve": words separated by spaces).
	Executable string
	Command    string
	// Env is the process's HERALD_* settings. None of the caller's own HERALD_* variables reach
	// it; the listening address (HERALD_HTTP_ADDR for serve and all, HERALD_OPS_ADDR for the
	// others) is a free port the harness picks, whatever Env says.
	Env map[string]string
	// LogDir holds the file its stdout and stderr go to: LogName there, or a fresh
	// herald-<command>-*.log when LogName is empty.
	LogDir  string
	LogName string
	// Probe is the path that must answer 200 for the process to be ready (default /readyz),
	// within ReadyTimeout (default 30 s).
	Probe        string
	ReadyTimeout time.Duration
	// StopTimeout bounds the stop of a process that did not become ready (default 30 s).
	StopTimeout time.Duration
	// OwnProcessGroup puts the process in a process group of its own, so that a Ctrl-C at the
	// terminal reaches only the caller, which stops Herald in order.
	OwnProcessGroup bool
}

// Process is one running herald.
type Process struct {
	Command string
	// URL is the base URL of its HTTP listener (the API, or the ops listener).
	URL string
	// Log is the file its stdout and stderr go to.
	Log string

	cmd     *exec.Cmd
	secrets *redact.Secrets
	done    chan struct{}
	err     error // cmd.Wait's, once done is closed
}

// Start starts the process spec describes on a free port and waits until its probe answers 200.
// A port taken meanwhile by someone else is replaced. When the process does not become ready it
// is stopped, and returned with the error so that its log can be read.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	spec.Probe = or(spec.Probe, "/readyz")
	spec.ReadyTimeout = or(spec.ReadyTimeout, 30*time.Second)
	spec.StopTimeout = or(spec.StopTimeout, 30*time.Second)
	for try := 1; ; try++ {
		p, err := start(spec)
		if err != nil {
			return nil, err
		}
		err = p.awaitReady(ctx, spec)
		if err == nil {
			return p, nil
		}
		if try < 3 && p.Exited() && strings.Contains(p.Output(), "address already in use") {
			continue
		}
		_, _ = p.Terminate(spec.StopTimeout)
		return p, err
	}
}

// or returns v, or def when v is the zero value: the defaults of a Spec.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// start runs the process without waiting for it.
func start(spec Spec) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := environ(spec.Env, spec.Command, addr)
	logFile, err := createLog(spec)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(spec.Executable, strings.Fields(spec.Command)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if spec.OwnProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start herald %s: %w", spec.Command, err)
	}
	p := &Process{Command: spec.Command, URL: "http://" + addr, Log: logFile.Name(), cmd: cmd, secrets: SecretsOf(spec.Env), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// environ is the caller's environment without its HERALD_* variables, then vars, then the
// listening address.
func environ(vars map[string]string, command, addr string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		if k != "HERALD_HTTP_ADDR" && k != "HERALD_OPS_ADDR" {
			out = append(out, k+"="+v)
		}
	}
	if command == "all" || command == "serve" {
		return append(out, "HERALD_HTTP_ADDR="+addr)
	}
	return append(out, "HERALD_OPS_ADDR="+addr)
}

// createLog creates the file the process writes to: LogName in LogDir, or a fresh name there.
func createLog(spec Spec) (*os.File, error) {
	if spec.LogName != "" {
		return os.Create(filepath.Join(spec.LogDir, spec.LogName))
	}
	return os.CreateTemp(spec.LogDir, "herald-"+strings.ReplaceAll(spec.Command, " ", "-")+"-*.log")
}

// awaitReady polls the probe every 50 ms until it answers 200, the process exits, ctx ends or
// the ready timeout passes.
func (p *Process) awaitReady(ctx context.Context, spec Spec) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(spec.ReadyTimeout)
	var last string
	for {
		ok, answer := probe(ctx, client, p.URL+spec.Probe)
		if ok {
			return nil
		}
		last = answer
		select {
		case <-p.done:
			return fmt.Errorf("herald %s exited before it was ready (%v)", p.Command, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("herald %s: %s did not answer 200 within %s (last: %s)", p.Command, spec.Probe, spec.ReadyTimeout, last)
		}
	}
}

// probe gets url and reports whether it answered 200, or what it answered instead.
func probe(ctx context.Context, client *http.Client, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	return false, fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
}

// FreePort returns a TCP port on 127.0.0.1 nobody listened on a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PID is the process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process exited (nil for status 0); it is meaningful once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Terminate sends SIGTERM, waits up to timeout for the process to exit, and kills it after
// that. It returns how long the process took and how it exited (nil for status 0). A process
// that had already exited is an error, whatever its status: nobody stopped it.
func (p *Process) Terminate(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if p.Exited() {
		return 0, fmt.Errorf("had already exited: %v", p.err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("send SIGTERM: %w", err)
	}
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return time.Since(start), fmt.Errorf("did not exit within %s of SIGTERM; killed", timeout)
}

// Kill kills the process at once, as a crash or the OOM killer would, and waits up to timeout
// for it to be gone.
func (p *Process) Kill(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("SIGKILL herald %s: %w", p.Command, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("herald %s still running %s after SIGKILL", p.Command, timeout)
	}
}

// Output returns what the process has printed so far, with the secrets of its settings and
// the passwords of any URL masked: it is safe to print.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.Log)
	return p.secrets.String(string(b))
}

// Tail returns the last n lines of Output, indented, or "(empty)".
func (p *Process) Tail(n int) string {
	text := strings.TrimRight(p.Output(), "\n")
	if text == "" {
		return "    (empty)"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
