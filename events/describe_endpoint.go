package events

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// WebhookEndpoint: what changed in the endpoint, in words.
func (v *describer) WebhookEndpoint(e EndpointEvent) { e.AcceptEndpoint(v) }

// WebhookEndpointCreated: where it posts, and which events: endpoint https://… for all events.
func (v *describer) WebhookEndpointCreated(e *WebhookEndpointCreated) {
	v.text = fmt.Sprintf("endpoint %s for %s", e.URL, eventTypesInWords(e.EventTypes))
}

// WebhookEndpointUpdated: each field that changed, with its new value.
func (v *describer) WebhookEndpointUpdated(e *WebhookEndpointUpdated) {
	var parts []string
	if e.URL != nil {
		parts = append(parts, "url "+*e.URL)
	}
	if e.EventTypes != nil {
		parts = append(parts, "events "+eventTypesInWords(*e.EventTypes))
	}
	if e.Description != nil {
		parts = append(parts, fmt.Sprintf("description %q", *e.Description))
	}
	v.text = "changed " + cmp.Or(strings.Join(parts, ", "), "nothing")
}

// WebhookEndpointDisabled: why: disabled (failing since …) or disabled by an operator: reason.
func (v *describer) WebhookEndpointDisabled(e *WebhookEndpointDisabled) {
	switch {
	case e.Cause == DisabledFailing && e.FailingSince != nil:
		v.text = "disabled: failing since " + e.FailingSince.UTC().Format(time.RFC3339)
	default:
		v.text = "disabled by " + cmp.Or(e.Cause, DisabledByOperator)
	}
	if e.Reason != "" {
		v.text += ": " + e.Reason
	}
}

// WebhookEndpointEnabled: enabled.
func (v *describer) WebhookEndpointEnabled(*WebhookEndpointEnabled) { v.text = "enabled" }

// WebhookEndpointSecretRotated: until when the old secret still signs.
func (v *describer) WebhookEndpointSecretRotated(e *WebhookEndpointSecretRotated) {
	v.text = "secret rotated; the old one signs too until " + e.PreviousValidUntil.UTC().Format(time.RFC3339)
}

// WebhookEndpointDeleted: deleted.
func (v *describer) WebhookEndpointDeleted(*WebhookEndpointDeleted) { v.text = "deleted" }

// eventTypesInWords names the types an endpoint takes: "all events" when it names none.
func eventTypesInWords(types []string) string {
	if len(types) == 0 {
		return "all events"
	}
	return strings.Join(types, ",")
}
