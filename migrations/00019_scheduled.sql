-- +goose Up

-- Scheduled sends waiting for their time. The acceptance writes the row in the transaction of the
-- NotificationQueued that names send_at, instead of the outbox's command; the scheduler appends
-- NotificationReleased, queues the command and deletes the row in one transaction when due_at
-- has passed on the database's clock. Nothing scheduled is lost (the row commits with its event)
-- and nothing is released twice (the row goes with the release, which carries the stream's
-- expected version).
CREATE TABLE scheduled_notifications (
    notification_id UUID        PRIMARY KEY,
    due_at          TIMESTAMPTZ NOT NULL
);
-- The scheduler's search: the earliest due first.
CREATE INDEX scheduled_notifications_due_at ON scheduled_notifications (due_at);

-- The status read model keeps when a notification was asked to be sent.
ALTER TABLE notification_status ADD COLUMN send_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE notification_status DROP COLUMN send_at;
DROP TABLE scheduled_notifications;
