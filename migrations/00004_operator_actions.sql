-- +goose Up

-- Operators requeue failed notifications for a new round of attempts, and discard them.
ALTER TABLE notification_status ADD COLUMN round_start INT NOT NULL DEFAULT 0;
ALTER TABLE notification_history
    ADD COLUMN reason TEXT NOT NULL DEFAULT '',
    ADD COLUMN actor  TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE notification_history DROP COLUMN actor, DROP COLUMN reason;
ALTER TABLE notification_status DROP COLUMN round_start;
