package bench

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fixedCPU is a process table: each pid's CPU time so far.
func fixedCPU(byPID map[int]time.Duration) func(int) time.Duration {
	return func(pid int) time.Duration { return byPID[pid] }
}

func TestCPUDiffSplitsTheMachinesBusyTimeByWhoseProcessesSpentIt(t *testing.T) {
	const self = 1
	// Herald 10 and 11; PostgreSQL's server 20 and backends 21 (exits meanwhile) and 22 (starts
	// meanwhile); RabbitMQ 30; 11 is also listed as a service and counts as Herald's.
	before := groupProcesses(1000, self, []int{10, 11}, []int{20, 21, 11}, []int{30}, fixedCPU(map[int]time.Duration{
		self: 5 * time.Second, 10: 10 * time.Second, 11: 20 * time.Second, 20: 30 * time.Second, 21: 40 * time.Second, 30: 50 * time.Second,
	}))
	after := groupProcesses(1000+6000, self, []int{10, 11}, []int{20, 22, 11}, []int{30}, fixedCPU(map[int]time.Duration{
		self: 5*time.Second + 1500*time.Millisecond, // bench: 1.5 s
		10:   10*time.Second + 7*time.Second,        // herald: 7 + 3 = 10 s
		11:   20*time.Second + 3*time.Second,
		20:   30*time.Second + 4*time.Second, // PostgreSQL: 4 + 2.5 = 6.5 s
		22:   2500 * time.Millisecond,
		30:   50*time.Second + 12*time.Second, // RabbitMQ: 12 s
	}))
	got := cpuDiff(before, after)
	// 6000 ticks are 60 s busy: 60 - 10 - 6.5 - 12 - 1.5 = 30 s by nothing accounted for (21's
	// last work among it).
	want := &CPUSplit{Machine: 60, Herald: 10, PostgreSQL: 6.5, RabbitMQ: 12, Bench: 1.5, Other: 30}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("cpuDiff (-want +got):\n%s", diff)
	}
}

func TestCPUDiffNeverReportsNegativeWork(t *testing.T) {
	// The processes' clocks ran ahead of the machine's (read a little later): other is 0, not
	// negative; a pid that changed hands counts from 0 in its new group.
	before := groupProcesses(100, 1, []int{7}, nil, nil, fixedCPU(map[int]time.Duration{1: time.Second, 7: 9 * time.Second}))
	after := groupProcesses(200, 1, nil, []int{7}, nil, fixedCPU(map[int]time.Duration{1: 2 * time.Second, 7: 500 * time.Millisecond}))
	got := cpuDiff(before, after)
	want := &CPUSplit{Machine: 1, PostgreSQL: 0.5, Bench: 1, Other: 0}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("cpuDiff (-want +got):\n%s", diff)
	}
}

func TestTakeCPUSnapshotCountsTheBenchItself(t *testing.T) {
	s := takeCPUSnapshot(nil, "")
	if p, ok := s.procs[os.Getpid()]; !ok || p.group != groupBench {
		t.Errorf("the bench's own process is %+v, %v; want it in the bench's group", p, ok)
	}
	if s.busy == 0 {
		t.Error("the machine's busy time reads 0")
	}
}

// cpuSnapshots are two readings 20 s of machine time apart: 4 s Herald, 3 s PostgreSQL, 2 s
// RabbitMQ, 1 s the bench, 10 s other.
func cpuSnapshots() (before, after *cpuSnapshot) {
	before = groupProcesses(0, 1, []int{2}, []int{3}, []int{4}, fixedCPU(map[int]time.Duration{}))
	after = groupProcesses(2000, 1, []int{2}, []int{3}, []int{4}, fixedCPU(map[int]time.Duration{
		1: time.Second, 2: 4 * time.Second, 3: 3 * time.Second, 4: 2 * time.Second,
	}))
	return before, after
}

func TestCostDiffDividesTheCPUByTheNotifications(t *testing.T) {
	b, a := cpuSnapshots()
	got := costDiff(costSnapshot{cpu: b}, costSnapshot{cpu: a}, 100, 0)
	wantSecs := &CPUSplit{Machine: 20, Herald: 4, PostgreSQL: 3, RabbitMQ: 2, Bench: 1, Other: 10}
	wantMS := &CPUSplit{Machine: 200, Herald: 40, PostgreSQL: 30, RabbitMQ: 20, Bench: 10, Other: 100}
	approx := cmpopts.EquateApprox(0, 1e-9)
	if diff := cmp.Diff(wantSecs, got.CPUSeconds, approx); diff != "" {
		t.Errorf("CPU seconds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantMS, got.CPU, approx); diff != "" {
		t.Errorf("CPU ms per notification (-want +got):\n%s", diff)
	}
}

func TestCostDiffOfNothingDeliveredKeepsTheCPUTotalsAndDividesNothing(t *testing.T) {
	b, a := cpuSnapshots()
	got := costDiff(costSnapshot{cpu: b}, costSnapshot{cpu: a}, 0, 0)
	if got.CPU != nil {
		t.Errorf("CPU per notification %+v with nothing delivered; want none", *got.CPU)
	}
	if got.CPUSeconds == nil || got.CPUSeconds.Machine != 20 || math.IsInf(got.CPUSeconds.Other, 0) {
		t.Errorf("CPU seconds %+v; want the totals, 20 s busy", got.CPUSeconds)
	}
	// Snapshots without CPU readings (a snapshot that failed) give no CPU figures at all.
	if got := costDiff(costSnapshot{}, costSnapshot{cpu: a}, 10, 0); got.CPU != nil || got.CPUSeconds != nil {
		t.Errorf("CPU %+v / %+v from a snapshot without a reading; want none", got.CPU, got.CPUSeconds)
	}
}

func TestCPUDiffCountsStealApartFromBusyTime(t *testing.T) {
	// 1 s busy with the bench's 0.5 s, and 2 s stolen by the hypervisor: not busy, not other.
	before := groupProcesses(0, 1, nil, nil, nil, fixedCPU(map[int]time.Duration{}))
	after := groupProcesses(clockTicks, 1, nil, nil, nil, fixedCPU(map[int]time.Duration{1: 500 * time.Millisecond}))
	before.steal, after.steal = 100, 100+2*clockTicks
	want := &CPUSplit{Machine: 1, Bench: 0.5, Other: 0.5, Steal: 2}
	if diff := cmp.Diff(want, cpuDiff(before, after)); diff != "" {
		t.Errorf("cpuDiff (-want +got):\n%s", diff)
	}
}

func TestPostgresServesCountsTheRunDatabasesProcessesAndTheSharedOnes(t *testing.T) {
	for _, tt := range []struct {
		title string
		want  bool
	}{
		{"postgres: 15/main: checkpointer ", true},
		{"postgres: 15/main: walwriter ", true},
		{"postgres: 15/main: autovacuum launcher ", true},
		{"/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", true},
		{"postgres: 15/main: root herald_bench_1 127.0.0.1(5432) idle", true},
		{"postgres: 15/main: root herald_other 127.0.0.1(5432) idle", false},
		{"postgres: 15/main: autovacuum worker herald_bench_1", true},
		{"postgres: autovacuum worker herald_bench_1 ", true},
		{"postgres: 15/main: autovacuum worker herald_other", false},
		{"postgres: 15/main: autovacuum worker herald_bench_10", false},
	} {
		if got := postgresServes(tt.title, "herald_bench_1"); got != tt.want {
			t.Errorf("postgresServes(%q, herald_bench_1) = %v; want %v", tt.title, got, tt.want)
		}
	}
	if !postgresServes("postgres: 15/main: autovacuum worker herald_other", "") {
		t.Error("with no database named, every process counts")
	}
}
