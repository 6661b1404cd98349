-- +goose Up

-- The reconciler backs off a notification it keeps recovering: after k recoveries in a row it
-- waits After·2^k (at most 16·After) before the next. The status read model keeps that count, so
-- that the scan for candidates leaves out the notifications still in their backoff instead of
-- handing them to the reconciler to skip: otherwise a few hundred notifications stuck for good
-- (a channel with no worker) fill every scan's limit and a newly stalled one is never reached.
ALTER TABLE notification_status ADD COLUMN recoveries INT NOT NULL DEFAULT 0;

-- One ordered range per backoff level (0, 1, 2, 3 and 4-or-more recoveries in a row), over the
-- notifications that wait for a worker only; projections.Reader.Unfinished merges the ranges.
-- The expression must stay the one the query uses: LEAST(recoveries, 4).
CREATE INDEX notification_status_unfinished_idx ON notification_status (LEAST(recoveries, 4), updated_at)
    WHERE status IN ('pending', 'processing');

-- Rows already projected get the count the log gives them (its trailing NotificationRecovered
-- events, up to the row's version), as a rebuild would.
UPDATE notification_status s SET recoveries = r.n
FROM (
    SELECT e.stream_id, count(*) AS n
    FROM event_log e JOIN notification_status t ON t.notification_id = e.stream_id
    WHERE e.event_type = 'NotificationRecovered' AND e.stream_version <= t.version
      AND NOT EXISTS (SELECT FROM event_log l WHERE l.stream_id = e.stream_id
          AND l.stream_version > e.stream_version AND l.stream_version <= t.version
          AND l.event_type <> 'NotificationRecovered')
    GROUP BY e.stream_id
) r
WHERE s.notification_id = r.stream_id;

-- +goose Down
DROP INDEX notification_status_unfinished_idx;
ALTER TABLE notification_status DROP COLUMN recoveries;
