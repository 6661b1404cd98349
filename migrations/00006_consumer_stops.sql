-- +goose Up

-- A projection that meets a gap in a stream's versions (an event v+2 over a read model at v, or
-- v>1 of a stream it has never seen) stops rather than build a read model that is not a fold of
-- the log. The reason is kept beside the group's offset, so that `herald projections status` and
-- the API can say so from any process; a rebuild, which sets the offset, clears it.
ALTER TABLE event_log_offsets
    ADD COLUMN stopped_reason TEXT,
    ADD COLUMN stopped_at     TIMESTAMPTZ;

-- +goose Down
ALTER TABLE event_log_offsets DROP COLUMN stopped_reason, DROP COLUMN stopped_at;
