package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/harness"
)

// process is one spawned herald, with what the bench reads of it.
type process struct {
	*harness.Process
	Role string
	// stopping is closed when the bench itself stops the process.
	stopping chan struct{}
	// Final figures, read before it is stopped.
	peakRSS int64
	cpu     time.Duration
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
			case <-p.Done():
				out <- p
			case <-p.stopping:
			}
		}()
	}
	return out
}

// heraldEnv is the environment every spawned process gets: the scratch services and sinks, what
// webhooks to the bench's receivers need (with --webhooks), the checkpoint key and file (with
// --ledger sealed: ledgerEnv), then --env. The listening address is the harness's, whatever
// --env says.
func heraldEnv(cfg Config, s *scratch, sk *sinks, ledgerEnv map[string]string) map[string]string {
	host, port := sk.smtpAddr()
	env := map[string]string{
		"HERALD_DATABASE_URL":    s.ServiceURL,
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
	if cfg.webhooks() {
		for k, v := range webhookEnv {
			env[k] = v
		}
	}
	for k, v := range ledgerEnv {
		env[k] = v
	}
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
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
		hp, err := harness.Start(ctx, harness.Spec{
			Executable: cfg.Executable, Command: role, Env: env,
			LogDir: logDir, LogName: fmt.Sprintf("herald-%s-%d.log", role, len(f.procs)),
			ReadyTimeout: cfg.ReadyTimeout, StopTimeout: cfg.StopTimeout, OwnProcessGroup: true,
		})
		if err != nil {
			f.stop(cfg.StopTimeout)
			if hp != nil && ctx.Err() == nil {
				err = fmt.Errorf("%w; its log: %s\n%s", err, hp.Log, hp.Tail(15))
			}
			return nil, err
		}
		p := &process{Process: hp, Role: role, stopping: make(chan struct{})}
		f.procs = append(f.procs, p)
		progress("started herald %s (pid %d) on %s", role, p.PID(), strings.TrimPrefix(p.URL, "http://"))
	}
	return f, nil
}

// terminate stops p with SIGTERM, and SIGKILL after timeout. It returns how it exited; one
// that had exited on its own is judged by its exit status.
func (p *process) terminate(timeout time.Duration) error {
	select {
	case <-p.stopping:
	default:
		close(p.stopping)
	}
	if p.Exited() {
		return p.Err()
	}
	_, err := p.Terminate(timeout)
	return err
}

// stop reads each process's final figures, then stops them in reverse order of start. It
// returns the problems met, one per process.
func (f *fleet) stop(timeout time.Duration) []string {
	for _, p := range f.procs {
		if !p.Exited() {
			p.peakRSS = procStatusKB(p.PID(), "VmHWM") * 1024
			p.cpu = procCPU(p.PID())
		}
	}
	var problems []string
	for i := len(f.procs) - 1; i >= 0; i-- {
		p := f.procs[i]
		wasRunning := !p.Exited()
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

// readFile returns the file at path, or "" when it cannot be read (a /proc file gone).
func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
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
