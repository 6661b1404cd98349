package events

import "sync"

// Visitor has one method per event type. Every place that must know what each event means — the
// fold (Evolve), the status after an event (StatusAfter), the history's account of it
// (HistoryEntry), its description in words (Describe), the operators' view of a parked
// notification — implements Visitor instead of switching on the event's type.
//
// A type switch lets a new event type fall through unnoticed; a Visitor does not. A new event
// type must implement Event to be appended, so it must have an Accept, which calls a method of
// its own on Visitor; adding that method breaks every implementation until it says what the new
// event does. A place that cares about only a few events still has a method for each: an empty
// one says, deliberately, that the event changes nothing there.
type Visitor interface {
	NotificationQueued(*NotificationQueued)
	NotificationProcessing(*NotificationProcessing)
	NotificationSent(*NotificationSent)
	DeliveryAttemptFailed(*DeliveryAttemptFailed)
	NotificationFailed(*NotificationFailed)
	NotificationRequeued(*NotificationRequeued)
	NotificationDiscarded(*NotificationDiscarded)
	NotificationRecovered(*NotificationRecovered)
	NotificationDelivered(*NotificationDelivered)
	NotificationUndelivered(*NotificationUndelivered)
	NotificationBounced(*NotificationBounced)
	NotificationComplained(*NotificationComplained)
	NotificationCancelled(*NotificationCancelled)
	NotificationReleased(*NotificationReleased)
	// WebhookEndpoint is called for every event of a webhook endpoint's stream, which says
	// nothing about a notification; EndpointVisitor tells those events apart.
	WebhookEndpoint(EndpointEvent)
	// Suppression is called for every event of a suppression's stream, which says nothing about
	// a notification either; SuppressionVisitor tells those events apart.
	Suppression(SuppressionEvent)
	// Template is called for every event of a stored template's stream, which says nothing
	// about a notification either; TemplateVisitor tells those events apart.
	Template(TemplateEvent)
}

// visitors reuses visitors of type V. A visitor handed to Accept escapes to the heap, and
// allocating one for each event made Evolve ten times slower than the type switch it replaced;
// a reused one costs a fraction of that.
type visitors[V any] struct{ pool sync.Pool }

// get returns a visitor whose fields are zero.
func (p *visitors[V]) get() *V {
	if v, ok := p.pool.Get().(*V); ok {
		return v
	}
	return new(V)
}

// put zeroes v, so that it holds on to nothing of the event it saw, and keeps it for reuse.
func (p *visitors[V]) put(v *V) {
	var zero V
	*v = zero
	p.pool.Put(v)
}
