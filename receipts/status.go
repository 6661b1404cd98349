package receipts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
)

// Actor is who appends the events a gateway's report causes.
const Actor = "gateway:" + delivery.HTTPSMSName

// StatusCallback is what the gateway posts about one message (Twilio's status callback).
type StatusCallback struct {
	MessageSID    string
	MessageStatus string
	ErrorCode     string
	ErrorMessage  string
	To            string
	From          string
	AccountSID    string
}

// Validate returns EINVALID naming the fields a callback cannot go without.
func (cb StatusCallback) Validate() error {
	fields := map[string]string{}
	if strings.TrimSpace(cb.MessageSID) == "" {
		fields["MessageSid"] = "is required"
	}
	if strings.TrimSpace(cb.MessageStatus) == "" {
		fields["MessageStatus"] = "is required"
	}
	if len(fields) > 0 {
		return herald.Invalid("the status callback is incomplete", fields)
	}
	return nil
}

// Outcome is what became of a status callback.
type Outcome string

// Outcomes of a status callback; they are the metric's labels.
const (
	// OutcomeRecorded: an event was appended.
	OutcomeRecorded Outcome = "recorded"
	// OutcomeDuplicate: the notification is past sent already (a repeated report, or a late one
	// that contradicts the first); nothing written.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeIntermediate: a status on the way (queued, sent, …) or one Herald does not record
	// (read); nothing written.
	OutcomeIntermediate Outcome = "intermediate"
	// OutcomeUnmatched: no notification was sent with the message id; nothing written.
	OutcomeUnmatched Outcome = "unmatched"
	// OutcomeForged: the signature is missing or wrong; nothing written. The edge decides it.
	OutcomeForged Outcome = "forged"
)

// Final reports whether status is one Herald records: delivered, undelivered or failed. Every
// other status (queued, accepting, accepted, scheduled, sending, sent, receiving, received,
// read, canceled, partially_delivered, and any the gateway adds) is not. "read" comes after
// "delivered", which the gateway reports too; SMS has no read receipts.
func Final(status string) bool {
	switch strings.ToLower(status) {
	case "delivered", "undelivered", "failed":
		return true
	}
	return false
}

// Decide returns the event the callback cb adds to the notification n, or nil and why not. n
// must be the notification the callback's message id was sent for.
func Decide(n herald.Notification, cb StatusCallback) (events.Event, Outcome) {
	status := strings.ToLower(cb.MessageStatus)
	if !Final(status) {
		return nil, OutcomeIntermediate
	}
	if n.Status != herald.StatusSent {
		// Delivered, undelivered (or bounced, complained): the story is told. A status before
		// sent cannot have a message id to match; nothing is written either way.
		return nil, OutcomeDuplicate
	}
	if status == "delivered" {
		return &events.NotificationDelivered{Provider: delivery.HTTPSMSName, ProviderMessageID: cb.MessageSID, ProviderStatus: status}, OutcomeRecorded
	}
	return &events.NotificationUndelivered{Provider: delivery.HTTPSMSName, ProviderMessageID: cb.MessageSID, ProviderStatus: status,
		ErrorCode: cb.ErrorCode, Error: cb.ErrorMessage}, OutcomeRecorded
}

// Recorder records the gateway's status callbacks on the streams of the notifications they
// concern.
type Recorder struct {
	db     events.Querier
	log    *events.Log
	logger *slog.Logger
}

// NewRecorder returns a recorder over the log in db.
func NewRecorder(db events.Querier, logger *slog.Logger) *Recorder {
	return &Recorder{db: db, log: events.NewLog(db), logger: logger}
}

// maxConflicts bounds how often Record reloads a stream that changed under it: two reports of
// the same message arriving at once, or another event appended meanwhile.
const maxConflicts = 5

// Record takes in cb: it appends NotificationDelivered or NotificationUndelivered to the stream
// of the notification sent with cb's message id, with that stream's expected version, and says
// what it did. The event carries the notification's correlation id, and the correlation id of
// ctx (the callback's request) as its causation id. Nothing is written for an intermediate
// status, an unknown message id, or a notification past sent already. EINVALID for a callback
// without a message id or status.
func (r *Recorder) Record(ctx context.Context, cb StatusCallback) (Outcome, error) {
	if err := cb.Validate(); err != nil {
		return "", err
	}
	if !Final(cb.MessageStatus) {
		return OutcomeIntermediate, nil
	}
	stream, err := r.match(ctx, cb.MessageSID)
	if err != nil {
		return "", err
	}
	if stream == "" {
		return OutcomeUnmatched, nil
	}
	for range maxConflicts {
		n, recs, err := r.log.Notification(ctx, stream)
		if err != nil {
			return "", fmt.Errorf("status callback for %s: %w", cb.MessageSID, err)
		}
		e, outcome := Decide(n, cb)
		if e == nil {
			if outcome == OutcomeDuplicate && reportedStatus(cb) != n.Status {
				r.logger.WarnContext(ctx, "sms status report contradicts the recorded status; nothing recorded",
					"notification_id", stream, "provider_message_id", cb.MessageSID, "reported", cb.MessageStatus,
					"status", n.Status, "correlation_id", herald.CorrelationID(ctx))
			}
			return outcome, nil
		}
		// As an operator's events do: the notification's correlation id, so its story stays one,
		// and the callback's request as the cause.
		md := events.Metadata{CorrelationID: recs[0].Metadata.CorrelationID, CausationID: herald.CorrelationID(ctx), Actor: Actor}
		_, err = r.log.Append(ctx, stream, n.Version, md, e)
		if errors.Is(err, events.ErrConflict) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("status callback for %s: %w", cb.MessageSID, err)
		}
		return OutcomeRecorded, nil
	}
	return "", fmt.Errorf("status callback for %s: notification %s kept changing: %w", cb.MessageSID, stream, events.ErrConflict)
}

// reportedStatus is the status a final callback would have left a sent notification in.
func reportedStatus(cb StatusCallback) herald.Status {
	e, _ := Decide(herald.Notification{Status: herald.StatusSent}, cb)
	return events.StatusAfter(e)
}

// matchSQL finds the notification sent with a message id, through the partial index
// event_log_sent_provider_message_id_idx (migrations/00011_receipts.sql): the event type must
// stay a literal here for the planner to use it.
const matchSQL = `SELECT stream_id::text FROM event_log
WHERE event_type = 'NotificationSent' AND data->>'provider_message_id' = $1 AND data->>'provider' = $2
ORDER BY global_position DESC LIMIT 1`

// match returns the stream of the notification sent through the gateway with message id sid, or
// "" when there is none.
func (r *Recorder) match(ctx context.Context, sid string) (string, error) {
	var stream string
	err := r.db.QueryRow(ctx, matchSQL, sid, delivery.HTTPSMSName).Scan(&stream)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("match message %s: %w", sid, err)
	}
	return stream, nil
}
