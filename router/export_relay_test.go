package router

import (
	"context"
	stdsql "database/sql"
	"time"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// OutboxSelectQuery returns the statement, and its arguments, with which partition k of n of the
// relay reads its next batch of at most batchSize commands as consumer group group.
func OutboxSelectQuery(batchSize, partitions, k int, group string) (string, []any, error) {
	q, err := outboxSchema{batchSize: batchSize, partitions: partitions, partition: k}.SelectQuery(sql.SelectQueryParams{
		Topic:          TopicOutbox,
		ConsumerGroup:  group,
		OffsetsAdapter: outboxOffsets(),
	})
	return q.Query, q.Args, err
}

// BeginOutboxWalk begins a transaction as each of the relay's batches does.
func BeginOutboxWalk(ctx context.Context, conn sql.Conn, opts *stdsql.TxOptions) (sql.Tx, error) {
	return newOutboxWalker(conn).BeginTx(ctx, opts)
}

// NewDrainingSubscriber returns the relay's subscription over sub, closed in order within grace.
func NewDrainingSubscriber(sub message.Subscriber, grace time.Duration) message.Subscriber {
	return newDrainingSubscriber(sub, grace)
}

// NewDrainingSubscribers returns the workers' subscriptions, each over a subscriber of its own
// from open, closed in order within grace.
func NewDrainingSubscribers(open func() (message.Subscriber, error), grace time.Duration) message.Subscriber {
	return newDrainingSubscribers(open, grace)
}

// SetAckDeadline sets how long r's partitions wait for a command handed out, RabbitMQ's confirm
// included (5 s otherwise), so that a test sees many deadlines pass in seconds; call it before r
// runs.
func SetAckDeadline(r *Relay, d time.Duration) { r.ackDeadline = d }
