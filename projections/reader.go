package projections

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Reader answers the API's questions from the read models. Right after a notification is
// accepted the projector may not have reached it yet; the reader then folds the notification's
// stream from the log, so a notification that was accepted is never reported missing.
type Reader struct {
	db  events.Querier
	log *events.Log
}

// NewReader returns a reader over the read models in db, falling back to log.
func NewReader(db events.Querier, log *events.Log) *Reader { return &Reader{db: db, log: log} }

// MaxListLimit bounds one page of List.
const MaxListLimit = 500

// Status returns the notification with id. ENOTFOUND if there is none.
func (r *Reader) Status(ctx context.Context, id string) (herald.Notification, error) {
	if !validID(id) {
		return herald.Notification{}, notFound(id)
	}
	n, err := scanStatus(r.db.QueryRow(ctx, `SELECT `+statusColumns+` FROM notification_status WHERE notification_id = $1`, id))
	switch {
	case err == nil:
		return n, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return herald.Notification{}, fmt.Errorf("status of %s: %w", id, err)
	}
	n, _, err = r.log.Notification(ctx, id)
	return n, err
}

// StatusAsOf returns the notification with id as it was at the instant at, folded from the log
// alone: the read models are never consulted, so the answer does not depend on how far the
// projector has got. An at in the future gives the current state. ENOTFOUND if the notification
// did not exist yet at at (or at all).
func (r *Reader) StatusAsOf(ctx context.Context, id string, at time.Time) (herald.Notification, error) {
	if !validID(id) {
		return herald.Notification{}, notFound(id)
	}
	n, _, err := r.log.NotificationAsOf(ctx, id, at)
	return n, err
}

// History returns every event of the notification with id as history entries, oldest first.
// ENOTFOUND if there is no such notification.
func (r *Reader) History(ctx context.Context, id string) ([]herald.HistoryEntry, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	rows, err := r.db.Query(ctx, `
SELECT version, position, event_type, status, attempt, provider, provider_message_id, error, reason, actor,
	template, occurred_at
FROM notification_history WHERE notification_id = $1 ORDER BY version`, id)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (herald.HistoryEntry, error) {
		var h herald.HistoryEntry
		err := row.Scan(&h.Version, &h.Position, &h.Event, &h.Status, &h.Attempt, &h.Provider,
			&h.ProviderMessageID, &h.Error, &h.Reason, &h.Actor, &h.Template, &h.At)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	if len(entries) > 0 {
		return entries, nil
	}
	recs, err := r.log.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if !events.IsNotificationStream(recs) {
		return nil, notFound(id)
	}
	for _, rec := range recs {
		e, err := rec.Event()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		entries = append(entries, events.HistoryEntry(rec, e))
	}
	return entries, nil
}

// Events returns the raw stream of the notification with id. ENOTFOUND if there is none.
func (r *Reader) Events(ctx context.Context, id string) ([]events.Recorded, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	recs, err := r.log.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if !events.IsNotificationStream(recs) {
		return nil, notFound(id)
	}
	return recs, nil
}

// List returns notifications matching f, newest first, and the cursor of the next page ("" at the
// end). Notifications the projector has not reached yet are not listed.
func (r *Reader) List(ctx context.Context, f herald.ListFilter) ([]herald.Notification, string, error) {
	limit := f.Limit
	if limit <= 0 || limit > MaxListLimit {
		return nil, "", herald.Invalid("the listing is invalid", map[string]string{
			"limit": fmt.Sprintf("must be between 1 and %d", MaxListLimit),
		})
	}
	where := []string{"true"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.Channel != "" {
		where = append(where, "channel = "+arg(f.Channel))
	}
	if f.Recipient != "" {
		where = append(where, "recipient = "+arg(f.Recipient))
	}
	if !f.CreatedFrom.IsZero() {
		where = append(where, "created_at >= "+arg(f.CreatedFrom))
	}
	if !f.CreatedBefore.IsZero() {
		where = append(where, "created_at < "+arg(f.CreatedBefore))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", herald.Invalid("the listing is invalid", map[string]string{"cursor": err.Error()})
		}
		where = append(where, fmt.Sprintf("(created_at, notification_id) < (%s, %s)", arg(at), arg(id)))
	}
	q := `SELECT ` + statusColumns + ` FROM notification_status WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY created_at DESC, notification_id DESC LIMIT ` + arg(limit+1)
	rows, err := r.db.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list notifications: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (herald.Notification, error) { return scanStatus(row) })
	if err != nil {
		return nil, "", fmt.Errorf("list notifications: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		last := list[len(list)-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	return list, next, nil
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "," + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	bad := errors.New("is not a cursor returned by this listing")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	at, id, ok := strings.Cut(string(b), ",")
	if !ok || !validID(id) {
		return time.Time{}, "", bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, "", bad
	}
	return t, id, nil
}

func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

func notFound(id string) error {
	return herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
}

// Unfinished returns the ids of up to limit notifications the status read model shows waiting
// for a worker (pending or processing) and due for the reconciler, least recently changed first,
// and the database's time when it looked (zero when none is): idleness is judged on the database's clock, the clock
// the log's times come from. waits[k] is how long a notification with k recoveries in a row must
// have been unchanged to be due; the last wait holds for that many recoveries and more. A
// notification still in its backoff is not returned, so that notifications stuck for good cannot
// fill the limit and hide one that stalled since.
//
// Each backoff level is one ordered range of notification_status_unfinished_idx, which covers the
// reconciler's five levels (LEAST(recoveries, 4)): the scan reads at most limit rows per level,
// however many notifications are stuck. Notifications the projector has not reached are not
// among them, and the read model may lag behind the log: the reconciler decides on the log.
func (r *Reader) Unfinished(ctx context.Context, waits []time.Duration, limit int) ([]string, time.Time, error) {
	if len(waits) == 0 {
		return nil, time.Time{}, fmt.Errorf("unfinished notifications: no recovery waits")
	}
	last := len(waits) - 1
	// The statuses that wait for a worker, only they are owed a command; written out as the
	// index's predicate is, so that the planner can use it.
	open := fmt.Sprintf("status IN ('%s', '%s')", herald.StatusPending, herald.StatusProcessing)
	branches := make([]string, len(waits))
	args := []any{limit}
	for k, w := range waits {
		args = append(args, w.Seconds())
		branches[k] = fmt.Sprintf(`(SELECT notification_id, updated_at FROM notification_status
	WHERE %s AND LEAST(recoveries, %d) = %d AND updated_at <= now() - $%d::double precision * interval '1 second'
	ORDER BY updated_at LIMIT $1)`, open, last, k, len(args))
	}
	rows, err := r.db.Query(ctx, `
SELECT notification_id::text, now() FROM (
`+strings.Join(branches, "\nUNION ALL\n")+`
) due ORDER BY updated_at LIMIT $1`, args...)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unfinished notifications: %w", err)
	}
	var (
		ids []string
		id  string
		now time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &now}, func() error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, time.Time{}, fmt.Errorf("unfinished notifications: %w", err)
	}
	return ids, now, nil
}

// Statuses returns the status rows of ids, by id, in one query; an id without a row is left out.
func (r *Reader) Statuses(ctx context.Context, ids []string) (map[string]herald.Notification, error) {
	rows, err := r.db.Query(ctx, `SELECT `+statusColumns+` FROM notification_status WHERE notification_id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("status of %d notifications: %w", len(ids), err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (herald.Notification, error) { return scanStatus(row) })
	if err != nil {
		return nil, fmt.Errorf("status of %d notifications: %w", len(ids), err)
	}
	out := make(map[string]herald.Notification, len(list))
	for _, n := range list {
		out[n.ID] = n
	}
	return out, nil
}
