package handlers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
)

// Operator is what operators do about failed notifications: list the parked ones, send them back
// for a new round of attempts (requeue), or give up on them (discard). Every requeue and discard
// is an event in the notification's stream saying who did it and why.
//
// An action is two writes to two systems: the event (with, for a requeue, the command in the
// outbox) is committed to PostgreSQL first, and the parked message is removed from RabbitMQ
// after. If the process dies, or RabbitMQ is lost, in between, the event stands and the parked
// message stays behind. Such a message is stale: Parked says so, and requeueing or discarding
// the notification again only removes it. The reverse order could lose a parked message for an
// action that never happened.
type Operator struct {
	db     Beginner
	log    *events.Log
	outbox Outbox
	queue  ParkedQueue
	// writeTimeout bounds each transaction and the removal; they run detached from the caller,
	// so that a client that hangs up cannot leave an action half done.
	writeTimeout time.Duration
}

// NewOperator returns an operator recording its actions in log through db, queueing requeued
// commands in outbox, and working the parked messages in queue.
func NewOperator(db Beginner, log *events.Log, outbox Outbox, queue ParkedQueue) *Operator {
	return &Operator{db: db, log: log, outbox: outbox, queue: queue, writeTimeout: 30 * time.Second}
}

// Parked lists every parked message, of channel only unless it is empty, with its notification's
// state: failed first, by when they failed, then stale, orphaned and unreadable messages. It
// returns the queue's EUNAVAILABLE when it cannot look.
//
// Sorting needs every message at once, so Parked holds the whole queue in memory: fine for a
// few thousand, not for a deep queue. The API and the CLI list with ParkedPage and WalkParked,
// whose memory is bounded by a page.
func (o *Operator) Parked(ctx context.Context, channel herald.Channel) ([]Parked, error) {
	msgs, err := o.queue.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	states, err := o.states(ctx, msgs)
	if err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	var out []Parked
	for _, m := range msgs {
		p := states[m.NotificationID].parked(m)
		if channel == "" || p.Channel() == channel {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := parkedRank(a), parkedRank(b); ra != rb {
			return ra < rb
		}
		if !a.FailedAt.Equal(b.FailedAt) {
			return a.FailedAt.Before(b.FailedAt)
		}
		return a.Message.NotificationID < b.Message.NotificationID
	})
	return out, nil
}

// Show returns notification id's state, parked messages and whole history. It returns EINVALID
// for a malformed id and ENOTFOUND when the log does not know the notification and nothing of it
// is parked.
func (o *Operator) Show(ctx context.Context, id string) (ParkedDetail, error) {
	id, err := ParseID(id)
	if err != nil {
		return ParkedDetail{}, err
	}
	// Only this notification's messages are kept: memory does not grow with the queue.
	var msgs []ParkedMessage
	err = o.queue.Walk(ctx, func(m ParkedMessage) bool {
		if m.NotificationID == id {
			msgs = append(msgs, m)
		}
		return true
	})
	if err != nil {
		return ParkedDetail{}, fmt.Errorf("show %s: %w", id, err)
	}
	st, err := o.state(ctx, id)
	if err != nil {
		return ParkedDetail{}, fmt.Errorf("show %s: %w", id, err)
	}
	d := ParkedDetail{Notification: st.n}
	for _, m := range msgs {
		d.Messages = append(d.Messages, st.parked(m))
	}
	if st.n.Version == 0 && len(d.Messages) == 0 {
		return ParkedDetail{}, herald.Errorf(herald.ENOTFOUND, "no notification %s", id)
	}
	for _, r := range st.recs {
		e, err := r.Event()
		if err != nil {
			return ParkedDetail{}, fmt.Errorf("show %s v%d: %w", id, r.Version, err)
		}
		d.History = append(d.History, events.HistoryEntry(r, e))
	}
	return d, nil
}

// Requeue sends the selected failed notifications back to their work queues for a new round of
// attempts. For each it appends NotificationRequeued (saying actor and reason) and queues the
// SendNotification command in one transaction, then removes its parked messages. A notification
// that is no longer failed but still has parked messages (stale ones) only has them removed.
//
// Every notification is checked before anything is done: if one cannot be requeued — a malformed
// id (EINVALID), an unknown notification (ENOTFOUND), or one that is not failed and has nothing
// parked (ECONFLICT) — nothing is done, and the error names each offender in its Fields. An
// empty actor, or an actor or reason that is too long, is EINVALID too.
//
// If a write fails midway, the notifications already requeued are returned with the error, and
// their parked messages are still removed; the rest are untouched.
func (o *Operator) Requeue(ctx context.Context, sel Selection, actor, reason string) ([]Result, error) {
	return o.act(ctx, verbRequeue, sel, actor, reason)
}

// Discard records that an operator gave up on the selected failed notifications: it appends
// NotificationDiscarded (saying actor and reason, which is required) and removes their parked
// messages; they stay failed. Stale parked messages, and parked messages of notifications the
// log does not know, are only removed.
//
// It checks everything first and returns errors as Requeue does; discarding a notification that
// was already discarded and has nothing parked is ECONFLICT.
func (o *Operator) Discard(ctx context.Context, sel Selection, actor, reason string) ([]Result, error) {
	return o.act(ctx, verbDiscard, sel, actor, reason)
}

// act is Requeue and Discard: it plans, and runs the plan.
func (o *Operator) act(ctx context.Context, v verb, sel Selection, actor, reason string) ([]Result, error) {
	steps, err := o.prepare(ctx, v, sel, actor, reason)
	if err != nil {
		return nil, err
	}
	return o.run(ctx, v, steps, actor)
}

// Planned is what a requeue or discard would do to one notification: the action, the
// notification as it is now, and how many of its messages are parked.
type Planned struct {
	ID           string
	Action       Action
	Notification herald.Notification
	Parked       int
	// MessageIDs are the distinct ids of its parked messages, sorted: with the version and the
	// action, what a confirmation passes back as Selection.Expect.
	MessageIDs []string
}

// Preview says what Requeue (action ActionRequeued) or Discard (ActionDiscarded) would do with
// sel, actor and reason now, doing nothing: the same checks, the same plan, and the same errors.
// The queue and the log may move before the action runs; the action plans again and refuses
// what it can no longer do, and, given the preview as Selection.Expect, anything that differs.
func (o *Operator) Preview(ctx context.Context, a Action, sel Selection, actor, reason string) ([]Planned, error) {
	var v verb
	switch a {
	case ActionRequeued:
		v = verbRequeue
	case ActionDiscarded:
		v = verbDiscard
	default:
		return nil, herald.Invalid("preview a requeue or a discard", map[string]string{"action": fmt.Sprintf("%q is not requeued or discarded", a)})
	}
	steps, err := o.prepare(ctx, v, sel, actor, reason)
	if err != nil {
		return nil, err
	}
	out := make([]Planned, len(steps))
	for i, s := range steps {
		out[i] = Planned{ID: s.id, Action: s.action, Notification: s.state.n, Parked: len(s.msgs), MessageIDs: messageIDs(s.msgs)}
	}
	return out, nil
}

// prepare checks what the operator says and selects, plans every notification from the queue and
// the log, and refuses the whole batch if one cannot be acted on.
func (o *Operator) prepare(ctx context.Context, v verb, sel Selection, actor, reason string) ([]step, error) {
	if err := checkWords(v, actor, reason); err != nil {
		return nil, err
	}
	ids, err := checkSelection(sel)
	if err != nil {
		return nil, err
	}
	msgs, err := o.queue.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v, err)
	}
	parked := map[string][]ParkedMessage{}
	for _, m := range msgs {
		if m.NotificationID != "" {
			parked[m.NotificationID] = append(parked[m.NotificationID], m)
		}
	}
	states, err := o.states(ctx, msgs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v, err)
	}
	if sel.All {
		ids = selectAll(v, msgs, states, sel.Channel)
	}

	var steps []step
	problems := map[string]problem{}
	for _, id := range ids {
		st, ok := states[id]
		if !ok {
			if st, err = o.state(ctx, id); err != nil {
				return nil, fmt.Errorf("%s: %w", v, err)
			}
		}
		s, p := plan(v, id, st, parked[id], actor, reason, sel.All)
		if p != nil {
			problems[id] = *p
			continue
		}
		steps = append(steps, s)
	}
	if len(problems) > 0 {
		return nil, refusal(v, problems, len(ids))
	}
	if sel.Expect != nil {
		if problems := unexpected(steps, sel.Expect); len(problems) > 0 {
			return nil, refusal(v, problems, max(len(ids), len(sel.Expect)))
		}
	}
	return steps, nil
}

// run carries out the steps: each one's events (and command) in its own transaction, then one
// removal of every parked message they concern. It stops at the first failed write, or when ctx
// is done, between notifications, never within one.
func (o *Operator) run(ctx context.Context, v verb, steps []step, actor string) ([]Result, error) {
	var (
		results []Result
		stopped error
	)
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			stopped = fmt.Errorf("%s stopped: %w", v, err)
			break
		}
		r, err := o.record(ctx, s, actor)
		if err != nil {
			stopped = fmt.Errorf("%s %s: %w", v, s.id, err)
			break
		}
		results = append(results, r)
	}

	var keys []ParkedKey
	for _, s := range steps[:len(results)] {
		for _, m := range s.msgs {
			// The message ids seen when deciding: a command parked again since (a requeued
			// notification that failed again already) has a new id, and stays.
			keys = append(keys, ParkedKey{NotificationID: s.id, MessageID: m.MessageID})
		}
	}
	var removeErr error
	if len(keys) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.writeTimeout)
		removed, err := o.queue.Remove(rctx, keys)
		cancel()
		if err != nil {
			// The events stand: say so, whatever the cause, so that no client retries them blindly.
			removeErr = &herald.Error{
				Code: herald.EUNAVAILABLE,
				Message: fmt.Sprintf("%s recorded, but the parked messages could not be removed (%s): they stay parked, listed as stale, and the next requeue or discard removes them",
					v, herald.ErrorMessage(err)),
				Err: err,
			}
		}
		for i := range results {
			results[i].Removed = removed[results[i].ID]
		}
	}
	if stopped != nil && len(steps) > 1 {
		var left []string
		for _, s := range steps[len(results):] {
			left = append(left, s.id)
		}
		stopped = fmt.Errorf("%w (done: %d; not done: %s)", stopped, len(results), strings.Join(left, ", "))
	}
	return results, errors.Join(stopped, removeErr)
}

// record appends s's events and, for a requeue, queues the command again, in one transaction.
func (o *Operator) record(ctx context.Context, s step, actor string) (Result, error) {
	n := s.state.n
	r := Result{ID: s.id, Action: s.action, Status: n.Status, Version: n.Version}
	if len(s.evs) == 0 && s.action != ActionResent {
		return r, nil
	}
	// The requeued command and the attempts it causes belong to the request that started the
	// notification; the operator's own request is what caused this event.
	md := events.Metadata{CorrelationID: s.state.correlationID, CausationID: herald.CorrelationID(ctx), Actor: actor}
	if md.CorrelationID == "" {
		md.CorrelationID = herald.CorrelationID(ctx)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.writeTimeout)
	defer cancel()
	var recs []events.Recorded
	err := pgx.BeginFunc(wctx, o.db, func(tx pgx.Tx) error {
		var err error
		if recs, err = o.log.In(tx).Append(wctx, s.id, n.Version, md, s.evs...); err != nil {
			return err
		}
		if s.action != ActionRequeued && s.action != ActionResent {
			return nil
		}
		cmd := commands.Send(n)
		return o.outbox.Send(herald.WithCorrelationID(wctx, md.CorrelationID), tx, cmd)
	})
	if err != nil {
		return r, err
	}
	if s.action == ActionRequeued || s.action == ActionResent {
		wakeRelay(o.outbox)
	}
	for i, rec := range recs {
		n = events.Evolve(n, rec, s.evs[i])
	}
	r.Status, r.Version = n.Status, n.Version
	return r, nil
}

// states loads the notifications of msgs.
func (o *Operator) states(ctx context.Context, msgs []ParkedMessage) (map[string]notificationState, error) {
	out := map[string]notificationState{}
	for _, m := range msgs {
		if m.NotificationID == "" {
			continue
		}
		if _, done := out[m.NotificationID]; done {
			continue
		}
		if _, err := ParseID(m.NotificationID); err != nil {
			// A command naming something that is not a notification id: the log cannot know it.
			out[m.NotificationID] = notificationState{}
			continue
		}
		st, err := o.state(ctx, m.NotificationID)
		if err != nil {
			return nil, err
		}
		out[m.NotificationID] = st
	}
	return out, nil
}

// state loads notification id; a notification the log does not know has Version 0.
func (o *Operator) state(ctx context.Context, id string) (notificationState, error) {
	n, recs, err := o.log.Notification(ctx, id)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return notificationState{}, nil
	}
	if err != nil {
		return notificationState{}, err
	}
	return foldState(n, recs)
}
