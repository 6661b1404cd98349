package handlers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/suppressions"
)

// Policy is how hard workers try.
type Policy struct {
	// MaxAttempts is how many delivery attempts a notification gets before it fails for good.
	MaxAttempts int
	// Lease is how long an attempt without a recorded outcome is presumed to be still running on
	// some worker. After it, the attempt is presumed abandoned (its worker died) and a new one may
	// start. It must exceed Timeout, or a slow attempt is duplicated; what is left of it after
	// Timeout is how long a worker keeps trying to record an attempt's outcome.
	Lease time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
}

// Decision errors: the command cannot start an attempt now.
var (
	// ErrAlreadySent: the notification was delivered; a redelivered command is acknowledged.
	ErrAlreadySent = errors.New("notification already sent")
	// ErrAlreadyFailed: the notification failed for good; nothing more is attempted.
	ErrAlreadyFailed = errors.New("notification already failed")
	// ErrAttemptInProgress: another worker's attempt is within its lease; try again later.
	ErrAttemptInProgress = errors.New("another delivery attempt is in progress")
	// ErrNotQueued: the stream does not exist.
	ErrNotQueued = errors.New("notification was never queued")
	// ErrNoOpenAttempt: an outcome was offered for an attempt that is not running.
	ErrNoOpenAttempt = errors.New("no delivery attempt is open")
	// ErrNotFailed: an operator asked to requeue or discard a notification that has not failed.
	ErrNotFailed = errors.New("notification has not failed")
)

// abandonedError is the error recorded for an attempt whose worker vanished before saying how it
// went. The message may or may not have reached the provider: this is where duplicates come from.
const abandonedError = "attempt abandoned: no outcome was recorded within the lease (worker stopped or lost its connection)"

// DecideStart returns the events that begin the next delivery attempt of n: NotificationProcessing,
// preceded by the outcome of an abandoned attempt if there is one. If that abandoned attempt was
// the last one allowed, the notification fails instead.
//
// now must come from the clock that stamped n's events, the database's, read when n was: an open
// attempt's age is now minus its start, and a worker's own clock may be far off.
func DecideStart(n herald.Notification, p Policy, now time.Time, worker string) ([]events.Event, error) {
	switch {
	case n.Version == 0:
		return nil, ErrNotQueued
	case n.Status.WasSent():
		return nil, ErrAlreadySent
	case n.Status == herald.StatusFailed:
		return nil, ErrAlreadyFailed
	case n.Status == herald.StatusCancelled:
		return nil, ErrCancelled
	case n.Status == herald.StatusScheduled:
		return nil, ErrScheduled
	}

	var out []events.Event
	if n.AttemptOpen {
		abandoned, err := abandonedAttempt(n, p.Lease, now)
		if err != nil {
			return nil, err
		}
		if roundAttempts(n) >= p.MaxAttempts {
			return []events.Event{&events.NotificationFailed{
				Attempt: n.Attempts, Error: abandonedError, Reason: events.ReasonAttemptsExhausted,
			}}, nil
		}
		out = append(out, abandoned)
	} else if roundAttempts(n) >= p.MaxAttempts {
		// Only reachable when MaxAttempts was lowered while the notification was retrying.
		return []events.Event{&events.NotificationFailed{
			Attempt: n.Attempts, Provider: n.Provider, Error: n.LastError, Reason: events.ReasonAttemptsExhausted,
		}}, nil
	}
	return append(out, &events.NotificationProcessing{Attempt: n.Attempts + 1, Worker: worker}), nil
}

// abandonedAttempt returns the outcome to record for n's open attempt once it is past its lease,
// judged at now on the database's clock: its worker is presumed gone. Within the lease it returns
// ErrAttemptInProgress.
func abandonedAttempt(n herald.Notification, lease time.Duration, now time.Time) (*events.DeliveryAttemptFailed, error) {
	if now.Sub(n.AttemptStartedAt) < lease {
		return nil, ErrAttemptInProgress
	}
	return &events.DeliveryAttemptFailed{Attempt: n.Attempts, Error: abandonedError}, nil
}

// DecideOutcome returns the event that records how n's open attempt went: NotificationSent on
// success, DeliveryAttemptFailed for a transient error with attempts left, NotificationFailed for a
// permanent error or the last attempt.
func DecideOutcome(n herald.Notification, p Policy, route delivery.Route, providerMessageID string, sendErr error) ([]events.Event, error) {
	if n.Status != herald.StatusProcessing || !n.AttemptOpen {
		return nil, fmt.Errorf("%w: notification %s is %s", ErrNoOpenAttempt, n.ID, n.Status)
	}
	provider, from := route.Provider, passedOver(route.FailedOverFrom)
	switch {
	case sendErr == nil:
		return []events.Event{&events.NotificationSent{
			Attempt: n.Attempts, Provider: provider, ProviderMessageID: providerMessageID, FailedOverFrom: from,
		}}, nil
	case delivery.IsPermanent(sendErr):
		return []events.Event{&events.NotificationFailed{
			Attempt: n.Attempts, Provider: provider, Error: sendErr.Error(), Reason: events.ReasonPermanentError, FailedOverFrom: from,
		}}, nil
	case roundAttempts(n) >= p.MaxAttempts:
		return []events.Event{&events.NotificationFailed{
			Attempt: n.Attempts, Provider: provider, Error: sendErr.Error(), Reason: events.ReasonAttemptsExhausted, FailedOverFrom: from,
		}}, nil
	}
	return []events.Event{&events.DeliveryAttemptFailed{
		Attempt: n.Attempts, Provider: provider, Error: sendErr.Error(), FailedOverFrom: from,
	}}, nil
}

// passedOver is the route's failed-over providers as the events record them.
func passedOver(from []delivery.PassedOver) []events.PassedOver {
	if len(from) == 0 {
		return nil
	}
	out := make([]events.PassedOver, len(from))
	for i, p := range from {
		out[i] = events.PassedOver{Provider: p.Provider, Error: p.Error}
	}
	return out
}

// DecideSuppressed returns start — the events DecideStart gave for n's next attempt — with
// that attempt replaced by the notification's failure, reason suppressed: its recipient is on
// the suppression list (s), so no provider is called. The outcome of an abandoned attempt, if
// start records one, stays before it. failed is false when start began no attempt (the
// notification fails for another reason): then start is returned as it is.
func DecideSuppressed(start []events.Event, n herald.Notification, s suppressions.Suppression) (out []events.Event, failed bool) {
	out = make([]events.Event, 0, len(start))
	for _, e := range start {
		if _, attempt := e.(*events.NotificationProcessing); attempt {
			e = &events.NotificationFailed{Attempt: n.Attempts, Error: SuppressedError(s), Reason: events.ReasonSuppressed}
			failed = true
		}
		out = append(out, e)
	}
	return out, failed
}

// SuppressedError says why a suppressed recipient is not sent to: recipient suppressed
// (hard_bounce: 5.1.1 user unknown) since 2026-12-05T10:00:00Z.
func SuppressedError(s suppressions.Suppression) string {
	why := s.Cause
	if s.Reason != "" {
		why += ": " + s.Reason
	}
	text := fmt.Sprintf("recipient suppressed (%s) since %s", why, s.CreatedAt.UTC().Format(time.RFC3339))
	if s.ExpiresAt != nil {
		text += " until " + s.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return text
}

// roundAttempts counts the attempts of the current round: MaxAttempts applies to each round.
func roundAttempts(n herald.Notification) int { return n.Attempts - n.RoundStart }

// DecideRequeue returns the event that sends a failed notification back for a new round of
// attempts, on an operator's say.
func DecideRequeue(n herald.Notification, actor, reason string) ([]events.Event, error) {
	if err := operatorCanAct(n, actor); err != nil {
		return nil, err
	}
	return []events.Event{&events.NotificationRequeued{Actor: actor, Reason: reason, Attempts: n.Attempts}}, nil
}

// DecideDiscard returns the event that records an operator giving up on a failed notification.
// A reason is required: it is the only account of why the message was never delivered.
func DecideDiscard(n herald.Notification, actor, reason string) ([]events.Event, error) {
	if err := operatorCanAct(n, actor); err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, herald.Invalid("a discard needs a reason", map[string]string{"reason": "is required"})
	}
	return []events.Event{&events.NotificationDiscarded{Actor: actor, Reason: reason}}, nil
}

func operatorCanAct(n herald.Notification, actor string) error {
	switch {
	case n.Version == 0:
		return ErrNotQueued
	case strings.TrimSpace(actor) == "":
		return herald.Invalid("an operator action needs an actor", map[string]string{"actor": "is required"})
	case n.Status != herald.StatusFailed:
		return fmt.Errorf("%w: notification %s is %s", ErrNotFailed, n.ID, n.Status)
	}
	return nil
}
