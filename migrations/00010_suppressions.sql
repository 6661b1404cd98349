-- +goose Up

-- The suppression list: who is not sent to, on which channel. Its changes are events of a
-- stream per channel and recipient in event_log (RecipientSuppressed, RecipientUnsuppressed),
-- appended in the transaction that writes the row; the row is the list as a worker reads it
-- before each attempt, one primary-key lookup whatever the list's size.
CREATE TABLE suppressions (
    channel        TEXT        NOT NULL,
    -- The recipient as the list keys it: an email's address in lower case, without a display
    -- name; an SMS number as sent (E.164).
    recipient      TEXT        NOT NULL,
    -- The stream of its events, and the version of it this row reflects.
    stream_id      UUID        NOT NULL UNIQUE,
    version        BIGINT      NOT NULL,
    -- hard_bounce, complaint, opt_out or manual; reason says more.
    cause          TEXT        NOT NULL,
    reason         TEXT        NOT NULL DEFAULT '',
    notification_id UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    created_by     TEXT        NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A suppression holds until expires_at when it is set, and until it is removed.
    expires_at     TIMESTAMPTZ,
    removed_at     TIMESTAMPTZ,
    PRIMARY KEY (channel, recipient)
);

-- +goose Down
DROP TABLE suppressions;
