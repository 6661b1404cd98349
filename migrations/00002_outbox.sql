-- +goose Up

-- The transactional outbox: the API writes SendNotification commands here in the same transaction
-- as the NotificationQueued event, and the relay forwards them to RabbitMQ. Layout is watermill-sql's
-- default PostgreSQL schema for the topic "outbox"; a publisher bound to a transaction cannot create
-- tables, so they are created here.
CREATE TABLE outbox (
    "offset"       BIGSERIAL,
    "uuid"         VARCHAR(36) NOT NULL,
    "created_at"   TIMESTAMP   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "payload"      JSON        DEFAULT NULL,
    "metadata"     JSON        DEFAULT NULL,
    "transaction_id" xid8      NOT NULL,
    PRIMARY KEY ("transaction_id", "offset")
);

CREATE TABLE outbox_offsets (
    consumer_group                VARCHAR(255) NOT NULL,
    offset_acked                  BIGINT,
    last_processed_transaction_id xid8         NOT NULL,
    PRIMARY KEY (consumer_group)
);

-- +goose Down
DROP TABLE outbox_offsets;
DROP TABLE outbox;
