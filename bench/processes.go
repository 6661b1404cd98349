package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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
)

// process is one spawned herald.
type process struct {
	Role string
	cmd  *exec.Cmd
	Log  string
	URL  string // base URL of its API or ops listener
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
	// stopping is closed when the bench itself stops the process.
	stopping chan struct{}
	// Final figures, read before it is stopped.
	peakRSS int64
	cpu     time.Duration
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// fleet is the spawned processes, in start order.
type fleet struct {
	procs  []*process
	logDir string
}

// api returns the process serving the API.
func (f *fleet) api() *process {
	for _, p := range f.procs {
		if p.Role == "all" || p.Role == "serve" {
			return p
		}
	}
	return nil
}

// died returns a channel that yields the first process to exit on its own.
func (f *fleet) died() <-chan *process {
	out := make(chan *process, len(f.procs))
	for _, p := range f.procs {
		go func() {
			select {
			case <-p.done:
				out <- p
			case <-p.stopping:
			}
		}()
	}
	return out
}

// heraldEnv is the environment every spawned process gets, before --env.
func heraldEnv(s *scratch, sk *sinks) map[string]string {
	host, port := sk.smtpAddr()
	return map[string]string{
		"HERALD_DATABASE_URL":    s.DatabaseURL,
		"HERALD_AMQP_URL":        s.AMQPURL,
		"HERALD_EMAIL_PROVIDER":  "smtp",
		"HERALD_SMTP_HOST":       host,
		"HERALD_SMTP_PORT":       strconv.Itoa(port),
		"HERALD_SMTP_TLS":        "none",
		"HERALD_SMTP_FROM":       "Herald Bench <bench@herald.test>",
		"HERALD_SMS_PROVIDER":    "http",
		"HERALD_SMS_URL":         sk.smsURL(),
		"HERALD_SMS_ACCOUNT_SID": smsAccountSID,
		"HERALD_SMS_AUTH_TOKEN":  smsAuthToken,
		"HERALD_SMS_FROM":        smsFrom,
		"HERALD_RATE_LIMIT":      "0",
		"HERALD_LOG_LEVEL":       "warn",
	}
}

// spawnList expands --spawn and --workers into the processes to start, in order: the projector
// and workers first, so that the API, started last, is the one the load waits for.
func spawnList(spawn []string, workers int) []string {
	var out []string
	for _, r := range []string{"projector", "worker", "all", "serve"} {
		for _, s := range spawn {
			if s != r {
				continue
			}
			n := 1
			if r == "worker" {
				n = workers
			}
			for range n {
				out = append(out, r)
			}
		}
	}
	return out
}

// startFleet starts the processes and waits until each answers /readyz. On error the ones
// started are stopped again; the logs stay in logDir.
func startFleet(ctx context.Context, cfg Config, env map[string]string, logDir string, progress func(string, ...any)) (*fleet, error) {
	f := &fleet{logDir: logDir}
	for _, role := range spawnList(cfg.Spawn, cfg.Workers) {
		p, err := startProcess(ctx, cfg, role, len(f.procs), env, logDir)
		if err != nil {
			f.stop(cfg.StopTimeout)
			return nil, err
		}
		f.procs = append(f.procs, p)
		progress("started herald %s (pid %d) on %s", role, p.cmd.Process.Pid, strings.TrimPrefix(p.URL, "http://"))
	}
	return f, nil
}

func startProcess(ctx context.Context, cfg Config, role string, n int, env map[string]string, logDir string) (*process, error) {
	for try := 1; ; try++ {
		p, err := tryStart(ctx, cfg, role, n, env, logDir)
		if err == nil {
			return p, nil
		}
		if try < 3 && p != nil && p.exited() && strings.Contains(readFile(p.Log), "address already in use") {
			continue // the free port was taken meanwhile
		}
		return nil, err
	}
}

func tryStart(ctx context.Context, cfg Config, role string, n int, env map[string]string, logDir string) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	vars := map[string]string{}
	for k, v := range env {
		vars[k] = v
	}
	if role == "all" || role == "serve" {
		vars["HERALD_HTTP_ADDR"] = addr
	} else {
		vars["HERALD_OPS_ADDR"] = addr
	}
	// --env wins, except over the listening address the bench must know.
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "HERALD_HTTP_ADDR" && k != "HERALD_OPS_ADDR" {
			vars[k] = v
		}
	}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			environ = append(environ, kv)
		}
	}
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}

	logFile, err := os.Create(filepath.Join(logDir, fmt.Sprintf("herald-%s-%d.log", role, n)))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(cfg.Executable, role)
	cmd.Env = environ
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group: a Ctrl-C at the terminal reaches the bench, which stops Herald in
	// order, rather than every process at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start herald %s: %w", role, err)
	}
	p := &process{Role: role, cmd: cmd, Log: logFile.Name(), URL: "http://" + addr, done: make(chan struct{}), stopping: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(cfg.ReadyTimeout)
	var last string
	for {
		resp, err := client.Get(p.URL + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return p, fmt.Errorf("herald %s exited before it was ready (%v); its log: %s\n%s", role, p.err, p.Log, tail(p.Log, 15))
		case <-ctx.Done():
			p.terminate(cfg.StopTimeout)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.terminate(cfg.StopTimeout)
			return nil, fmt.Errorf("herald %s: /readyz did not answer 200 within %s (last: %s); its log: %s", role, cfg.ReadyTimeout, last, p.Log)
		}
	}
}

// terminate stops p with SIGTERM, and SIGKILL after timeout. It returns the exit error.
func (p *process) terminate(timeout time.Duration) error {
	select {
	case <-p.stopping:
	default:
		close(p.stopping)
	}
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("did not exit within %s of SIGTERM; killed", timeout)
}

// stop reads each process's final figures, then stops them in reverse order of start. It
// returns the problems met, one per process.
func (f *fleet) stop(timeout time.Duration) []string {
	for _, p := range f.procs {
		if !p.exited() {
			p.peakRSS = procStatusKB(p.cmd.Process.Pid, "VmHWM") * 1024
			p.cpu = procCPU(p.cmd.Process.Pid)
		}
	}
	var problems []string
	for i := len(f.procs) - 1; i >= 0; i-- {
		p := f.procs[i]
		wasRunning := !p.exited()
		if err := p.terminate(timeout); err != nil {
			what := "exited on its own"
			if wasRunning {
				what = "after SIGTERM"
			}
			problems = append(problems, fmt.Sprintf("herald %s %s: %v (log: %s)", p.Role, what, err, p.Log))
		}
	}
	return problems
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// tail returns the last n lines of the file at path, indented.
func tail(path string, n int) string {
	text := strings.TrimRight(readFile(path), "\n")
	if text == "" {
		return "    (empty)"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// procStatusKB returns a "kB" field of /proc/<pid>/status (VmRSS, VmHWM), or 0.
func procStatusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb
	}
	return 0
}

// clockTicks is USER_HZ, which Linux fixes at 100 on every architecture Go supports.
const clockTicks = 100

// procCPU returns the user and system CPU time /proc/<pid>/stat reports, or 0.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may contain spaces: count fields after its end.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0
	}
	return time.Duration(ut+st) * time.Second / clockTicks
}
