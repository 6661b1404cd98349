package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RSSSample is the resident memory of Herald's processes at one moment of the run.
type RSSSample struct {
	// T is seconds since Herald's processes were ready.
	T float64 `json:"t"`
	// Bytes is the sum over Herald's processes; PerProcess follows the order of report.memory.processes.
	Bytes      int64   `json:"bytes"`
	PerProcess []int64 `json:"per_process"`
}

// memorySampler reads the resident memory of Herald's processes every second, and that of
// PostgreSQL and RabbitMQ every five.
type memorySampler struct {
	pids   []int
	dbName string // the bench database: its backends count towards PostgreSQL's memory
	start  time.Time

	mu          sync.Mutex
	series      []RSSSample
	maxPer      []int64
	maxTotal    int64
	maxPostgres int64
	maxRabbit   int64
}

// newMemorySampler samples the processes pids and the services' processes serving dbName,
// timing the samples from start.
func newMemorySampler(pids []int, dbName string, start time.Time) *memorySampler {
	return &memorySampler{pids: pids, dbName: dbName, start: start, maxPer: make([]int64, len(pids))}
}

// run samples until ctx is done, then once more, so that the series ends with the run.
func (m *memorySampler) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		m.sample(n%5 == 0)
		select {
		case <-ctx.Done():
			m.sample(true)
			return
		case <-tick.C:
		}
	}
}

// sample reads Herald's processes' resident memory, and the services' when services is set
// (reading every process's smaps is too dear to do each second), and keeps the maxima.
func (m *memorySampler) sample(services bool) {
	s := RSSSample{T: time.Since(m.start).Seconds(), PerProcess: make([]int64, len(m.pids))}
	for i, pid := range m.pids {
		s.PerProcess[i] = procStatusKB(pid, "VmRSS") * 1024
		s.Bytes += s.PerProcess[i]
	}
	var pg, rabbit int64
	if services {
		pg, rabbit = servicesMemory(m.dbName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pids) > 0 {
		m.series = append(m.series, s)
	}
	for i, v := range s.PerProcess {
		m.maxPer[i] = max(m.maxPer[i], v)
	}
	m.maxTotal = max(m.maxTotal, s.Bytes)
	m.maxPostgres = max(m.maxPostgres, pg)
	m.maxRabbit = max(m.maxRabbit, rabbit)
}

// servicesMemory sums the proportional set size (PSS: shared pages divided among the processes
// sharing them, so PostgreSQL's shared buffers count once) of PostgreSQL's server processes and
// the backends connected to dbName (all backends when dbName is empty), and of RabbitMQ's
// Erlang VM. Processes it may not read count as nothing.
func servicesMemory(dbName string) (postgres, rabbit int64) {
	pg, rb := serviceProcesses(dbName)
	for _, dir := range pg {
		postgres += pss(dir)
	}
	for _, dir := range rb {
		rabbit += pss(dir)
	}
	return postgres, rabbit
}

// serviceProcesses returns the /proc directories of PostgreSQL's processes that postgresServes
// counts for dbName (the cluster's shared processes, and dbName's backends and autovacuum
// workers; every process when dbName is empty), and of RabbitMQ's Erlang VM, which serves every
// vhost.
func serviceProcesses(dbName string) (postgres, rabbit []string) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		comm, err := os.ReadFile(dir + "/comm")
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "postgres":
			cmdline, _ := os.ReadFile(dir + "/cmdline")
			if postgresServes(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})), dbName) {
				postgres = append(postgres, dir)
			}
		case "beam.smp":
			rabbit = append(rabbit, dir)
		}
	}
	return postgres, rabbit
}

// postgresServes says whether the PostgreSQL process titled title counts for dbName (for every
// database when dbName is empty): a backend or an autovacuum worker only when it is dbName's, the
// cluster's shared processes (postmaster, checkpointer, walwriter, background writer,
// autovacuum launcher, parallel workers) always.
func postgresServes(title, dbName string) bool {
	if dbName == "" {
		return true
	}
	// An autovacuum worker's title is "postgres: [<cluster>: ]autovacuum worker <database>", a
	// backend's "postgres: [<cluster>: ]<user> <database> <client> <state>".
	if _, db, ok := strings.Cut(title, "autovacuum worker "); ok {
		f := strings.Fields(db)
		return len(f) > 0 && f[0] == dbName
	}
	backend := strings.Contains(title, "(") || strings.Contains(title, "[local]")
	return !backend || strings.Contains(title, " "+dbName+" ")
}

// ownCPU returns the CPU time so far of every process the run accounts for, by pid: the bench,
// Herald's processes, PostgreSQL's server and dbName's backends, and RabbitMQ.
func ownCPU(pids []int, dbName string) map[int]time.Duration {
	out := map[int]time.Duration{os.Getpid(): procCPU(os.Getpid())}
	for _, pid := range pids {
		out[pid] = procCPU(pid)
	}
	pg, rb := serviceProcesses(dbName)
	for _, pid := range dirPIDs(append(pg, rb...)) {
		out[pid] = procCPU(pid)
	}
	return out
}

// cpuWatch measures, over a stretch of the run, how busy the machine was and how much of that
// was other processes' work.
type cpuWatch struct {
	pids          []int
	dbName        string
	busy0, total0 uint64
	own0          map[int]time.Duration
}

// startCPUWatch starts measuring, taking the CPU times of the machine and of every process the
// run accounts for: Herald's pids, the services serving dbName and the bench.
func startCPUWatch(pids []int, dbName string) *cpuWatch {
	w := &cpuWatch{pids: pids, dbName: dbName, own0: ownCPU(pids, dbName)}
	w.busy0, w.total0 = cpuTimes()
	return w
}

// stop returns the busy share of the machine's CPU time since start, and the CPU time of
// processes the run does not account for (0 when unknown).
func (w *cpuWatch) stop() (busy float64, other time.Duration) {
	busy1, total1 := cpuTimes()
	own1 := ownCPU(w.pids, w.dbName)
	if total1 <= w.total0 {
		return 0, 0
	}
	busy = float64(busy1-w.busy0) / float64(total1-w.total0)
	var own time.Duration
	for pid, t := range own1 {
		own += t - w.own0[pid] // a process started meanwhile counts from 0
	}
	other = time.Duration(busy1-w.busy0)*time.Second/clockTicks - own
	return busy, max(0, other)
}

// pss returns the Pss of /proc/<pid> in bytes, or its VmRSS when smaps_rollup is unreadable.
func pss(dir string) int64 {
	f, err := os.Open(dir + "/smaps_rollup")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				return kb * 1024
			}
		}
	}
	pid, _ := strconv.Atoi(filepath.Base(dir))
	return procStatusKB(pid, "VmRSS") * 1024
}

// cpuTimes returns the machine's busy (steal time included) and total CPU time so far, in clock
// ticks, from /proc/stat.
func cpuTimes() (busy, total uint64) {
	busy, steal, total := cpuStat()
	return busy + steal, total
}

// cpuStat returns the machine's CPU time since boot, in clock ticks, from /proc/stat: busy
// (user, nice, system, irq, softirq), steal, and all of it (idle and iowait too).
func cpuStat() (busy, steal, total uint64) {
	line, _, _ := strings.Cut(readFile("/proc/stat"), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, 0
	}
	for i, f := range fields[1:] {
		if i >= 8 { // guest time is already counted in user time
			break
		}
		v, _ := strconv.ParseUint(f, 10, 64)
		total += v
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			steal += v
		default:
			busy += v
		}
	}
	return busy, steal, total
}

// loadAverage returns the first three fields of /proc/loadavg.
func loadAverage() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// selfPeakRSS returns the bench's own peak resident memory.
func selfPeakRSS() int64 { return procStatusKB(os.Getpid(), "VmHWM") * 1024 }

// mib formats bytes as MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
