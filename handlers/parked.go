package handlers

import (
	"context"
	"time"

	"github.com/herald-notify/herald"
)

// ParkedMessage is a command as it lies in the poison queue: what the worker that parked it said,
// and the command itself.
type ParkedMessage struct {
	// NotificationID and Channel are read from the command. Both are empty when the message is
	// not a readable SendNotification command; Unreadable then says why.
	NotificationID string
	Channel        herald.Channel
	Unreadable     string

	// MessageID is the message's own id. Copies of one message (a command parked twice) share it;
	// a command parked again after a requeue has a new one.
	MessageID     string
	CorrelationID string
	// Reason is the error that parked the command; Queue and Handler are where it was handled.
	Reason  string
	Queue   string
	Handler string
	// Timestamp is the message's AMQP timestamp, zero when its publisher set none (watermill sets
	// none: when a notification failed is read from its stream instead).
	Timestamp time.Time
	// Deliveries is how often the broker has handed the message out, as far as it says (quorum
	// queues count every look at the poison queue too); 0 when it does not say.
	Deliveries int
	// Headers are every header of the message, as text; Body is the message body as it is.
	Headers map[string]string
	Body    []byte
}

// ParkedKey names parked messages: every copy of the message MessageID of the notification
// NotificationID, or, with MessageID empty, every message of the notification.
type ParkedKey struct {
	NotificationID string
	MessageID      string
}

// ParkedQueue is the poison queue as operators work it (see router.PoisonQueue). Its methods
// return EUNAVAILABLE when the broker cannot be reached or the queue does not exist.
//
// One look at a time: each call, in any process, has the queue to itself from its first message
// to its last, so it sees every parked message (and removes every one it names) however many
// operators work the queue at once. A call made while another runs waits for it, and returns
// EUNAVAILABLE if ctx ends first.
type ParkedQueue interface {
	// List returns every parked message and leaves every one of them parked.
	List(ctx context.Context) ([]ParkedMessage, error)
	// Walk hands the parked messages to fn one at a time, in queue order, until fn returns false
	// or there are no more, and leaves every one of them parked. It holds no message but the one
	// fn is given, so its memory does not grow with the queue.
	Walk(ctx context.Context, fn func(ParkedMessage) bool) error
	// Remove deletes every parked message one of keys names and leaves the others parked. It
	// returns how many messages it deleted per notification id.
	Remove(ctx context.Context, keys []ParkedKey) (map[string]int, error)
}

// Parked is a parked message with the state of its notification, folded from the log.
type Parked struct {
	Message ParkedMessage
	// Notification is the notification the command is for. Its Version is 0 when the log holds
	// no such notification (or the message is unreadable).
	Notification herald.Notification
	// FailedAt, FailReason and FailError come from the notification's latest NotificationFailed:
	// when it failed, why (events.ReasonPermanentError or events.ReasonAttemptsExhausted) and the
	// last attempt's error.
	FailedAt   time.Time
	FailReason string
	FailError  string
	// Discarded is true when an operator discarded the notification since it last failed.
	Discarded bool
	// Stale is true when the notification is not failed, or was discarded since it failed. A
	// stale message of a sent or discarded notification is left over from an operator action
	// whose removal of it did not happen, and needs only removing; one of a notification still
	// pending or processing may also be a command RabbitMQ dead-lettered, and a requeue sends it
	// again (ActionResent).
	Stale bool
}

// Channel returns the channel of the parked notification: the log's, or the command's when the
// log does not know the notification.
func (p Parked) Channel() herald.Channel {
	if p.Notification.Version > 0 {
		return p.Notification.Channel
	}
	return p.Message.Channel
}

// ParkedDetail is everything known of one notification that may be parked.
type ParkedDetail struct {
	// Notification is the notification folded from its stream; Version 0 when the log has none.
	Notification herald.Notification
	// Messages are its parked messages, none when it is not parked.
	Messages []Parked
	// History is its whole stream as history entries, oldest first.
	History []herald.HistoryEntry
}

// Selection names the notifications an operator acts on: those in IDs, or with All every
// notification that has a parked message (only those of Channel, if it is set).
type Selection struct {
	IDs     []string
	All     bool
	Channel herald.Channel
	// Expect, when not nil, is what a preview showed, by notification id: the action then refuses
	// the whole batch (ECONFLICT, naming each difference) unless it plans exactly these
	// notifications, each at the version, with the action and the parked messages the preview
	// saw. An operator confirms what was shown, not whatever the queue holds by then.
	Expect map[string]Expected
}

// Expected is what a preview showed for one notification (see Planned).
type Expected struct {
	Version    int64
	Action     Action
	MessageIDs []string
}

// Action is what an operator's requeue or discard did to one notification.
type Action string

const (
	// ActionRequeued: NotificationRequeued was appended and the command queued again.
	ActionRequeued Action = "requeued"
	// ActionDiscarded: NotificationDiscarded was appended.
	ActionDiscarded Action = "discarded"
	// ActionRemoved: only stale (or, for a discard, orphaned) parked messages were removed; no
	// event was appended.
	ActionRemoved Action = "removed"
	// ActionResent: the notification is still pending or processing, yet its command was parked
	// (RabbitMQ dead-letters a command redelivered past a quorum queue's delivery limit, and a
	// requeue whose removal failed leaves a copy behind). Its command was queued again, with no
	// event: its story goes on where it was, and a worker that finds an attempt under way or the
	// notification sent acknowledges the extra command.
	ActionResent Action = "resent"
)

// Result is the outcome of a requeue or discard for one notification.
type Result struct {
	ID     string
	Action Action
	// Status is the notification's status afterwards; empty for an orphaned message.
	Status herald.Status
	// Version is the notification's stream version afterwards.
	Version int64
	// Removed counts the parked messages removed.
	Removed int
}
