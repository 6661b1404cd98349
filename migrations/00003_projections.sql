-- +goose Up

-- Read models, derived from event_log by the projector. They can be dropped and rebuilt from the
-- log at any time; the log is the truth.

-- One row per notification: where it is now.
CREATE TABLE notification_status (
    notification_id     UUID        PRIMARY KEY,
    channel             TEXT        NOT NULL,
    recipient           TEXT        NOT NULL,
    status              TEXT        NOT NULL,
    attempts            INT         NOT NULL DEFAULT 0,
    attempt_open        BOOLEAN     NOT NULL DEFAULT false,
    attempt_started_at  TIMESTAMPTZ,
    last_error          TEXT        NOT NULL DEFAULT '',
    provider            TEXT        NOT NULL DEFAULT '',
    provider_message_id TEXT        NOT NULL DEFAULT '',
    -- The stream version and log position of the last event applied: the idempotency guard.
    version             BIGINT      NOT NULL,
    position            BIGINT      NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX notification_status_created_idx ON notification_status (created_at DESC, notification_id DESC);
CREATE INDEX notification_status_status_created_idx ON notification_status (status, created_at DESC, notification_id DESC);
CREATE INDEX notification_status_channel_created_idx ON notification_status (channel, created_at DESC, notification_id DESC);

-- One row per event of a notification: its whole story, every attempt with its error.
CREATE TABLE notification_history (
    notification_id     UUID        NOT NULL,
    version             BIGINT      NOT NULL,
    position            BIGINT      NOT NULL,
    event_type          TEXT        NOT NULL,
    status              TEXT        NOT NULL,
    attempt             INT         NOT NULL DEFAULT 0,
    provider            TEXT        NOT NULL DEFAULT '',
    provider_message_id TEXT        NOT NULL DEFAULT '',
    error               TEXT        NOT NULL DEFAULT '',
    occurred_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (notification_id, version)
);

-- +goose Down
DROP TABLE notification_history;
DROP TABLE notification_status;
