package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/ratelimit"
)

// RateLimiter holds sends to their provider's rate (see ratelimit.Buckets).
type RateLimiter interface {
	// Wait returns once a send to provider may start, higher priorities first, or with ctx's
	// error, or with an error wrapping ratelimit.ErrWaitTooLong after the limiter's longest wait.
	Wait(ctx context.Context, provider string, p herald.Priority) error
}

// ErrRequeue is wrapped by the errors after which the command should go straight back to its
// queue rather than be tried again in this process: a wait for the rate limit that lasted the
// limiter's longest wait. Nothing was recorded and no attempt spent; trying again at once would
// only hold the message longer than the broker lets a consumer hold it.
var ErrRequeue = errors.New("handed back to its queue")

// Requeue reports whether err means the command goes back to its queue without more tries here.
func Requeue(err error) bool { return errors.Is(err, ErrRequeue) }

var _ RateLimiter = (ratelimit.Limiter)(nil)

// WithRateLimiter returns a copy of d that waits for limits before each attempt. The wait comes
// after the decision that an attempt starts and before its NotificationProcessing is recorded:
// waiting is not an attempt, spends none of the notification's attempts, and does not count
// against the attempt's timeout. Shutdown (the message's context) ends it early, and so does the
// limiter's longest wait (the error then wraps ErrRequeue); either way the command goes back to
// its queue as it would before any attempt, and nothing is recorded.
func (d *Deliverer) WithRateLimiter(limits RateLimiter) *Deliverer {
	c := *d
	c.limits = limits
	return &c
}

// awaitRate waits for provider's rate limit to let n's attempt start. waited is true when d has
// a limiter and it let the attempt go: time may have passed since the decision.
func (d *Deliverer) awaitRate(ctx context.Context, provider string, n herald.Notification) (waited bool, err error) {
	if d.limits == nil {
		return false, nil
	}
	if err := d.limits.Wait(ctx, provider, n.Priority); errors.Is(err, ratelimit.ErrWaitTooLong) {
		return false, fmt.Errorf("%w: %w", ErrRequeue, err)
	} else if err != nil {
		return false, fmt.Errorf("wait for the rate limit of %s: %w", provider, err)
	}
	return true, nil
}

// opensAttempt reports whether evs start an attempt (rather than only fail the notification).
func opensAttempt(evs []events.Event) bool {
	for _, e := range evs {
		if _, ok := e.(*events.NotificationProcessing); ok {
			return true
		}
	}
	return false
}

// timeout bounds one step of a delivery (deciding, or the attempt) by the policy's Timeout; no
// bound when it is 0.
func (d *Deliverer) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.policy.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d.policy.Timeout)
}
