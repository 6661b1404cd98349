-- +goose Up

-- The chain trigger of 23 with the lookup of the previous version's hash planned as an index scan
-- whatever the table's statistics say. Without statistics (a log never ANALYZEd: a new database,
-- or a server with autovacuum off) the planner takes the pair (stream_id, stream_version) for
-- dozens of rows and reads the one row through a bitmap heap scan, whose start-up (a bitmap, a
-- heap scan begun, the relation's size asked of the kernel) made the trigger about a tenth
-- dearer than with the index scan the lookup needs, on every append after a stream's first.
-- With LIMIT 1 the planner weighs the first row's cost, where the index scan is cheapest under
-- any estimate. The unique key (stream_id, stream_version) holds at most one row, so the result
-- is the same. The bytes hashed are 23's, and so is every hash.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION event_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev  BYTEA;
    etype BYTEA := convert_to(NEW.event_type, 'UTF8');
    data  BYTEA := convert_to(NEW.data::text, 'UTF8');
    meta  BYTEA := convert_to(NEW.metadata::text, 'UTF8');
BEGIN
    NEW.transaction_id := pg_current_xact_id();
    NEW.global_position := nextval('event_log_global_position_seq'::regclass);
    IF NEW.stream_version = 1 THEN
        prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        -- LIMIT 1: the cheapest first row is an index scan under any statistics (see above).
        SELECT hash INTO prev FROM event_log
        WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1
        LIMIT 1;
        IF prev IS NULL THEN
            RAISE EXCEPTION 'event_log: stream % has no version % to chain version % to',
                NEW.stream_id, NEW.stream_version - 1, NEW.stream_version
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    -- A NULL field gives a NULL hash, which the column refuses, as 00020's STRICT function did.
    NEW.hash := sha256(prev || uuid_send(NEW.event_id) || uuid_send(NEW.stream_id)
        || int8send(NEW.stream_version)
        || int4send(octet_length(etype)) || etype
        || int8send((extract(epoch FROM NEW.occurred_at) * 1000000)::bigint)
        || int4send(octet_length(data)) || data
        || int4send(octet_length(meta)) || meta);
    RETURN NEW;
END;
$$;

-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION event_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev  BYTEA;
    etype BYTEA := convert_to(NEW.event_type, 'UTF8');
    data  BYTEA := convert_to(NEW.data::text, 'UTF8');
    meta  BYTEA := convert_to(NEW.metadata::text, 'UTF8');
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
    -- A NULL field gives a NULL hash, which the column refuses, as 00020's STRICT function did.
    NEW.hash := sha256(prev || uuid_send(NEW.event_id) || uuid_send(NEW.stream_id)
        || int8send(NEW.stream_version)
        || int4send(octet_length(etype)) || etype
        || int8send((extract(epoch FROM NEW.occurred_at) * 1000000)::bigint)
        || int4send(octet_length(data)) || data
        || int4send(octet_length(meta)) || meta);
    RETURN NEW;
END;
$$;

-- +goose StatementEnd
