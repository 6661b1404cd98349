package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Where the machine's CPU goes during a counted run: each cost snapshot also reads the
// machine's busy time (/proc/stat) and the CPU time of every process the run accounts for
// (/proc/<pid>/stat), grouped by whose it is. The difference of two such readings is split into
// Herald's processes, PostgreSQL's, RabbitMQ's, the bench's and the rest of the machine's busy
// time, which is the work no accounted process explains. The groups are not "this run's" and
// "not this run's": PostgreSQL's holds the cluster's shared processes (checkpointer, walwriter,
// background writer, the autovacuum launcher, parallel workers), which serve every database, and
// RabbitMQ's is the whole broker VM, which serves every vhost; while the rest holds some of the
// run's own work (RabbitMQ's helper processes, the kernel's loopback networking, processes that
// exited during the window) with other programs'. Steal time (the hypervisor's, not this
// machine's work) is counted apart, not as busy.

// CPUSplit is CPU time by whose it was; in seconds as a total, in milliseconds per
// notification.
type CPUSplit struct {
	// Machine is the machine's busy time, every core's user, nice, system, irq and softirq time;
	// not steal time, which is Steal.
	Machine float64 `json:"machine"`
	// Herald is the Herald processes the bench spawned; 0 for the skeleton, whose own goroutines
	// run in the bench process and count in Bench.
	Herald float64 `json:"herald"`
	// PostgreSQL is the run database's backends (the bench's own queries included) and the
	// cluster's shared processes, which serve every database: postmaster, checkpointer,
	// walwriter, background writer, autovacuum launcher, parallel workers, and the autovacuum
	// workers of the run database. RabbitMQ is the whole broker VM (beam.smp), which serves every
	// vhost, the bench's management API calls included; not its helper processes.
	PostgreSQL float64 `json:"postgresql"`
	RabbitMQ   float64 `json:"rabbitmq"`
	// Bench is the bench process: the load, sinks, status poller and cost meter, and for the
	// skeleton the skeleton itself.
	Bench float64 `json:"bench"`
	// Other is Machine less the four above: busy time no accounted process explains, other
	// programs' and some of the run's own (RabbitMQ's helper processes erl_child_setup,
	// inet_gethost and epmd, the kernel's loopback networking, processes that exited during the
	// window).
	Other float64 `json:"other"`
	// Steal is the time the hypervisor gave other guests while this one wanted the CPU: not in
	// Machine, nobody's work here.
	Steal float64 `json:"steal,omitempty"`
}

// scaled is every figure of c times k.
func (c CPUSplit) scaled(k float64) CPUSplit {
	return CPUSplit{Machine: c.Machine * k, Herald: c.Herald * k, PostgreSQL: c.PostgreSQL * k, RabbitMQ: c.RabbitMQ * k, Bench: c.Bench * k, Other: c.Other * k, Steal: c.Steal * k}
}

// cpuGroup is whose a process is.
type cpuGroup int

const (
	groupHerald cpuGroup = iota + 1
	groupPostgres
	groupRabbit
	groupBench
)

// cpuSnapshot is the machine's busy time and the accounted processes' CPU time at one moment.
type cpuSnapshot struct {
	busy  uint64 // the machine's busy time, in clock ticks, steal time left out
	steal uint64 // the machine's steal time, in clock ticks
	procs map[int]procCPUTime
}

// procCPUTime is one process's group and its CPU time so far.
type procCPUTime struct {
	group cpuGroup
	cpu   time.Duration
}

// takeCPUSnapshot reads the machine's busy time and the CPU time of the bench, of Herald's
// processes heraldPIDs (none for the skeleton) and of the services' processes serving dbName.
func takeCPUSnapshot(heraldPIDs []int, dbName string) *cpuSnapshot {
	busy, steal, _ := cpuStat()
	pg, rb := serviceProcesses(dbName)
	s := groupProcesses(busy, os.Getpid(), heraldPIDs, dirPIDs(pg), dirPIDs(rb), procCPU)
	s.steal = steal
	return s
}

// groupProcesses assigns each process its group and reads its CPU time with cpu. A pid in more
// than one list is the bench's or Herald's, not a service's.
func groupProcesses(busy uint64, self int, herald, postgres, rabbit []int, cpu func(int) time.Duration) *cpuSnapshot {
	s := &cpuSnapshot{busy: busy, procs: map[int]procCPUTime{}}
	for _, g := range []struct {
		pids  []int
		group cpuGroup
	}{{postgres, groupPostgres}, {rabbit, groupRabbit}, {herald, groupHerald}, {[]int{self}, groupBench}} {
		for _, pid := range g.pids {
			s.procs[pid] = procCPUTime{group: g.group, cpu: cpu(pid)}
		}
	}
	return s
}

// dirPIDs is the pids of /proc directories.
func dirPIDs(dirs []string) []int {
	var out []int
	for _, dir := range dirs {
		if pid, err := strconv.Atoi(filepath.Base(dir)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// cpuDiff is the CPU time, in seconds, spent between two snapshots, by group. A process only in
// after (started meanwhile, or its pid taken by another group) counts from 0; one only in
// before (exited meanwhile) counts nothing, and what it spent falls in Other.
func cpuDiff(before, after *cpuSnapshot) *CPUSplit {
	// Summed as durations, not seconds: whole clock ticks add up without float residue.
	byGroup := map[cpuGroup]time.Duration{}
	for pid, p := range after.procs {
		d := p.cpu
		if b, ok := before.procs[pid]; ok && b.group == p.group && b.cpu <= p.cpu {
			d -= b.cpu
		}
		byGroup[p.group] += d
	}
	var machine time.Duration
	if after.busy > before.busy {
		machine = time.Duration(after.busy-before.busy) * time.Second / clockTicks
	}
	var steal time.Duration
	if after.steal > before.steal {
		steal = time.Duration(after.steal-before.steal) * time.Second / clockTicks
	}
	other := max(0, machine-byGroup[groupHerald]-byGroup[groupPostgres]-byGroup[groupRabbit]-byGroup[groupBench])
	return &CPUSplit{
		Machine: machine.Seconds(), Herald: byGroup[groupHerald].Seconds(), PostgreSQL: byGroup[groupPostgres].Seconds(),
		RabbitMQ: byGroup[groupRabbit].Seconds(), Bench: byGroup[groupBench].Seconds(), Other: other.Seconds(),
		Steal: steal.Seconds(),
	}
}
