package events

import (
	"time"

	"github.com/herald-notify/herald"
)

// Scheduled sends: a NotificationQueued with a SendAt leaves the notification scheduled, and no
// command is queued for it; the scheduler appends NotificationReleased when it is due, with the
// command in the same transaction.

// TypeNotificationReleased is NotificationReleased's name, as stored in event_log.event_type.
const TypeNotificationReleased = "NotificationReleased"

// NotificationReleased records that a scheduled notification came due and its command was
// queued: it is pending from here, as an unscheduled one is right after NotificationQueued.
type NotificationReleased struct {
	// SendAt is the time it was scheduled for, as NotificationQueued says; the event's own time
	// is when it was released.
	SendAt time.Time `json:"send_at"`
}

func (NotificationReleased) EventType() string   { return TypeNotificationReleased }
func (e *NotificationReleased) Accept(v Visitor) { v.NotificationReleased(e) }

// NotificationReleased makes the notification pending: its command is on its way. SendAt stays,
// for whoever asks when it was meant to go.
func (v *evolver) NotificationReleased(*NotificationReleased) {
	v.n.Status = herald.StatusPending
}

func (v *statusAfter) NotificationReleased(*NotificationReleased) { v.status = herald.StatusPending }

// NotificationReleased: the history shows the status it leads to; the time it was due is the
// event's.
func (v *historyEntry) NotificationReleased(*NotificationReleased) {}

// NotificationReleased: released, and the time it was scheduled for: released (scheduled for
// 2026-12-05T13:00:00Z).
func (v *describer) NotificationReleased(e *NotificationReleased) {
	v.text = "released (scheduled for " + e.SendAt.UTC().Format(time.RFC3339Nano) + ")"
}
