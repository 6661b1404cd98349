package router

import (
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/herald-notify/herald/events"
)

// TopicEventLog is the watermill-sql topic backed by the event_log table.
const TopicEventLog = "event_log"

// Metadata keys of a message read from the event log.
const (
	metaStreamID      = "stream_id"
	metaStreamVersion = "stream_version"
	metaEventType     = "event_type"
	metaPosition      = "global_position"
	metaOccurredAt    = "occurred_at"
	metaCausationID   = "causation_id"
	metaActor         = "actor"
	metaCorrelationID = "correlation_id"
	// metaTracePrefix prefixes each field of the event's trace context (trace.traceparent).
	metaTracePrefix = "trace."
)

// eventLogSchema makes the event_log table a watermill-sql topic. It reads the table in the order
// watermill's PostgreSQL schema does — by transaction id, then position, and only rows older than
// every transaction still open — so a consumer never skips an event committed late. Appends go
// through events.Log, which checks stream versions; this adapter refuses to insert.
type eventLogSchema struct {
	batchSize int
}

var _ sql.SchemaAdapter = eventLogSchema{}

// InsertQuery refuses: events are appended only through events.Log.
func (eventLogSchema) InsertQuery(sql.InsertQueryParams) (sql.Query, error) {
	return sql.Query{}, errors.New("the event log is appended through events.Log, which checks stream versions")
}

// SelectQuery reads the next batch of events after the consumer group's offset, in the order
// every consumer reads the log: by transaction, then by position. A NotificationQueued comes
// without what was sent (events.QueuedContentKeys), which no read model keeps: an HTML email's
// first event is some 57 KB, nearly all of it templates and renderings, and every projection
// would otherwise carry it out of the database and decode it.
func (s eventLogSchema) SelectQuery(params sql.SelectQueryParams) (sql.Query, error) {
	next, err := params.OffsetsAdapter.NextOffsetQuery(sql.NextOffsetQueryParams{
		Topic:         params.Topic,
		ConsumerGroup: params.ConsumerGroup,
	})
	if err != nil {
		return sql.Query{}, err
	}
	// A row comparison against the group's offset walks the (transaction_id, global_position)
	// index from the offset on, however large the transactions before it were.
	q := `
WITH last_processed AS (` + next.Query + `)
SELECT global_position, transaction_id, event_id::text, stream_id::text, stream_version, event_type,
	occurred_at,
	CASE WHEN event_type = '` + events.TypeNotificationQueued + `' THEN data - '` + queuedContent + `'::text[] ELSE data END,
	metadata
FROM event_log
WHERE (transaction_id, global_position) >
		((SELECT last_processed_transaction_id FROM last_processed), (SELECT offset_acked FROM last_processed))
	AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id ASC, global_position ASC
LIMIT ` + strconv.Itoa(s.batchSize)
	return sql.Query{Query: q, Args: next.Args}, nil
}

// queuedContent is events.QueuedContentKeys as a PostgreSQL array literal (the keys are plain
// JSON names, nothing to quote).
var queuedContent = "{" + strings.Join(events.QueuedContentKeys, ",") + "}"

// UnmarshalMessage turns an event_log row into a watermill message carrying the recorded event.
func (eventLogSchema) UnmarshalMessage(params sql.UnmarshalMessageParams) (sql.Row, error) {
	var (
		row      sql.Row
		xid      sql.XID8
		eventID  string
		streamID string
		version  int64
		typ      string
		at       time.Time
		data     []byte
		meta     []byte
	)
	if err := params.Row.Scan(&row.Offset, &xid, &eventID, &streamID, &version, &typ, &at, &data, &meta); err != nil {
		return sql.Row{}, fmt.Errorf("scan event_log row: %w", err)
	}
	var md events.Metadata
	if len(meta) > 0 {
		if err := json.Unmarshal(meta, &md); err != nil {
			return sql.Row{}, fmt.Errorf("event %d metadata: %w", row.Offset, err)
		}
	}
	msg := message.NewMessage(eventID, data)
	msg.Metadata.Set(metaStreamID, streamID)
	msg.Metadata.Set(metaStreamVersion, strconv.FormatInt(version, 10))
	msg.Metadata.Set(metaEventType, typ)
	msg.Metadata.Set(metaPosition, strconv.FormatInt(row.Offset, 10))
	msg.Metadata.Set(metaOccurredAt, at.Format(time.RFC3339Nano))
	msg.Metadata.Set(metaCorrelationID, md.CorrelationID)
	msg.Metadata.Set(metaCausationID, md.CausationID)
	msg.Metadata.Set(metaActor, md.Actor)
	for k, v := range md.Trace {
		msg.Metadata.Set(metaTracePrefix+k, v)
	}

	row.UUID = []byte(eventID)
	row.Payload = data
	row.Metadata = meta
	row.Msg = msg
	row.ExtraData = map[string]any{"transaction_id": xid}
	return row, nil
}

func (eventLogSchema) SchemaInitializingQueries(sql.SchemaInitializingQueriesParams) ([]sql.Query, error) {
	// The tables belong to the migrations.
	return nil, nil
}

func (eventLogSchema) SubscribeIsolationLevel() stdsql.IsolationLevel {
	return stdsql.LevelRepeatableRead
}

// eventLogOffsets stores the log consumers' offsets in event_log_offsets.
func eventLogOffsets() sql.OffsetsAdapter {
	return sql.DefaultPostgreSQLOffsetsAdapter{
		GenerateMessagesOffsetsTableName: func(string) string { return "event_log_offsets" },
	}
}

// recordedFromMessage turns a message read from the event log back into the event as recorded.
func recordedFromMessage(msg *message.Message) (events.Recorded, error) {
	version, err := strconv.ParseInt(msg.Metadata.Get(metaStreamVersion), 10, 64)
	if err != nil {
		return events.Recorded{}, fmt.Errorf("event %s: stream version: %w", msg.UUID, err)
	}
	position, err := strconv.ParseInt(msg.Metadata.Get(metaPosition), 10, 64)
	if err != nil {
		return events.Recorded{}, fmt.Errorf("event %s: position: %w", msg.UUID, err)
	}
	at, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(metaOccurredAt))
	if err != nil {
		return events.Recorded{}, fmt.Errorf("event %s: time: %w", msg.UUID, err)
	}
	return events.Recorded{
		ID:       msg.UUID,
		StreamID: msg.Metadata.Get(metaStreamID),
		Version:  version,
		Position: position,
		Type:     msg.Metadata.Get(metaEventType),
		Time:     at,
		Data:     json.RawMessage(msg.Payload),
		Metadata: events.Metadata{
			CorrelationID: msg.Metadata.Get(metaCorrelationID),
			CausationID:   msg.Metadata.Get(metaCausationID),
			Actor:         msg.Metadata.Get(metaActor),
			Trace:         traceFromMetadata(msg.Metadata),
		},
	}, nil
}

// traceFromMetadata returns the trace context UnmarshalMessage put in md, nil when none.
func traceFromMetadata(md message.Metadata) map[string]string {
	var out map[string]string
	for k, v := range md {
		if field, ok := strings.CutPrefix(k, metaTracePrefix); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[field] = v
		}
	}
	return out
}
