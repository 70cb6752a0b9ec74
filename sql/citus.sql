-- pg_shred 0.7.0: the key store on a Citus cluster. Rust side: src/pg/citus.rs (each node reads
-- its own copy of the key store), docs/citus.md (setup and operations).
--
-- On a Citus cluster, values are opened wherever Citus evaluates shred.open: on the coordinator,
-- or on the worker holding a shard. shred.distribute_key_store(), run once on the coordinator,
-- makes the three tables an opening reads Citus reference tables: every node then holds a
-- copy of every DEK, root-key version and erasure record, and every write to them (a first
-- seal, an erasure, a rotation) reaches every copy in the same distributed transaction, which
-- Citus commits on all nodes with two-phase commit. The DEK cache invalidation trigger is
-- copied to each node's copy, so an erasure's COMMIT invalidates the DEK caches of every node.
-- The other tables of pg_shred (purposes, consents, holds, blind-index terms, protected
-- tables) stay on the coordinator, where the functions that use them run.

CREATE FUNCTION shred.distribute_key_store() RETURNS pg_catalog.int4
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t pg_catalog.regclass;
    kind pg_catalog.text;
    made pg_catalog.int4 := 0;
    unsafe_triggers pg_catalog.text;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RAISE EXCEPTION 'pg_shred: Citus is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'CREATE EXTENSION citus first; shred.distribute_key_store() is for Citus clusters only.';
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'pg_shred: the key store is distributed from the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run SELECT shred.distribute_key_store() on the coordinator; it reaches every worker.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node n
                    WHERE n.groupid OPERATOR(pg_catalog.=) 0 AND n.noderole OPERATOR(pg_catalog.=) 'primary') THEN
        RAISE EXCEPTION 'pg_shred: the coordinator is not in Citus''s metadata, so it would hold no copy of the key store'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run SELECT citus_set_coordinator_host(''<host>'', <port>) first.';
    END IF;
    -- The key table's DEK cache invalidation trigger must be on every copy: Citus copies a
    -- table's triggers to its shards only with this setting, on for these statements only.
    unsafe_triggers := pg_catalog.current_setting('citus.enable_unsafe_triggers');
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    FOREACH t IN ARRAY ARRAY['shred.root_key_version', 'shred.subject_key', 'shred.erasure_log']::pg_catalog.regclass[] LOOP
        SELECT p.partmethod::pg_catalog.text OPERATOR(pg_catalog.||) p.repmodel::pg_catalog.text INTO kind
          FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) t;
        IF kind IS NULL THEN
            PERFORM create_reference_table(t);
            -- Citus copied the rows to the coordinator's own copy; the table's former local
            -- rows (DEKs among them) would stay on disk, unseen: erase them.
            PERFORM truncate_local_data_after_distributing_table(t);
            made := made OPERATOR(pg_catalog.+) 1;
        ELSIF kind OPERATOR(pg_catalog.=) 'nt' THEN
            -- A reference table already (made by an earlier call, or by hand): its former
            -- local rows go too, whoever left them.
            PERFORM truncate_local_data_after_distributing_table(t);
        ELSE
            RAISE EXCEPTION 'pg_shred: % is distributed by Citus, but not as a reference table', t
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Run SELECT undistribute_table(...) on it first.';
        END IF;
    END LOOP;
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', unsafe_triggers, true);
    RETURN made;
END
$$;
COMMENT ON FUNCTION shred.distribute_key_store() IS
    'Citus clusters: makes shred.subject_key, shred.root_key_version and shred.erasure_log reference tables, so that every node holds every DEK and erasure record and opens values where Citus evaluates shred.open; every later write reaches every node in one distributed transaction. Run once on the coordinator (in metadata: citus_set_coordinator_host) by the extension''s owner; returns how many tables it distributed (0 when done before). See docs/citus.md.';
REVOKE ALL ON FUNCTION shred.distribute_key_store() FROM PUBLIC;
