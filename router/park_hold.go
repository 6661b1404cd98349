package router

import (
	"context"
	"errors"
	"fmt"
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
// ready again, for at most parkHoldLimit, or until the worker stops; only then does the command
// go back to its queue, unparked, counting one delivery.
//
// The wait is bounded because it holds more than the command: a consumer handles one message at
// a time, so the commands RabbitMQ prefetched to it wait behind the held one (measured in the
// scale suite: with the hold unbounded, four notifications stayed undelivered for as long as the
// node was down). With the bound, they wait at most parkHoldLimit; a command waiting to be
// parked counts one delivery per parkHoldLimit, so a delivery limit of 20 takes 10 minutes of
// the poison queue's node being down to reach.

const (
	parkHoldMin = 200 * time.Millisecond
	parkHoldMax = 5 * time.Second
	// parkHoldLimit bounds one hold of a command.
	parkHoldLimit = 30 * time.Second
)

// holdingPublisher publishes parks through pub, waiting while the poison queue is not ready, at
// most limit. done is the worker's shutdown: a park still waiting then fails, and its command is
// requeued, as it is when the limit passes.
type holdingPublisher struct {
	pub    *routedPublisher
	done   <-chan struct{}
	limit  time.Duration
	logger *slog.Logger
}

func (h *holdingPublisher) Publish(topic string, msgs ...*message.Message) error {
	// Each look at the poison queue waits for RabbitMQ at most poisonCheckTimeout, and a look
	// under way when the worker stops is given up. A park that starts once the worker is
	// stopping (an attempt in flight ended for good) still looks, bounded by poisonCheckTimeout
	// alone: refusing it would hand a command that failed for good back to its queue.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	select {
	case <-h.done:
	default:
		go func() {
			select {
			case <-h.done:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	wait := backoff{min: parkHoldMin, max: parkHoldMax}
	limit := time.NewTimer(h.limit)
	defer limit.Stop()
	logged := false
	for {
		ready := h.pub.ready(ctx, topic)
		if ready == nil {
			// Once the poison queue was seen ready, the park goes ahead even if the worker stops
			// meanwhile, bounded by the check's and the confirm's own timeouts.
			return h.pub.publishAll(context.WithoutCancel(ctx), topic, msgs)
		}
		if !logged {
			logged = true
			h.logger.Warn("holding a command to park until the poison queue is ready",
				"queue", topic, "message_id", messageIDs(msgs), "error", ready)
		}
		select {
		case <-h.done:
			return errors.Join(errors.New("stopping while the poison queue was not ready: the command goes back to its queue"), ready)
		case <-limit.C:
			return errors.Join(fmt.Errorf("the poison queue was not ready for %s: the command goes back to its queue", h.limit), ready)
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
