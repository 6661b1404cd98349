package suppressions

import (
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/wire"
)

// The constructors of wire's suppression shapes: the one place an entry of the list becomes
// what the API answers and what `herald suppressions … -o json` prints. They live here, beside
// the type they show, as the webhook endpoints' do in webhooks; wire does not import the stores.

// Wire returns s as users see it.
func Wire(s Suppression) wire.Suppression {
	return wire.Suppression{
		Channel: string(s.Channel), Recipient: s.Recipient, Cause: s.Cause, Reason: s.Reason, NotificationID: s.NotificationID,
		CreatedAt: s.CreatedAt.UTC(), CreatedBy: s.CreatedBy, UpdatedAt: s.UpdatedAt.UTC(),
		ExpiresAt: utcCopy(s.ExpiresAt), RemovedAt: utcCopy(s.RemovedAt), Active: s.Active, Version: s.Version,
		Links: wire.SuppressionLinksFor(string(s.Channel), s.Recipient),
	}
}

// WireList returns a page of the list, continued by cursor next (empty after the last), never
// null.
func WireList(list []Suppression, next string) wire.SuppressionList {
	out := wire.SuppressionList{Suppressions: make([]wire.Suppression, 0, len(list)), NextCursor: next}
	for _, s := range list {
		out.Suppressions = append(out.Suppressions, Wire(s))
	}
	return out
}

// WireStream returns the stream of s: every change of it, with who made it.
func WireStream(s Suppression, recs []events.Recorded) wire.Stream {
	return wire.NewSuppressionStream(Stream(s.Channel, s.Recipient), wire.SuppressionLinksFor(string(s.Channel), s.Recipient), recs)
}

// utcCopy returns a copy of *t in UTC, or nil for none.
func utcCopy(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
