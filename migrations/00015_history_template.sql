-- +goose Up

-- The history names the stored template version a notification was rendered from. Rows already
-- there take it from their NotificationQueued event, so the history of notifications sent before
-- this column existed says it too, without a rebuild.
ALTER TABLE notification_history ADD COLUMN template TEXT NOT NULL DEFAULT '';
UPDATE notification_history h
SET template = (e.data->'template'->>'name') || '@' || (e.data->'template'->>'version')
FROM event_log e
WHERE e.event_type = 'NotificationQueued'
  AND e.data ? 'template'
  AND h.event_type = 'NotificationQueued'
  AND e.stream_id = h.notification_id
  AND e.stream_version = h.version;

-- +goose Down
ALTER TABLE notification_history DROP COLUMN template;
