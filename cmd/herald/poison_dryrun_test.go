package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// poison discard --dry-run prints the plan, as the API's dry run answers it, and does nothing:
// the parked message is still there afterwards; without --dry-run it is removed.
func TestPoisonDryRunPrintsThePlanAndDoesNothing(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	declareQueues(t, amqpURL)

	// A parked command of a notification the log does not know: a discard only removes it.
	id, messageID := uuid.NewString(), uuid.NewString()
	ch := heraldtest.AMQPChannel(t, amqpURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := ch.PublishWithContext(ctx, "", router.QueuePoison, false, false, amqp091.Publishing{
		Headers: amqp091.Table{"_watermill_message_uuid": messageID, "name": "SendNotification"},
		Body:    fmt.Appendf(nil, `{"notification_id":%q,"channel":"sms"}`, id),
	})
	ch.Close()
	if err != nil {
		t.Fatal(err)
	}
	depth := func() int { return heraldtest.QueueDepth(t, amqpURL, router.QueuePoison) }
	heraldtest.Eventually(t, 10*time.Second, "the message to be parked", func() (bool, error) {
		return depth() == 1, fmt.Errorf("%d parked", depth())
	})

	args := []string{"poison", "discard", id, "--reason", "unknown", "--actor", "ops", "--database-url", db.URL, "--amqp-url", amqpURL}
	out := mustRunHerald(t, append(args, "--dry-run")...)
	if !strings.Contains(out, id) || !strings.Contains(out, "removed") || !strings.Contains(out, "Nothing was done (--dry-run).") {
		t.Errorf("discard --dry-run printed:\n%s\nwant the notification, removed, and that nothing was done", out)
	}
	out = mustRunHerald(t, append(args, "--dry-run", "-o", "json")...)
	var plan struct {
		Plan []struct {
			ID           string   `json:"id"`
			Action       string   `json:"action"`
			Notification any      `json:"notification"`
			Parked       int      `json:"parked"`
			MessageIDs   []string `json:"message_ids"`
		} `json:"plan"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&plan); err != nil || len(plan.Plan) != 1 {
		t.Fatalf("discard --dry-run -o json: %v\n%s", err, out)
	}
	if p := plan.Plan[0]; p.ID != id || p.Action != "removed" || p.Notification != nil || p.Parked != 1 || len(p.MessageIDs) != 1 || p.MessageIDs[0] != messageID {
		t.Errorf("discard --dry-run -o json: %+v, want %s removed, its message %s", p, id, messageID)
	}
	// Each look at the queue hands the messages back when it is done.
	heraldtest.Eventually(t, 10*time.Second, "the message to stay parked after the dry runs", func() (bool, error) {
		return depth() == 1, fmt.Errorf("%d parked", depth())
	})

	mustRunHerald(t, args...)
	heraldtest.Eventually(t, 10*time.Second, "the discard to remove the message", func() (bool, error) {
		return depth() == 0, fmt.Errorf("%d parked", depth())
	})
}
