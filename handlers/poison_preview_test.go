package handlers_test

import (
	"testing"

	"github.com/herald-notify/herald"
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
