-- +goose Up

-- Files sent with emails, stored once each, by the SHA-256 of their bytes. NotificationQueued
-- names them by that hash (with the name and type they were sent with), never carries the bytes:
-- the log stays small, and still proves what was sent. A send of bytes already stored only marks
-- them used again (last_used_at); the API's sweep deletes the files no send used for
-- HERALD_ATTACHMENT_RETENTION.
CREATE TABLE attachments (
    sha256       BYTEA       PRIMARY KEY CHECK (length(sha256) = 32),
    size         BIGINT      NOT NULL CHECK (size >= 0),
    data         BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Attached files are mostly compressed already (PDF, PNG, JPEG): do not spend time trying again.
ALTER TABLE attachments ALTER COLUMN data SET STORAGE EXTERNAL;
-- The retention sweep's search.
CREATE INDEX attachments_last_used_at ON attachments (last_used_at);

-- +goose Down
DROP TABLE attachments;
