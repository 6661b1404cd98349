package handlers_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
)

// A send's priority is recorded in its NotificationQueued (absent for normal, as in the events
// written before there were priorities), folded into the notification, and its command is put in
// the outbox for the lane of that priority. An unknown priority is refused, naming the field,
// and nothing is written.
func TestAcceptRoutesByPriority(t *testing.T) {
	env := newIdempotencyEnv(t)
	for _, tc := range []struct {
		asked     string
		want      herald.Priority
		wantEvent herald.Priority
		wantQueue string
	}{
		{"", herald.PriorityNormal, "", "sms_notifications"},
		{"normal", herald.PriorityNormal, "", "sms_notifications"},
		{"high", herald.PriorityHigh, herald.PriorityHigh, "sms_notifications_high"},
		{"low", herald.PriorityLow, herald.PriorityLow, "sms_notifications_low"},
	} {
		t.Run("priority "+tc.asked, func(t *testing.T) {
			a := env.accept(t, t.Context(), handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi", Priority: tc.asked})
			if a.Priority != tc.want {
				t.Errorf("accepted with priority %q, want %q", a.Priority, tc.want)
			}
			n, _, err := env.log.Notification(t.Context(), a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if n.Priority != tc.want {
				t.Errorf("folded priority %q, want %q", n.Priority, tc.want)
			}
			recs, err := env.log.Load(t.Context(), a.ID)
			if err != nil {
				t.Fatal(err)
			}
			e, err := recs[0].Event()
			if err != nil {
				t.Fatal(err)
			}
			if q := e.(*events.NotificationQueued); q.Priority != tc.wantEvent {
				t.Errorf("NotificationQueued.Priority %q, want %q", q.Priority, tc.wantEvent)
			}
			var queue string
			if err := env.pool.QueryRow(t.Context(), `SELECT payload::jsonb->>'destination_topic' FROM outbox ORDER BY "offset" DESC LIMIT 1`).Scan(&queue); err != nil {
				t.Fatal(err)
			}
			if queue != tc.wantQueue {
				t.Errorf("command put in the outbox for %s, want %s", queue, tc.wantQueue)
			}
		})
	}

	before := env.written(t)
	_, err := env.acceptor.Accept(t.Context(), handlers.SendRequest{Type: "sms", Recipient: "+14155550123", Content: "hi", Priority: "urgent"})
	if herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("priority urgent: error %v, want %s", err, herald.EINVALID)
	}
	if _, ok := herald.ErrorFields(err)["priority"]; !ok {
		t.Errorf("priority urgent: fields %v, want priority named", herald.ErrorFields(err))
	}
	if diff := cmp.Diff(before, env.written(t)); diff != "" {
		t.Errorf("a refused priority wrote (-before +after):\n%s", diff)
	}
}

// Normal said and normal left out are one request: a retry that says it replays the first.
func TestIdempotencyNormalPriorityIsTheDefault(t *testing.T) {
	env := newIdempotencyEnv(t)
	ctx, _ := asKey(t, "shop")
	first := env.accept(t, ctx, welcome("k"))
	req := welcome("k")
	req.Priority = "normal"
	again := env.accept(t, ctx, req)
	if again.ID != first.ID || !again.Replayed {
		t.Errorf("a retry saying priority normal answered %s (replayed %v), want %s replayed", again.ID, again.Replayed, first.ID)
	}
}

// Every path that queues a delivery builds its command from the folded notification, so it goes
// to the notification's lane.
func TestSendCommandCarriesThePriority(t *testing.T) {
	for _, tc := range []struct {
		p    herald.Priority
		want commands.SendNotification
	}{
		{"", commands.SendNotification{NotificationID: "n", Channel: herald.ChannelEmail}},
		{herald.PriorityNormal, commands.SendNotification{NotificationID: "n", Channel: herald.ChannelEmail}},
		{herald.PriorityHigh, commands.SendNotification{NotificationID: "n", Channel: herald.ChannelEmail, Priority: herald.PriorityHigh}},
		{herald.PriorityLow, commands.SendNotification{NotificationID: "n", Channel: herald.ChannelEmail, Priority: herald.PriorityLow}},
	} {
		got := commands.Send(herald.Notification{ID: "n", Channel: herald.ChannelEmail, Priority: tc.p})
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("priority %q (-want +got):\n%s", tc.p, diff)
		}
	}
}

// An operator's requeue sends a notification back to the lane of its priority.
func TestRequeueKeepsThePriorityLane(t *testing.T) {
	env := newOperatorEnv(t, nil)
	q := queuedOn(herald.ChannelSMS)
	q.Priority = herald.PriorityHigh
	id := queue(t, env.log, q)
	if _, err := env.log.Append(context.Background(), id, 1, cmdMD(1), failedStory()...); err != nil {
		t.Fatal(err)
	}
	env.parked.park(parkedFor(id, herald.ChannelSMS))
	if _, err := env.op.Requeue(operatorCtx(), handlers.Selection{IDs: []string{id}}, "ops", "provider back"); err != nil {
		t.Fatal(err)
	}
	cmds := outboxCommands(t, env.pool)
	want := commands.SendNotification{NotificationID: id, Channel: herald.ChannelSMS, Priority: herald.PriorityHigh}
	if len(cmds) != 1 || cmds[0].Queue != "sms_notifications_high" || cmds[0].Command != want {
		t.Errorf("outbox after the requeue holds %+v; want %+v for sms_notifications_high", cmds, want)
	}
}
