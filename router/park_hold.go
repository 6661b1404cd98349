package router

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Holding a command that cannot be parked yet.
//
// A command that failed for good is parked: published to the poison queue, then acknowledged.
// While the poison queue cannot take it (its node is down, or RabbitMQ is away), the publish is
// refused. Handing the command straight back to its queue (a nack with requeue) would loop hot —
// the next consumer fails it again within milliseconds — and every requeue counts towards a
// quorum queue's delivery limit (20 by default on RabbitMQ 4.0 and later, or whatever a policy
// sets). Past it, RabbitMQ dead-letters the command into the very poison queue whose node is
// down, at most once: lost. So the park waits, with a capped backoff, until the poison queue is
// ready again or the worker stops; only then does the command go back to its queue, unparked.
// The wait holds one consumer of the lane (and its prefetch) per command waiting, which is the
// price of not losing it.

const (
	parkHoldMin = 200 * time.Millisecond
	parkHoldMax = 5 * time.Second
)

// holdingPublisher publishes parks through pub, waiting while the poison queue is not ready.
// done is the worker's shutdown: a park still waiting then fails, and its command is requeued.
type holdingPublisher struct {
	pub    *routedPublisher
	done   <-chan struct{}
	logger *slog.Logger
}

func (h *holdingPublisher) Publish(topic string, msgs ...*message.Message) error {
	wait := backoff{min: parkHoldMin, max: parkHoldMax}
	logged := false
	for {
		ready := h.pub.topology.Ready(context.Background())
		if topic == QueuePoison {
			ready = h.pub.poisonReady()
		}
		if ready == nil {
			return h.pub.Publish(topic, msgs...)
		}
		if !logged {
			logged = true
			h.logger.Warn("holding a command to park until the poison queue is ready",
				"queue", topic, "message_id", messageIDs(msgs), "error", ready)
		}
		select {
		case <-h.done:
			return errors.Join(errors.New("stopping while the poison queue was not ready: the command goes back to its queue"), ready)
		case <-time.After(wait.next()):
			wait.cur = min(2*wait.next(), wait.max)
		}
	}
}

func (h *holdingPublisher) Close() error { return h.pub.Close() }

func messageIDs(msgs []*message.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.UUID
	}
	return ids
}
