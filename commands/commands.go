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
}
