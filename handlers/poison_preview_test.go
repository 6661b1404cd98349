package handlers_test

import (
	"testing"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
)

// A preview says what the action would do, with the same refusals, and does nothing: the
// streams, the outbox and the poison queue are as they were.
func TestPreviewPlansWithoutActing(t *testing.T) {
	env := newOperatorEnv(t, nil)
	failed := env.notification(t, herald.ChannelSMS, failedStory(), true)
	stale := env.notification(t, herald.ChannelEmail, sentStory, true)
	sent := env.notification(t, herald.ChannelEmail, sentStory, false)

	plan, err := env.op.Preview(operatorCtx(), handlers.ActionRequeued, handlers.Selection{IDs: []string{failed, stale}}, "ops", "fixed")
	if err != nil {
		t.Fatalf("Preview: %v", err)
	}
	if len(plan) != 2 ||
		plan[0].ID != failed || plan[0].Action != handlers.ActionRequeued || plan[0].Notification.Status != herald.StatusFailed || plan[0].Parked != 1 ||
		plan[1].ID != stale || plan[1].Action != handlers.ActionRemoved || plan[1].Notification.Status != herald.StatusSent || plan[1].Parked != 1 {
		t.Errorf("the requeue preview is %+v; want %s requeued (failed, 1 parked), %s only removed (sent, 1 parked)", plan, failed, stale)
	}
	discard, err := env.op.Preview(operatorCtx(), handlers.ActionDiscarded, handlers.Selection{IDs: []string{failed}}, "ops", "gone")
	if err != nil || len(discard) != 1 || discard[0].Action != handlers.ActionDiscarded {
		t.Errorf("the discard preview is %+v, %v; want %s discarded", discard, err, failed)
	}

	// The action's refusals, before anything is done.
	_, err = env.op.Preview(operatorCtx(), handlers.ActionRequeued, handlers.Selection{IDs: []string{failed, sent}}, "ops", "fixed")
	checkCode(t, err, herald.ECONFLICT)
	if herald.ErrorFields(err)[sent] == "" {
		t.Errorf("the refusal %v does not name %s", err, sent)
	}
	_, err = env.op.Preview(operatorCtx(), handlers.ActionDiscarded, handlers.Selection{IDs: []string{failed}}, "ops", "")
	checkCode(t, err, herald.EINVALID)
	_, err = env.op.Preview(operatorCtx(), handlers.ActionRemoved, handlers.Selection{IDs: []string{failed}}, "ops", "x")
	checkCode(t, err, herald.EINVALID)

	if v := env.version(t, failed); v != 5 {
		t.Errorf("after the previews %s is at v%d, want v5 as before", failed, v)
	}
	if cmds := outboxCommands(t, env.pool); len(cmds) != 0 {
		t.Errorf("the previews queued %d commands", len(cmds))
	}
	if len(env.parked.messageIDs(failed)) != 1 || len(env.parked.messageIDs(stale)) != 1 {
		t.Error("the previews removed parked messages")
	}
}

// expectFrom is what a confirmation passes back of plan.
func expectFrom(plan []handlers.Planned) map[string]handlers.Expected {
	out := map[string]handlers.Expected{}
	for _, p := range plan {
		out[p.ID] = handlers.Expected{Version: p.Notification.Version, Action: p.Action, MessageIDs: p.MessageIDs}
	}
	return out
}

// An action confirmed from a preview does what the preview showed or nothing: if a stream moved,
// a message was parked or the selection changed in between, the whole batch is refused and
// nothing is written or removed.
func TestConfirmedActionRefusesWhatThePreviewDidNotShow(t *testing.T) {
	ctx := operatorCtx()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, env *operatorEnv, moved, other string) // between the preview and the action
		verb   handlers.Action
	}{
		{"its stream moved", func(t *testing.T, env *operatorEnv, moved, _ string) {
			// Another operator requeued it, and it failed again: failed, as previewed, but later.
			if _, err := env.log.Append(ctx, moved, 5, opMD("other"),
				&events.NotificationRequeued{Actor: "other", Reason: "try", Attempts: 2},
				&events.NotificationProcessing{Attempt: 3, Worker: "w1"},
				&events.NotificationFailed{Attempt: 3, Provider: "p", Error: "503", Reason: events.ReasonAttemptsExhausted},
			); err != nil {
				t.Fatal(err)
			}
		}, handlers.ActionRequeued},
		{"a message was parked", func(t *testing.T, env *operatorEnv, moved, _ string) {
			env.parked.park(parkedFor(moved, herald.ChannelSMS))
		}, handlers.ActionDiscarded},
		{"the preview is not the selection", func(t *testing.T, env *operatorEnv, _, _ string) {}, handlers.ActionRequeued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newOperatorEnv(t, nil)
			moved := env.notification(t, herald.ChannelSMS, failedStory(), true)
			other := env.notification(t, herald.ChannelSMS, failedStory(), true)
			sel := handlers.Selection{IDs: []string{moved, other}}
			plan, err := env.op.Preview(ctx, tc.verb, sel, "ops", "fixed")
			if err != nil {
				t.Fatalf("Preview: %v", err)
			}
			sel.Expect = expectFrom(plan)
			if tc.name == "the preview is not the selection" {
				sel.IDs = []string{moved}
			}
			tc.change(t, env, moved, other)
			before := map[string]int64{moved: env.version(t, moved), other: env.version(t, other)}
			parked := map[string]int{moved: len(env.parked.messageIDs(moved)), other: len(env.parked.messageIDs(other))}

			act := env.op.Requeue
			if tc.verb == handlers.ActionDiscarded {
				act = env.op.Discard
			}
			results, err := act(ctx, sel, "ops", "fixed")
			checkCode(t, err, herald.ECONFLICT)
			if len(results) != 0 {
				t.Errorf("the refused action returned %+v", results)
			}
			if tc.name != "the preview is not the selection" && herald.ErrorFields(err)[moved] == "" {
				t.Errorf("the refusal %v does not name %s", err, moved)
			}
			for _, id := range []string{moved, other} {
				if v := env.version(t, id); v != before[id] {
					t.Errorf("after the refusal %s is at v%d, want v%d", id, v, before[id])
				}
				if n := len(env.parked.messageIDs(id)); n != parked[id] {
					t.Errorf("after the refusal %s has %d parked, want %d", id, n, parked[id])
				}
			}
			if cmds := outboxCommands(t, env.pool); len(cmds) != 0 {
				t.Errorf("the refused action queued %d commands", len(cmds))
			}
		})
	}

	// Unchanged, the confirmation does what the preview showed.
	env := newOperatorEnv(t, nil)
	id := env.notification(t, herald.ChannelSMS, failedStory(), true)
	sel := handlers.Selection{IDs: []string{id}}
	plan, err := env.op.Preview(ctx, handlers.ActionRequeued, sel, "ops", "fixed")
	if err != nil {
		t.Fatal(err)
	}
	sel.Expect = expectFrom(plan)
	results, err := env.op.Requeue(ctx, sel, "ops", "fixed")
	if err != nil || len(results) != 1 || results[0].Action != handlers.ActionRequeued {
		t.Errorf("the confirmed requeue = %+v, %v; want %s requeued", results, err, id)
	}
}
