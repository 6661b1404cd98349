package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// cancellable are the statuses a notification may be cancelled in, provided no attempt is in
// flight (an open attempt past its lease is not: its worker is gone): scheduled (waiting for its send_at; the scheduler then drops its row unreleased),
// pending (waiting for its first attempt, or for the first of a new round), and processing
// between attempts (the last one failed, a retry waits). Every other status is past the point of
// calling it off: sent and what follows it went out, failed and cancelled are final.
var cancellable = map[herald.Status]bool{
	herald.StatusScheduled:  true,
	herald.StatusPending:    true,
	herald.StatusProcessing: true,
}

// Cancelling errors, wrapped by the *herald.Error DecideCancel returns.
var (
	// ErrCancelled: the notification was cancelled; a command of it is acknowledged unsent.
	ErrCancelled = errors.New("notification was cancelled")
	// ErrNotCancellable: the notification went out, failed, was cancelled already, or an attempt
	// of it is in flight.
	ErrNotCancellable = errors.New("notification cannot be cancelled")
)

// maxCancelReasonChars bounds the reason given for a cancel.
const maxCancelReasonChars = 500

// DecideCancel returns the events that call off n, on actor's say: NotificationCancelled, when n
// is in a cancellable status with no attempt in flight. An open attempt older than lease is no
// longer in flight: its worker is presumed gone, as DecideStart presumes it, and its abandonment
// (the same DeliveryAttemptFailed DecideStart records) comes before NotificationCancelled, so
// that no worker sends it afterwards. now is the database's clock, read with n: the clock that
// stamped the attempt's start.
//
// Otherwise it returns ErrNotQueued for a notification that does not exist, an EINVALID error for
// a bad actor or reason, and an ECONFLICT error wrapping ErrNotCancellable whose message and
// fields name n's status.
func DecideCancel(n herald.Notification, lease time.Duration, now time.Time, actor, reason string) ([]events.Event, error) {
	if n.Version == 0 {
		return nil, ErrNotQueued
	}
	if err := checkCancelWords(actor, reason); err != nil {
		return nil, err
	}
	var out []events.Event
	switch {
	case n.AttemptOpen:
		abandoned, err := abandonedAttempt(n, lease, now)
		if err != nil {
			return nil, notCancellable(n, fmt.Sprintf("attempt %d is in flight", n.Attempts))
		}
		out = append(out, abandoned)
	case !cancellable[n.Status]:
		return nil, notCancellable(n, "only a notification that has not gone out (scheduled, pending, or waiting between attempts) can be cancelled")
	}
	return append(out, &events.NotificationCancelled{Actor: actor, Reason: reason}), nil
}

// notCancellable is DecideCancel's refusal of n, saying why.
func notCancellable(n herald.Notification, why string) error {
	return &herald.Error{
		Code:    herald.ECONFLICT,
		Message: fmt.Sprintf("notification %s is %s: %s", n.ID, n.Status, why),
		Fields:  map[string]string{"status": string(n.Status)},
		Err:     ErrNotCancellable,
	}
}

// checkCancelWords checks who cancels and why.
func checkCancelWords(actor, reason string) error {
	fields := map[string]string{}
	switch {
	case strings.TrimSpace(actor) == "":
		fields["actor"] = "is required: say who is cancelling"
	case utf8.RuneCountInString(actor) > maxActorChars:
		fields["actor"] = fmt.Sprintf("is longer than %d characters", maxActorChars)
	case !utf8.ValidString(actor) || strings.ContainsRune(actor, 0):
		fields["actor"] = "must be UTF-8 text without NUL characters"
	}
	switch {
	case utf8.RuneCountInString(reason) > maxCancelReasonChars:
		fields["reason"] = fmt.Sprintf("is longer than %d characters", maxCancelReasonChars)
	case !utf8.ValidString(reason) || strings.ContainsRune(reason, 0):
		fields["reason"] = "must be UTF-8 text without NUL characters"
	}
	if len(fields) > 0 {
		return herald.Invalid("the cancel is invalid", fields)
	}
	return nil
}

// MayCancel reports whether by may cancel the notification queued opens: one that may cancel any
// (an operator) may, and otherwise only the API key it was sent with.
func MayCancel(queued *events.NotificationQueued, by Canceler) bool {
	if by.Any {
		return true
	}
	return queued != nil && queued.APIKey != nil && by.KeyID != "" && queued.APIKey.ID == by.KeyID
}

// Canceler is who asks to cancel.
type Canceler struct {
	// Actor names them in the log: "apikey:<name>", or an operator's name.
	Actor string
	// KeyID is the API key they ask with: the one whose notifications they may cancel, and under
	// which their idempotency keys are kept. Empty for an operator on the machine.
	KeyID string
	// Any is true when they may cancel any notification: an API key with the operate scope, or
	// an operator on the machine.
	Any bool
}

// Canceller calls off notifications that have not gone out: it appends NotificationCancelled
// with the stream's expected version, so that it and a worker's start of an attempt cannot both
// be recorded after the same version.
type Canceller struct {
	log CancelLog
	db  events.Querier
	// lease is the workers' attempt lease (Policy.Lease): an open attempt older than it is
	// abandoned, and its notification may be cancelled.
	lease time.Duration
	// writeTimeout bounds the decision and the append; they run detached from the caller, so a
	// client that hangs up learns nothing it could not ask again.
	writeTimeout time.Duration
	// idempotencyTTL is how long the acceptor remembers an idempotency key.
	idempotencyTTL time.Duration
}

// CancelLog is the event log as the canceller uses it (see events.Log).
type CancelLog interface {
	// NotificationEventsNow folds a stream and returns it with its events and the database's
	// clock, read with them: ENOTFOUND when it is not a notification's.
	NotificationEventsNow(ctx context.Context, stream string) (herald.Notification, []events.Recorded, time.Time, error)
	// Append adds events after version expected: ECONFLICT wrapping events.ErrConflict when
	// the stream moved on.
	Append(ctx context.Context, stream string, expected int64, md events.Metadata, evs ...events.Event) ([]events.Recorded, error)
}

var _ CancelLog = (*events.Log)(nil)

// NewCanceller returns a canceller appending to log, which looks idempotency keys up in db. lease
// must be the workers' attempt lease (Policy.Lease): an open attempt older than it is presumed
// abandoned, as the workers presume it, and its notification cancelled. A lease of 0 or less
// presumes no attempt abandoned: an open attempt always refuses the cancel.
func NewCanceller(db events.Querier, log CancelLog, lease time.Duration) *Canceller {
	if lease <= 0 {
		lease = math.MaxInt64
	}
	return &Canceller{log: log, db: db, lease: lease, writeTimeout: 10 * time.Second, idempotencyTTL: DefaultIdempotencyTTL}
}

// WithIdempotencyTTL returns a copy of c that finds idempotency keys for as long as the acceptor
// remembers them (see Acceptor.WithIdempotencyTTL).
func (c *Canceller) WithIdempotencyTTL(ttl time.Duration) *Canceller {
	cc := *c
	cc.idempotencyTTL = ttl
	return &cc
}

// cancelAttempts bounds how often a cancel decides again after losing a race to another writer.
// Each loss means the stream moved on; a worker's start of an attempt makes the next decision a
// refusal, so more than a few in a row take a stream that is being written without pause.
const cancelAttempts = 5

// Cancel calls off notification id for by, with reason, and returns it cancelled. It returns
// ENOTFOUND for a malformed or unknown id and for a notification by may not cancel (so that ids
// cannot be probed), EINVALID for a bad reason, and an ECONFLICT error wrapping
// ErrNotCancellable, naming the status in its fields, when the notification is past cancelling.
// When another writer appends first, it loads the notification again and decides again.
func (c *Canceller) Cancel(ctx context.Context, id string, by Canceler, reason string) (herald.Notification, error) {
	id, err := ParseID(id)
	if err != nil {
		return herald.Notification{}, herald.Errorf(herald.ENOTFOUND, "no such notification: not a notification id (a UUID)")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.writeTimeout)
	defer cancel()
	for try := 1; ; try++ {
		n, recs, now, err := c.log.NotificationEventsNow(ctx, id)
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			return n, herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
		}
		if err != nil {
			return n, fmt.Errorf("cancel %s: %w", id, err)
		}
		if !MayCancel(queuedOf(recs), by) {
			return herald.Notification{}, herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
		}
		evs, err := DecideCancel(n, c.lease, now, by.Actor, reason)
		if err != nil {
			return n, err
		}
		md := events.Metadata{CorrelationID: recs[0].Metadata.CorrelationID, CausationID: herald.CorrelationID(ctx), Actor: by.Actor}
		if md.CorrelationID == "" {
			md.CorrelationID = herald.CorrelationID(ctx)
		}
		out, err := c.log.Append(ctx, id, n.Version, md, evs...)
		if errors.Is(err, events.ErrConflict) && try < cancelAttempts {
			// A worker may have just started an attempt: the next decision says so.
			continue
		}
		if err != nil {
			return n, fmt.Errorf("cancel %s: %w", id, err)
		}
		for i, r := range out {
			n = events.Evolve(n, r, evs[i])
		}
		return n, nil
	}
}

// CancelByKey cancels, as Cancel does, the notification by sent with idempotency key key, while
// the key is remembered. An unknown key, or one of another API key, is ENOTFOUND.
func (c *Canceller) CancelByKey(ctx context.Context, key string, by Canceler, reason string) (herald.Notification, error) {
	if strings.TrimSpace(key) == "" {
		return herald.Notification{}, herald.Invalid("the cancel is invalid", map[string]string{"idempotency_key": "is required"})
	}
	keyID := by.KeyID
	if keyID == "" {
		keyID = anonymousKey
	}
	var id string
	err := c.db.QueryRow(ctx, `SELECT notification_id::text FROM idempotency_keys
		WHERE api_key_id = $1 AND key = $2 AND created_at >= now() - $3::interval`,
		keyID, key, c.idempotencyTTL.String()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return herald.Notification{}, herald.Errorf(herald.ENOTFOUND, "no notification was sent with idempotency key %q", key)
	}
	if err != nil {
		return herald.Notification{}, fmt.Errorf("cancel by idempotency key: %w", err)
	}
	return c.Cancel(ctx, id, by, reason)
}

// queuedOf is the NotificationQueued that opens a notification's stream recs, or nil.
func queuedOf(recs []events.Recorded) *events.NotificationQueued {
	if len(recs) == 0 {
		return nil
	}
	e, err := recs[0].Event()
	if err != nil {
		return nil
	}
	q, _ := e.(*events.NotificationQueued)
	return q
}

// NotificationCancelled: a cancelled notification never failed; there is nothing to act on.
func (lastFailure) NotificationCancelled(*events.NotificationCancelled) {}
