package wire

import (
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// WebhookPayload is the body of the request that tells a client's endpoint what happened to one of
// its notifications: one per event of the log. Its envelope (type, timestamp, data) is the one the
// Standard Webhooks specification recommends, so that receivers' tooling reads it as it is.
type WebhookPayload struct {
	// Type is the event's type, for a receiver to route on without reading data.
	Type string `json:"type"`
	// Timestamp is when the event happened, not when the request is sent: retries and replays
	// carry the same body.
	Timestamp time.Time   `json:"timestamp"`
	Data      WebhookData `json:"data"`
}

// WebhookData is what a webhook says about the notification.
type WebhookData struct {
	NotificationID string `json:"notification_id"`
	// Status is the notification's status after the event.
	Status string `json:"status"`
	// Event is the event as the log holds it, the same shape as in the events listing.
	Event Event `json:"event"`
}

// NewWebhookPayload returns the payload that announces rec, after which the notification is in
// status.
func NewWebhookPayload(rec events.Recorded, status herald.Status) WebhookPayload {
	event := NewEvent(rec)
	return WebhookPayload{
		Type:      rec.Type,
		Timestamp: event.Time,
		Data:      WebhookData{NotificationID: rec.StreamID, Status: string(status), Event: event},
	}
}

// MessageID is the payload's webhook-id: the event's id, the same on every retry and replay, so
// that a receiver can drop a message it has already handled.
func (p WebhookPayload) MessageID() string { return p.Data.Event.ID }
