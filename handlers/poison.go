package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
)

// ParkedMessage is a command as it lies in the poison queue: what the worker that parked it said,
// and the command itself.
type ParkedMessage struct {
	// NotificationID and Channel are read from the command. Both are empty when the message is
	// not a readable SendNotification command; Unreadable then says why.
	NotificationID string
	Channel        herald.Channel
	Unreadable     string

	// MessageID is the message's own id. Copies of one message (a command parked twice) share it;
	// a command parked again after a requeue has a new one.
	MessageID     string
	CorrelationID string
	// Reason is the error that parked the command; Queue and Handler are where it was handled.
	Reason  string
	Queue   string
	Handler string
	// Timestamp is the message's AMQP timestamp, zero when its publisher set none (watermill sets
	// none: when a notification failed is read from its stream instead).
	Timestamp time.Time
	// Deliveries is how often the broker has handed the message out, as far as it says (quorum
	// queues count every look at the poison queue too); 0 when it does not say.
	Deliveries int
	// Headers are every header of the message, as text; Body is the message body as it is.
	Headers map[string]string
	Body    []byte
}

// ParkedKey names parked messages: every copy of the message MessageID of the notification
// NotificationID, or, with MessageID empty, every message of the notification.
type ParkedKey struct {
	NotificationID string
	MessageID      string
}

// ParkedQueue is the poison queue as operators work it (see router.PoisonQueue). Its methods
// return EUNAVAILABLE when the broker cannot be reached or the queue does not exist.
//
// One look at a time: each call, in any process, has the queue to itself from its first message
// to its last, so it sees every parked message (and removes every one it names) however many
// operators work the queue at once. A call made while another runs waits for it, and returns
// EUNAVAILABLE if ctx ends first.
type ParkedQueue interface {
	// List returns every parked message and leaves every one of them parked.
	List(ctx context.Context) ([]ParkedMessage, error)
	// Walk hands the parked messages to fn one at a time, in queue order, until fn returns false
	// or there are no more, and leaves every one of them parked. It holds no message but the one
	// fn is given, so its memory does not grow with the queue.
	Walk(ctx context.Context, fn func(ParkedMessage) bool) error
	// Remove deletes every parked message one of keys names and leaves the others parked. It
	// returns how many messages it deleted per notification id.
	Remove(ctx context.Context, keys []ParkedKey) (map[string]int, error)
}

// Parked is a parked message with the state of its notification, folded from the log.
type Parked struct {
	Message ParkedMessage
	// Notification is the notification the command is for. Its Version is 0 when the log holds
	// no such notification (or the message is unreadable).
	Notification herald.Notification
	// FailedAt, FailReason and FailError come from the notification's latest NotificationFailed:
	// when it failed, why (events.ReasonPermanentError or events.ReasonAttemptsExhausted) and the
	// last attempt's error.
	FailedAt   time.Time
	FailReason string
	FailError  string
	// Discarded is true when an operator discarded the notification since it last failed.
	Discarded bool
	// Stale is true when the notification is not failed, or was discarded since it failed. A
	// stale message of a sent or discarded notification is left over from an operator action
	// whose removal of it did not happen, and needs only removing; one of a notification still
	// pending or processing may also be a command RabbitMQ dead-lettered, and a requeue sends it
	// again (ActionResent).
	Stale bool
}

// Channel returns the channel of the parked notification: the log's, or the command's when the
// log does not know the notification.
func (p Parked) Channel() herald.Channel {
	if p.Notification.Version > 0 {
		return p.Notification.Channel
	}
	return p.Message.Channel
}

// ParkedDetail is everything known of one notification that may be parked.
type ParkedDetail struct {
	// Notification is the notification folded from its stream; Version 0 when the log has none.
	Notification herald.Notification
	// Messages are its parked messages, none when it is not parked.
	Messages []Parked
	// History is its whole stream as history entries, oldest first.
	History []herald.HistoryEntry
}

// Selection names the notifications an operator acts on: those in IDs, or with All every
// notification that has a parked message (only those of Channel, if it is set).
type Selection struct {
	IDs     []string
	All     bool
	Channel herald.Channel
}

// Action is what an operator's requeue or discard did to one notification.
type Action string

const (
	// ActionRequeued: NotificationRequeued was appended and the command queued again.
	ActionRequeued Action = "requeued"
	// ActionDiscarded: NotificationDiscarded was appended.
	ActionDiscarded Action = "discarded"
	// ActionRemoved: only stale (or, for a discard, orphaned) parked messages were removed; no
	// event was appended.
	ActionRemoved Action = "removed"
	// ActionResent: the notification is still pending or processing, yet its command was parked
	// (RabbitMQ dead-letters a command redelivered past a quorum queue's delivery limit, and a
	// requeue whose removal failed leaves a copy behind). Its command was queued again, with no
	// event: its story goes on where it was, and a worker that finds an attempt under way or the
	// notification sent acknowledges the extra command.
	ActionResent Action = "resent"
)

// Result is the outcome of a requeue or discard for one notification.
type Result struct {
	ID     string
	Action Action
	// Status is the notification's status afterwards; empty for an orphaned message.
	Status herald.Status
	// Version is the notification's stream version afterwards.
	Version int64
	// Removed counts the parked messages removed.
	Removed int
}

// Limits of what an operator may say about an action.
const (
	maxActorChars  = 300 // a name an operator gives (200) and the API key it came through
	maxReasonChars = 2000
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

// ParseID returns id in the canonical form of notification ids (a lower-case UUID), or an
// EINVALID error.
func ParseID(id string) (string, error) {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return "", herald.Errorf(herald.EINVALID, "%q is not a notification id (a UUID)", id)
	}
	return strings.ToLower(id), nil
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

func parkedRank(p Parked) int {
	switch {
	case p.Message.Unreadable != "":
		return 3
	case p.Notification.Version == 0:
		return 2
	case p.Stale:
		return 1
	}
	return 0
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

type verb string

const (
	verbRequeue verb = "requeue"
	verbDiscard verb = "discard"
)

// step is what an action will do to one notification.
type step struct {
	id     string
	state  notificationState
	msgs   []ParkedMessage
	action Action
	evs    []events.Event
}

func (o *Operator) act(ctx context.Context, v verb, sel Selection, actor, reason string) ([]Result, error) {
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
	return o.run(ctx, v, steps, actor)
}

// checkWords checks what an operator says about an action.
func checkWords(v verb, actor, reason string) error {
	fields := map[string]string{}
	switch {
	case strings.TrimSpace(actor) == "":
		fields["actor"] = "is required: say who is acting"
	case utf8.RuneCountInString(actor) > maxActorChars:
		fields["actor"] = fmt.Sprintf("is longer than %d characters", maxActorChars)
	case !utf8.ValidString(actor) || strings.ContainsRune(actor, 0):
		fields["actor"] = "must be UTF-8 text without NUL characters"
	}
	switch {
	case v == verbDiscard && strings.TrimSpace(reason) == "":
		fields["reason"] = "is required: say why the notification is given up on"
	case utf8.RuneCountInString(reason) > maxReasonChars:
		fields["reason"] = fmt.Sprintf("is longer than %d characters", maxReasonChars)
	case !utf8.ValidString(reason) || strings.ContainsRune(reason, 0):
		fields["reason"] = "must be UTF-8 text without NUL characters"
	}
	if len(fields) > 0 {
		return herald.Invalid(fmt.Sprintf("the %s is invalid", v), fields)
	}
	return nil
}

// checkSelection returns the selected ids, canonical and without repeats.
func checkSelection(sel Selection) ([]string, error) {
	switch {
	case sel.All && len(sel.IDs) > 0:
		return nil, herald.Invalid("name notifications or all of them, not both", map[string]string{"all": "cannot be combined with ids"})
	case !sel.All && len(sel.IDs) == 0:
		return nil, herald.Invalid("name at least one notification, or all of them", map[string]string{"ids": "are required without all"})
	case !sel.All && sel.Channel != "":
		return nil, herald.Invalid("a channel narrows only a selection of all parked notifications", map[string]string{"channel": "needs all"})
	}
	if sel.Channel != "" {
		if _, err := herald.ParseChannel(string(sel.Channel)); err != nil {
			return nil, herald.Invalid(herald.ErrorMessage(err), map[string]string{"channel": herald.ErrorMessage(err)})
		}
	}
	var ids []string
	fields := map[string]string{}
	for _, raw := range sel.IDs {
		id, err := ParseID(raw)
		if err != nil {
			fields[raw] = "is not a notification id (a UUID)"
			continue
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(fields) > 0 {
		return nil, herald.Invalid(fmt.Sprintf("%s: nothing was done", listProblems(fields)), fields)
	}
	return ids, nil
}

// selectAll returns the ids of every parked notification v can act on, of channel if it is set:
// a requeue leaves out orphaned messages, which there is nothing to requeue for.
func selectAll(v verb, msgs []ParkedMessage, states map[string]notificationState, channel herald.Channel) []string {
	var ids []string
	for _, m := range msgs {
		st := states[m.NotificationID]
		p := st.parked(m)
		switch {
		case m.NotificationID == "", slices.Contains(ids, m.NotificationID):
		case channel != "" && p.Channel() != channel:
		case v == verbRequeue && st.n.Version == 0:
		case v == verbDiscard && st.n.Version > 0 && !st.n.Status.Terminal():
			// Still under way: a requeue resends its command; discarding it is refused, and
			// --all must not refuse the whole batch for it.
		default:
			ids = append(ids, m.NotificationID)
		}
	}
	return ids
}

// problem is why one notification cannot be acted on.
type problem struct {
	code string
	text string
}

// plan decides what v does to notification id, or why it cannot. all says the notification
// was not named but swept up by --all.
func plan(v verb, id string, st notificationState, msgs []ParkedMessage, actor, reason string, all bool) (step, *problem) {
	s := step{id: id, state: st, msgs: msgs}
	n := st.n
	switch {
	case v == verbRequeue && all && st.discarded && len(msgs) > 0:
		// An operator gave up on it: its parked message is left over from the discard, and
		// only a requeue that names it brings it back.
		s.action = ActionRemoved
		return s, nil
	case n.Version == 0 && len(msgs) == 0:
		return s, &problem{herald.ENOTFOUND, "no such notification"}
	case n.Version == 0 && v == verbRequeue:
		return s, &problem{herald.ENOTFOUND, fmt.Sprintf("no such notification, though %d message(s) for it are parked: discard them", len(msgs))}
	case n.Version == 0:
		s.action = ActionRemoved
		return s, nil
	case n.Status != herald.StatusFailed && len(msgs) == 0:
		return s, &problem{herald.ECONFLICT, fmt.Sprintf("is %s, not failed, and has nothing parked", n.Status)}
	case !n.Status.Terminal() && v == verbDiscard:
		// Removing the parked command of a notification still under way could strand it.
		return s, &problem{herald.ECONFLICT, fmt.Sprintf("is %s, not failed; requeue it to send its parked command again", n.Status)}
	case !n.Status.Terminal():
		s.action = ActionResent
		return s, nil
	case n.Status != herald.StatusFailed:
		s.action = ActionRemoved
		return s, nil
	}

	var err error
	if v == verbRequeue {
		s.action = ActionRequeued
		s.evs, err = DecideRequeue(n, actor, reason)
	} else {
		if st.discarded {
			if len(msgs) == 0 {
				return s, &problem{herald.ECONFLICT, "was already discarded and has nothing parked"}
			}
			s.action = ActionRemoved
			return s, nil
		}
		s.action = ActionDiscarded
		s.evs, err = DecideDiscard(n, actor, reason)
	}
	if err != nil {
		code := herald.ErrorCode(err)
		if errors.Is(err, ErrNotFailed) {
			code = herald.ECONFLICT
		}
		return s, &problem{code, err.Error()}
	}
	return s, nil
}

// refusal is the error that refuses a whole batch because of problems.
func refusal(v verb, problems map[string]problem, total int) error {
	code := herald.ECONFLICT
	fields := make(map[string]string, len(problems))
	for id, p := range problems {
		fields[id] = p.text
		switch {
		case p.code == herald.EINVALID:
			code = herald.EINVALID
		case p.code == herald.ENOTFOUND && code != herald.EINVALID:
			code = herald.ENOTFOUND
		}
	}
	msg := fmt.Sprintf("cannot %s %s; nothing was done", v, listProblems(fields))
	if total > 1 {
		msg = fmt.Sprintf("%d of %d notifications cannot be %sd (%s); nothing was done", len(problems), total, v, listProblems(fields))
	}
	return &herald.Error{Code: code, Message: msg, Fields: fields}
}

func listProblems(fields map[string]string) string {
	parts := make([]string, 0, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		parts = append(parts, k+": "+fields[k])
	}
	return strings.Join(parts, "; ")
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
		cmd := commands.SendNotification{NotificationID: s.id, Channel: n.Channel}
		return o.outbox.Send(herald.WithCorrelationID(wctx, md.CorrelationID), tx, cmd)
	})
	if err != nil {
		return r, err
	}
	for i, rec := range recs {
		n = events.Evolve(n, rec, s.evs[i])
	}
	r.Status, r.Version = n.Status, n.Version
	return r, nil
}

// notificationState is a notification folded from the log, with what operators need beyond it.
type notificationState struct {
	n    herald.Notification
	recs []events.Recorded
	// failedAt, failReason and failError are from the latest NotificationFailed.
	failedAt   time.Time
	failReason string
	failError  string
	// discarded: a NotificationDiscarded follows the latest NotificationFailed.
	discarded     bool
	correlationID string
}

func (st notificationState) parked(m ParkedMessage) Parked {
	p := Parked{Message: m}
	if m.NotificationID == "" || st.n.Version == 0 {
		return p
	}
	p.Notification = st.n
	p.FailedAt, p.FailReason, p.FailError = st.failedAt, st.failReason, st.failError
	p.Discarded = st.discarded
	p.Stale = st.n.Status != herald.StatusFailed || st.discarded
	return p
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
	st := notificationState{n: n, recs: recs}
	if len(recs) > 0 {
		st.correlationID = recs[0].Metadata.CorrelationID
	}
	for _, r := range recs {
		switch r.Type {
		case events.TypeNotificationFailed:
			e, err := r.Event()
			if err != nil {
				return notificationState{}, fmt.Errorf("load %s v%d: %w", id, r.Version, err)
			}
			f := e.(*events.NotificationFailed)
			st.failedAt, st.failReason, st.failError, st.discarded = r.Time, f.Reason, f.Error, false
		case events.TypeNotificationDiscarded:
			st.discarded = true
		case events.TypeNotificationRequeued:
			st.discarded = false
		}
	}
	return st, nil
}
