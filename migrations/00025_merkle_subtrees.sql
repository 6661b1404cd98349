-- +goose Up

-- The roots of the log's complete, aligned perfect subtrees of 2^level leaves (level >= 10),
-- written by the sealer in the transaction of the checkpoint that completes them: subtree idx of
-- its level covers leaves [idx * 2^level, (idx + 1) * 2^level) of the tree, the last of which is
-- (last_transaction_id, last_position). An inclusion proof reads O(log n) of these and the
-- leaves of at most two 2^10-leaf blocks instead of every leaf up to its checkpoint.
--
-- A cache, not a commitment: nothing signs these rows. A proof built from a wrong one does not
-- lead to the signed root, and is checked before it is returned (ledger.Prove falls back to
-- reading the leaves). Append-only like the checkpoints all the same, so that the services can
-- neither rewrite them nor hide a rewritten one.
CREATE TABLE merkle_subtrees (
    level               SMALLINT NOT NULL CHECK (level BETWEEN 10 AND 62),
    idx                 BIGINT   NOT NULL CHECK (idx >= 0),
    root                BYTEA    NOT NULL CHECK (octet_length(root) = 32),
    last_transaction_id xid8     NOT NULL,
    last_position       BIGINT   NOT NULL,
    PRIMARY KEY (level, idx)
);

-- A proof finds its event's 2^10 block by the event's place in the log.
CREATE INDEX merkle_subtrees_last_idx ON merkle_subtrees (level, last_transaction_id, last_position);

CREATE TRIGGER merkle_subtrees_no_update_delete
    BEFORE UPDATE OR DELETE ON merkle_subtrees
    FOR EACH ROW EXECUTE FUNCTION checkpoints_refuse_change();
CREATE TRIGGER merkle_subtrees_no_truncate
    BEFORE TRUNCATE ON merkle_subtrees
    FOR EACH STATEMENT EXECUTE FUNCTION checkpoints_refuse_change();

-- +goose Down
DROP TABLE merkle_subtrees;
