package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// SchedulerActor is who the scheduler's events say appended them.
const SchedulerActor = "system:scheduler"

// Reasons the scheduler releases nothing for a scheduled row.
var (
	// ErrNotScheduled: the notification is no longer scheduled (released already, or another
	// event took it elsewhere): its row is dropped and nothing is released.
	ErrNotScheduled = errors.New("notification is not scheduled")
	// ErrNotDue: its send_at is still to come on the database's clock; the row stays.
	ErrNotDue = errors.New("notification is not due yet")
	// ErrScheduled: a worker was handed the command of a notification still scheduled. No
	// command of it should exist before its release, which queues its own; the worker
	// acknowledges it without sending, so that nothing goes before its time.
	ErrScheduled = errors.New("notification is scheduled and not released yet")
)

// DecideRelease returns the event that releases a scheduled notification once now (the
// database's clock) has reached its send_at. A notification in any other status than scheduled
// is ErrNotScheduled (its schedule row is to be dropped, nothing released), one not due yet
// ErrNotDue, a stream that does not exist ErrNotQueued.
func DecideRelease(n herald.Notification, now time.Time) ([]events.Event, error) {
	switch {
	case n.Version == 0:
		return nil, ErrNotQueued
	case n.Status != herald.StatusScheduled:
		return nil, fmt.Errorf("%w: %s", ErrNotScheduled, n.Status)
	case now.Before(n.SendAt):
		return nil, fmt.Errorf("%w: scheduled for %s", ErrNotDue, n.SendAt.UTC().Format(time.RFC3339Nano))
	}
	return []events.Event{&events.NotificationReleased{SendAt: n.SendAt}}, nil
}

const scheduleSQL = `INSERT INTO scheduled_notifications (notification_id, due_at) VALUES ($1, $2)`

// Schedule records, in tx, that notification id is due at at: what an accepted scheduled send
// writes instead of its command. The scheduler queues the command when it is due.
func Schedule(ctx context.Context, tx pgx.Tx, id string, at time.Time) error {
	if _, err := tx.Exec(ctx, scheduleSQL, id, at); err != nil {
		return fmt.Errorf("schedule %s: %w", id, err)
	}
	return nil
}

// QueueSchedule is Schedule queued in a pgx batch, beside the NotificationQueued it goes with.
func QueueSchedule(b *pgx.Batch, id string, at time.Time) {
	b.Queue(scheduleSQL, id, at)
}
