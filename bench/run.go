// Package bench owns herald bench: it drives a Herald over HTTP with a number of notifications,
// at a rate or a concurrency, counts what reaches its own loopback SMTP server and SMS gateway,
// watches a sample on the status API, and measures the raw throughput of the same PostgreSQL and
// RabbitMQ beside it, so that Herald's rate can be read as a share of what the machine can do.
//
// By default it starts Herald itself, from the running executable, on a fresh database and
// RabbitMQ vhost that it drops afterwards, so that two runs measure the same thing.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/redact"
)

// Run performs one bench run as cfg says and returns its report. Progress goes to progress
// (nil: nowhere). The error is for a run that could not be made (bad settings, services
// unreachable, Herald not starting); a run that was made returns its report, whose OK says
// whether every notification arrived, even with an error beside it.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	say := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, "bench: "+format+"\n", args...)
		}
	}
	rep := &Report{ReportVersion: ReportVersion, Started: time.Now().UTC(), Settings: settingsOf(cfg), Environment: environment(cfg), Problems: []string{}, Warnings: []string{}}
	var err error
	if cfg.spawning() {
		err = runSpawned(ctx, cfg, rep, say)
	} else {
		err = runAgainstURL(ctx, cfg, rep, say)
	}
	if rep.Finished.IsZero() {
		// The load never started: there is nothing to report.
		return nil, err
	}
	return rep, err
}

// cleanups run in reverse order of registration, bounded in time even when ctx is cancelled.
type cleanups []func(context.Context)

func (c *cleanups) add(f func(context.Context)) { *c = append(*c, f) }

func (c cleanups) run(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	for i := len(c) - 1; i >= 0; i-- {
		c[i](ctx)
	}
}

// runSpawned is a run on Herald processes of its own: a scratch database and vhost, the ceiling
// if asked, the sinks, the processes, the load, and everything taken down again.
func runSpawned(ctx context.Context, cfg Config, rep *Report, say func(string, ...any)) (err error) {
	if cfg.Executable == "" {
		if cfg.Executable, err = os.Executable(); err != nil {
			return fmt.Errorf("find the herald executable: %w", err)
		}
	}
	var cleanup cleanups
	defer func() { cleanup.run(ctx) }()

	s, err := prepareScratch(ctx, cfg, rep, say, &cleanup)
	if err != nil {
		return err
	}
	meter := newCostMeter(ctx, s, cfg.RabbitMQAPI)
	rep.Cost = &CostReport{}
	if cfg.Ceiling {
		rep.Ceiling, rep.Cost.Skeleton = measureCeiling(ctx, cfg, s, meter, say)
		settleAfterCeiling(ctx, rep, say)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	r := newRunner(cfg, time.Now())
	sk, err := startSinks(r.arrived)
	if err != nil {
		return err
	}
	cleanup.add(func(context.Context) { sk.close() })
	_, token, err := apikeys.NewStore(s.Pool).Create(ctx, "bench", []herald.Scope{herald.ScopeSend, herald.ScopeRead}, "herald bench")
	if err != nil {
		return fmt.Errorf("create an API key: %w", err)
	}
	r.cfg.APIKey = token
	if cfg.Template {
		if err := createTemplates(ctx, s.Pool); err != nil {
			return err
		}
	}

	var ws *webhookSet
	if cfg.webhooks() {
		if ws, err = startWebhooks(ctx, cfg, s.Pool); err != nil {
			return err
		}
		cleanup.add(func(context.Context) { ws.close() })
		failing := 0
		if ws.failing != nil {
			failing = 1
		}
		say("registered %d healthy and %d failing webhook endpoints", len(ws.healthy), failing)
	}

	ledgerEnv, err := prepareLedger(ctx, cfg, s, &cleanup, say)
	if err != nil {
		return err
	}
	wf, err := startWatchedFleet(ctx, cfg, rep, heraldEnv(cfg, s, sk, ledgerEnv), s.Name, say)
	if err != nil {
		return err
	}
	cleanup.add(func(context.Context) { wf.stop() })

	// A process that dies ends the run: what follows would measure a broken Herald.
	runCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	go abortOnDeath(runCtx, wf.fleet, abort)

	r.watch(wf, s)
	meter.heraldPIDs = wf.pids
	say("counting what the services did before the load")
	before, idle, costErr := meter.settled(runCtx)
	runErr := r.run(runCtx, rep, say)
	if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil && !errors.Is(cause, context.Canceled) {
		runErr = cause
	}
	r.interrupted = interruption(ctx, runErr)
	if ws != nil {
		wh, err := r.awaitWebhooks(runCtx, ws, s.Pool, runErr == nil, say)
		if err != nil {
			rep.Warnings = append(rep.Warnings, err.Error())
		}
		rep.Webhooks = wh
		if cause := context.Cause(runCtx); runErr == nil && cause != nil && ctx.Err() == nil {
			// A process died while the bench waited for the webhooks.
			runErr = cause
			r.interrupted = interruption(ctx, runErr)
		}
	}

	rep.Cost.Herald = r.costFigures(runCtx, meter, before, idle, costErr, say)
	if cfg.Ledger == LedgerSealed {
		if n, err := checkpointsSealed(ctx, s.Pool); err != nil {
			rep.Warnings = append(rep.Warnings, err.Error())
		} else {
			rep.CheckpointsSealed = &n
		}
	}
	wf.stop()
	rep.Memory = r.memoryFigures(wf.fleet, wf.mem)
	r.finish(rep, sk.refused.Load())
	if runErr == nil && !cfg.Keep && rep.OK {
		_ = os.RemoveAll(rep.LogDir)
		rep.LogDir = ""
	}
	return runErr
}

// prepareScratch creates the run's migrated database and vhost, names them in the report with the
// services' versions, and registers their removal (or their keeping, with --keep) in cleanup.
func prepareScratch(ctx context.Context, cfg Config, rep *Report, say func(string, ...any), cleanup *cleanups) (*scratch, error) {
	s, err := createScratch(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	rep.Settings.Database, rep.Settings.VHost = s.Name, s.Name
	say("created database and vhost %s", s.Name)
	cleanup.add(func(ctx context.Context) {
		if cfg.Keep {
			say("kept database and vhost %s (--keep)", s.Name)
			s.Pool.Close()
			return
		}
		if err := s.drop(ctx); err != nil {
			rep.Warnings = append(rep.Warnings, err.Error())
		}
	})
	rep.Environment.PostgresVersion, rep.Environment.RabbitMQVersion, rep.Environment.ErlangVersion = serviceVersions(ctx, cfg, s.Pool)
	return s, nil
}

// watchedFleet is the run's Herald processes with the sampler of their memory.
type watchedFleet struct {
	fleet *fleet
	mem   *memorySampler
	pids  []int
	// stop ends the sampling and stops the processes, once; their problems go to the report.
	stop func()
}

// startWatchedFleet starts the processes, with their logs in a new directory the report names,
// and samples their memory (and the database's, named dbName) until stopped.
func startWatchedFleet(ctx context.Context, cfg Config, rep *Report, env map[string]string, dbName string, say func(string, ...any)) (*watchedFleet, error) {
	logDir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, err
	}
	rep.LogDir = logDir
	fl, err := startFleet(ctx, cfg, env, logDir, say)
	if err != nil {
		return nil, fmt.Errorf("%w (logs: %s)", err, logDir)
	}
	wf := &watchedFleet{fleet: fl}
	for _, p := range fl.procs {
		wf.pids = append(wf.pids, p.PID())
	}
	wf.mem = newMemorySampler(wf.pids, dbName, time.Now())
	memCtx, stopMem := context.WithCancel(ctx)
	memDone := make(chan struct{})
	go func() { wf.mem.run(memCtx); close(memDone) }()
	var once sync.Once
	wf.stop = func() {
		once.Do(func() {
			stopMem()
			<-memDone
			say("stopping herald")
			rep.Problems = append(rep.Problems, fl.stop(cfg.StopTimeout)...)
		})
	}
	return wf, nil
}

// abortOnDeath aborts the run with the story of the first process that exits on its own, until
// ctx ends.
func abortOnDeath(ctx context.Context, fl *fleet, abort context.CancelCauseFunc) {
	select {
	case p := <-fl.died():
		abort(fmt.Errorf("herald %s (pid %d) exited during the run: %v; its log: %s\n%s", p.Role, p.PID(), p.Err(), p.Log, p.Tail(15)))
	case <-ctx.Done():
	}
}

// watch points the runner at the fleet's API and sinks, and at the scratch database's read
// models for what is projected and terminal.
func (r *runner) watch(wf *watchedFleet, s *scratch) {
	r.base = wf.fleet.api().URL
	r.sinks = true
	r.pids, r.dbName = wf.pids, s.Name
	r.poller.foldCheck = func(ctx context.Context, id string) (bool, error) {
		r.benchQueries.Add(1)
		var projected bool
		err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notification_status WHERE notification_id = $1 AND status = 'sent')`, id).Scan(&projected)
		return projected, err
	}
	r.terminal = func(ctx context.Context) (terminalCounts, error) {
		r.benchQueries.Add(1)
		return readModelCounts(ctx, s)
	}
}

// runAgainstURL is a run on a Herald someone else started: the ceiling on a scratch database
// and vhost if asked, then the load, settled on the status API.
func runAgainstURL(ctx context.Context, cfg Config, rep *Report, say func(string, ...any)) error {
	rep.Environment.PostgresVersion, rep.Environment.RabbitMQVersion, rep.Environment.ErlangVersion = serviceVersions(ctx, cfg, nil)
	if cfg.Ceiling {
		s, err := createScratch(ctx, cfg, false)
		if err != nil {
			rep.Ceiling = &CeilingReport{Seconds: cfg.CeilingDuration.Seconds(), Error: err.Error() + " (--ceiling=false skips the ceiling)"}
		} else {
			rep.Ceiling, _ = measureCeiling(ctx, cfg, s, nil, say)
			if err := s.drop(ctx); err != nil {
				rep.Warnings = append(rep.Warnings, err.Error())
			}
			settleAfterCeiling(ctx, rep, say)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	r := newRunner(cfg, time.Now())
	r.base = strings.TrimRight(cfg.URL, "/")
	r.terminal = r.sweep
	err := r.run(ctx, rep, say)
	r.interrupted = interruption(ctx, err)
	r.finish(rep, 0)
	return err
}

// interruption says why a run stopped early: a signal, or the error that stopped it.
func interruption(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return "interrupted"
	case err != nil:
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return msg
	}
	return ""
}

// measureCeiling measures AMQP and PostgreSQL in the scratch database and vhost, and with a
// meter what the skeleton cost them. A failure is reported in the result, not returned: the
// load can still be measured.
func measureCeiling(ctx context.Context, cfg Config, s *scratch, meter *costMeter, say func(string, ...any)) (*CeilingReport, *CostFigures) {
	c := &CeilingReport{Seconds: cfg.CeilingDuration.Seconds()}
	say("measuring the skeleton for %s (%d clients)", cfg.CeilingDuration, cfg.Concurrency)
	sk, cost, err := measureSkeleton(ctx, s.DatabaseURL, s.AMQPURL, cfg.Concurrency, cfg.CeilingDuration, time.Minute, meter)
	c.Skeleton = &sk
	if err != nil {
		c.Error = err.Error()
		return c, cost
	}
	// The skeleton leaves work behind (tables and a queue to drop), as the ceiling does.
	if waited, quiet := waitQuiet(ctx, quietBusy, settleLimit); quiet {
		say("the machine was quiet again %s after the skeleton", waited.Round(time.Second))
	}
	say("measuring the AMQP ceiling for %s (%d publishers)", cfg.CeilingDuration, cfg.Concurrency)
	a, err := measureAMQP(ctx, s.AMQPURL, cfg.Concurrency, cfg.CeilingDuration)
	if err != nil {
		c.Error = err.Error()
		return c, cost
	}
	c.AMQP = &a
	clients := pgClientCounts(min(cfg.Concurrency, maxPGClients))
	say("measuring the PostgreSQL ceiling for %s each with %v clients", cfg.CeilingDuration, clients)
	pool, err := newCeilingPool(ctx, s.DatabaseURL, clients)
	if err != nil {
		c.Error = err.Error()
		return c, cost
	}
	defer pool.Close()
	c.Postgres, err = measurePostgres(ctx, pool, clients, cfg.CeilingDuration)
	if err != nil {
		c.Error = err.Error()
	}
	for _, p := range c.Postgres {
		c.PostgresBest = max(c.PostgresBest, p.InsertsPer)
	}
	return c, cost
}

// settleAfterCeiling waits for the machine to be quiet again before the load starts: the
// ceiling leaves work behind (RabbitMQ deleting a queue that still held tens of thousands of
// messages, PostgreSQL dropping a table), and a load started on top of it measures that work too.
func settleAfterCeiling(ctx context.Context, rep *Report, say func(string, ...any)) {
	waited, quiet := waitQuiet(ctx, quietBusy, settleLimit)
	if quiet {
		say("the machine was quiet again %s after the ceiling", waited.Round(time.Second))
		return
	}
	if ctx.Err() == nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the machine was still more than %.0f%% busy %s after the ceiling; the load started anyway", quietBusy*100, settleLimit))
	}
}

const (
	quietBusy   = 0.25 // the machine's busy share of CPU under which it counts as quiet
	settleLimit = time.Minute
)

// waitQuiet waits until a second passes with the machine less than busy busy, for at most limit.
func waitQuiet(ctx context.Context, busy float64, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		b0, t0 := cpuTimes()
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(time.Second):
		}
		b1, t1 := cpuTimes()
		if t1 > t0 && float64(b1-b0)/float64(t1-t0) < busy {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// maxPGClients bounds the PostgreSQL ceiling's clients, to stay under max_connections.
const maxPGClients = 64

func settingsOf(cfg Config) Settings {
	s := Settings{
		Mode: "spawn", N: cfg.N, SMSRatio: cfg.SMSRatio, HTML: cfg.HTML, Template: cfg.Template, Loop: "closed", Concurrency: cfg.Concurrency,
		RequestTimeout: cfg.RequestTimeout.Seconds(), Sample: cfg.Sample,
		PollInterval: float64(cfg.PollInterval) / float64(time.Millisecond), PollRate: cfg.PollRate,
		Drain: cfg.Drain.Seconds(), Ceiling: cfg.Ceiling, Webhooks: cfg.Webhooks, WebhookFailing: cfg.WebhookFailing,
		Ledger: cfg.Ledger,
	}
	if cfg.Rate > 0 {
		s.Loop, s.Rate, s.MaxInFlight = "open", cfg.Rate, cfg.MaxInFlight
	}
	if cfg.Ceiling {
		s.CeilingSeconds = cfg.CeilingDuration.Seconds()
	}
	if cfg.spawning() {
		s.Spawn, s.Workers = cfg.Spawn, cfg.Workers
		for _, kv := range cfg.Env {
			s.Env = append(s.Env, harness.RedactSetting(kv))
		}
	} else {
		s.Mode, s.URL, s.Ledger = "url", redact.URL(cfg.URL), LedgerUnknown
	}
	return s
}

func environment(cfg Config) Environment {
	host, _ := os.Hostname()
	e := Environment{
		Hostname: host, CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion: runtime.Version(), HeraldVersion: cfg.HeraldVersion,
		Kernel:      strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		LoadAverage: loadAverage(),
	}
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			e.CPUModel = strings.TrimSpace(v)
			break
		}
	}
	return e
}

// benchCPU returns the CPU time the bench process has used so far.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *runner) memoryFigures(fl *fleet, mem *memorySampler) *Memory {
	mem.mu.Lock()
	defer mem.mu.Unlock()
	m := &Memory{
		Series: mem.series, MaxSampledRSS: mem.maxTotal, PostgresPSS: mem.maxPostgres, RabbitMQPSS: mem.maxRabbit,
		BenchPeakRSS: selfPeakRSS(), BenchCPUSeconds: r.benchCPU.Seconds(),
	}
	for i, p := range fl.procs {
		peak := max(p.peakRSS, mem.maxPer[i])
		m.Processes = append(m.Processes, ProcessFigures{Role: p.Role, PID: p.PID(), PeakRSS: peak, MaxSampledRSS: mem.maxPer[i], CPUSeconds: p.cpu.Seconds()})
		m.PeakRSSSum += peak
	}
	return m
}
