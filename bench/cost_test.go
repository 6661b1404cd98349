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
