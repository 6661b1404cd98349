//go:build faults || scale

package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
)

// compareWithLog folds every stream from the log and compares the fold with the status row and
// the history rows; it counts outcomes and attempts, and judges the sinks' deliveries against
// bounds.
func (c *faultCluster) compareWithLog(ctx context.Context, t *testing.T, r *faultReport, streams map[string]streamSummary, bounds faultBounds) {
	t.Helper()
	ids := slices.Sorted(maps.Keys(streams))
	status := readStatusRows(ctx, t, c.DB.Pool, ids)
	history := readHistoryRows(ctx, t, c.DB.Pool)
	deliveries := c.deliveries(r, streams)
	log := events.NewLog(c.DB.Pool)
	mismatches := 0
	for _, id := range ids {
		f, err := foldStream(ctx, log, id, r)
		if err != nil {
			r.problem("fold %s: %v", id, err)
			continue
		}
		mismatches += compareReadModels(r, f, status, history, mismatches)
		c.judgeDeliveries(ctx, r, f, deliveries[id], bounds)
	}
	if mismatches > 3 {
		r.problem("… %d notifications in all differ between the read models and the log", mismatches)
	}
	if bounds.MaxTotal > 0 && r.duplicates > bounds.MaxTotal {
		r.problem("%d duplicate deliveries, more than the %d this case allows", r.duplicates, bounds.MaxTotal)
	}
}

// readStatusRows reads the status rows of ids, by notification id, as the API reads them.
func readStatusRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool, ids []string) map[string]herald.Notification {
	t.Helper()
	status, err := projections.NewReader(pool, events.NewLog(pool)).Statuses(ctx, ids)
	if err != nil {
		t.Fatalf("read notification_status: %v", err)
	}
	return status
}

// readHistoryRows reads notification_history as "v<version> <event>" lines, by notification id.
func readHistoryRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT notification_id::text, version, event_type FROM notification_history ORDER BY notification_id, version`)
	if err != nil {
		t.Fatalf("read notification_history: %v", err)
	}
	history := map[string][]string{}
	var (
		id, typ string
		version int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &version, &typ}, func() error {
		history[id] = append(history[id], fmt.Sprintf("v%d %s", version, typ))
		return nil
	}); err != nil {
		t.Fatalf("read notification_history: %v", err)
	}
	return history
}

// deliveries counts what the sinks received, by notification id; a message for no notification
// in the log is a problem.
func (c *faultCluster) deliveries(r *faultReport, streams map[string]streamSummary) map[string]int {
	deliveries := map[string]int{}
	for _, m := range c.SMTP.Messages() {
		deliveries[m.NotificationID]++
	}
	for _, m := range c.SMS.Messages() {
		deliveries[m.IdempotencyToken]++
	}
	for id := range deliveries {
		if _, ok := streams[id]; !ok {
			r.problem("the sinks received %d messages for %q, which is no notification in the log", deliveries[id], id)
		}
	}
	return deliveries
}

// foldedStream is one notification as its log tells it.
type foldedStream struct {
	id     string
	folded herald.Notification
	// history is the log's events as "v<version> <event>" lines.
	history []string
	// abandoned and timedOut count the failed attempts abandoned after a lease and cut off by the
	// delivery timeout.
	abandoned, timedOut int
}

// foldStream folds the stream id from the log and counts its outcome and failed attempts into r.
func foldStream(ctx context.Context, log *events.Log, id string, r *faultReport) (foldedStream, error) {
	folded, recs, err := log.Notification(ctx, id)
	if err != nil {
		return foldedStream{}, err
	}
	f := foldedStream{id: id, folded: folded}
	for _, rec := range recs {
		f.history = append(f.history, fmt.Sprintf("v%d %s", rec.Version, rec.Type))
		e, err := rec.Event()
		if err != nil {
			r.problem("%s v%d: %v", id, rec.Version, err)
			continue
		}
		var errText string
		switch e := e.(type) {
		case *events.DeliveryAttemptFailed:
			errText = e.Error
		case *events.NotificationFailed:
			errText = e.Error
		default:
			continue
		}
		r.failedAttempts++
		switch {
		case strings.HasPrefix(errText, abandonedPrefix):
			f.abandoned++
		case timedOut(errText):
			f.timedOut++
		}
	}
	r.abandoned += f.abandoned
	r.timedOut += f.timedOut
	switch folded.Status {
	case herald.StatusSent:
		r.sent++
	case herald.StatusFailed:
		r.failed++
	}
	return f, nil
}

// compareReadModels compares f with its status row (the fold, without the message itself, which
// the projection does not keep) and its history rows. It returns how many of the two differ,
// reporting the differences until the count so far, seen, reaches 3.
func compareReadModels(r *faultReport, f foldedStream, status map[string]herald.Notification, history map[string][]string, seen int) int {
	mismatches := 0
	folded := f.folded
	folded.Subject, folded.Body = "", ""
	row, ok := status[f.id]
	if !ok {
		r.problem("%s has no notification_status row; the log folds to %s v%d", f.id, folded.Status, folded.Version)
		mismatches++
	} else if diff := cmp.Diff(folded, row); diff != "" {
		mismatches++
		if seen+mismatches <= 3 {
			r.problem("%s: notification_status differs from the fold of the log (-fold +status):\n%s", f.id, diff)
		}
	}
	if diff := cmp.Diff(f.history, history[f.id]); diff != "" {
		mismatches++
		if seen+mismatches <= 3 {
			r.problem("%s: notification_history differs from the log (-log +history):\n%s", f.id, diff)
		}
	}
	return mismatches
}

// judgeDeliveries holds what reached the sink for f (got messages) against what its log says was
// attempted: one for a sent notification, plus the abandoned or timed-out attempts the case's
// bounds allow.
func (c *faultCluster) judgeDeliveries(ctx context.Context, r *faultReport, f foldedStream, got int, bounds faultBounds) {
	if got > 1 {
		r.duplicates += got - 1
		r.duplicated = append(r.duplicated, f.id)
	}
	allowed := 0
	if f.folded.Status == herald.StatusSent {
		allowed = 1
		if got == 0 {
			r.problem("%s is sent, but no message for it reached the sink; its story:\n%s", f.id, c.story(ctx, f.id))
		}
	}
	if bounds.AfterAbandoned {
		allowed += f.abandoned
	}
	if bounds.AfterTimeout {
		allowed += f.timedOut
	}
	if got > allowed {
		r.problem("%s reached its sink %d times, more than the %d its story explains (%s; %d attempts abandoned, %d timed out); its story:\n%s",
			f.id, got, allowed, f.folded.Status, f.abandoned, f.timedOut, c.story(ctx, f.id))
	}
}

// story renders a notification's events and deliveries, as evidence for a report.
func (c *faultCluster) story(ctx context.Context, id string) string {
	recs, err := events.NewLog(c.DB.Pool).Load(ctx, id)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	var b strings.Builder
	for _, rec := range recs {
		fmt.Fprintf(&b, "  v%d %s %s %s by %s\n", rec.Version, rec.Time.Format("15:04:05.000"), rec.Type, compactData(rec), rec.Metadata.Actor)
	}
	for _, m := range c.SMTP.Messages() {
		if m.NotificationID == id {
			fmt.Fprintf(&b, "  the SMTP sink accepted it (Message-ID %s)\n", m.MessageID)
		}
	}
	for _, m := range c.SMS.Messages() {
		if m.IdempotencyToken == id {
			fmt.Fprintf(&b, "  the SMS sink accepted it (sid %s)\n", m.SID)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// compactData is an event's data without the message itself, which says nothing about faults.
func compactData(rec events.Recorded) string {
	if rec.Type == events.TypeNotificationQueued {
		return ""
	}
	s := string(rec.Data)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
