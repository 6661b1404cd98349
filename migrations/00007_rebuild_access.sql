-- +goose Up

-- Rebuilding a read model creates a table beside it and swaps it in: DDL, which only a table's
-- owner may run. Herald's services do not own any table (owning event_log would let them disable
-- its triggers or drop it), so the owner lends them exactly these three operations, on the read
-- models alone, through functions that run with its rights. `herald migrate` grants EXECUTE on
-- them to the runtime role. A new read model is added to rebuildable_read_model's list.

-- +goose StatementBegin
CREATE FUNCTION rebuildable_read_model(live text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF live IS NULL OR live NOT IN ('notification_status', 'notification_history') THEN
        RAISE EXCEPTION '% is not a read model that can be rebuilt', live
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- A session's temporary tables come first in its search path, even in these functions: one
    -- named like a read model must not stand in for it.
    IF EXISTS (SELECT FROM pg_class WHERE oid IN (to_regclass(live), to_regclass(live || '_rebuild')) AND relpersistence = 't') THEN
        RAISE EXCEPTION 'a temporary table shadows %', live
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- Creates <live>_rebuild like <live>, with its indexes, owner and grants (CREATE TABLE … LIKE
-- copies neither of the last two), so that whoever writes to the live table may fill it.
CREATE FUNCTION create_rebuild_table(live text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    shadow text := live || '_rebuild';
    g record;
BEGIN
    PERFORM rebuildable_read_model(live);
    EXECUTE format('DROP TABLE IF EXISTS %I', shadow);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', shadow, live);
    FOR g IN
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
               a.privilege_type, a.is_grantable
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = live::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON %I TO %s', g.privilege_type, shadow, g.grantee)
            || CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END;
    END LOOP;
    EXECUTE format('ALTER TABLE %I OWNER TO %I', shadow,
        (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = live::regclass));
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- Drops <live>_rebuild, if it exists.
CREATE FUNCTION drop_rebuild_table(live text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM rebuildable_read_model(live);
    EXECUTE format('DROP TABLE IF EXISTS %I', live || '_rebuild');
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- Drops <live> and puts <live>_rebuild in its place; the rebuilt table's indexes take the live
-- ones' names, so that later migrations find them.
CREATE FUNCTION swap_rebuild_table(live text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    shadow text := live || '_rebuild';
    renames text[][] := '{}';
    l record;
    s_name text;
BEGIN
    PERFORM rebuildable_read_model(live);
    -- Pair the indexes by their definition without their own and their table's name.
    FOR l IN
        SELECT c.relname AS name,
               regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', 'CREATE \1INDEX ON ') AS def
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = live::regclass
    LOOP
        SELECT c.relname INTO s_name
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = shadow::regclass
          AND regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', 'CREATE \1INDEX ON ') = l.def;
        IF s_name IS NULL THEN
            RAISE EXCEPTION 'the rebuilt table has no index like % of %', l.name, live;
        END IF;
        renames := renames || ARRAY[[s_name, l.name]];
    END LOOP;
    EXECUTE format('DROP TABLE %I', live);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', shadow, live);
    FOR i IN 1 .. coalesce(array_length(renames, 1), 0) LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', renames[i][1], renames[i][2]);
    END LOOP;
END;
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION create_rebuild_table(text), drop_rebuild_table(text), swap_rebuild_table(text) FROM PUBLIC;

-- +goose Down
DROP FUNCTION swap_rebuild_table(text);
DROP FUNCTION drop_rebuild_table(text);
DROP FUNCTION create_rebuild_table(text);
DROP FUNCTION rebuildable_read_model(text);
