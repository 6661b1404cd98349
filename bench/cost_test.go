package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCostDiffDividesWhatTheServicesCountedByTheNotifications(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before := costSnapshot{
		at: t0, queries: 3,
		counts: CostCounts{Commits: 1000, Rollbacks: 2, RowsInserted: 500, RowsUpdated: 40, RowsDeleted: 7, RowsFetched: 900, Statements: -1,
			Publishes: 10, Confirms: 10, Deliveries: 9, Acks: 9, Redeliveries: 1, Unroutable: 0},
		tables: map[string]int64{"event_log": 300, "outbox": 100, "idle": 50},
	}
	after := costSnapshot{
		at: t0.Add(20 * time.Second), queries: 8,
		counts: CostCounts{Commits: 1000 + 700 + 5 + 20, Rollbacks: 2, RowsInserted: 500 + 650, RowsUpdated: 40 + 100, RowsDeleted: 7 + 50,
			RowsFetched: 900 + 1000, Statements: -1, Publishes: 110, Confirms: 110, Deliveries: 111, Acks: 109, Redeliveries: 3, Unroutable: 0},
		tables: map[string]int64{"event_log": 600, "outbox": 150, "notification_status": 150, "idle": 50},
	}
	// 100 notifications; the bench made 20 queries, the meter 5.
	got := costDiff(before, after, 100, 20)
	want := &CostFigures{
		Notifications: 100, Seconds: 20, BenchCommits: 25,
		Commits: 7, Rollbacks: 0,
		RowsInserted: 6.5, RowsUpdated: 1, RowsDeleted: 0.5, RowsWritten: 8, RowsFetched: 10,
		Tables:         []TableCost{{"event_log", 3}, {"notification_status", 1.5}, {"outbox", 0.5}},
		StatementsNote: "pg_stat_statements not loaded",
		Publishes:      1, Confirms: 1, Deliveries: 1.02, Acks: 1, Redeliveries: 0.02, Unroutable: 0,
		Totals: CostCounts{Commits: 700, RowsInserted: 650, RowsUpdated: 100, RowsDeleted: 50, RowsFetched: 1000, Statements: -1,
			Publishes: 100, Confirms: 100, Deliveries: 102, Acks: 100, Redeliveries: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("costDiff (-want +got):\n%s", diff)
	}
}

func TestCostDiffCountsStatementsWhenTheyWereRead(t *testing.T) {
	before := costSnapshot{counts: CostCounts{Statements: 10}, statements: map[string]int64{"SELECT 1": 10}}
	after := costSnapshot{counts: CostCounts{Statements: 10 + 90}, statements: map[string]int64{"SELECT 1": 40, "INSERT INTO event_log": 60}}
	got := costDiff(before, after, 30, 0)
	if got.Statements == nil || *got.Statements != 3 || got.StatementsNote != "" {
		t.Fatalf("statements %v, note %q; want 3 per notification and no note", got.Statements, got.StatementsNote)
	}
	want := []StatementCost{{"INSERT INTO event_log", 2}, {"SELECT 1", 1}}
	if diff := cmp.Diff(want, got.TopStatements); diff != "" {
		t.Errorf("top statements (-want +got):\n%s", diff)
	}
}

func TestCostDiffOfNothingDeliveredSaysSo(t *testing.T) {
	got := costDiff(costSnapshot{}, costSnapshot{counts: CostCounts{Commits: 5}}, 0, 0)
	if got.Error == "" || got.Commits != 0 || got.Totals.Commits != 5 {
		t.Errorf("got %+v; want an error, no figure per notification, and the totals", got)
	}
}

func TestIdleBetweenIsTheRateOfCommitsAndCPUWhileNothingWasSent(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// 10 s idle: 400 commits, 20 of them the meter's; the machine busy 3 s, Herald 1 s of it.
	first := costSnapshot{at: t0, queries: 5, counts: CostCounts{Commits: 1000},
		cpu: groupProcesses(0, 1, []int{2}, nil, nil, fixedCPU(map[int]time.Duration{}))}
	last := costSnapshot{at: t0.Add(10 * time.Second), queries: 25, counts: CostCounts{Commits: 1400},
		cpu: groupProcesses(3*clockTicks, 1, []int{2}, nil, nil, fixedCPU(map[int]time.Duration{2: time.Second}))}
	got := idleBetween(first, last)
	if got.commitsPerSec != 38 {
		t.Errorf("commits per second %v; want 38", got.commitsPerSec)
	}
	want := &CPUSplit{Machine: 300, Herald: 100, Other: 200}
	if diff := cmp.Diff(want, got.cpuPerSec); diff != "" {
		t.Errorf("idle CPU in ms/s (-want +got):\n%s", diff)
	}
}

func TestWithIdleChargesTheIdleRateOverTheWholeWindowPerNotification(t *testing.T) {
	// A 20 s window, 100 notifications; idle, the machine was busy 300 ms/s: 6 s of the window's
	// CPU, 60 ms per notification, is what it would have cost with nothing sent.
	f := &CostFigures{Notifications: 100, Seconds: 20, CPU: &CPUSplit{Machine: 90, Herald: 40, Other: 50}}
	f.withIdle(idleRate{commitsPerSec: 38, cpuPerSec: &CPUSplit{Machine: 300, Herald: 100, Other: 200}}, true)
	if f.IdleCommitsPerSec != 38 {
		t.Errorf("idle commits per second %v; want 38", f.IdleCommitsPerSec)
	}
	if diff := cmp.Diff(&CPUSplit{Machine: 300, Herald: 100, Other: 200}, f.IdleCPUPerSec); diff != "" {
		t.Errorf("idle CPU per second (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&CPUSplit{Machine: 60, Herald: 20, Other: 40}, f.IdleCPU); diff != "" {
		t.Errorf("idle CPU per notification (-want +got):\n%s", diff)
	}

	// The skeleton's: no idle commits, and nothing per notification when nothing was delivered.
	s := &CostFigures{Seconds: 20}
	s.withIdle(idleRate{commitsPerSec: 1, cpuPerSec: &CPUSplit{Machine: 300}}, false)
	if s.IdleCommitsPerSec != 0 || s.IdleCPU != nil || s.IdleCPUPerSec == nil {
		t.Errorf("got idle commits %v, idle CPU per notification %v, per second %v; want 0, nil, the rate", s.IdleCommitsPerSec, s.IdleCPU, s.IdleCPUPerSec)
	}
}
