-- +goose NO TRANSACTION
-- +goose Up

-- A gateway's status callback names the message by the id the gateway gave it when it took the
-- message; the notification it belongs to is the stream whose NotificationSent recorded that id
-- (receipts.Recorder). Only NotificationSent events are indexed, by that id.
--
-- Built CONCURRENTLY, outside a transaction, so appends to the log go on while it is built. A
-- build that failed half-way leaves an invalid index behind; the migration is then not recorded,
-- and the next run drops it and builds it again.
DROP INDEX CONCURRENTLY IF EXISTS event_log_sent_provider_message_id_idx;
CREATE INDEX CONCURRENTLY event_log_sent_provider_message_id_idx ON event_log ((data->>'provider_message_id'))
    WHERE event_type = 'NotificationSent';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS event_log_sent_provider_message_id_idx;
