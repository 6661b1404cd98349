-- +goose Up

-- The status read model shows each notification's priority. Rows already projected take it from
-- their NotificationQueued event, as a rebuild would: absent there means normal.
ALTER TABLE notification_status ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
UPDATE notification_status s
SET priority = e.data->>'priority'
FROM event_log e
WHERE e.event_type = 'NotificationQueued'
  AND e.data ? 'priority'
  AND e.stream_id = s.notification_id
  AND e.stream_version = 1;

-- One token bucket per provider, shared by every worker process: tokens is what was left at
-- updated_at, and what the rate adds since then is counted when tokens are next taken (one
-- statement, under the row's lock). updated_at is the database's clock, so workers' clocks play
-- no part. The rows are state, not history: a lost row only starts its bucket full again.
CREATE TABLE rate_limits (
    provider   TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- +goose Down
DROP TABLE rate_limits;
ALTER TABLE notification_status DROP COLUMN priority;
