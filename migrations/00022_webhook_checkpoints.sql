-- +goose Up

-- An endpoint subscribed to checkpoint.signed receives each signed checkpoint the sealer writes.
-- Its live delivery reads the checkpoints table as a consumer of its own: checkpoint_seq is the
-- seq of the last checkpoint it delivered, moved past a checkpoint only once the endpoint took
-- it (checkpoints go out one at a time, in seq order). Existing endpoints start after the latest
-- checkpoint, as a new endpoint starts at the end of the log.
ALTER TABLE webhook_endpoints ADD COLUMN checkpoint_seq BIGINT NOT NULL DEFAULT 0;
UPDATE webhook_endpoints SET checkpoint_seq = (SELECT coalesce(max(seq), 0) FROM checkpoints);

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN checkpoint_seq;
