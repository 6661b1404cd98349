package wire

import (
	"fmt"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/ledger"
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

// WebhookCheckpointSigned is the event type an endpoint subscribes to for the log's signed
// checkpoints. It is no event of the log: an endpoint receives it only when it names it.
const WebhookCheckpointSigned = "checkpoint.signed"

// WebhookCheckpointPayload is the body of the request that brings an endpoint subscribed to
// checkpoint.signed a checkpoint the sealer signed: the checkpoint as `herald checkpoints list -o
// json` and the checkpoint file show it, in the same envelope as the notification events'.
type WebhookCheckpointPayload struct {
	Type string `json:"type"`
	// Timestamp is when the checkpoint was signed; retries carry the same body.
	Timestamp time.Time  `json:"timestamp"`
	Data      Checkpoint `json:"data"`
}

// NewWebhookCheckpointPayload returns the payload that announces cp.
func NewWebhookCheckpointPayload(cp ledger.Checkpoint) WebhookCheckpointPayload {
	c := NewCheckpoint(cp)
	return WebhookCheckpointPayload{Type: WebhookCheckpointSigned, Timestamp: c.CreatedAt, Data: c}
}

// MessageID is the payload's webhook-id: the log's id and the checkpoint's seq, the same on every
// retry, so that a receiver can drop a checkpoint it has already handled.
func (p WebhookCheckpointPayload) MessageID() string {
	return fmt.Sprintf("checkpoint_%s_%d", p.Data.LogID, p.Data.Seq)
}

// The shapes of the webhook endpoints' API and of `herald webhooks … -o json`. They are built
// from the webhooks package's types by the constructors in webhooks/wire.go: that package posts
// WebhookPayload, so it imports wire, and wire cannot import it back.

// WebhookEndpoint is a registered webhook endpoint, never with its secret.
type WebhookEndpoint struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Description string `json:"description"`
	// EventTypes are the notification event types posted to the endpoint; empty (never null)
	// means every one, including types added later. AllEvents says so, for a reader who does
	// not know that rule.
	EventTypes     []string `json:"event_types"`
	AllEvents      bool     `json:"all_events"`
	Enabled        bool     `json:"enabled"`
	DisabledReason string   `json:"disabled_reason"`
	// Version is the version of the endpoint's stream in the log: its changes so far.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	UpdatedAt time.Time `json:"updated_at"`
	// PreviousSecretValidUntil is set while a rotated-out secret still signs beside the new one.
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until,omitempty"`
	// Position is the log position of the last event the live delivery has gone past.
	Position int64 `json:"position"`
	// FailingSince is the first failed delivery since the last success: null while it succeeds.
	FailingSince  *time.Time `json:"failing_since"`
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	// CheckpointSeq, for an endpoint that takes checkpoint.signed, is the seq of the last signed
	// checkpoint posted to it (before the first, the latest when it subscribed).
	CheckpointSeq *int64 `json:"checkpoint_seq,omitempty"`
	// RetriesPending counts the deliveries waiting for a retry; set where one endpoint is shown.
	RetriesPending *int64               `json:"retries_pending,omitempty"`
	Links          WebhookEndpointLinks `json:"links"`
}

// WebhookEndpointLinks are the API paths of what is known about one endpoint.
type WebhookEndpointLinks struct {
	Self       string `json:"self"`
	Deliveries string `json:"deliveries"`
	Events     string `json:"events"`
	Replay     string `json:"replay"`
}

// WebhookEndpointLinksFor returns the links of endpoint id.
func WebhookEndpointLinksFor(id string) WebhookEndpointLinks {
	base := "/api/v1/webhooks/" + id
	return WebhookEndpointLinks{Self: base, Deliveries: base + "/deliveries", Events: base + "/events", Replay: base + "/replay"}
}

// WebhookEndpointCreated is an endpoint with its signing secret: the answer to its creation and
// to a rotation of its secret, the only two places the secret is ever shown.
type WebhookEndpointCreated struct {
	WebhookEndpoint
	Secret string `json:"secret"`
}

// WebhookEndpointList is every registered endpoint, oldest first.
type WebhookEndpointList struct {
	Endpoints []WebhookEndpoint `json:"endpoints"`
}

// WebhookAttempt is one request Herald made to an endpoint, and what came of it.
type WebhookAttempt struct {
	ID             int64  `json:"id"`
	EndpointID     string `json:"endpoint_id"`
	EventID        string `json:"event_id"`
	EventPosition  int64  `json:"event_position"`
	EventType      string `json:"event_type"`
	NotificationID string `json:"notification_id"`
	// Attempt counts the requests for this event by this trigger: 1, then 2 for its first retry, …
	Attempt int `json:"attempt"`
	// Trigger is live, retry or replay.
	Trigger         string    `json:"trigger"`
	AttemptedAt     time.Time `json:"attempted_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	// StatusCode is the endpoint's answer: null when none came (refused, timed out).
	StatusCode *int   `json:"status_code"`
	Succeeded  bool   `json:"succeeded"`
	Error      string `json:"error"`
	// Response is the first KiB of the answer's body.
	Response string `json:"response"`
}

// WebhookAttempts is a page of an endpoint's attempts, newest first.
type WebhookAttempts struct {
	Attempts []WebhookAttempt `json:"attempts"`
	// NextBefore continues the listing after this page (?before= or --before); 0, and omitted,
	// on the last page.
	NextBefore int64 `json:"next_before,omitempty"`
	// Next is the API path of the next page (the API sets it; the CLI has none).
	Next string `json:"next,omitempty"`
}

// WebhookReplayRequest is what a replay was asked to send again.
type WebhookReplayRequest struct {
	FromPosition int64      `json:"from_position,omitempty"`
	Since        *time.Time `json:"since,omitempty"`
	Until        *time.Time `json:"until,omitempty"`
	// Types narrow the endpoint's own event types; empty keeps them all.
	Types  []string `json:"types"`
	DryRun bool     `json:"dry_run"`
}

// WebhookReplayProgress is how far a replay has gone: the last log position read, where it
// stops, and the events for the endpoint so far, sent (accepted) and failed (left to retries).
type WebhookReplayProgress struct {
	Position   int64 `json:"position"`
	ToPosition int64 `json:"to_position"`
	Matched    int64 `json:"matched"`
	Sent       int64 `json:"sent"`
	Failed     int64 `json:"failed"`
}

// WebhookReplayReport is what a finished replay did.
type WebhookReplayReport struct {
	EndpointID      string  `json:"endpoint_id"`
	FromPosition    int64   `json:"from_position"`
	ToPosition      int64   `json:"to_position"`
	DryRun          bool    `json:"dry_run"`
	Matched         int64   `json:"matched"`
	Sent            int64   `json:"sent"`
	Failed          int64   `json:"failed"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// WebhookReplayJob is a replay the API started, running or ended.
type WebhookReplayJob struct {
	ID         string                `json:"id"`
	EndpointID string                `json:"endpoint_id"`
	Request    WebhookReplayRequest  `json:"request"`
	State      string                `json:"state"`
	StartedAt  time.Time             `json:"started_at"`
	EndedAt    *time.Time            `json:"ended_at,omitempty"`
	Progress   WebhookReplayProgress `json:"progress"`
	// Report is set when the job succeeded; Error when it failed.
	Report *WebhookReplayReport `json:"report,omitempty"`
	Error  string               `json:"error,omitempty"`
	Links  JobLinks             `json:"links"`
}

// WebhookReplayJobPath is the API path of replay job id to endpoint endpointID.
func WebhookReplayJobPath(endpointID, id string) string {
	return "/api/v1/webhooks/" + endpointID + "/replays/" + id
}

// NewWebhookEndpointStream returns the stream of endpoint id: every change of it, in the shape
// of a notification's stream, with links to the endpoint (status) and to this stream (history
// and events).
func NewWebhookEndpointStream(id string, recs []events.Recorded) Stream {
	l := WebhookEndpointLinksFor(id)
	return Stream{ID: id, Events: all(recs, NewEvent), Links: Links{Status: l.Self, History: l.Events, Events: l.Events}}
}
