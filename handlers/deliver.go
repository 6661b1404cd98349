package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/suppressions"
	"github.com/herald-notify/herald/tracing"
)

// ErrFinal is wrapped by the errors after which retrying a command cannot help: the notification
// failed for good (NotificationFailed is in its stream), or the command itself is unusable. The
// worker parks such commands in the poison queue instead of retrying them.
var ErrFinal = errors.New("final")

// Final reports whether err means the command must not be retried.
func Final(err error) bool { return errors.Is(err, ErrFinal) }

// Store is the event log as the deliverer uses it.
type Store interface {
	// NotificationNow folds a stream and returns it with the database's clock, read with it: the
	// clock its events' times come from. ENOTFOUND when it has no events.
	NotificationNow(ctx context.Context, stream string) (herald.Notification, time.Time, error)
	// Load returns a stream's events in version order.
	Load(ctx context.Context, stream string) ([]events.Recorded, error)
	// Append adds events after version expected; ECONFLICT wrapping events.ErrConflict when the
	// stream moved on.
	Append(ctx context.Context, stream string, expected int64, md events.Metadata, evs ...events.Event) ([]events.Recorded, error)
}

var _ Store = (*events.Log)(nil)

// Deliverer handles SendNotification commands: one delivery attempt per call.
type Deliverer struct {
	store     Store
	providers map[herald.Channel]delivery.Provider
	policy    Policy
	worker    string
	logger    *slog.Logger
	// now is the worker's own clock. Leases are never judged by it (see Deliver); it only serves
	// to warn when it strays from the database's.
	now func() time.Time
	// skewWarned is when the last clock skew warning was logged (Unix nanoseconds), shared by
	// the copies WithClock makes.
	skewWarned *atomic.Int64
	// recordFor bounds how long an outcome is retried against the log after the provider answered.
	recordFor time.Duration
	// suppressions, when set, is asked about the recipient before each attempt.
	suppressions Suppressions
	// files, when set, gives the bytes of the emails' attachments.
	files Files
	// limits, when set, holds each attempt to its provider's rate.
	limits RateLimiter
	// tracing opens a span for each provider call.
	tracing tracing.Tracing
	// metrics, when set, counts the attempts' outcomes.
	metrics *DeliveryMetrics
	// conns, when set, lends the connection on which an attempt starts in one transaction.
	conns Conns
	// outcomes, when set, records attempts' outcomes instead of store.
	outcomes Appender
}

// WithTracing returns a copy of d that opens a span, a child of the attempt's, for each call to
// a provider.
func (d *Deliverer) WithTracing(t tracing.Tracing) *Deliverer {
	c := *d
	c.tracing = t
	return &c
}

// Appender appends events after an expected version, as Store.Append does: the log itself, or an
// events.Group, which lets concurrent appends share a commit.
type Appender interface {
	Append(ctx context.Context, stream string, expected int64, md events.Metadata, evs ...events.Event) ([]events.Recorded, error)
}

var _ Appender = (*events.Group)(nil)

// WithOutcomes returns a copy of d that records the outcomes of its attempts through outcomes:
// with an events.Group, the outcomes of concurrent attempts share commits, each still checked
// against its stream's version and failing alone on a conflict.
func (d *Deliverer) WithOutcomes(outcomes Appender) *Deliverer {
	c := *d
	c.outcomes = outcomes
	return &c
}

// Files is the store of attachments' bytes as the deliverer reads it (see attachments.Store).
type Files interface {
	// Load returns the bytes of the files hashes names, by hash, in one query; a file no longer
	// stored is absent from the answer.
	Load(ctx context.Context, hashes []string) (map[string][]byte, error)
}

var _ Files = (*attachments.Store)(nil)

// WithFiles returns a copy of d that reads the attachments of the emails it sends from files.
func (d *Deliverer) WithFiles(files Files) *Deliverer {
	c := *d
	c.files = files
	return &c
}

// Suppressions is the suppression list as the deliverer asks it (see suppressions.Store).
type Suppressions interface {
	// Lookup returns the suppression that holds for recipient on channel now, if one does.
	Lookup(ctx context.Context, channel herald.Channel, recipient string) (suppressions.Suppression, bool, error)
}

var _ Suppressions = (*suppressions.Store)(nil)

// NewDeliverer returns a deliverer sending through providers, appending to store, identified in
// the log as worker.
func NewDeliverer(store Store, providers map[herald.Channel]delivery.Provider, policy Policy, worker string, logger *slog.Logger) *Deliverer {
	if policy.MaxAttempts < 1 {
		policy.MaxAttempts = 1
	}
	return &Deliverer{
		store:      store,
		providers:  providers,
		policy:     policy,
		worker:     worker,
		logger:     logger,
		now:        time.Now,
		skewWarned: new(atomic.Int64),
		// Recording an outcome is retried for at most what the lease leaves after the attempt,
		// so that no other worker presumes the attempt abandoned while its outcome is on its way.
		recordFor: max(time.Second, policy.Lease-policy.Timeout),
	}
}

// WithMetrics returns a copy of d that counts each attempt's outcome in m.
func (d *Deliverer) WithMetrics(m *DeliveryMetrics) *Deliverer {
	c := *d
	c.metrics = m
	return &c
}

// WithSuppressions returns a copy of d that asks list before each attempt: a notification whose
// recipient is suppressed fails, reason suppressed, and no provider is called. The list is asked
// at the last moment, so a suppression that arrives while a notification waits in its queue
// holds for it too.
func (d *Deliverer) WithSuppressions(list Suppressions) *Deliverer {
	c := *d
	c.suppressions = list
	return &c
}

// WithClock returns a copy of d whose own clock reads now. Leases are judged on the database's
// clock whatever this one says; a worker clock that strays from it is only reported.
func (d *Deliverer) WithClock(now func() time.Time) *Deliverer {
	c := *d
	c.now = now
	return &c
}

// Deliver makes one delivery attempt for the notification cmd names.
//
// It returns nil when the notification is sent (now or before: redelivered commands are
// acknowledged without sending again) or was cancelled (acknowledged unsent), an error wrapping ErrFinal when the notification failed
// for good or cmd is unusable, and any other error when the attempt failed and should be retried.
// md is stamped on every event appended.
func (d *Deliverer) Deliver(ctx context.Context, cmd commands.SendNotification, md events.Metadata) error {
	provider, ok := d.providers[cmd.Channel]
	if !ok {
		return fmt.Errorf("deliver %s: %w: no provider for channel %q", cmd.NotificationID, ErrFinal, cmd.Channel)
	}
	n, ctx, cancel, send, err := d.start(ctx, provider.Name(), cmd, md)
	defer cancel()
	if !send || err != nil {
		return err
	}

	// Once the provider is called, its answer must be recorded whatever happens to ctx: a shutdown
	// cancels ctx, but the send that is under way finishes within the attempt's deadline.
	sendCtx, cancelSend := detach(ctx)
	defer cancelSend()
	var msgID string
	route := delivery.Route{Provider: provider.Name()}
	files, sendErr := d.attachments(sendCtx, n)
	if sendErr == nil {
		// A channel with secondary providers may send through another than its first: the
		// route says which, and which it failed over from.
		msgID, route, sendErr = d.callProvider(sendCtx, provider, n, files)
	}

	outcome, err := DecideOutcome(n, d.policy, route, msgID, sendErr)
	if err != nil {
		return fmt.Errorf("deliver %s: %w", n.ID, err)
	}
	n, err = d.record(ctx, n, md, outcome)
	if err != nil {
		return fmt.Errorf("deliver %s: record attempt %d: %w", n.ID, n.Attempts, err)
	}
	d.metrics.observe(n)
	return d.report(ctx, n, route.Provider, msgID, sendErr)
}

// callProvider sends n through provider under the span of the call, which it ends even if the
// provider panics (the router recovers the panic and the attempt is retried): a panic is
// recorded as a transient failure.
func (d *Deliverer) callProvider(ctx context.Context, provider delivery.Provider, n herald.Notification, files []delivery.Attachment) (msgID string, route delivery.Route, err error) {
	callCtx, span := d.startProviderCall(ctx, provider.Name(), n)
	returned := false
	defer func() {
		if !returned {
			err = errProviderPanicked
		}
		endProviderCall(span, route, err)
	}()
	msgID, route, err = delivery.SendVia(callCtx, provider, delivery.Message{
		NotificationID: n.ID,
		Attempt:        n.Attempts,
		Channel:        n.Channel,
		Recipient:      n.Recipient,
		Subject:        n.Subject,
		Body:           n.Body,
		HTML:           n.HTML,
		Attachments:    files,
	})
	returned = true
	return msgID, route, err
}

// errProviderPanicked is what a provider call's span records of a panic: the panic goes on.
var errProviderPanicked = errors.New("provider panicked")

// start loads the notification cmd names and records the start of its next attempt. send is
// true when that attempt is to be made with the n it returns; false with a nil error when the
// notification was sent already (a redelivered command, acknowledged), and false with an error
// when no attempt can start (wrapping ErrFinal when none ever will).
//
// It waits for the provider's rate limit, when d has one, after deciding and before recording the
// attempt's start: the wait is no attempt, and the attempt's timeout does not count it. The
// decision and the attempt are each bounded by the policy's Timeout; attempt is the context of
// the attempt, to be cancelled by the caller.
func (d *Deliverer) start(ctx context.Context, provider string, cmd commands.SendNotification, md events.Metadata) (n herald.Notification, attempt context.Context, cancel context.CancelFunc, send bool, err error) {
	steps := d.steps()
	defer steps.end(ctx)
	if d.limits == nil {
		// No wait can come between the read and the append: they, and the lookup between
		// them, are one transaction.
		steps.begin()
	}
	dctx, dcancel := d.timeout(ctx)
	n, evs, err := d.decide(dctx, steps, cmd)
	var (
		sup        suppressions.Suppression
		suppressed bool
	)
	if err == nil && evs != nil && opensAttempt(evs) {
		sup, suppressed, err = d.suppressedNow(dctx, steps, n)
	}
	dcancel()
	if err != nil || evs == nil {
		return n, ctx, func() {}, false, err
	}
	if suppressed {
		evs, suppressed = DecideSuppressed(evs, n, sup)
	} else if opensAttempt(evs) {
		waited, err := d.awaitRate(ctx, provider, n)
		if err != nil {
			return n, ctx, func() {}, false, fmt.Errorf("deliver %s: %w", n.ID, err)
		}
		if waited {
			// The wait may have lasted minutes, and a suppression is not on the notification's
			// stream, so the append below would not notice one that arrived meanwhile (an SMS
			// STOP): the list is asked again, at the last moment, in the append's transaction.
			steps.begin()
			dctx, dcancel := d.timeout(ctx)
			sup, suppressed, err = d.suppressedNow(dctx, steps, n)
			dcancel()
			if err != nil {
				return n, ctx, func() {}, false, err
			}
			if suppressed {
				evs, suppressed = DecideSuppressed(evs, n, sup)
			}
		}
	}
	attempt, cancel = d.timeout(ctx)
	recs, err := steps.append(attempt, n.ID, n.Version, md, evs)
	if err != nil {
		return n, attempt, cancel, false, fmt.Errorf("deliver %s: start attempt %d: %w", n.ID, n.Attempts+1, err)
	}
	n = evolve(n, recs, evs)
	if n.Status == herald.StatusFailed {
		// Failed without a send: suppressed, or the attempts ran out on abandoned ones.
		d.metrics.observe(n)
	}
	if suppressed {
		// Not a failure anyone must act on: the command is acknowledged, not parked.
		d.logger.InfoContext(ctx, "notification not sent: its recipient is suppressed", "notification_id", n.ID,
			"cause", sup.Cause)
		return n, attempt, cancel, false, nil
	}
	if n.Status == herald.StatusFailed {
		return n, attempt, cancel, false, fmt.Errorf("deliver %s: %w: %s", n.ID, ErrFinal, n.LastError)
	}
	return n, attempt, cancel, true, nil
}

// suppressedNow asks the suppression list about n's recipient through steps.
func (d *Deliverer) suppressedNow(ctx context.Context, steps startSteps, n herald.Notification) (suppressions.Suppression, bool, error) {
	sup, ok, err := steps.lookup(ctx, n)
	if err != nil {
		return sup, false, fmt.Errorf("deliver %s: %w", n.ID, err)
	}
	return sup, ok, nil
}

// decide loads the notification cmd names through steps and decides what starts its next
// attempt: the events to append (nil, with a nil error, when nothing is to be done: it was sent
// already). Whether its recipient is suppressed is asked after, and only of an attempt.
func (d *Deliverer) decide(ctx context.Context, steps startSteps, cmd commands.SendNotification) (n herald.Notification, evs []events.Event, err error) {
	// The lease of an open attempt is judged on the database's clock, which stamped the attempt's
	// start: a worker whose clock runs ahead must not declare a live attempt abandoned and send
	// again, nor one whose clock runs behind keep a dead attempt alive.
	asked := d.now()
	n, dbNow, err := steps.read(ctx, cmd.NotificationID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return n, nil, fmt.Errorf("deliver %s: %w: %w", cmd.NotificationID, ErrFinal, ErrNotQueued)
	} else if err != nil {
		return n, nil, fmt.Errorf("deliver %s: %w", cmd.NotificationID, err)
	}
	if n.Channel != cmd.Channel {
		return n, nil, fmt.Errorf("deliver %s: %w: command for %s but notification is %s", n.ID, ErrFinal, cmd.Channel, n.Channel)
	}

	d.checkClock(ctx, asked, dbNow)
	start, err := DecideStart(n, d.policy, dbNow, d.worker)
	switch {
	case errors.Is(err, ErrAlreadySent):
		d.logger.DebugContext(ctx, "redelivered command for a sent notification acknowledged", "notification_id", n.ID)
		return n, nil, nil
	case errors.Is(err, ErrCancelled):
		// Called off before it went out: nothing to send, nothing to park, nothing to record.
		d.logger.InfoContext(ctx, "command of a cancelled notification acknowledged unsent", "notification_id", n.ID)
		return n, nil, nil
	case errors.Is(err, ErrScheduled):
		d.logger.WarnContext(ctx, "command of a scheduled notification acknowledged without sending: its release queues its own", "notification_id", n.ID)
		return n, nil, nil
	case errors.Is(err, ErrAlreadyFailed):
		// The stream is read again below, on another of the pool's connections.
		steps.end(ctx)
		if reason, rerr := d.failureReason(ctx, n.ID); rerr == nil && reason == events.ReasonSuppressed {
			// It failed because its recipient was suppressed, and that acknowledgement was lost:
			// nothing to park, whatever the list says now.
			d.logger.DebugContext(ctx, "redelivered command of a suppressed notification acknowledged", "notification_id", n.ID)
			return n, nil, nil
		}
		// Park it again: if an earlier park was lost with its acknowledgement, this restores it.
		return n, nil, fmt.Errorf("deliver %s: %w: %w", n.ID, ErrFinal, err)
	case err != nil:
		return n, nil, fmt.Errorf("deliver %s: %w", n.ID, err)
	}
	return n, start, nil
}

// ErrAttachmentGone is wrapped by the error of an attempt whose attachment is no longer stored:
// the retention sweep deleted it. The notification fails for good; the log still names the file
// by its hash.
var ErrAttachmentGone = errors.New("attachment no longer stored")

// attachments loads the bytes of n's attachments, at the last moment and in one query. An
// attachment that is gone is a permanent error of the attempt; failing to read is a transient
// one.
func (d *Deliverer) attachments(ctx context.Context, n herald.Notification) ([]delivery.Attachment, error) {
	if len(n.Attachments) == 0 {
		return nil, nil
	}
	if d.files == nil {
		return nil, errors.New("this worker was built without the attachments' store")
	}
	hashes := make([]string, len(n.Attachments))
	for i, a := range n.Attachments {
		hashes[i] = a.SHA256
	}
	data, err := d.files.Load(ctx, hashes)
	if err != nil {
		return nil, err
	}
	out := make([]delivery.Attachment, len(n.Attachments))
	for i, a := range n.Attachments {
		b, ok := data[a.SHA256]
		if !ok {
			return nil, delivery.Permanent(fmt.Errorf("%w: %s (sha256 %s) was deleted after the retention time", ErrAttachmentGone, a.Filename, a.SHA256))
		}
		out[i] = delivery.Attachment{Filename: a.Filename, ContentType: a.ContentType, Data: b}
	}
	return out, nil
}

// failureReason is the reason of the latest NotificationFailed in stream: why it failed. Only a
// redelivered command of a failed notification asks, so the stream is loaded only then.
func (d *Deliverer) failureReason(ctx context.Context, stream string) (string, error) {
	recs, err := d.store.Load(ctx, stream)
	if err != nil {
		return "", err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Type != events.TypeNotificationFailed {
			continue
		}
		e, err := recs[i].Event()
		if err != nil {
			return "", err
		}
		return e.(*events.NotificationFailed).Reason, nil
	}
	return "", nil
}

// suppressed asks the suppression list, if d has one, about n's recipient.
func (d *Deliverer) suppressed(ctx context.Context, n herald.Notification) (suppressions.Suppression, bool, error) {
	if d.suppressions == nil {
		return suppressions.Suppression{}, false, nil
	}
	sup, ok, err := d.suppressions.Lookup(ctx, n.Channel, n.Recipient)
	if err != nil {
		return sup, false, fmt.Errorf("ask the suppression list: %w", err)
	}
	return sup, ok, nil
}

// report logs how the attempt recorded in n went, through provider, and returns what Deliver
// returns for it: nil when sent, an error wrapping ErrFinal when the notification failed for
// good, and sendErr otherwise, so that the command is retried.
func (d *Deliverer) report(ctx context.Context, n herald.Notification, provider, msgID string, sendErr error) error {
	switch n.Status {
	case herald.StatusSent:
		if msgID == "" {
			// The provider took the message but gave no id Herald could read (an SMS gateway's
			// 2xx with an unreadable body): sent, but not traceable at the provider by id.
			d.logger.WarnContext(ctx, "notification sent; the provider's answer carried no message id", "notification_id", n.ID,
				"attempt", n.Attempts, "provider", provider)
			return nil
		}
		d.logger.InfoContext(ctx, "notification sent", "notification_id", n.ID, "attempt", n.Attempts,
			"provider", provider, "provider_message_id", msgID)
		return nil
	case herald.StatusFailed:
		d.logger.WarnContext(ctx, "notification failed", "notification_id", n.ID, "attempt", n.Attempts,
			"provider", provider, "error", sendErr)
		return fmt.Errorf("deliver %s: %w: attempt %d: %w", n.ID, ErrFinal, n.Attempts, sendErr)
	}
	return fmt.Errorf("deliver %s: attempt %d of %d: %w", n.ID, n.Attempts, d.policy.MaxAttempts, sendErr)
}

// Clock skew past maxClockSkew between a worker and the database is logged, at most once per
// skewWarnEvery.
const (
	maxClockSkew  = 2 * time.Second
	skewWarnEvery = time.Minute
)

// checkClock warns when the worker's clock strays from the database's. Nothing depends on the
// worker's clock, but an operator reading its logs next to the log's times should know. dbNow was
// read between asked and now by the worker's clock; only a distance beyond that span is skew, so
// a slow query is not mistaken for it.
func (d *Deliverer) checkClock(ctx context.Context, asked, dbNow time.Time) {
	local := d.now()
	var skew time.Duration
	switch {
	case dbNow.Before(asked):
		skew = asked.Sub(dbNow) // the worker is ahead
	case dbNow.After(local):
		skew = local.Sub(dbNow) // the worker is behind
	}
	if skew.Abs() <= maxClockSkew {
		return
	}
	last := d.skewWarned.Load()
	if last != 0 && local.Sub(time.Unix(0, last)).Abs() < skewWarnEvery {
		return
	}
	if !d.skewWarned.CompareAndSwap(last, local.UnixNano()) {
		return
	}
	d.logger.WarnContext(ctx, "worker clock differs from the database's; attempt leases are judged on the database's",
		"clock_skew", skew.String(), "worker", d.worker)
}

// evolve folds evs, recorded as recs, into n.
func evolve(n herald.Notification, recs []events.Recorded, evs []events.Event) herald.Notification {
	for i, r := range recs {
		n = events.Evolve(n, r, evs[i])
	}
	return n
}

// record appends an attempt's outcome, retrying for a while: the message may already be with the
// recipient, and an outcome that is not recorded turns into an abandoned attempt and a duplicate.
func (d *Deliverer) record(ctx context.Context, n herald.Notification, md events.Metadata, evs []events.Event) (herald.Notification, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.recordFor)
	defer cancel()
	appender := Appender(d.store)
	if d.outcomes != nil {
		appender = d.outcomes
	}
	wait := 50 * time.Millisecond
	for {
		recs, err := appender.Append(ctx, n.ID, n.Version, md, evs...)
		out := n
		if err == nil {
			out = evolve(n, recs, evs)
		}
		if err == nil || errors.Is(err, events.ErrConflict) {
			// A conflict means another worker declared this attempt abandoned: its story wins.
			return out, err
		}
		d.logger.WarnContext(ctx, "recording delivery outcome failed, retrying",
			"notification_id", n.ID, "attempt", n.Attempts, "error", err)
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// detach returns a context that keeps ctx's values and deadline but not its cancellation.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	out := context.WithoutCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(out, deadline)
	}
	return context.WithCancel(out)
}
