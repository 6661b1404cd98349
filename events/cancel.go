package events

import (
	"cmp"
	"fmt"

	"github.com/herald-notify/herald"
)

// TypeNotificationCancelled is the stored name of NotificationCancelled.
const TypeNotificationCancelled = "NotificationCancelled"

// NotificationCancelled records that the client that sent the notification, or an operator,
// called it off before it went out: it was scheduled, pending, or waiting between attempts, with no attempt
// in flight. It is appended with the stream's expected version, so it and the start of an attempt
// (NotificationProcessing) cannot both follow the same version: exactly one wins. Nothing is sent
// after it, and nothing follows it.
type NotificationCancelled struct {
	// Actor is who cancelled it: "apikey:<name>" through the API, an operator's name from the CLI.
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

func (NotificationCancelled) EventType() string   { return TypeNotificationCancelled }
func (e *NotificationCancelled) Accept(v Visitor) { v.NotificationCancelled(e) }

// NotificationCancelled ends the story: cancelled, no attempt open.
func (v *evolver) NotificationCancelled(*NotificationCancelled) {
	v.n.Status = herald.StatusCancelled
	v.n.AttemptOpen = false
}

func (v *statusAfter) NotificationCancelled(*NotificationCancelled) {
	v.status = herald.StatusCancelled
}

// NotificationCancelled: who cancelled it, and why.
func (v *historyEntry) NotificationCancelled(e *NotificationCancelled) {
	v.h.Reason = e.Reason
	v.h.Actor = e.Actor
}

// NotificationCancelled: who cancelled it, and why: cancelled by apikey:shop: order withdrawn.
func (v *describer) NotificationCancelled(e *NotificationCancelled) {
	v.text = fmt.Sprintf("cancelled by %s: %s", e.Actor, cmp.Or(e.Reason, "no reason given"))
}
