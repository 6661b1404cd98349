package events

import (
	"time"

	"github.com/herald-notify/herald"
)

// A recipient who cannot or will not receive is put on the suppression list, and taken off it,
// by events of a stream of their own (one per channel and recipient, SuppressionStream): a hard
// bounce, a complaint, an opt-out or an operator's decision, with its actor and reason, kept
// beside the notifications' stories. Like an endpoint's events they are a family of their own:
// they say nothing about any one notification, so every notification's fold, read model and
// webhook leaves them out, and the places that must know each of them implement
// SuppressionVisitor.

// SuppressionEvent is a fact in a suppression's stream.
type SuppressionEvent interface {
	Event
	// AcceptSuppression calls v's method for the event's type, with the event.
	AcceptSuppression(v SuppressionVisitor)
}

// SuppressionVisitor has one method per suppression event type.
type SuppressionVisitor interface {
	RecipientSuppressed(*RecipientSuppressed)
	RecipientUnsuppressed(*RecipientUnsuppressed)
}

// Suppression event type names, as stored in event_log.event_type.
const (
	TypeRecipientSuppressed   = "RecipientSuppressed"
	TypeRecipientUnsuppressed = "RecipientUnsuppressed"
)

// Why a recipient is suppressed.
const (
	// SuppressedHardBounce: a mail server reported the address cannot receive.
	SuppressedHardBounce = "hard_bounce"
	// SuppressedComplaint: the recipient reported a message as abuse.
	SuppressedComplaint = "complaint"
	// SuppressedOptOut: the recipient asked for no more messages (an SMS STOP).
	SuppressedOptOut = "opt_out"
	// SuppressedManual: an operator put the recipient on the list.
	SuppressedManual = "manual"
)

// SuppressionCauses lists every cause, in the order they are documented.
var SuppressionCauses = []string{SuppressedHardBounce, SuppressedComplaint, SuppressedOptOut, SuppressedManual}

// RecipientSuppressed records that nothing more is sent to Recipient on Channel: until ExpiresAt
// when it is set, until a RecipientUnsuppressed otherwise. A later RecipientSuppressed of the same
// stream replaces the earlier one's cause, reason and expiry.
type RecipientSuppressed struct {
	Channel herald.Channel `json:"channel"`
	// Recipient is the address as the list keys it (see suppressions.Key).
	Recipient string `json:"recipient"`
	// Cause is one of SuppressionCauses; Reason says more: the operator's words, the bounce's
	// status and diagnostic, the feedback type.
	Cause  string `json:"cause"`
	Reason string `json:"reason,omitempty"`
	// NotificationID is the notification whose report suppressed the recipient, if one did.
	NotificationID string     `json:"notification_id,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
}

// RecipientUnsuppressed records that Recipient on Channel may receive again: an operator removed
// the suppression, or the recipient opted back in.
type RecipientUnsuppressed struct {
	Channel   herald.Channel `json:"channel"`
	Recipient string         `json:"recipient"`
	Reason    string         `json:"reason,omitempty"`
}

func (RecipientSuppressed) EventType() string   { return TypeRecipientSuppressed }
func (RecipientUnsuppressed) EventType() string { return TypeRecipientUnsuppressed }

func (e *RecipientSuppressed) Accept(v Visitor)   { v.Suppression(e) }
func (e *RecipientUnsuppressed) Accept(v Visitor) { v.Suppression(e) }

func (e *RecipientSuppressed) AcceptSuppression(v SuppressionVisitor) { v.RecipientSuppressed(e) }
func (e *RecipientUnsuppressed) AcceptSuppression(v SuppressionVisitor) {
	v.RecipientUnsuppressed(e)
}
