-- +goose Up

-- The console's overview counts sends and failures per minute of the last hour: this index lets
-- it read only that hour's rows of those two event types, instead of the whole history.
CREATE INDEX notification_history_type_occurred_idx ON notification_history (event_type, occurred_at);

-- Searching by recipient, newest first, with the keyset cursor (created_at, notification_id):
-- this index serves the filter and the order together, so a page reads only its rows.
CREATE INDEX notification_status_recipient_created_idx
    ON notification_status (recipient, created_at DESC, notification_id DESC);

-- +goose Down
DROP INDEX notification_status_recipient_created_idx;
DROP INDEX notification_history_type_occurred_idx;
