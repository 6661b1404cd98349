package receipts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
)

// Actor is who appends the events a gateway's report causes.
const Actor = "gateway:" + delivery.HTTPSMSName

// NotificationParam is the query parameter of the status callback URL that names the
// notification the message was sent for (see delivery.StatusCallbackFor).
const NotificationParam = delivery.CallbackNotificationParam

// StatusCallback is what the gateway posts about one message (Twilio's status callback).
type StatusCallback struct {
	// NotificationID is the notification the callback URL names, under the gateway's signature;
	// empty for a message sent before Herald named it there, which is matched by MessageSID.
	NotificationID string
	MessageSID     string
	MessageStatus  string
	ErrorCode      string
	ErrorMessage   string
	To             string
	From           string
	AccountSID     string
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
	if cb.NotificationID != "" {
		// Only the canonical form Herald writes: uuid.Parse also takes braces and urn:uuid:.
		if _, err := uuid.Parse(cb.NotificationID); err != nil || len(cb.NotificationID) != 36 {
			fields[NotificationParam] = "is not a notification id"
		}
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
	// OutcomeUnmatched: no notification was sent with the message id, or the notification the
	// callback names is not an SMS or ended failed (Herald gave up on it, yet the gateway had
	// taken a message); nothing written.
	OutcomeUnmatched Outcome = "unmatched"
	// OutcomeMismatched: the notification the callback names was sent as another message than
	// the callback's; nothing written.
	OutcomeMismatched Outcome = "mismatched"
	// OutcomeEarly: the notification the callback names was not recorded sent within the
	// recorder's wait (the report overtook the worker's NotificationSent and the worker is slow,
	// or the attempt will be retried); nothing written, the gateway may post it again.
	OutcomeEarly Outcome = "early"
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
	// wait bounds how long Record waits for a named notification to be recorded sent.
	wait time.Duration
	// onEarly, when set (by tests), is called each time Record finds a named notification not
	// sent yet, before it waits.
	onEarly func(n herald.Notification)
}

// DefaultWait is how long Record waits, by default, for the notification a callback names to be
// recorded sent. The gateway gives up on a callback after 15 seconds; the answer must come well
// before, and a worker whose PostgreSQL needs longer to take one event is a worker in trouble.
const DefaultWait = 5 * time.Second

// pollEvery is how often Record reads the stream of a named notification it waits for.
const pollEvery = 50 * time.Millisecond

// NewRecorder returns a recorder over the log in db that waits DefaultWait for a named
// notification to be sent.
func NewRecorder(db events.Querier, logger *slog.Logger) *Recorder {
	return &Recorder{db: db, log: events.NewLog(db), logger: logger, wait: DefaultWait}
}

// WithWait sets how long Record waits for a named notification to be recorded sent (zero: it
// does not wait), and returns r.
func (r *Recorder) WithWait(d time.Duration) *Recorder {
	r.wait = max(d, 0)
	return r
}

// maxConflicts bounds how often Record reloads a stream that changed under it: two reports of
// the same message arriving at once, or another event appended meanwhile.
const maxConflicts = 5

// Record takes in cb: it appends NotificationDelivered or NotificationUndelivered to the stream
// of the notification cb concerns, with that stream's expected version, and says what it did.
// The event carries the notification's correlation id, and the correlation id of ctx (the
// callback's request) as its causation id.
//
// A callback whose URL names its notification (cb.NotificationID) is matched by that id; one
// that does not, by the message id NotificationSent recorded. A named notification that is not
// sent yet (the report overtook the worker's NotificationSent) is waited for, reading its
// stream every 50 ms for up to the recorder's wait: OutcomeEarly when it is still not sent then.
// OutcomeMismatched when it was sent with another message id.
//
// Nothing is written for an intermediate status, an unknown message id or notification, a
// notification past sent already, one that failed, or an outcome other than recorded.
// EINVALID for a callback without a message id or status, or naming something that is not a
// notification id.
func (r *Recorder) Record(ctx context.Context, cb StatusCallback) (Outcome, error) {
	if err := cb.Validate(); err != nil {
		return "", err
	}
	if !Final(cb.MessageStatus) {
		return OutcomeIntermediate, nil
	}
	if cb.NotificationID != "" {
		return r.recordNamed(ctx, cb)
	}
	stream, err := r.match(ctx, cb.MessageSID)
	if err != nil {
		return "", err
	}
	if stream == "" {
		return OutcomeUnmatched, nil
	}
	return r.record(ctx, stream, cb)
}

// recordNamed records cb on the notification it names, once that notification is sent.
func (r *Recorder) recordNamed(ctx context.Context, cb StatusCallback) (Outcome, error) {
	id := cb.NotificationID
	deadline := time.Now().Add(r.wait)
	for {
		n, _, err := r.log.Notification(ctx, id)
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			return OutcomeUnmatched, nil
		}
		if err != nil {
			return "", fmt.Errorf("status callback for %s of %s: %w", cb.MessageSID, id, err)
		}
		switch {
		case n.Channel != herald.ChannelSMS:
			return OutcomeUnmatched, nil
		case n.Status == herald.StatusFailed, n.Status == herald.StatusCancelled:
			// The gateway took a message Herald gave up on, or that was cancelled between attempts
			// (an attempt that timed out, say): the recipient may well have it. The story stays as
			// it ends; an operator should know.
			r.logger.WarnContext(ctx, "sms status report for a notification recorded "+string(n.Status)+"; nothing recorded",
				"notification_id", id, "provider_message_id", cb.MessageSID, "reported", cb.MessageStatus,
				"correlation_id", herald.CorrelationID(ctx))
			return OutcomeUnmatched, nil
		case !n.Status.WasSent():
			// Pending or processing: the worker has the gateway's answer but has not recorded it
			// yet, or it will retry the attempt (whose idempotency token gets the same message).
			if !time.Now().Before(deadline) {
				return OutcomeEarly, nil
			}
			if r.onEarly != nil {
				r.onEarly(n)
			}
			t := time.NewTimer(min(pollEvery, time.Until(deadline)))
			select {
			case <-ctx.Done():
				t.Stop()
				return "", fmt.Errorf("status callback for %s of %s: wait for sent: %w", cb.MessageSID, id, ctx.Err())
			case <-t.C:
			}
			continue
		case n.ProviderMessageID != "" && n.ProviderMessageID != cb.MessageSID:
			// Another message of the same notification (a gateway that ignored the idempotency
			// token of a retried attempt): the one recorded is the one whose story this is.
			r.logger.WarnContext(ctx, "sms status report for another message than the one the notification was sent as; nothing recorded",
				"notification_id", id, "provider_message_id", cb.MessageSID, "sent_as", n.ProviderMessageID,
				"reported", cb.MessageStatus, "correlation_id", herald.CorrelationID(ctx))
			return OutcomeMismatched, nil
		}
		// Sent, as this message, or with a message id the gateway's answer did not carry: the
		// signed URL says the report is this notification's.
		return r.record(ctx, id, cb)
	}
}

// record appends what cb adds to the sent notification of stream, deciding again when the
// stream moved on under it.
func (r *Recorder) record(ctx context.Context, stream string, cb StatusCallback) (Outcome, error) {
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
