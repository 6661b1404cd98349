package wire

import (
	"net/url"
	"strings"
	"time"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/suppressions"
)

// The shapes of the suppression list's API and of `herald suppressions … -o json`, and their
// constructors from the suppressions package's types: the one place an entry of the list becomes
// what the API answers and what the CLI prints.

// Suppression is one entry of the suppression list: who is not sent to on a channel, why, since
// when and until when. An entry that no longer holds (removed or expired) is still shown, with
// Active false, by the listings that ask for every entry and by a lookup of that recipient.
type Suppression struct {
	Channel string `json:"channel"`
	// Recipient is the address as the list keys it: an email address in lower case without a
	// display name, an SMS number as sent.
	Recipient string `json:"recipient"`
	// Cause is hard_bounce, complaint, opt_out or manual; Reason says more.
	Cause  string `json:"cause"`
	Reason string `json:"reason"`
	// NotificationID is the notification whose report suppressed the recipient, if one did.
	NotificationID string    `json:"notification_id,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
	UpdatedAt      time.Time `json:"updated_at"`
	// ExpiresAt is when the suppression lapses by itself; omitted for one that holds until removed.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// RemovedAt is when an operator, or the recipient's opt-in, lifted it.
	RemovedAt *time.Time `json:"removed_at,omitempty"`
	// Active is true while it holds: not removed, not expired.
	Active bool `json:"active"`
	// Version is the version of the entry's stream in the log: its changes so far.
	Version int64            `json:"version"`
	Links   SuppressionLinks `json:"links"`
}

// SuppressionLinks are the API paths of what is known about one entry.
type SuppressionLinks struct {
	Self   string `json:"self"`
	Events string `json:"events"`
}

// SuppressionPath is the API path of recipient's entry on channel, the recipient escaped as one
// path segment: "+" too, as %2B, so that no server or proxy on the way reads it as a space.
func SuppressionPath(channel, recipient string) string {
	return "/api/v1/suppressions/" + url.PathEscape(channel) + "/" + strings.ReplaceAll(url.PathEscape(recipient), "+", "%2B")
}

// SuppressionLinksFor returns the links of recipient's entry on channel.
func SuppressionLinksFor(channel, recipient string) SuppressionLinks {
	self := SuppressionPath(channel, recipient)
	return SuppressionLinks{Self: self, Events: self + "/events"}
}

// SuppressionList is a page of the list, by channel and recipient.
type SuppressionList struct {
	Suppressions []Suppression `json:"suppressions"`
	// NextCursor continues the listing after this page (?cursor= or --cursor); empty, and
	// omitted, on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Next is the API path of the next page (the API sets it; the CLI has none).
	Next string `json:"next,omitempty"`
}

// SuppressionRequest is the body of POST /api/v1/suppressions: an operator's suppression of a
// recipient. Reason is required. At most one of ExpiresAt (an RFC 3339 time) and ExpiresIn (a
// duration such as "720h") may be given; without either it holds until removed.
type SuppressionRequest struct {
	Channel   string     `json:"channel"`
	Recipient string     `json:"recipient"`
	Reason    string     `json:"reason"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	ExpiresIn string     `json:"expires_in,omitempty"`
}

// NewSuppressionStream returns the stream of entry s, recs: every change of it, in the shape of a
// notification's stream, with links to the entry (status) and to this stream (history and
// events).
func NewSuppressionStream(s suppressions.Suppression, recs []events.Recorded) Stream {
	l := SuppressionLinksFor(string(s.Channel), s.Recipient)
	return Stream{ID: suppressions.Stream(s.Channel, s.Recipient), Events: all(recs, NewEvent),
		Links: Links{Status: l.Self, History: l.Events, Events: l.Events}}
}

// NewSuppression returns s as users see it.
func NewSuppression(s suppressions.Suppression) Suppression {
	return Suppression{
		Channel: string(s.Channel), Recipient: s.Recipient, Cause: s.Cause, Reason: s.Reason, NotificationID: s.NotificationID,
		CreatedAt: s.CreatedAt.UTC(), CreatedBy: s.CreatedBy, UpdatedAt: s.UpdatedAt.UTC(),
		ExpiresAt: utcCopy(s.ExpiresAt), RemovedAt: utcCopy(s.RemovedAt), Active: s.Active, Version: s.Version,
		Links: SuppressionLinksFor(string(s.Channel), s.Recipient),
	}
}

// NewSuppressionList returns a page of the list, continued by cursor next (empty after the
// last), never null.
func NewSuppressionList(list []suppressions.Suppression, next string) SuppressionList {
	out := SuppressionList{Suppressions: make([]Suppression, 0, len(list)), NextCursor: next}
	for _, s := range list {
		out.Suppressions = append(out.Suppressions, NewSuppression(s))
	}
	return out
}

// utcCopy returns a copy of *t in UTC, or nil for none.
func utcCopy(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
