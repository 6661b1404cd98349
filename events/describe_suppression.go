package events

import (
	"fmt"
	"time"
)

// Suppression: what changed on the list, in words.
func (v *describer) Suppression(e SuppressionEvent) { e.AcceptSuppression(v) }

// RecipientSuppressed: who, why, and until when: email ann@example.com suppressed (hard_bounce:
// 5.1.1 user unknown) until 2027-01-01T00:00:00Z.
func (v *describer) RecipientSuppressed(e *RecipientSuppressed) {
	v.text = fmt.Sprintf("%s %s suppressed (%s", e.Channel, e.Recipient, e.Cause)
	if e.Reason != "" {
		v.text += ": " + e.Reason
	}
	v.text += ")"
	if e.ExpiresAt != nil {
		v.text += " until " + e.ExpiresAt.UTC().Format(time.RFC3339)
	}
}

// RecipientUnsuppressed: who may receive again, and why.
func (v *describer) RecipientUnsuppressed(e *RecipientUnsuppressed) {
	v.text = fmt.Sprintf("%s %s no longer suppressed", e.Channel, e.Recipient)
	if e.Reason != "" {
		v.text += ": " + e.Reason
	}
}
