package events

import "time"

// A webhook endpoint's configuration changes are facts of the log too, on a stream of their own
// (the endpoint's id): who registered, changed, disabled, enabled, re-keyed or deleted it, and
// when, is kept beside the notifications' stories, appended with the stream's expected version
// like every other event. They are a family of their own: they say nothing about any
// notification, so every notification's fold, read model and webhook leaves them out
// (NotificationOnly), and the places that must know each of them implement EndpointVisitor.
//
// No secret is ever in an event: the log is read by auditors and printed by the CLI.

// EndpointEvent is a fact in a webhook endpoint's stream.
type EndpointEvent interface {
	Event
	// AcceptEndpoint calls v's method for the event's type, with the event.
	AcceptEndpoint(v EndpointVisitor)
}

// EndpointVisitor has one method per endpoint event type, as Visitor has per notification event
// type: adding an endpoint event breaks each implementation until it says what the event means.
type EndpointVisitor interface {
	WebhookEndpointCreated(*WebhookEndpointCreated)
	WebhookEndpointUpdated(*WebhookEndpointUpdated)
	WebhookEndpointDisabled(*WebhookEndpointDisabled)
	WebhookEndpointEnabled(*WebhookEndpointEnabled)
	WebhookEndpointSecretRotated(*WebhookEndpointSecretRotated)
	WebhookEndpointDeleted(*WebhookEndpointDeleted)
}

// Endpoint event type names, as stored in event_log.event_type.
const (
	TypeWebhookEndpointCreated       = "WebhookEndpointCreated"
	TypeWebhookEndpointUpdated       = "WebhookEndpointUpdated"
	TypeWebhookEndpointDisabled      = "WebhookEndpointDisabled"
	TypeWebhookEndpointEnabled       = "WebhookEndpointEnabled"
	TypeWebhookEndpointSecretRotated = "WebhookEndpointSecretRotated"
	TypeWebhookEndpointDeleted       = "WebhookEndpointDeleted"
)

// WebhookEndpointCreated records that an endpoint was registered: from then on, the events of
// the types it names (all of them when it names none) are posted to URL.
type WebhookEndpointCreated struct {
	URL         string   `json:"url"`
	Description string   `json:"description,omitempty"`
	EventTypes  []string `json:"event_types,omitempty"`
}

// WebhookEndpointUpdated records a change of an endpoint's URL, description or event types.
// Only the fields that changed are set, to their new values.
type WebhookEndpointUpdated struct {
	URL         *string   `json:"url,omitempty"`
	Description *string   `json:"description,omitempty"`
	EventTypes  *[]string `json:"event_types,omitempty"`
}

// Why an endpoint was disabled.
const (
	// DisabledByOperator: someone disabled it.
	DisabledByOperator = "operator"
	// DisabledFailing: it failed every delivery for longer than Herald allows.
	DisabledFailing = "failing"
)

// WebhookEndpointDisabled records that an endpoint stopped receiving events. Its place in the
// log is kept: enabled again, it goes on from there.
type WebhookEndpointDisabled struct {
	// Cause is DisabledByOperator or DisabledFailing.
	Cause  string `json:"cause"`
	Reason string `json:"reason,omitempty"`
	// FailingSince is, for DisabledFailing, the first failure after its last success.
	FailingSince *time.Time `json:"failing_since,omitempty"`
}

// WebhookEndpointEnabled records that a disabled endpoint receives events again.
type WebhookEndpointEnabled struct{}

// WebhookEndpointSecretRotated records that an endpoint's signing secret was replaced. Requests
// carry signatures by both the old and the new secret until PreviousValidUntil.
type WebhookEndpointSecretRotated struct {
	PreviousValidUntil time.Time `json:"previous_valid_until"`
}

// WebhookEndpointDeleted records that an endpoint was removed: nothing is posted to it again.
type WebhookEndpointDeleted struct{}

func (WebhookEndpointCreated) EventType() string       { return TypeWebhookEndpointCreated }
func (WebhookEndpointUpdated) EventType() string       { return TypeWebhookEndpointUpdated }
func (WebhookEndpointDisabled) EventType() string      { return TypeWebhookEndpointDisabled }
func (WebhookEndpointEnabled) EventType() string       { return TypeWebhookEndpointEnabled }
func (WebhookEndpointSecretRotated) EventType() string { return TypeWebhookEndpointSecretRotated }
func (WebhookEndpointDeleted) EventType() string       { return TypeWebhookEndpointDeleted }

func (e *WebhookEndpointCreated) Accept(v Visitor)       { v.WebhookEndpoint(e) }
func (e *WebhookEndpointUpdated) Accept(v Visitor)       { v.WebhookEndpoint(e) }
func (e *WebhookEndpointDisabled) Accept(v Visitor)      { v.WebhookEndpoint(e) }
func (e *WebhookEndpointEnabled) Accept(v Visitor)       { v.WebhookEndpoint(e) }
func (e *WebhookEndpointSecretRotated) Accept(v Visitor) { v.WebhookEndpoint(e) }
func (e *WebhookEndpointDeleted) Accept(v Visitor)       { v.WebhookEndpoint(e) }

func (e *WebhookEndpointCreated) AcceptEndpoint(v EndpointVisitor) { v.WebhookEndpointCreated(e) }
func (e *WebhookEndpointUpdated) AcceptEndpoint(v EndpointVisitor) { v.WebhookEndpointUpdated(e) }
func (e *WebhookEndpointDisabled) AcceptEndpoint(v EndpointVisitor) {
	v.WebhookEndpointDisabled(e)
}
func (e *WebhookEndpointEnabled) AcceptEndpoint(v EndpointVisitor) { v.WebhookEndpointEnabled(e) }
func (e *WebhookEndpointSecretRotated) AcceptEndpoint(v EndpointVisitor) {
	v.WebhookEndpointSecretRotated(e)
}
func (e *WebhookEndpointDeleted) AcceptEndpoint(v EndpointVisitor) { v.WebhookEndpointDeleted(e) }

// IsNotificationType reports whether typ is the type of a notification's event, as opposed to
// an endpoint's, a suppression's or a stored template's (or an unknown type).
func IsNotificationType(typ string) bool {
	newEvent, ok := byType[typ]
	if !ok {
		return false
	}
	switch newEvent().(type) {
	case EndpointEvent, SuppressionEvent, TemplateEvent:
		return false
	}
	return true
}

// NotificationOnly returns the notifications' events of recs, in their order: what a read model
// of notifications folds. It returns recs itself when they all are.
func NotificationOnly(recs []Recorded) []Recorded {
	for i, r := range recs {
		if !notificationType[r.Type] {
			out := append([]Recorded(nil), recs[:i]...)
			for _, r := range recs[i+1:] {
				if notificationType[r.Type] {
					out = append(out, r)
				}
			}
			return out
		}
	}
	return recs
}

// notificationType holds the notification event types, for NotificationOnly's hot path.
var notificationType = func() map[string]bool {
	out := map[string]bool{}
	for _, t := range NotificationTypes {
		out[t] = true
	}
	return out
}()
