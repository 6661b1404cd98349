// Package events owns the facts Herald records about a notification and the append-only log that
// holds them. A notification's stream is the sequence of its events, numbered by version from 1;
// every event also has a global position in the log. Status and history are folds of a stream.
package events

import (
	"strconv"
	"time"

	"github.com/herald-notify/herald"
)

// Event is a fact in a notification's stream.
//
// Every event type is a pointer to a struct of this file, registered in the catalogue (see
// Types), and has a method of its own on Visitor, which its Accept calls. That method is what
// makes a new event type a compile error in every place that must say what it means: see
// Visitor.
type Event interface {
	// EventType is the stable name the log stores; renaming one is a breaking change.
	EventType() string
	// Accept calls v's method for the event's type, with the event.
	Accept(v Visitor)
}

// Event type names, as stored in event_log.event_type.
const (
	TypeNotificationQueued     = "NotificationQueued"
	TypeNotificationProcessing = "NotificationProcessing"
	TypeNotificationSent       = "NotificationSent"
	TypeDeliveryAttemptFailed  = "DeliveryAttemptFailed"
	TypeNotificationFailed     = "NotificationFailed"
	TypeNotificationRequeued   = "NotificationRequeued"
	TypeNotificationDiscarded  = "NotificationDiscarded"
	TypeNotificationRecovered  = "NotificationRecovered"
)

// NotificationQueued opens every stream: the API accepted the notification.
type NotificationQueued struct {
	Channel   herald.Channel `json:"channel"`
	Recipient string         `json:"recipient"`
	// Subject and Content are the templates as the client sent them, Variables what filled them.
	Subject   string         `json:"subject,omitempty"`
	Content   string         `json:"content"`
	Variables map[string]any `json:"variables,omitempty"`
	// HTML is the HTML template of an email as the client sent it, filled with the same
	// Variables; absent when the client sent none (and in every event written before there was
	// HTML).
	HTML string `json:"html,omitempty"`
	// RenderedSubject, Body and RenderedHTML are what will be delivered. Body is the text part:
	// Content rendered, or, when only HTML was sent, the plain text read from RenderedHTML.
	RenderedSubject string `json:"rendered_subject,omitempty"`
	Body            string `json:"body"`
	RenderedHTML    string `json:"rendered_html,omitempty"`
	// APIKey is the key the notification was sent with.
	APIKey *APIKeyRef `json:"api_key,omitempty"`
	// Template names the stored template version the client sent by, when it sent by name:
	// Subject, Content and HTML are then that version's, and Variables the client's with the
	// version's defaults filled in.
	Template *TemplateRef `json:"template,omitempty"`
	// Attachments are the files an email carries, in order, named by the SHA-256 of their bytes;
	// the bytes are stored once each outside the log (package attachments). Absent when none.
	Attachments []AttachmentRef `json:"attachments,omitempty"`
	// SendAt, when set, is when the client asked for the notification to be sent: it is
	// scheduled until then, and NotificationReleased follows when it is due.
	SendAt *time.Time `json:"send_at,omitempty"`
	// Priority is high or low when the client asked for it; absent means normal, as in every
	// event written before there were priorities.
	Priority herald.Priority `json:"priority,omitempty"`
}

// QueuedTemplateKeys are the JSON keys of NotificationQueued that hold the templates and the
// variables that filled them; QueuedContentKeys those and the renderings: what was sent. They
// are most of an HTML email's event. No read model keeps any of them, so the projector reads
// the log without QueuedContentKeys; the fold needs only the renderings, so a worker reads a
// stream without QueuedTemplateKeys.
var (
	QueuedTemplateKeys = []string{"subject", "content", "variables", "html"}
	QueuedContentKeys  = append(QueuedTemplateKeys[:len(QueuedTemplateKeys):len(QueuedTemplateKeys)], "rendered_subject", "body", "rendered_html")
)

// AttachmentRef names an attached file in the log: its name and type as sent, its size in
// bytes, and the SHA-256 of its bytes in lower-case hex.
type AttachmentRef struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// TemplateRef names one version of a stored template in the log.
type TemplateRef struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// String is the reference as a send names it: "welcome@3".
func (t TemplateRef) String() string { return t.Name + "@" + strconv.Itoa(t.Version) }

// APIKeyRef names an API key in the log.
type APIKeyRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// NotificationProcessing records that a worker began delivery attempt Attempt (from 1).
type NotificationProcessing struct {
	Attempt int    `json:"attempt"`
	Worker  string `json:"worker,omitempty"`
}

// NotificationSent records that the provider accepted the notification: the story ends here.
type NotificationSent struct {
	Attempt           int    `json:"attempt"`
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	// FailedOverFrom lists the providers the attempt went through before Provider took it.
	FailedOverFrom []PassedOver `json:"failed_over_from,omitempty"`
}

// PassedOver is a provider an attempt failed over from, before the one its outcome names: the
// channel has secondary providers, and this one failed transiently (Error is its error) or its
// circuit breaker was open (Error says so). Attempt numbers count attempts, not providers: one
// attempt may go through several.
type PassedOver struct {
	Provider string `json:"provider"`
	Error    string `json:"error"`
}

// DeliveryAttemptFailed records a failed attempt that will be retried.
type DeliveryAttemptFailed struct {
	Attempt  int    `json:"attempt"`
	Provider string `json:"provider,omitempty"`
	Error    string `json:"error"`
	// FailedOverFrom lists the providers the attempt failed over from before Provider, whose
	// error is Error.
	FailedOverFrom []PassedOver `json:"failed_over_from,omitempty"`
}

// Reasons a notification failed for good.
const (
	ReasonPermanentError    = "permanent_error"
	ReasonAttemptsExhausted = "attempts_exhausted"
	// ReasonSuppressed: the recipient is on the suppression list; no provider was called.
	ReasonSuppressed = "suppressed"
)

// NotificationFailed records that Herald gave up: the error was permanent or the attempts ran
// out. It carries the last attempt's outcome, so no attempt goes unrecorded.
type NotificationFailed struct {
	Attempt  int    `json:"attempt"`
	Provider string `json:"provider,omitempty"`
	Error    string `json:"error"`
	Reason   string `json:"reason"`
	// FailedOverFrom lists the providers the last attempt failed over from before Provider.
	FailedOverFrom []PassedOver `json:"failed_over_from,omitempty"`
}

// NotificationRequeued records that an operator sent a failed notification back to its work
// queue for a new round of attempts.
type NotificationRequeued struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
	// Attempts is how many attempts were made before this round.
	Attempts int `json:"attempts"`
}

// NotificationDiscarded records that an operator gave up on a failed notification and removed
// its command from the poison queue. It stays failed.
type NotificationDiscarded struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
}

// NotificationRecovered records that the reconciler found the notification stalled — not final,
// no event for longer than it allows, and no command of it waiting in the outbox — and queued its
// command again: RabbitMQ lost it (a purged queue, a dead-lettering that dropped it, a broker
// that lost a message). Nothing else changes: the status stays what it was (Status), and the
// attempts go on where they were.
type NotificationRecovered struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	// Status is the status the notification was found in, and keeps.
	Status herald.Status `json:"status"`
}

func (NotificationQueued) EventType() string     { return TypeNotificationQueued }
func (NotificationProcessing) EventType() string { return TypeNotificationProcessing }
func (NotificationSent) EventType() string       { return TypeNotificationSent }
func (DeliveryAttemptFailed) EventType() string  { return TypeDeliveryAttemptFailed }
func (NotificationFailed) EventType() string     { return TypeNotificationFailed }
func (NotificationRequeued) EventType() string   { return TypeNotificationRequeued }
func (NotificationDiscarded) EventType() string  { return TypeNotificationDiscarded }
func (NotificationRecovered) EventType() string  { return TypeNotificationRecovered }

func (e *NotificationQueued) Accept(v Visitor)     { v.NotificationQueued(e) }
func (e *NotificationProcessing) Accept(v Visitor) { v.NotificationProcessing(e) }
func (e *NotificationSent) Accept(v Visitor)       { v.NotificationSent(e) }
func (e *DeliveryAttemptFailed) Accept(v Visitor)  { v.DeliveryAttemptFailed(e) }
func (e *NotificationFailed) Accept(v Visitor)     { v.NotificationFailed(e) }
func (e *NotificationRequeued) Accept(v Visitor)   { v.NotificationRequeued(e) }
func (e *NotificationDiscarded) Accept(v Visitor)  { v.NotificationDiscarded(e) }
func (e *NotificationRecovered) Accept(v Visitor)  { v.NotificationRecovered(e) }
