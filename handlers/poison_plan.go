package handlers

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Limits of what an operator may say about an action.
const (
	maxActorChars  = 300 // a name an operator gives (200) and the API key it came through
	maxReasonChars = 2000
)

// ParseID returns id in the canonical form of notification ids (a lower-case UUID), or an
// EINVALID error.
func ParseID(id string) (string, error) {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return "", herald.Errorf(herald.EINVALID, "%q is not a notification id (a UUID)", id)
	}
	return strings.ToLower(id), nil
}

// parkedRank orders the parked list: failed notifications first, then stale messages, orphaned
// ones and, last, those that could not be read.
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

// listProblems writes each offender and its problem, in the order of their names, so that a
// refusal reads the same every time.
func listProblems(fields map[string]string) string {
	parts := make([]string, 0, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		parts = append(parts, k+": "+fields[k])
	}
	return strings.Join(parts, "; ")
}

// messageIDs returns the distinct ids of msgs, sorted: copies of one message share an id.
func messageIDs(msgs []ParkedMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.MessageID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// unexpected compares the plan made now with the one a preview showed, and returns each
// notification whose plan differs, or that only one of them holds.
func unexpected(steps []step, expect map[string]Expected) map[string]problem {
	problems := map[string]problem{}
	planned := map[string]bool{}
	for _, s := range steps {
		planned[s.id] = true
		e, ok := expect[s.id]
		switch {
		case !ok:
			problems[s.id] = problem{herald.ECONFLICT, "was not in the preview"}
		case e.Action != s.action:
			problems[s.id] = problem{herald.ECONFLICT, fmt.Sprintf("would now be %s, not %s as previewed", s.action, e.Action)}
		case e.Version != s.state.n.Version:
			problems[s.id] = problem{herald.ECONFLICT, fmt.Sprintf("is at v%d now, not v%d as previewed", s.state.n.Version, e.Version)}
		case !slices.Equal(messageIDs(s.msgs), sortedCompact(e.MessageIDs)):
			problems[s.id] = problem{herald.ECONFLICT, "its parked messages changed since the preview"}
		}
	}
	for id := range expect {
		if !planned[id] {
			problems[id] = problem{herald.ECONFLICT, "was previewed but is not selected now"}
		}
	}
	return problems
}

func sortedCompact(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}
