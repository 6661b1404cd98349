// Package herald holds the vocabulary every part of the notification service speaks: the channels a
// notification travels on, the statuses it passes through, the notification as its readers see it,
// and the kinds of error the layers hand each other.
//
// The subpackages adapt one concern each: events (the facts and the append-only log), commands (the
// intents sent to workers), handlers (the decisions), projections (the read models), http (the
// edge), wire (every JSON shape users see, for the API and the CLI alike), router (brokers, topics
// and middleware), delivery (the providers), ratelimit (the providers' and the API keys' rate limits, shared by every
// worker or API process), templates (the content language), attachments (the files
// emails carry, stored once by hash), scheduler (the release of scheduled sends when they are
// due), apikeys (who may
// call the API), bounces (the email bounces and complaints that come back), redact (what is never
// printed), postgres (connections to PostgreSQL), migrations (the schema), bench (the load tool
// behind `herald bench`) and cmd/herald (wiring and the CLI's presentation).
package herald

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Channel is the medium a notification is delivered through.
type Channel string

const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
)

// Channels lists every channel Herald delivers through.
var Channels = []Channel{ChannelEmail, ChannelSMS}

// ParseChannel returns the channel named s, or an EINVALID error.
func ParseChannel(s string) (Channel, error) {
	switch c := Channel(s); c {
	case ChannelEmail, ChannelSMS:
		return c, nil
	}
	return "", Errorf(EINVALID, "unknown channel %q: want email or sms", s)
}

// Status is where a notification is in its life: (scheduled →) pending → processing → sent |
// failed, and after sent what the provider or the recipient's mail server reported: delivered,
// undelivered, bounced or complained. A notification that has not gone out may be cancelled
// instead.
type Status string

const (
	// StatusScheduled: accepted with a send_at still to come; the scheduler releases it then.
	StatusScheduled   Status = "scheduled"
	StatusPending     Status = "pending"
	StatusProcessing  Status = "processing"
	StatusSent        Status = "sent"
	StatusDelivered   Status = "delivered"
	StatusUndelivered Status = "undelivered"
	StatusBounced     Status = "bounced"
	StatusComplained  Status = "complained"
	StatusFailed      Status = "failed"
	// StatusCancelled: the client or an operator called it off before it went out; nothing is
	// sent after it.
	StatusCancelled Status = "cancelled"
)

// Statuses lists every status in life order.
var Statuses = []Status{StatusScheduled, StatusPending, StatusProcessing, StatusSent, StatusDelivered,
	StatusUndelivered, StatusBounced, StatusComplained, StatusFailed, StatusCancelled}

// ParseStatus returns the status named s, or an EINVALID error.
func ParseStatus(s string) (Status, error) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(Statuses))
	for i, st := range Statuses {
		names[i] = string(st)
	}
	return "", Errorf(EINVALID, "unknown status %q: want one of %s", s, strings.Join(names, ", "))
}

// WasSent reports whether a provider took the notification: sent, or any status a report after
// sending leads to. Nothing is sent again from such a status.
func (s Status) WasSent() bool {
	switch s {
	case StatusSent, StatusDelivered, StatusUndelivered, StatusBounced, StatusComplained:
		return true
	}
	return false
}

// Terminal reports whether no delivery attempt can follow this status: it was sent (reports may
// still follow), it failed, or it was cancelled.
func (s Status) Terminal() bool { return s.WasSent() || s == StatusFailed || s == StatusCancelled }

// Notification is the state of one notification, folded from its event stream. The status
// projection stores the same fields; the log is the truth both are derived from.
type Notification struct {
	ID        string
	Channel   Channel
	Recipient string
	Subject   string
	Body      string
	// HTML is the HTML part of an email, empty when it has none; Body is then its only part.
	HTML string
	// Attachments are the files an email carries, by reference: their bytes are loaded by hash
	// when it is sent.
	Attachments []Attachment
	// Priority decides the notification's lane and its place among the waiters for a
	// provider's rate limit; normal for notifications queued before there were priorities.
	Priority Priority

	Status Status
	// SendAt is when the client asked for it to be sent, zero when it asked for no time: it is
	// scheduled until then.
	SendAt time.Time
	// Attempts counts the delivery attempts started so far, over every round.
	Attempts int
	// RoundStart is how many attempts were made before the current round: an operator's
	// requeue starts a new round, with a new allowance of attempts.
	RoundStart int
	// AttemptOpen is true while the latest attempt has no recorded outcome: a worker is sending,
	// or died while sending.
	AttemptOpen      bool
	AttemptStartedAt time.Time
	// Recoveries counts the NotificationRecovered events at the end of its stream: the
	// reconciler's recoveries in a row, with no progress in between. Any other event resets it.
	Recoveries int

	LastError         string
	Provider          string
	ProviderMessageID string

	// Version is the stream version of the last event folded in; Position its place in the log.
	Version  int64
	Position int64

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Attachment names a file an email carries: its name and media type as the client sent them, its
// size in bytes, and the SHA-256 of its bytes in lower-case hex, by which it is stored.
type Attachment struct {
	Filename    string
	ContentType string
	Size        int64
	SHA256      string
}

// HistoryEntry is one event of a notification's story, as the history read model shows it.
type HistoryEntry struct {
	Version           int64
	Position          int64
	Event             string
	Status            Status
	Attempt           int
	Provider          string
	ProviderMessageID string
	Error             string
	// Reason says why a notification failed, or why an operator requeued or discarded it.
	Reason string
	// Actor is who appended the event: "api", "worker:<host>/<pid>", an operator.
	Actor string
	// Template names the stored template version a NotificationQueued was rendered from
	// ("welcome@3"); empty for every other event and for inline content.
	Template string
	At       time.Time
}

// ListFilter selects notifications for listing, newest first.
type ListFilter struct {
	Status  Status  // empty: any
	Channel Channel // empty: any
	// Recipient keeps only the notifications to exactly this recipient; empty: any.
	Recipient string
	// CreatedFrom and CreatedBefore keep only the notifications accepted in [CreatedFrom,
	// CreatedBefore); zero: unbounded.
	CreatedFrom, CreatedBefore time.Time
	Limit                      int
	// Cursor continues a previous listing; empty starts at the newest.
	Cursor string
}

// String renders a notification for logs.
func (n Notification) String() string {
	return fmt.Sprintf("%s %s to %s: %s (v%d)", n.ID, n.Channel, n.Recipient, n.Status, n.Version)
}

type correlationKey struct{}

// WithCorrelationID returns ctx carrying id, the identifier that ties together everything done for
// one request: the events it causes, the commands it sends, the log lines it writes.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation id ctx carries, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}
