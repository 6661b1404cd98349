-- +goose Up

-- The event log: every fact about every notification, in one append-only table. It is also the
-- watermill-sql topic the projector consumes: rows are read in (transaction_id, global_position)
-- order and only once every transaction older than them has finished, so no row is ever skipped.
CREATE TABLE event_log (
    global_position BIGSERIAL   NOT NULL,
    event_id        UUID        NOT NULL,
    stream_id       UUID        NOT NULL,
    stream_version  BIGINT      NOT NULL CHECK (stream_version > 0),
    event_type      TEXT        NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    data            JSONB       NOT NULL,
    metadata        JSONB       NOT NULL DEFAULT '{}',
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (global_position),
    -- Optimistic concurrency: two writers appending the same version to one stream cannot both win.
    CONSTRAINT event_log_stream_version_key UNIQUE (stream_id, stream_version)
);

-- The consumers' read order.
CREATE INDEX event_log_transaction_position_idx ON event_log (transaction_id, global_position);
CREATE INDEX event_log_occurred_at_idx ON event_log (occurred_at);

-- +goose StatementBegin
CREATE FUNCTION event_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

-- The database itself refuses to rewrite history, whoever asks.
CREATE TRIGGER event_log_no_update_delete
    BEFORE UPDATE OR DELETE ON event_log
    FOR EACH ROW EXECUTE FUNCTION event_log_refuse_change();
CREATE TRIGGER event_log_no_truncate
    BEFORE TRUNCATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();

-- Offsets of the log's consumer groups (one per projection), in watermill-sql's layout.
CREATE TABLE event_log_offsets (
    consumer_group                VARCHAR(255) NOT NULL,
    offset_acked                  BIGINT,
    last_processed_transaction_id xid8         NOT NULL,
    PRIMARY KEY (consumer_group)
);

-- +goose Down
DROP TABLE event_log_offsets;
DROP TABLE event_log;
DROP FUNCTION event_log_refuse_change();
