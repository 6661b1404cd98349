-- +goose Up

-- An HTML email's NotificationQueued is tens of kilobytes, stored out of line and compressed.
-- pglz, the default, is slow at both ends; lz4 compresses several times faster and
-- decompresses faster still, and every worker and projector read of such an event decompresses
-- it. It applies to rows written from now on; PostgreSQL reads both. A server built without lz4
-- keeps pglz.
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE event_log ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: event_log.data stays compressed with pglz';
END;
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE event_log ALTER COLUMN data SET COMPRESSION default;
