-- +goose Up

-- A hash chain through each stream: every event carries the SHA-256 of its predecessor's hash and
-- of its own contents, so that changing, removing or reordering a recorded event — which the
-- triggers of 00001 refuse, but which a superuser can do with the triggers disabled — shows as a
-- hash that no longer matches (`herald events verify`). The hash is computed here, by the
-- database, on every INSERT whatever the path, and whatever hash the client sent is overwritten.
--
-- The encoding is fixed and unambiguous: fixed-width fields as they are, variable ones after
-- their length (4 bytes, big-endian):
--   previous hash (32 bytes; 32 zero bytes for version 1)
--   event_id (16) | stream_id (16) | stream_version (8, big-endian)
--   len | event_type (UTF-8) | occurred_at (8: microseconds since the Unix epoch, UTC)
--   len | data::text (UTF-8) | len | metadata::text (UTF-8)
-- data and metadata are hashed in jsonb's canonical text form, which is exactly what a client
-- reads back, so a verifier outside the database recomputes the same bytes
-- (ledger.EventHash).
ALTER TABLE event_log ADD COLUMN hash BYTEA CHECK (octet_length(hash) = 32);

-- +goose StatementBegin
CREATE FUNCTION event_log_hash(prev BYTEA, event_id UUID, stream_id UUID, stream_version BIGINT,
    event_type TEXT, occurred_at TIMESTAMPTZ, data JSONB, metadata JSONB) RETURNS BYTEA
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT sha256(prev || uuid_send(event_id) || uuid_send(stream_id) || int8send(stream_version)
        || int4send(octet_length(convert_to(event_type, 'UTF8'))) || convert_to(event_type, 'UTF8')
        || int8send((extract(epoch FROM occurred_at) * 1000000)::bigint)
        || int4send(octet_length(convert_to(data::text, 'UTF8'))) || convert_to(data::text, 'UTF8')
        || int4send(octet_length(convert_to(metadata::text, 'UTF8'))) || convert_to(metadata::text, 'UTF8'))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- VOLATILE (plpgsql's default): its query sees the rows inserted earlier by the same statement, so
-- an append of several versions in one INSERT chains each to the one before.
--
-- It also sets the event's place in the log, whatever the client sent: the inserting
-- transaction's id, and the next number of global_position's sequence (the column's default is
-- dropped below, so that each row takes one number). The checkpoints commit to the log in
-- (transaction_id, global_position) order; a client that chose them could place an event
-- before others already read.
CREATE FUNCTION event_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev BYTEA;
BEGIN
    NEW.transaction_id := pg_current_xact_id();
    NEW.global_position := nextval('event_log_global_position_seq'::regclass);
    IF NEW.stream_version = 1 THEN
        prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        SELECT hash INTO prev FROM event_log
        WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1;
        IF prev IS NULL THEN
            RAISE EXCEPTION 'event_log: stream % has no version % to chain version % to',
                NEW.stream_id, NEW.stream_version - 1, NEW.stream_version
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    NEW.hash := event_log_hash(prev, NEW.event_id, NEW.stream_id, NEW.stream_version,
        NEW.event_type, NEW.occurred_at, NEW.data, NEW.metadata);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

-- Seal the events recorded before this migration, stream by stream in version order. The
-- append-only trigger is lifted for this one statement of the owner's, in this transaction.
ALTER TABLE event_log DISABLE TRIGGER event_log_no_update_delete;

-- +goose StatementBegin
DO $$
DECLARE
    r       RECORD;
    prev    BYTEA;
    stream  UUID;
    want    BIGINT;
    sealed  BIGINT := 0;
    streams BIGINT := 0;
BEGIN
    FOR r IN SELECT ctid, event_id, stream_id, stream_version, event_type, occurred_at, data, metadata
             FROM event_log ORDER BY stream_id, stream_version LOOP
        IF stream IS DISTINCT FROM r.stream_id THEN
            stream := r.stream_id;
            streams := streams + 1;
            want := 1;
            prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        END IF;
        IF r.stream_version <> want THEN
            RAISE EXCEPTION 'event_log: stream % jumps from version % to %: its history is not whole, and cannot be sealed',
                r.stream_id, want - 1, r.stream_version;
        END IF;
        prev := event_log_hash(prev, r.event_id, r.stream_id, r.stream_version, r.event_type,
            r.occurred_at, r.data, r.metadata);
        UPDATE event_log SET hash = prev WHERE ctid = r.ctid;
        want := want + 1;
        sealed := sealed + 1;
    END LOOP;
    RAISE NOTICE 'event_log: sealed % events of % streams into their hash chains', sealed, streams;
END;
$$;
-- +goose StatementEnd

ALTER TABLE event_log ENABLE TRIGGER event_log_no_update_delete;
ALTER TABLE event_log ALTER COLUMN hash SET NOT NULL;

CREATE TRIGGER event_log_chain
    BEFORE INSERT ON event_log
    FOR EACH ROW EXECUTE FUNCTION event_log_chain();
ALTER TABLE event_log ALTER COLUMN global_position DROP DEFAULT;

-- The log's identity: a random id made once, here, and signed into every checkpoint, so that a
-- checkpoint (or a proof bundle) of one log never verifies as another's — a staging database's
-- against production's, were they to share a key. One row, never changed. A copy of the
-- database keeps it (pg_dump, a replica, a restored backup): a copy meant to become another log
-- gets a new one before its first checkpoint, by its owner (docs/operations.md).
CREATE TABLE log_identity (
    id  UUID    NOT NULL DEFAULT gen_random_uuid(),
    one BOOLEAN NOT NULL PRIMARY KEY DEFAULT true CHECK (one)
);
INSERT INTO log_identity DEFAULT VALUES;

-- Signed checkpoints (ledger.Checkpoint), written by the sealer: each commits to the first
-- tree_size events of the log in the consumers' order, the last of which is
-- (last_transaction_id, last_position), with the Merkle root of their hashes, signed with the
-- sealer's Ed25519 key (whose private half the database never sees). The frontier lets the next
-- checkpoint, or a verifier, start from this one. Append-only like the log.
CREATE TABLE checkpoints (
    seq                 BIGINT      NOT NULL PRIMARY KEY CHECK (seq > 0),
    tree_size           BIGINT      NOT NULL CHECK (tree_size > 0),
    last_transaction_id xid8        NOT NULL,
    last_position       BIGINT      NOT NULL,
    root                BYTEA       NOT NULL CHECK (octet_length(root) = 32),
    frontier            BYTEA       NOT NULL,
    key_id              TEXT        NOT NULL,
    signature           BYTEA       NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER checkpoints_no_update_delete
    BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoints_refuse_change();
CREATE TRIGGER checkpoints_no_truncate
    BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION checkpoints_refuse_change();
CREATE TRIGGER log_identity_no_update_delete
    BEFORE UPDATE OR DELETE ON log_identity
    FOR EACH ROW EXECUTE FUNCTION checkpoints_refuse_change();
CREATE TRIGGER log_identity_no_truncate
    BEFORE TRUNCATE ON log_identity
    FOR EACH STATEMENT EXECUTE FUNCTION checkpoints_refuse_change();

-- +goose StatementBegin
-- The one way the services (the runtime role, which has no INSERT on checkpoints) append a
-- checkpoint: only the next seq, and never a smaller tree than the latest's. It returns false
-- when that seq was written meanwhile (another sealer), and refuses anything else. The
-- signature is checked by the sealer that extends the checkpoint and by verify, not here: the
-- database holds no key.
CREATE FUNCTION checkpoint_append(p_seq BIGINT, p_tree_size BIGINT, p_last_transaction_id xid8,
    p_last_position BIGINT, p_root BYTEA, p_frontier BYTEA, p_key_id TEXT, p_signature BYTEA,
    p_created_at TIMESTAMPTZ) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    latest_seq  BIGINT;
    latest_size BIGINT;
    n           BIGINT;
BEGIN
    SELECT seq, tree_size INTO latest_seq, latest_size FROM checkpoints ORDER BY seq DESC LIMIT 1;
    latest_seq := coalesce(latest_seq, 0);
    IF p_seq <= latest_seq THEN
        RETURN false;
    END IF;
    IF p_seq <> latest_seq + 1 THEN
        RAISE EXCEPTION 'checkpoints: seq % does not follow the latest, %', p_seq, latest_seq
            USING ERRCODE = 'check_violation';
    END IF;
    IF p_tree_size < coalesce(latest_size, 0) THEN
        RAISE EXCEPTION 'checkpoints: tree size % is smaller than checkpoint %''s, %', p_tree_size, latest_seq, latest_size
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO checkpoints (seq, tree_size, last_transaction_id, last_position, root, frontier, key_id, signature, created_at)
    VALUES (p_seq, p_tree_size, p_last_transaction_id, p_last_position, p_root, p_frontier, p_key_id, p_signature, p_created_at)
    ON CONFLICT (seq) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n = 1;
END;
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION checkpoint_append(BIGINT, BIGINT, xid8, BIGINT, BYTEA, BYTEA, TEXT, BYTEA, TIMESTAMPTZ) FROM PUBLIC;

-- +goose Down
-- Dropping signed checkpoints would let the log be rewritten and sealed again from seq 1: the
-- down migration refuses while there are any. Whoever means it deletes them by hand first, as
-- the table's owner with its triggers disabled.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM checkpoints) THEN
        RAISE EXCEPTION 'checkpoints: the log has signed checkpoints; migrating down would drop them, and is refused'
            USING ERRCODE = 'object_in_use';
    END IF;
END;
$$;
-- +goose StatementEnd
DROP FUNCTION checkpoint_append(BIGINT, BIGINT, xid8, BIGINT, BYTEA, BYTEA, TEXT, BYTEA, TIMESTAMPTZ);
DROP TABLE checkpoints;
DROP TABLE log_identity;
DROP FUNCTION checkpoints_refuse_change();
ALTER TABLE event_log ALTER COLUMN global_position SET DEFAULT nextval('event_log_global_position_seq'::regclass);
DROP TRIGGER event_log_chain ON event_log;
DROP FUNCTION event_log_chain();
DROP FUNCTION event_log_hash(BYTEA, UUID, UUID, BIGINT, TEXT, TIMESTAMPTZ, JSONB, JSONB);
ALTER TABLE event_log DROP COLUMN hash;
