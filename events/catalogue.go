package events

import (
	"encoding/json"
	"fmt"
)

// catalogue is every event type the log may hold, in the order Types lists them: the one list
// from which both the names (Types) and decoding (Decode) come. Each entry makes an empty event
// of its type to decode into. A test checks that every type Visitor has a method for is here.
var catalogue = []func() Event{
	func() Event { return new(NotificationQueued) },
	func() Event { return new(NotificationProcessing) },
	func() Event { return new(NotificationSent) },
	func() Event { return new(DeliveryAttemptFailed) },
	func() Event { return new(NotificationFailed) },
	func() Event { return new(NotificationRequeued) },
	func() Event { return new(NotificationDiscarded) },
	func() Event { return new(NotificationRecovered) },
	func() Event { return new(NotificationDelivered) },
	func() Event { return new(NotificationUndelivered) },
	func() Event { return new(NotificationBounced) },
	func() Event { return new(NotificationComplained) },
	func() Event { return new(NotificationCancelled) },
	func() Event { return new(NotificationReleased) },
	func() Event { return new(WebhookEndpointCreated) },
	func() Event { return new(WebhookEndpointUpdated) },
	func() Event { return new(WebhookEndpointDisabled) },
	func() Event { return new(WebhookEndpointEnabled) },
	func() Event { return new(WebhookEndpointSecretRotated) },
	func() Event { return new(WebhookEndpointDeleted) },
	func() Event { return new(RecipientSuppressed) },
	func() Event { return new(RecipientUnsuppressed) },
	func() Event { return new(TemplateVersionCreated) },
	func() Event { return new(TemplateArchived) },
	func() Event { return new(TemplateRestored) },
}

// Types lists every event type the log may hold.
var Types = catalogueTypes()

// NotificationTypes lists the types of the events of notifications' streams, in catalogue order:
// the ones a webhook endpoint can subscribe to. The rest are endpoints' own (EndpointEvent),
// suppressions' (SuppressionEvent) and stored templates' (TemplateEvent).
var NotificationTypes = func() []string {
	var out []string
	for _, t := range Types {
		if IsNotificationType(t) {
			out = append(out, t)
		}
	}
	return out
}()

// byType finds an event type's entry in the catalogue by its stored name.
var byType = catalogueIndex()

// catalogueTypes is the stored name of each catalogued type, in catalogue order.
func catalogueTypes() []string {
	out := make([]string, len(catalogue))
	for i, newEvent := range catalogue {
		out[i] = newEvent().EventType()
	}
	return out
}

// catalogueIndex maps each catalogued type's stored name to its entry.
func catalogueIndex() map[string]func() Event {
	out := make(map[string]func() Event, len(catalogue))
	for _, newEvent := range catalogue {
		out[newEvent().EventType()] = newEvent
	}
	return out
}

// Decode returns the event stored as type typ with JSON data.
func Decode(typ string, data []byte) (Event, error) {
	newEvent, ok := byType[typ]
	if !ok {
		return nil, fmt.Errorf("decode event: unknown type %q", typ)
	}
	e := newEvent()
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	return e, nil
}
