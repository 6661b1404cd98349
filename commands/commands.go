// Package commands owns the intents Herald sends to its workers. A command names what should be
// done; the facts of what was done are events. Commands are small: the worker reads everything
// else from the notification's stream, so the log stays the one source of truth.
package commands

import "github.com/herald-notify/herald"

// SendNotification asks a worker of the notification's channel to make one round of delivery
// attempts. Redelivering it is harmless: a worker that finds the notification already sent
// acknowledges it without sending again.
type SendNotification struct {
	NotificationID string         `json:"notification_id"`
	Channel        herald.Channel `json:"channel"`
	// Priority picks the lane the command travels in; absent means normal, as in every command
	// queued before there were priorities.
	Priority herald.Priority `json:"priority,omitempty"`
}

// Send is the command that asks for the delivery of n, a notification folded from its stream,
// routed to the lane of its priority. Everything that queues a delivery builds it here, so that
// every path (accept, the reconciler's recovery, an operator's requeue) routes alike.
func Send(n herald.Notification) SendNotification {
	cmd := SendNotification{NotificationID: n.ID, Channel: n.Channel}
	if p := n.Priority.OrNormal(); p != herald.PriorityNormal {
		cmd.Priority = p
	}
	return cmd
}
