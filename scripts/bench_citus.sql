-- pg_shred on Citus, the measurements of `scripts/test-citus --bench` (psql variables: rows,
-- subjects, erase_subjects, reps, distributed ('on' in the Citus database, 'off' in the
-- single-node one)). Server-side timing: each statement runs in bench.ms(), which takes
-- clock_timestamp() around EXECUTE; every result is the median of :reps runs, in milliseconds,
-- left in bench.result (name, ms, rows).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.result (name text PRIMARY KEY, ms float8 NOT NULL, n int8 NOT NULL);
CREATE FUNCTION bench.ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
-- The median of reps runs of q, over n rows, as the result `name`.
CREATE FUNCTION bench.time(name text, q text, n int8, reps int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE runs float8[] := '{}';
BEGIN
    FOR i IN 1..reps LOOP
        runs := runs || bench.ms(q);
    END LOOP;
    INSERT INTO bench.result SELECT name, percentile_cont(0.5) WITHIN GROUP (ORDER BY r), n FROM unnest(runs) r;
END $$;

CREATE FUNCTION bench.check(ok boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'bench: wrong result: %', what;
    END IF;
END $$;

-- The data: rows values of subjects data subjects, their DEKs made first (on a Citus cluster a
-- first seal in an INSERT ... SELECT into a distributed table is refused, see docs/citus.md).
SELECT shred.create_keys(ARRAY(SELECT 'b:' || i FROM generate_series(1, :subjects) i)) >= 0 AS keys_made;
CREATE TABLE bench.loc (id bigint PRIMARY KEY, subject text NOT NULL, v shred.sealed NOT NULL);
INSERT INTO bench.loc SELECT i, 'b:' || (i % :subjects + 1), shred.seal('b:' || (i % :subjects + 1), 'user' || i || '@example.org', 'email')
  FROM generate_series(1, :rows) i;
CREATE TABLE bench.dist (LIKE bench.loc INCLUDING ALL);
SELECT :'distributed' = 'on' AS citus \gset
\if :citus
SELECT create_distributed_table('bench.dist', 'id');
\endif
INSERT INTO bench.dist SELECT * FROM bench.loc;
ANALYZE bench.loc;

-- Opening every value: the same table local to this node, and distributed over the workers
-- (only in the Citus database); a plain scan of each as the floor.
SELECT bench.time('scan local', 'SELECT count(length(v::text)) FROM bench.loc', :rows, :reps);
SELECT bench.time('open local', $$SELECT count(length(shred.open(v, 'email'))) FROM bench.loc$$, :rows, :reps);
\if :citus
SELECT bench.time('scan distributed', 'SELECT count(length(v::text)) FROM bench.dist', :rows, :reps);
SELECT bench.time('open distributed', $$SELECT count(length(shred.open(v, 'email'))) FROM bench.dist$$, :rows, :reps);
\endif
SELECT bench.check((SELECT count(shred.open(v, 'email')) FROM bench.dist) = :rows, 'not every value opened');

-- Erasure: erase_subjects subjects in one call, and erase_subjects calls of one subject, each
-- its own transaction (on a Citus cluster, each a two-phase commit over every node). New
-- subjects for every run.
SELECT shred.create_keys(ARRAY(SELECT 'e:' || r || ':' || i FROM generate_series(1, :reps) r, generate_series(1, :erase_subjects) i)) >= 0 AS keys_made;
CREATE TABLE bench.erase_run (r int PRIMARY KEY, subjects text[] NOT NULL);
INSERT INTO bench.erase_run SELECT r, ARRAY(SELECT 'e:' || r || ':' || i FROM generate_series(1, :erase_subjects) i) FROM generate_series(1, :reps) r;
CREATE FUNCTION bench.erase_array(run int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE s text[] := (SELECT subjects FROM bench.erase_run WHERE r = run);
BEGIN
    RETURN bench.ms(format('SELECT shred.erase(%L::text[])', s));
END $$;
INSERT INTO bench.result SELECT 'erase array', percentile_cont(0.5) WITHIN GROUP (ORDER BY bench.erase_array(r)), :erase_subjects FROM generate_series(1, :reps) r;
SELECT shred.create_keys(ARRAY(SELECT 'f:' || r || ':' || i FROM generate_series(1, :reps) r, generate_series(1, :erase_subjects) i)) >= 0 AS keys_made;
CREATE TABLE bench.each_run (r int PRIMARY KEY, ms float8);
CREATE PROCEDURE bench.erase_each(run int, n int) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1..n LOOP
        PERFORM shred.erase('f:' || run || ':' || i);
        COMMIT;
    END LOOP;
    INSERT INTO bench.each_run VALUES (run, extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
SELECT format('CALL bench.erase_each(%s, %s)', r, :erase_subjects) FROM generate_series(1, :reps) r \gexec
INSERT INTO bench.result SELECT 'erase one per transaction', percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), :erase_subjects FROM bench.each_run;
SELECT bench.check(count(*) = 2 * :reps * :erase_subjects, 'not every subject erased')
  FROM generate_series(1, :reps) r, generate_series(1, :erase_subjects) i, LATERAL (VALUES ('e:' || r || ':' || i), ('f:' || r || ':' || i)) x(s)
 WHERE shred.erased_at(s) IS NOT NULL;
