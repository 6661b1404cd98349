package router

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/tracing"
)

// TopicOutbox is the watermill-sql topic (table outbox) the API writes commands to and the relay
// forwards from.
const TopicOutbox = "outbox"

// commandMarshaler names commands by their Go type ("SendNotification"); the name travels in the
// message metadata and both sides must agree on it.
var commandMarshaler = cqrs.JSONMarshaler{GenerateName: cqrs.StructName}

// outboxSchema is watermill-sql's PostgreSQL schema for the table outbox, read in partitions:
// the relay's partition k of n reads the rows whose offset modulo n is k.
type outboxSchema struct {
	batchSize, partitions, partition int
}

var _ sql.SchemaAdapter = outboxSchema{}

func (s outboxSchema) base() sql.DefaultPostgreSQLSchema {
	return sql.DefaultPostgreSQLSchema{
		GenerateMessagesTableName: func(string) string { return "outbox" },
		SubscribeBatchSize:        s.batchSize,
	}
}

func (s outboxSchema) InsertQuery(p sql.InsertQueryParams) (sql.Query, error) {
	return s.base().InsertQuery(p)
}

func (s outboxSchema) UnmarshalMessage(p sql.UnmarshalMessageParams) (sql.Row, error) {
	return s.base().UnmarshalMessage(p)
}

func (s outboxSchema) SchemaInitializingQueries(sql.SchemaInitializingQueriesParams) ([]sql.Query, error) {
	// The tables belong to the migrations.
	return nil, nil
}

func (s outboxSchema) SubscribeIsolationLevel() stdsql.IsolationLevel {
	return s.base().SubscribeIsolationLevel()
}

// SelectQuery is watermill-sql's PostgreSQL query (see eventLogSchema) limited to the
// partition's rows. watermill-sql writes the offset's condition as (transaction_id = X AND
// "offset" > Y) OR transaction_id > X, which PostgreSQL reads as a bitmap of every row past the
// offset, all of them fetched and sorted for each batch; the row comparison, which says the same,
// walks the (transaction_id, "offset") key in order from the offset and stops at the batch's
// end, having read about a batch of rows for each partition, however long the backlog behind it.
func (s outboxSchema) SelectQuery(params sql.SelectQueryParams) (sql.Query, error) {
	next, err := params.OffsetsAdapter.NextOffsetQuery(sql.NextOffsetQueryParams{
		Topic:         params.Topic,
		ConsumerGroup: params.ConsumerGroup,
	})
	if err != nil {
		return sql.Query{}, err
	}
	partition := ""
	if s.partitions > 1 {
		partition = fmt.Sprintf(`AND "offset" %% %d = %d`, s.partitions, s.partition)
	}
	q := `
WITH last_processed AS (` + next.Query + `)
SELECT "offset", transaction_id, uuid, payload, metadata FROM outbox
WHERE (transaction_id, "offset") >
		((SELECT last_processed_transaction_id FROM last_processed), (SELECT offset_acked FROM last_processed))
	AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
	` + partition + `
ORDER BY transaction_id ASC, "offset" ASC
LIMIT ` + strconv.Itoa(max(1, s.batchSize))
	return sql.Query{Query: q, Args: next.Args}, nil
}

// outboxWalkSettings follow BEGIN in each of the relay's transactions: they leave the planner
// only the ordered walk of the outbox's key for the batch select. Left to its estimates, it does
// not always take it: the partition filter ("offset" % n = k) makes it expect a few rows, so it
// prices reading them all through a bitmap and sorting them as cheap — and under a backlog that
// bitmap is every command between the partition's offset and the snapshot's xmin, tens of
// thousands of rows for each batch of 20 (seen at 1,000 accepts a second). With bitmap and
// sequential scans off the select reads a few batches' worth of rows, as its ORDER BY and LIMIT
// intend. Both settings last only for the transaction.
const outboxWalkSettings = `SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off`

// outboxWalker begins the relay's transactions with outboxWalkSettings, sent with the BEGIN in
// one simple-protocol query: one round trip, where a BEGIN and then a statement of settings took
// two for every batch (at one or two commands a batch under load, a round trip per command).
type outboxWalker struct {
	sql.Beginner // statements outside a transaction
	conn         sql.Conn
}

func newOutboxWalker(conn sql.Conn) outboxWalker {
	return outboxWalker{Beginner: sql.BeginnerFromPgx(conn), conn: conn}
}

func (b outboxWalker) BeginTx(ctx context.Context, opts *stdsql.TxOptions) (sql.Tx, error) {
	begin := "BEGIN"
	if opts != nil {
		switch opts.Isolation {
		case stdsql.LevelDefault:
		case stdsql.LevelReadUncommitted:
			begin += " ISOLATION LEVEL READ UNCOMMITTED"
		case stdsql.LevelReadCommitted:
			begin += " ISOLATION LEVEL READ COMMITTED"
		case stdsql.LevelRepeatableRead:
			begin += " ISOLATION LEVEL REPEATABLE READ"
		case stdsql.LevelSerializable:
			begin += " ISOLATION LEVEL SERIALIZABLE"
		default:
			return nil, fmt.Errorf("outbox: isolation level %v is not one PostgreSQL has", opts.Isolation)
		}
		if opts.ReadOnly {
			begin += " READ ONLY"
		} else {
			begin += " READ WRITE" // as watermill-sql's own BeginTx asks, whatever the server's default
		}
	}
	// Should a setting fail after BEGIN, pgx keeps the connection, in a failed transaction: the
	// pool (a *pgxpool.Pool here) closes a connection given back outside idle.
	tx, err := b.conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: begin + "; " + outboxWalkSettings})
	if err != nil {
		return nil, fmt.Errorf("outbox: begin the batch's transaction: %w", err)
	}
	return walkTx{PgxTx: sql.PgxTx{Tx: tx}, ctx: ctx}, nil
}

// walkTx is watermill-sql's pgx transaction, ended with the context it began with, as
// watermill-sql's own BeginTx arranges.
type walkTx struct {
	sql.PgxTx
	ctx context.Context
}

func (t walkTx) Commit() error   { return t.Tx.Commit(t.ctx) }
func (t walkTx) Rollback() error { return t.Tx.Rollback(context.WithoutCancel(t.ctx)) }

func outboxOffsets() sql.DefaultPostgreSQLOffsetsAdapter {
	return sql.DefaultPostgreSQLOffsetsAdapter{
		GenerateMessagesOffsetsTableName: func(string) string { return "outbox_offsets" },
	}
}

// batchExecutor lets watermill-sql's publisher write into a pgx batch: its insert is queued, to
// run when the batch is sent, and its result is read then.
type batchExecutor struct{ b *pgx.Batch }

func (e batchExecutor) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	e.b.Queue(query, args...)
	return queuedResult{}, nil
}

func (e batchExecutor) QueryContext(context.Context, string, ...any) (sql.Rows, error) {
	return nil, errors.New("outbox: a batched publisher only inserts")
}

// queuedResult is the result of a queued statement, which has not run yet.
type queuedResult struct{}

func (queuedResult) RowsAffected() (int64, error) { return 0, errors.New("queued: not run yet") }

// Outbox stores commands in the caller's transaction, wrapped in the forwarder's envelope that
// names the RabbitMQ queue the relay must publish them to.
type Outbox struct {
	logger  watermill.LoggerAdapter
	tracing tracing.Tracing
	signal  *OutboxSignal
}

var (
	_ handlers.Outbox      = (*Outbox)(nil)
	_ handlers.BatchOutbox = (*Outbox)(nil)
	_ handlers.OutboxWaker = (*Outbox)(nil)
)

// NewOutbox returns an outbox.
func NewOutbox(logger watermill.LoggerAdapter) *Outbox { return &Outbox{logger: logger} }

// WithTracing returns a copy of o that stores, with each command, the trace context of the span
// its ctx carries: the relay continues the trace from it.
func (o *Outbox) WithTracing(t tracing.Tracing) *Outbox {
	c := *o
	c.tracing = t
	return &c
}

// WithSignal returns a copy of o whose Wake wakes the relay listening to s.
func (o *Outbox) WithSignal(s *OutboxSignal) *Outbox {
	c := *o
	c.signal = s
	return &c
}

// Wake tells the relay of this process, if o has its signal, that a transaction that stored
// commands through o has committed: its idle partitions look at once. It never blocks.
func (o *Outbox) Wake() { o.signal.Wake() }

// Send stores cmd in tx. The command's message carries the request's correlation id.
func (o *Outbox) Send(ctx context.Context, tx pgx.Tx, cmd commands.SendNotification) error {
	return o.send(ctx, sql.TxFromPgx(tx), cmd)
}

// Queue queues the storing of cmd in b, to run with whatever else b holds as one implicit
// transaction: the API's accept writes its event and its command in one round trip.
func (o *Outbox) Queue(ctx context.Context, b *pgx.Batch, cmd commands.SendNotification) error {
	return o.send(ctx, batchExecutor{b}, cmd)
}

// send stores cmd in the outbox through db (a transaction or a batch), for the relay to forward
// to its channel's queue.
func (o *Outbox) send(ctx context.Context, db sql.ContextExecutor, cmd commands.SendNotification) error {
	// A publisher bound to a transaction cannot create tables: they come from the migrations.
	pub, err := sql.NewPublisher(db, sql.PublisherConfig{SchemaAdapter: outboxSchema{}}, o.logger)
	if err != nil {
		return fmt.Errorf("outbox publisher: %w", err)
	}
	bus, err := cqrs.NewCommandBusWithConfig(
		forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: TopicOutbox}),
		cqrs.CommandBusConfig{
			GeneratePublishTopic: func(p cqrs.CommandBusGeneratePublishTopicParams) (string, error) {
				c, ok := p.Command.(commands.SendNotification)
				if !ok {
					return "", fmt.Errorf("no queue for command %s", p.CommandName)
				}
				return QueueOf(c.Channel, c.Priority)
			},
			OnSend: func(p cqrs.CommandBusOnSendParams) error {
				if id := herald.CorrelationID(p.Message.Context()); id != "" {
					middleware.SetCorrelationID(id, p.Message)
				}
				// The metadata is stored in the forwarder's envelope and becomes the RabbitMQ
				// message's headers: the trace context travels without a column of its own.
				o.tracing.Inject(p.Message.Context(), p.Message.Metadata)
				return nil
			},
			Marshaler: commandMarshaler,
			Logger:    o.logger,
		})
	if err != nil {
		return fmt.Errorf("outbox command bus: %w", err)
	}
	if err := bus.Send(ctx, cmd); err != nil {
		return fmt.Errorf("outbox: send %s: %w", cmd.NotificationID, err)
	}
	return nil
}
