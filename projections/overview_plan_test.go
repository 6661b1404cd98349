package projections_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// TestOverviewQueriesUseIndexes reads PostgreSQL's plans, on 200,000 rows of history and of
// status spread over 30 days, for the overview's per-minute figures and for the listing by
// recipient: each must go through its index and never read the whole table, so that the console's
// cost follows the hour or the page it shows, not the history's length.
func TestOverviewQueriesUseIndexes(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO notification_history (notification_id, version, position, event_type, status, occurred_at)
SELECT gen_random_uuid(), 1, i,
	(ARRAY[$1, $2, 'NotificationQueued', 'NotificationProcessing'])[1 + i % 4], 'sent',
	now() - (i * interval '13 seconds')
FROM generate_series(1, 200000) AS i`, events.TypeNotificationSent, events.TypeNotificationFailed); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO notification_status (notification_id, channel, recipient, status, version, position, created_at, updated_at)
SELECT gen_random_uuid(), 'email', 'r' || (i % 2000) || '@example.com', 'sent', 1, i, now() - (i * interval '13 seconds'), now()
FROM generate_series(1, 200000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE notification_history; ANALYZE notification_status`); err != nil {
		t.Fatal(err)
	}
	explain := func(t *testing.T, q string, args ...any) string {
		t.Helper()
		rows, err := db.Pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("plan:\n%s", plan)
		return plan
	}

	t.Run("per minute", func(t *testing.T) {
		plan := explain(t, projections.ThroughputQuery, 60, events.TypeNotificationSent, events.TypeNotificationFailed)
		if !strings.Contains(plan, "notification_history_type_occurred_idx") || strings.Contains(plan, "Seq Scan on notification_history") {
			t.Error("the per-minute query does not read the last hour through notification_history_type_occurred_idx")
		}
	})
	t.Run("by recipient", func(t *testing.T) {
		// The listing's query for a recipient, with and without a cursor (see Reader.List).
		for _, q := range []string{
			`SELECT notification_id FROM notification_status WHERE true AND recipient = $1
				ORDER BY created_at DESC, notification_id DESC LIMIT 51`,
			`SELECT notification_id FROM notification_status WHERE true AND recipient = $1
				AND (created_at, notification_id) < (now() - interval '10 days', gen_random_uuid())
				ORDER BY created_at DESC, notification_id DESC LIMIT 51`,
		} {
			plan := explain(t, q, "r7@example.com")
			if !strings.Contains(plan, "notification_status_recipient_created_idx") || strings.Contains(plan, "Sort") ||
				strings.Contains(plan, "Seq Scan") {
				t.Error("the listing by recipient does not read its page in order from notification_status_recipient_created_idx")
			}
		}
	})
}
