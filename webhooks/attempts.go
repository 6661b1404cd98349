package webhooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
)

// What made Herald post an event to an endpoint.
const (
	TriggerLive   = "live"   // the endpoint's live delivery, in log order
	TriggerRetry  = "retry"  // a retry of a failed delivery, on the schedule
	TriggerReplay = "replay" // an operator's replay
)

// Attempt is one request Herald made to an endpoint, as kept in webhook_attempts.
type Attempt struct {
	ID             int64
	EndpointID     string
	EventID        string
	EventPosition  int64
	EventType      string
	NotificationID string
	// Attempt counts the requests for this event by this trigger: 1, then 2 for its first retry, …
	Attempt int
	// Trigger is TriggerLive, TriggerReplay, or for a later attempt of either TriggerRetry.
	Trigger  string
	At       time.Time
	Duration time.Duration
	// StatusCode is the endpoint's answer, 0 when none came.
	StatusCode int
	Succeeded  bool
	// Error says why the attempt failed: no answer, or an answer that is not 2xx.
	Error string
	// Response is the first KiB of the answer's body.
	Response string
}

// AttemptFilter selects the attempts listed.
type AttemptFilter struct {
	// Failed keeps only the attempts that failed.
	Failed bool
	// Before, if set, lists attempts older than the one with this id: the cursor of the next page.
	Before int64
	// Limit is the most attempts listed; 1 to MaxAttemptsPage.
	Limit int
}

// MaxAttemptsPage bounds a page of attempts.
const MaxAttemptsPage = 1000

// Attempts lists the endpoint's attempts, newest first, and the cursor of the next page (0 at the
// end). ENOTFOUND for an unknown endpoint, EINVALID for a bad limit or cursor.
func (s *Endpoints) Attempts(ctx context.Context, id string, f AttemptFilter) ([]Attempt, int64, error) {
	if f.Limit < 1 || f.Limit > MaxAttemptsPage {
		return nil, 0, herald.Invalid("the listing is invalid", map[string]string{"limit": fmt.Sprintf("must be between 1 and %d", MaxAttemptsPage)})
	}
	if f.Before < 0 {
		return nil, 0, herald.Invalid("the listing is invalid", map[string]string{"before": "must be an attempt id, 1 or more"})
	}
	if _, err := s.History(ctx, id); err != nil {
		return nil, 0, err
	}
	conds := []string{"endpoint_id = $1"}
	args := []any{id, f.Limit + 1}
	if f.Failed {
		conds = append(conds, "NOT succeeded")
	}
	if f.Before > 0 {
		args = append(args, f.Before)
		conds = append(conds, fmt.Sprintf("id < $%d", len(args)))
	}
	rows, err := s.db.Query(ctx, `SELECT id, endpoint_id::text, event_id::text, event_position, event_type,
		notification_id::text, attempt, trigger, attempted_at, duration_seconds, coalesce(status_code, 0), succeeded,
		error, response FROM webhook_attempts WHERE `+strings.Join(conds, " AND ")+` ORDER BY id DESC LIMIT $2`, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("attempts of endpoint %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Attempt, error) {
		var (
			a    Attempt
			secs float64
		)
		err := row.Scan(&a.ID, &a.EndpointID, &a.EventID, &a.EventPosition, &a.EventType, &a.NotificationID, &a.Attempt,
			&a.Trigger, &a.At, &secs, &a.StatusCode, &a.Succeeded, &a.Error, &a.Response)
		a.Duration = time.Duration(secs * float64(time.Second))
		return a, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("attempts of endpoint %s: %w", id, err)
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// Pending counts the endpoint's deliveries waiting for a retry.
func (s *Endpoints) Pending(ctx context.Context, id string) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM webhook_retries WHERE endpoint_id = $1`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("retries of endpoint %s: %w", id, err)
	}
	return n, nil
}
