-- pg_shred 0.1.0 -> 0.2.0: root-key keyrings and rotation, erasure horizon, named roles.
-- Also the second half of every fresh 0.2.0 install (after pg_shred--0.1.0.sql).
-- Every name is schema-qualified; nothing depends on the caller's search_path.

-----------------------------------------------------------------------------------------------
-- Root-key versions can be retired once no DEK is wrapped under them.
-----------------------------------------------------------------------------------------------
ALTER TABLE shred.root_key_version ADD COLUMN retired_at pg_catalog.timestamptz;
COMMENT ON COLUMN shred.root_key_version.created_at IS
    'When this root-key version was registered: its first use (the first DEK wrapped under it).';
COMMENT ON COLUMN shred.root_key_version.retired_at IS
    'When shred.retire_root_key() retired this version: no DEK was wrapped under it any more. Its key may be destroyed once no backup that needs it is kept.';

-- Dead key-table tuples (erased DEKs, old wrappings after a rotation) are vacuumed promptly:
-- after 100 dead tuples, whatever the table's size.
ALTER TABLE shred.subject_key SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 100);

-----------------------------------------------------------------------------------------------
-- Rotation and status
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.keyring(OUT version pg_catalog.int4, OUT key_matches pg_catalog.bool)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 4 AS 'MODULE_PATHNAME', 'keyring_wrapper';
COMMENT ON FUNCTION shred.keyring() IS
    'The root-key versions in this server''s keyring (shred.root_key_file or shred.root_key_command), and whether each key matches the key-check value registered for its version (NULL when not registered). Never returns key material. When no keyring can be loaded, a WARNING says why and no row is returned.';

CREATE FUNCTION shred.rewrap_batch(batch_size pg_catalog.int4)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'rewrap_batch_wrapper';
COMMENT ON FUNCTION shred.rewrap_batch(pg_catalog.int4) IS
    'One step of shred.rotate_root_key: rewraps up to batch_size DEKs under the keyring''s newest root-key version and reports progress as a NOTICE. Returns true while DEKs were rewrapped.';

-- A procedure, so that it commits after each batch: a rotation stopped by a cancel, a crash
-- or kill -9 keeps every committed batch, and every DEK is wrapped under one version or the
-- other; calling it again resumes. (No SET clause: a procedure with one cannot commit.)
CREATE PROCEDURE shred.rotate_root_key(batch_size pg_catalog.int4 DEFAULT 10000)
    LANGUAGE plpgsql AS $$
BEGIN
    WHILE shred.rewrap_batch(batch_size) LOOP
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE shred.rotate_root_key(pg_catalog.int4) IS
    'Rewrap every DEK under the newest root-key version of the keyring, batch_size DEKs per transaction, with a NOTICE per batch. Resumable: call it again after a cancel or crash. Inside a transaction block it does all batches in that transaction. DEKs wrapped under a version missing from the keyring are reported with a WARNING.';

CREATE FUNCTION shred.retire_root_key(version pg_catalog.int4)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'retire_root_key_wrapper';
COMMENT ON FUNCTION shred.retire_root_key(pg_catalog.int4) IS
    'Mark a root-key version retired: refused (SQLSTATE 55000) while any DEK is wrapped under it and for the keyring''s newest version. Returns false when it was retired already. Afterwards remove it from the keyring and destroy it once no kept backup needs it (see shred.erasure_horizon()).';

CREATE VIEW shred.root_key_status AS
WITH ring AS (
    SELECT k.version, k.key_matches FROM shred.keyring() k
), deks AS (
    SELECT s.root_key_version AS version, pg_catalog.count(*) AS dek_count
      FROM shred.subject_key s GROUP BY s.root_key_version
), versions AS (
    SELECT version FROM shred.root_key_version
    UNION SELECT version FROM ring
    UNION SELECT version FROM deks
)
SELECT x.version,
       CASE
           WHEN r.key_matches IS FALSE THEN 'wrong key'
           WHEN r.version IS NULL AND d.dek_count > 0 THEN 'missing'
           WHEN v.retired_at IS NOT NULL THEN 'retired'
           WHEN r.version = (SELECT pg_catalog.max(version) FROM ring) THEN 'current'
           WHEN d.dek_count > 0 THEN 'in use'
           WHEN v.version IS NULL THEN 'unregistered'
           ELSE 'unused'
       END AS state,
       COALESCE(d.dek_count, 0) AS dek_count,
       r.version IS NOT NULL AS in_keyring,
       r.key_matches,
       v.created_at AS first_used_at,
       (SELECT pg_catalog.min(n.created_at) FROM shred.root_key_version n WHERE n.version > x.version) AS superseded_at,
       v.retired_at
  FROM versions x
  LEFT JOIN shred.root_key_version v ON v.version = x.version
  LEFT JOIN ring r ON r.version = x.version
  LEFT JOIN deks d ON d.version = x.version;
COMMENT ON VIEW shred.root_key_status IS
    'One row per root-key version (registered, in this server''s keyring, or wrapping DEKs): state (current, in use, unused, retired, missing = DEKs need it but the keyring lacks it, wrong key, unregistered), DEKs wrapped under it, first use (registration), when a newer version superseded it, and when it was retired (its last use). Also the progress view of a rotation.';

CREATE FUNCTION shred.erasure_horizon(
    OUT oldest_needed_version pg_catalog.int4,
    OUT oldest_live_version pg_catalog.int4,
    OUT erasures_final_before pg_catalog.timestamptz,
    OUT advice pg_catalog.text)
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (SELECT * FROM shred.root_key_status),
    live AS (
        -- versions that may still exist: not retired, or retired but still in the keyring
        SELECT version, first_used_at FROM s
         WHERE first_used_at IS NOT NULL AND (retired_at IS NULL OR in_keyring)
    )
    SELECT (SELECT min(version) FROM s WHERE dek_count > 0),
           (SELECT min(version) FROM live),
           (SELECT first_used_at FROM live ORDER BY version LIMIT 1),
           CASE
               WHEN EXISTS (SELECT FROM s WHERE state IN ('missing', 'wrong key')) THEN
                   format('Root-key version %s is needed by DEKs but is missing from the keyring or holds another key: fix the keyring first.',
                          (SELECT min(version) FROM s WHERE state IN ('missing', 'wrong key')))
               WHEN (SELECT min(version) FROM s WHERE dek_count > 0) < (SELECT max(version) FROM s WHERE in_keyring) THEN
                   format('CALL shred.rotate_root_key() to rewrap every DEK under root-key version %s.',
                          (SELECT max(version) FROM s WHERE in_keyring))
               WHEN EXISTS (SELECT FROM s WHERE state = 'unused') THEN
                   format('SELECT shred.retire_root_key(%s); then remove version %s from the keyring and destroy it once no kept backup needs it.',
                          (SELECT min(version) FROM s WHERE state = 'unused'), (SELECT min(version) FROM s WHERE state = 'unused'))
               WHEN EXISTS (SELECT FROM s WHERE state = 'retired' AND in_keyring) THEN
                   format('Root-key version %s is retired but still in the keyring: remove it and destroy it once no kept backup needs it.',
                          (SELECT min(version) FROM s WHERE state = 'retired' AND in_keyring))
               ELSE 'To move the horizon forward: add a new root-key version to the keyring, reload, CALL shred.rotate_root_key(), retire and destroy the old version.'
           END
$$;
COMMENT ON FUNCTION shred.erasure_horizon() IS
    'The erasure horizon: copies of a wrapped DEK (dead tuples, WAL, replicas, backups, dumps) can be unwrapped while the root-key version that wrapped them exists. oldest_needed_version: oldest version live DEKs are wrapped under; oldest_live_version: oldest version not retired or still in the keyring; erasures committed before erasures_final_before are final in every copy once every older version is destroyed. advice: the next step.';

-----------------------------------------------------------------------------------------------
-- Least-privilege roles (cluster-wide; created if missing, kept by DROP EXTENSION). Nothing is
-- executable by PUBLIC: grant these roles (or EXECUTE on single functions) to application roles.
-----------------------------------------------------------------------------------------------
DO $$
DECLARE
    r pg_catalog.text;
BEGIN
    FOREACH r IN ARRAY ARRAY['shred_reader', 'shred_writer', 'shred_eraser', 'shred_admin'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by an installation in another database
            END;
        END IF;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION
    shred.key_id(shred.sealed),
    shred.key_cache_entries(),
    shred.keyring(),
    shred.rewrap_batch(pg_catalog.int4),
    shred.retire_root_key(pg_catalog.int4),
    shred.erasure_horizon()
FROM PUBLIC;
REVOKE ALL ON PROCEDURE shred.rotate_root_key(pg_catalog.int4) FROM PUBLIC;
REVOKE ALL ON shred.root_key_status FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    shred.open(shred.sealed, pg_catalog.text),
    shred.open_bytea(shred.sealed, pg_catalog.text),
    shred.is_erased(shred.sealed),
    shred.key_id(shred.sealed),
    shred.key_cache_entries()
TO shred_reader;

GRANT EXECUTE ON FUNCTION
    shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.bytea, pg_catalog.text),
    shred.key_id(shred.sealed),
    shred.key_cache_entries()
TO shred_writer;

GRANT EXECUTE ON FUNCTION
    shred.erase(pg_catalog.text),
    shred.erase(pg_catalog.text[]),
    shred.is_erased(shred.sealed),
    shred.key_id(shred.sealed)
TO shred_eraser;

GRANT EXECUTE ON FUNCTION
    shred.keyring(),
    shred.rewrap_batch(pg_catalog.int4),
    shred.retire_root_key(pg_catalog.int4),
    shred.erasure_horizon(),
    shred.is_erased(shred.sealed),
    shred.key_id(shred.sealed),
    shred.key_cache_entries()
TO shred_admin;
GRANT EXECUTE ON PROCEDURE shred.rotate_root_key(pg_catalog.int4) TO shred_admin;
GRANT SELECT ON shred.root_key_status TO shred_admin;

-----------------------------------------------------------------------------------------------
-- Erasure records: each erased DEK's key id, when, and a keyed digest of the data subject
-- (HMAC-SHA256 under a key kept in the key store), never the subject itself.
-----------------------------------------------------------------------------------------------
CREATE TABLE shred.erasure_log (
    key_id          pg_catalog.int8 CONSTRAINT erasure_log_pkey PRIMARY KEY,
    subject_digest  pg_catalog.bytea NOT NULL CHECK (pg_catalog.length(subject_digest) OPERATOR(pg_catalog.=) 32),
    erased_at       pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX erasure_log_subject_digest ON shred.erasure_log (subject_digest);
COMMENT ON TABLE shred.erasure_log IS
    'One row per erased DEK: key id, keyed digest of the data subject (HMAC-SHA256, see shred.erased_at), time of the erasure. Written by shred.erase in the erasing transaction; kept by pg_dump.';
SELECT pg_catalog.pg_extension_config_dump('shred.erasure_log', '');
REVOKE ALL ON shred.erasure_log FROM PUBLIC;

CREATE FUNCTION shred.erased_at(subject pg_catalog.text)
    RETURNS pg_catalog.timestamptz
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'erased_at_wrapper';
COMMENT ON FUNCTION shred.erased_at(pg_catalog.text) IS
    'When a data subject was last erased, from shred.erasure_log (matched by the keyed digest of the subject); NULL when there is no record.';
CREATE FUNCTION shred.replay_erasures(key_ids pg_catalog.int8[])
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'replay_erasures_wrapper';
COMMENT ON FUNCTION shred.replay_erasures(pg_catalog.int8[]) IS
    'After restoring an older backup: erase again the DEKs with these key ids (from a newer shred.erasure_log, e.g. SELECT array_agg(key_id) FROM shred.erasure_log WHERE erased_at >= <backup time>). Key ids are never reused, so exactly the subjects erased since the backup are erased again, recorded and their blind indexes cleared. Returns how many DEKs were deleted.';
REVOKE ALL ON FUNCTION shred.replay_erasures(pg_catalog.int8[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shred.replay_erasures(pg_catalog.int8[]) TO shred_eraser;
REVOKE ALL ON FUNCTION shred.erased_at(pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shred.erased_at(pg_catalog.text) TO shred_eraser, shred_admin;
GRANT SELECT ON shred.erasure_log TO shred_eraser, shred_admin;

-----------------------------------------------------------------------------------------------
-- Typed plaintexts (envelope format v2 records the type; each opens only as its own type).
-- numeric and jsonb are sealed as their canonical text by SQL wrappers; every name in them is
-- qualified, so the caller's search_path cannot change what they call.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.int4, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_int4_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.int8, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_int8_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.date, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_date_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.timestamptz, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_timestamptz_wrapper';
CREATE FUNCTION shred.seal_numeric_text(subject pg_catalog.text, plaintext pg_catalog.text, context pg_catalog.text)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_numeric_text_wrapper';
CREATE FUNCTION shred.seal_jsonb_text(subject pg_catalog.text, plaintext pg_catalog.text, context pg_catalog.text)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_jsonb_text_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.numeric, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ SELECT shred.seal_numeric_text(subject, plaintext::pg_catalog.text, context) $$;
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.jsonb, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ SELECT shred.seal_jsonb_text(subject, plaintext::pg_catalog.text, context) $$;
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.int4, pg_catalog.text) IS
    'Seal an integer for a data subject (envelope format v2, which records the type). Open with shred.open_integer.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.int8, pg_catalog.text) IS
    'Seal a bigint for a data subject (envelope format v2). Open with shred.open_bigint.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.numeric, pg_catalog.text) IS
    'Seal a numeric (its exact text form, NaN and scale included) for a data subject (envelope format v2). Open with shred.open_numeric.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.date, pg_catalog.text) IS
    'Seal a date (days since 2000-01-01, infinities included) for a data subject (envelope format v2). Open with shred.open_date.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.timestamptz, pg_catalog.text) IS
    'Seal a timestamptz (microseconds since 2000-01-01 UTC; independent of TimeZone) for a data subject (envelope format v2). Open with shred.open_timestamptz.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text) IS
    'Seal a jsonb (its canonical text form) for a data subject (envelope format v2). Open with shred.open_jsonb.';
COMMENT ON FUNCTION shred.seal_numeric_text(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'Used by shred.seal(text, numeric, text): seals the canonical text of a numeric as a typed numeric.';
COMMENT ON FUNCTION shred.seal_jsonb_text(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'Used by shred.seal(text, jsonb, text): seals the canonical text of a jsonb as a typed jsonb.';

CREATE FUNCTION shred.open_integer(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.int4
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_int4_wrapper';
CREATE FUNCTION shred.open_bigint(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_int8_wrapper';
CREATE FUNCTION shred.open_date(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.date
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_date_wrapper';
CREATE FUNCTION shred.open_timestamptz(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.timestamptz
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_timestamptz_wrapper';
CREATE FUNCTION shred.open_numeric_text(value shred.sealed, context pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_numeric_text_wrapper';
CREATE FUNCTION shred.open_jsonb_text(value shred.sealed, context pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_jsonb_text_wrapper';
CREATE FUNCTION shred.open_numeric(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.numeric
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ SELECT shred.open_numeric_text(value, context)::pg_catalog.numeric $$;
CREATE FUNCTION shred.open_jsonb(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.jsonb
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ SELECT shred.open_jsonb_text(value, context)::pg_catalog.jsonb $$;
COMMENT ON FUNCTION shred.open_integer(shred.sealed, pg_catalog.text) IS
    'Open a value sealed from an integer. NULL once its data subject is erased. Another sealed type raises SQLSTATE 42804; otherwise as shred.open.';
COMMENT ON FUNCTION shred.open_bigint(shred.sealed, pg_catalog.text) IS
    'Open a value sealed from a bigint; as shred.open_integer.';
COMMENT ON FUNCTION shred.open_date(shred.sealed, pg_catalog.text) IS
    'Open a value sealed from a date; as shred.open_integer.';
COMMENT ON FUNCTION shred.open_timestamptz(shred.sealed, pg_catalog.text) IS
    'Open a value sealed from a timestamptz; as shred.open_integer.';
COMMENT ON FUNCTION shred.open_numeric(shred.sealed, pg_catalog.text) IS
    'Open a value sealed from a numeric (exactly, scale included); as shred.open_integer.';
COMMENT ON FUNCTION shred.open_jsonb(shred.sealed, pg_catalog.text) IS
    'Open a value sealed from a jsonb; as shred.open_integer.';
COMMENT ON FUNCTION shred.open_numeric_text(shred.sealed, pg_catalog.text) IS
    'Used by shred.open_numeric: the canonical text of a sealed numeric.';
COMMENT ON FUNCTION shred.open_jsonb_text(shred.sealed, pg_catalog.text) IS
    'Used by shred.open_jsonb: the canonical text of a sealed jsonb.';

REVOKE ALL ON FUNCTION
    shred.seal(pg_catalog.text, pg_catalog.int4, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.int8, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.numeric, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.date, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.timestamptz, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text),
    shred.seal_numeric_text(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.seal_jsonb_text(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.open_integer(shred.sealed, pg_catalog.text),
    shred.open_bigint(shred.sealed, pg_catalog.text),
    shred.open_numeric(shred.sealed, pg_catalog.text),
    shred.open_date(shred.sealed, pg_catalog.text),
    shred.open_timestamptz(shred.sealed, pg_catalog.text),
    shred.open_jsonb(shred.sealed, pg_catalog.text),
    shred.open_numeric_text(shred.sealed, pg_catalog.text),
    shred.open_jsonb_text(shred.sealed, pg_catalog.text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    shred.seal(pg_catalog.text, pg_catalog.int4, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.int8, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.numeric, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.date, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.timestamptz, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text),
    shred.seal_numeric_text(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.seal_jsonb_text(pg_catalog.text, pg_catalog.text, pg_catalog.text)
TO shred_writer;
GRANT EXECUTE ON FUNCTION
    shred.open_integer(shred.sealed, pg_catalog.text),
    shred.open_bigint(shred.sealed, pg_catalog.text),
    shred.open_numeric(shred.sealed, pg_catalog.text),
    shred.open_date(shred.sealed, pg_catalog.text),
    shred.open_timestamptz(shred.sealed, pg_catalog.text),
    shred.open_jsonb(shred.sealed, pg_catalog.text),
    shred.open_numeric_text(shred.sealed, pg_catalog.text),
    shred.open_jsonb_text(shred.sealed, pg_catalog.text)
TO shred_reader;

-----------------------------------------------------------------------------------------------
-- Blind indexes and pseudonyms.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.blind_index(value pg_catalog.text, context pg_catalog.text, normalization pg_catalog.text DEFAULT 'exact')
    RETURNS pg_catalog.bytea
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'blind_index_wrapper';
COMMENT ON FUNCTION shred.blind_index(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'Blind index of a value for equality lookups without decrypting: HMAC-SHA256 (32 bytes) of the normalised value under the key of the context (e.g. ''customer.email''; created on first use, kept in the key store, rewrapped by rotation). normalization: ''exact'' (default) or ''email'' (trimmed, lower-cased). NULL value gives NULL; NULL context or normalization is an error.';

CREATE FUNCTION shred.pseudonym(subject pg_catalog.text, domain pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'pseudonym_wrapper';
COMMENT ON FUNCTION shred.pseudonym(pg_catalog.text, pg_catalog.text) IS
    'A stable, URL-safe token (22 characters) for a data subject within a domain (e.g. ''analytics''), keyed by the subject''s DEK: the same while the subject exists, NULL once it is erased (or before anything was sealed for it), and unlinkable across domains.';

REVOKE ALL ON FUNCTION
    shred.blind_index(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.pseudonym(pg_catalog.text, pg_catalog.text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    shred.blind_index(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.pseudonym(pg_catalog.text, pg_catalog.text)
TO shred_reader, shred_writer;

COMMENT ON TYPE shred.sealed IS
    'A value sealed by pg_shred: an envelope (format v1 for text and bytea, v2 for typed values: version, key id, type, nonce, AES-256-GCM ciphertext and tag). Text form shred1:<base64> or shred2:<base64>. No cast to or from text exists.';

-----------------------------------------------------------------------------------------------
-- Protected tables: shred.protect() records which columns of a table hold which data
-- subject's values, converts them to shred.sealed in place, and creates a view that shows and
-- accepts plaintext. The catalog names tables and views by regclass (dumped by name, so it
-- survives dump/restore and renames) and columns by name (kept up to date on RENAME by an
-- event trigger). Every role may read it; a role may change only rows of tables it owns.
-----------------------------------------------------------------------------------------------
-- How a column type is sealed and opened; NULL when protect() does not support it.
CREATE FUNCTION shred.sealing_kind(typ pg_catalog.regtype)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE typ
        WHEN 'text'::regtype THEN 'text'
        WHEN 'character varying'::regtype THEN 'text'
        WHEN 'character'::regtype THEN 'text'
        WHEN 'bytea'::regtype THEN 'bytea'
        WHEN 'smallint'::regtype THEN 'integer'
        WHEN 'integer'::regtype THEN 'integer'
        WHEN 'bigint'::regtype THEN 'bigint'
        WHEN 'numeric'::regtype THEN 'numeric'
        WHEN 'date'::regtype THEN 'date'
        WHEN 'timestamp with time zone'::regtype THEN 'timestamptz'
        WHEN 'jsonb'::regtype THEN 'jsonb'
    END
$$;

CREATE TABLE shred.protected_table (
    relation        pg_catalog.regclass CONSTRAINT protected_table_pkey PRIMARY KEY,
    subject_column  pg_catalog.name NOT NULL,
    subject_prefix  pg_catalog.text NOT NULL DEFAULT '',
    view            pg_catalog.regclass NOT NULL CONSTRAINT protected_table_view_key UNIQUE,
    protected_at    pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE shred.protected_table IS
    'Tables protected by shred.protect(): the column holding the data subject (subject = subject_prefix || value) and the plaintext view.';

CREATE TABLE shred.protected_column (
    relation            pg_catalog.regclass NOT NULL,
    column_name         pg_catalog.name NOT NULL,
    plain_type          pg_catalog.regtype NOT NULL,
    plain_typmod        pg_catalog.int4 NOT NULL DEFAULT -1,
    context             pg_catalog.text NOT NULL,
    blind_index_column  pg_catalog.name,
    normalization       pg_catalog.text CHECK (normalization OPERATOR(pg_catalog.=) ANY (ARRAY['exact', 'email'])),
    tombstone           pg_catalog.text,
    CONSTRAINT protected_column_pkey PRIMARY KEY (relation, column_name),
    -- how the column is sealed and opened follows from its type (shred.sealing_kind)
    CONSTRAINT protected_column_type CHECK (shred.sealing_kind(plain_type) IS NOT NULL)
);
COMMENT ON TABLE shred.protected_column IS
    'Protected columns: the original type (which says how it is sealed: shred.sealing_kind), the AAD context, its blind-index column and normalisation, and the value the view shows once its subject is erased (NULL by default).';

SELECT pg_catalog.pg_extension_config_dump('shred.protected_table', '');
SELECT pg_catalog.pg_extension_config_dump('shred.protected_column', '');

-- What a role may record: a permanent table it owns (not a temporary one, a view or a foreign
-- table), whose named columns exist, and (for a table's row) a view it owns.
CREATE FUNCTION shred.catalog_row_ok(relation pg_catalog.regclass, view pg_catalog.regclass, columns pg_catalog.name[])
    RETURNS pg_catalog.bool
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_class c
                    WHERE c.oid = relation AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
                      AND pg_has_role(c.relowner, 'USAGE'))
       AND (view IS NULL OR view = relation
            OR EXISTS (SELECT FROM pg_class v
                        WHERE v.oid = view AND v.relkind = 'v'
                          AND v.relowner = (SELECT c.relowner FROM pg_class c WHERE c.oid = relation)))
       AND NOT EXISTS (SELECT FROM unnest(columns) n
                        WHERE n IS NOT NULL
                          AND NOT EXISTS (SELECT FROM pg_attribute a
                                           WHERE a.attrelid = relation AND a.attname = n AND a.attnum > 0 AND NOT a.attisdropped))
$$;
COMMENT ON FUNCTION shred.catalog_row_ok(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name[]) IS
    'Row-level security check of the protected-table catalog: a permanent table the role owns, existing columns, a view of the same owner.';

ALTER TABLE shred.protected_table ENABLE ROW LEVEL SECURITY;
ALTER TABLE shred.protected_column ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON shred.protected_table FOR SELECT USING (true);
CREATE POLICY readable ON shred.protected_column FOR SELECT USING (true);
-- Rows of a table that no longer exists (dropped) may be removed by anyone.
CREATE POLICY table_owner ON shred.protected_table FOR ALL
    USING (COALESCE(pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) relation), 'USAGE'), true))
    WITH CHECK (shred.catalog_row_ok(relation, view, ARRAY[subject_column]));
CREATE POLICY table_owner ON shred.protected_column FOR ALL
    USING (COALESCE(pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) relation), 'USAGE'), true))
    WITH CHECK (shred.catalog_row_ok(relation, NULL, ARRAY[column_name, blind_index_column]));
GRANT SELECT, INSERT, UPDATE, DELETE ON shred.protected_table, shred.protected_column TO PUBLIC;

-- The SQL type a kind is sealed as, and the function that opens it.
CREATE FUNCTION shred.kind_type(kind pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE kind WHEN 'integer' THEN 'pg_catalog.int4' WHEN 'bigint' THEN 'pg_catalog.int8'
                     ELSE 'pg_catalog.' || kind END
$$;
CREATE FUNCTION shred.kind_opener(kind pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE kind WHEN 'text' THEN 'shred.open' ELSE 'shred.open_' || kind END
$$;

-- The AAD context of a protected value: the column's context and the row's data subject,
-- length-prefixed so that no two (context, subject) pairs give the same string. A value copied
-- to another column, table or another subject's row does not open (G6).
CREATE FUNCTION shred.row_context(context pg_catalog.text, subject pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.length(subject)::pg_catalog.text || ':' || subject || ':' || context
$$;
COMMENT ON FUNCTION shred.row_context(pg_catalog.text, pg_catalog.text) IS
    'AAD context of a value in a protected column: length(subject) || '':'' || subject || '':'' || context.';

CREATE FUNCTION shred.qualifier(rel pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN rel = '' THEN '' ELSE rel || '.' END
$$;
COMMENT ON FUNCTION shred.qualifier(pg_catalog.text) IS 'Column qualifier for an alias (empty for none).';

-- SQL expression for the subject of a row of a protected table (rel: the row's alias, or ''
-- for unqualified column names).
CREATE FUNCTION shred.subject_expr(t shred.protected_table, rel pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('(%L || %s%I::pg_catalog.text)', t.subject_prefix, shred.qualifier(rel), t.subject_column)
$$;
COMMENT ON FUNCTION shred.subject_expr(shred.protected_table, pg_catalog.text) IS
    'SQL expression for the data subject of a row of a protected table: subject_prefix || subject_column.';



-- The expression that opens a protected column of row `rel` (in the view, unprotect and
-- check): the plaintext in the column's original type, or its tombstone once the data subject
-- is erased.
CREATE FUNCTION shred.open_expr(c shred.protected_column, t shred.protected_table, rel pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN c.tombstone IS NULL
                THEN format('%s(%s%I, shred.row_context(%L, %s))::%s', shred.kind_opener(shred.sealing_kind(c.plain_type)), shred.qualifier(rel),
                            c.column_name, c.context, shred.subject_expr(t, rel), format_type(c.plain_type, c.plain_typmod))
                ELSE format('COALESCE(%s(%s%I, shred.row_context(%L, %s)), CASE WHEN %s%I IS NULL THEN NULL ELSE %L::%s END)::%s',
                            shred.kind_opener(shred.sealing_kind(c.plain_type)), shred.qualifier(rel), c.column_name, c.context, shred.subject_expr(t, rel),
                            shred.qualifier(rel), c.column_name, c.tombstone, shred.kind_type(shred.sealing_kind(c.plain_type)),
                            format_type(c.plain_type, c.plain_typmod))
           END
$$;
COMMENT ON FUNCTION shred.open_expr(shred.protected_column, shred.protected_table, pg_catalog.text) IS
    'SQL expression opening a protected column of a row into its original type (or its tombstone once the subject is erased).';

-- The SELECT behind the plaintext view of a protected table (alias b): the table's columns in
-- order (blind-index columns left out), protected ones opened and cast back to their type, the
-- tombstone where a subject is erased. Also what shred.export_subject reads, so an export never
-- runs the view's (owner-editable) definition.
CREATE FUNCTION shred.select_plain(tbl pg_catalog.regclass)
    RETURNS pg_catalog.text
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    a record;
    items text[] := '{}';
BEGIN
    SELECT * INTO t FROM shred.protected_table p WHERE p.relation = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: table % is not protected', tbl USING ERRCODE = 'undefined_object';
    END IF;
    FOR a IN
        SELECT att.attname, shred.sealing_kind(pc.plain_type) AS kind, shred.open_expr(pc, t, 'b') AS opener
          FROM pg_attribute att
          LEFT JOIN shred.protected_column pc ON pc.relation = tbl AND pc.column_name = att.attname
         WHERE att.attrelid = tbl AND att.attnum > 0 AND NOT att.attisdropped
           AND att.attname NOT IN (SELECT c.blind_index_column FROM shred.protected_column c
                                    WHERE c.relation = tbl AND c.blind_index_column IS NOT NULL)
         ORDER BY att.attnum
    LOOP
        items := items || format('%s AS %I', CASE WHEN a.kind IS NULL THEN format('b.%I', a.attname) ELSE a.opener END, a.attname);
    END LOOP;
    RETURN format('SELECT %s FROM %s b', array_to_string(items, ', '), tbl);
END
$$;
COMMENT ON FUNCTION shred.select_plain(pg_catalog.regclass) IS
    'The SELECT (alias b) that shows a protected table in plaintext: the body of its view.';

-- (Re)create the plaintext view of a protected table from the catalog; the base table's column
-- defaults are copied to it.
CREATE FUNCTION shred.refresh_view(tbl pg_catalog.regclass, target pg_catalog.text DEFAULT NULL)
    RETURNS pg_catalog.regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    v regclass;
BEGIN
    target := coalesce(target, (SELECT p.view::text FROM shred.protected_table p WHERE p.relation = tbl));
    -- security_invoker: readers need their own privileges (and row security) on the table
    EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_invoker = true) AS %s', target, shred.select_plain(tbl));
    v := target::regclass;
    FOR a IN
        SELECT att.attname, pg_get_expr(d.adbin, d.adrelid) AS def
          FROM pg_attribute att JOIN pg_attrdef d ON d.adrelid = att.attrelid AND d.adnum = att.attnum
         WHERE att.attrelid = tbl AND att.attnum > 0 AND NOT att.attisdropped AND att.attgenerated = ''
           AND NOT EXISTS (SELECT FROM shred.protected_column pc WHERE pc.relation = tbl AND pc.column_name = att.attname)
    LOOP
        EXECUTE format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s', v, a.attname, a.def);
    END LOOP;
    -- identity columns: the view draws the value, so the trigger knows it (e.g. the subject)
    FOR a IN
        SELECT att.attname, pg_get_serial_sequence(tbl::text, att.attname) AS seq
          FROM pg_attribute att
         WHERE att.attrelid = tbl AND att.attnum > 0 AND NOT att.attisdropped AND att.attidentity <> ''
    LOOP
        EXECUTE format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT pg_catalog.nextval(%L::pg_catalog.regclass)', v, a.attname, a.seq);
    END LOOP;
    RETURN v;
END
$$;

CREATE FUNCTION shred.protect(
    tbl pg_catalog.regclass,
    subject_column pg_catalog.name,
    columns pg_catalog.name[],
    searchable pg_catalog.name[] DEFAULT '{}',
    subject_prefix pg_catalog.text DEFAULT '',
    view_name pg_catalog.name DEFAULT NULL,
    normalization pg_catalog.text DEFAULT 'exact')
    RETURNS pg_catalog.regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp name;
    rel name;
    owner oid;
    subject_type regtype;
    subject_expr text;
    vname name;
    col name;
    a record;
    kind text;
    ctx text;
    bidx name;
    alters text[] := '{}';
    v regclass;
BEGIN
    SELECT n.nspname, c.relname, c.relowner INTO nsp, rel, owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl AND c.relkind IN ('r', 'p');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    vname := coalesce(view_name, left(rel, 57) || '_plain');
    IF NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'pg_shred: must be owner of table %', tbl USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT FROM shred.protected_table p WHERE p.relation = tbl) THEN
        RAISE EXCEPTION 'pg_shred: table % is protected already', tbl USING ERRCODE = 'duplicate_object';
    END IF;
    IF normalization NOT IN ('exact', 'email') THEN
        RAISE EXCEPTION 'pg_shred: normalization must be ''exact'' or ''email''' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF columns IS NULL OR cardinality(columns) = 0 THEN
        RAISE EXCEPTION 'pg_shred: name at least one column to protect' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(DISTINCT x) FROM unnest(columns) x) <> cardinality(columns) THEN
        RAISE EXCEPTION 'pg_shred: a column is named twice' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT att.atttypid INTO subject_type FROM pg_attribute att
     WHERE att.attrelid = tbl AND att.attname = subject_column AND att.attnum > 0 AND NOT att.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: column % of table % does not exist', quote_ident(subject_column), tbl
            USING ERRCODE = 'undefined_column';
    END IF;
    IF subject_type NOT IN ('text'::regtype, 'character varying'::regtype, 'smallint'::regtype, 'integer'::regtype,
                            'bigint'::regtype, 'numeric'::regtype, 'uuid'::regtype) THEN
        RAISE EXCEPTION 'pg_shred: the subject column % has type %, whose text form is not stable', quote_ident(subject_column), subject_type
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Use a text, varchar, integer, bigint, numeric or uuid column as the subject.';
    END IF;
    IF subject_column = ANY (columns) THEN
        RAISE EXCEPTION 'pg_shred: the subject column cannot be protected itself' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(coalesce(searchable, '{}')) s WHERE s <> ALL (columns)) THEN
        RAISE EXCEPTION 'pg_shred: every searchable column must be one of the protected columns' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = tbl AND i.indisprimary) THEN
        RAISE EXCEPTION 'pg_shred: table % needs a primary key (the view updates rows by it)', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF to_regclass(format('%I.%I', nsp, vname)) IS NOT NULL THEN
        RAISE EXCEPTION 'pg_shred: relation %.% exists already; pass another view_name', quote_ident(nsp), quote_ident(vname)
            USING ERRCODE = 'duplicate_table';
    END IF;
    subject_expr := format('(%L || %I::pg_catalog.text)', subject_prefix, subject_column);

    FOREACH col IN ARRAY columns LOOP
        SELECT att.attnum, att.atttypid::regtype AS typ, att.atttypmod AS typmod,
               format_type(att.atttypid, att.atttypmod) AS plain_type, att.atthasdef
          INTO a FROM pg_attribute att
         WHERE att.attrelid = tbl AND att.attname = col AND att.attnum > 0 AND NOT att.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pg_shred: column % of table % does not exist', quote_ident(col), tbl USING ERRCODE = 'undefined_column';
        END IF;
        kind := shred.sealing_kind(a.typ);
        IF kind IS NULL THEN
            RAISE EXCEPTION 'pg_shred: column % has type %, which shred.protect does not support', quote_ident(col), a.plain_type
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Supported: text, varchar, char, bytea, smallint, integer, bigint, numeric, date, timestamptz, jsonb.';
        END IF;
        IF a.atthasdef THEN
            RAISE EXCEPTION 'pg_shred: column % has a default; drop it first', quote_ident(col) USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF EXISTS (SELECT FROM pg_index i WHERE i.indrelid = tbl AND (a.attnum = ANY (i.indkey::int2[]) OR i.indexprs IS NOT NULL))
           OR EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = tbl AND a.attnum = ANY (k.conkey)) THEN
            RAISE EXCEPTION 'pg_shred: column % is used by an index or a constraint; drop it first', quote_ident(col)
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Sealed values cannot be compared: look values up through a blind index (searchable => ...).';
        END IF;
        ctx := rel || '.' || col;
        bidx := NULL;
        IF col = ANY (coalesce(searchable, '{}')) THEN
            bidx := left(col, 58) || '_bidx';
            IF EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = tbl AND att.attname = bidx AND NOT att.attisdropped) THEN
                RAISE EXCEPTION 'pg_shred: column % exists already', quote_ident(bidx) USING ERRCODE = 'duplicate_column';
            END IF;
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I pg_catalog.bytea', tbl, bidx);
            EXECUTE format('UPDATE %s SET %I = shred.blind_index(%I::pg_catalog.text, %L, %L)', tbl, bidx, col, ctx, normalization);
            EXECUTE format('CREATE INDEX ON %s (%I)', tbl, bidx);
        END IF;
        alters := alters || format('ALTER COLUMN %I TYPE shred.sealed USING CASE WHEN %I IS NULL THEN NULL ELSE shred.seal(%s, %I::%s, shred.row_context(%L, %s)) END',
                                   col, col, subject_expr, col, shred.kind_type(kind), ctx, subject_expr);
        INSERT INTO shred.protected_column (relation, column_name, plain_type, plain_typmod, context, blind_index_column, normalization)
        VALUES (tbl, col, a.typ, a.typmod, ctx, bidx, CASE WHEN bidx IS NOT NULL THEN normalization END);
    END LOOP;
    -- One rewrite of the table for all columns: every existing value sealed, atomically.
    EXECUTE format('ALTER TABLE %s %s', tbl, array_to_string(alters, ', '));

    -- registered with the table as its own placeholder view until the view exists
    INSERT INTO shred.protected_table (relation, subject_column, subject_prefix, view)
    VALUES (tbl, subject_column, subject_prefix, tbl);
    v := shred.refresh_view(tbl, format('%I.%I', nsp, vname));
    UPDATE shred.protected_table p SET view = v WHERE p.relation = tbl;
    EXECUTE format('CREATE TRIGGER shred_write INSTEAD OF INSERT OR UPDATE OR DELETE ON %s
                    FOR EACH ROW EXECUTE FUNCTION shred.protected_view_write()', v);
    RETURN v;
END
$$;
COMMENT ON FUNCTION shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text) IS
    'Protect columns of a table you own: record them, seal every existing value in place (one rewrite; subject = subject_prefix || subject_column, AAD context = ''<table>.<column>''), keep a blind-index column <column>_bidx with an index for each searchable column, and create the view <table>_plain (or view_name) that shows plaintext with the original types to roles that may open, and accepts INSERT, UPDATE and DELETE with plaintext. The table needs a primary key; protected columns must have no index, constraint or default. Returns the view.';
COMMENT ON FUNCTION shred.refresh_view(pg_catalog.regclass, pg_catalog.text) IS
    'Re-create the plaintext view of a protected table from the catalog (CREATE OR REPLACE: grants stay).';
COMMENT ON FUNCTION shred.sealing_kind(pg_catalog.regtype) IS
    'How shred.protect seals a column type (text, bytea, integer, bigint, numeric, date, timestamptz, jsonb), NULL when unsupported.';
COMMENT ON FUNCTION shred.kind_type(pg_catalog.text) IS 'The SQL type a sealing kind is sealed as.';
COMMENT ON FUNCTION shred.kind_opener(pg_catalog.text) IS 'The function that opens a sealing kind.';

-- INSTEAD OF trigger of every plaintext view: writes the base table, sealing protected columns
-- and computing blind indexes. Runs as the caller (who needs shred_writer for INSERT/UPDATE
-- and privileges on the base table); rows are matched by the table's primary key.
CREATE FUNCTION shred.protected_view_write()
    RETURNS trigger
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    a record;
    cols text[] := '{}';
    vals text[] := '{}';
    keys text[] := '{}';
    subject_expr text;
    unchanged text;
    sealed text;
    indexed text;
    overriding text := '';
BEGIN
    SELECT * INTO t FROM shred.protected_table p WHERE p.view = TG_RELID;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: view % is not the view of a protected table', TG_RELID::regclass
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    subject_expr := shred.subject_expr(t, 'r');
    FOR a IN
        SELECT att.attname, shred.sealing_kind(pc.plain_type) AS kind, pc.context, pc.blind_index_column, pc.normalization,
               att.attgenerated <> '' AS is_generated, att.attidentity AS identity,
               EXISTS (SELECT FROM pg_index i WHERE i.indrelid = t.relation AND i.indisprimary
                          AND att.attnum = ANY (i.indkey::int2[])) AS is_key
          FROM pg_attribute att
          LEFT JOIN shred.protected_column pc ON pc.relation = t.relation AND pc.column_name = att.attname
         WHERE att.attrelid = t.relation AND att.attnum > 0 AND NOT att.attisdropped
           -- columns added to the table after protect() are not in the view: left to their defaults
           AND EXISTS (SELECT FROM pg_attribute va WHERE va.attrelid = t.view AND va.attname = att.attname
                          AND va.attnum > 0 AND NOT va.attisdropped)
         ORDER BY att.attnum
    LOOP
        IF a.is_key THEN
            keys := keys || format('b.%I = o.%I', a.attname, a.attname);
        END IF;
        -- generated columns are never written, GENERATED ALWAYS identity columns only by an
        -- INSERT (which the view gave a value from the column's sequence)
        CONTINUE WHEN a.is_generated OR (a.identity = 'a' AND TG_OP <> 'INSERT');
        IF a.identity = 'a' THEN
            overriding := ' OVERRIDING SYSTEM VALUE';
        END IF;
        cols := cols || quote_ident(a.attname);
        IF a.kind IS NULL THEN
            vals := vals || format('r.%I', a.attname);
        ELSE
            sealed := format('CASE WHEN r.%I IS NULL THEN NULL ELSE shred.seal(%s, r.%I::%s, shred.row_context(%L, %s)) END',
                             a.attname, subject_expr, a.attname, shred.kind_type(a.kind), a.context, subject_expr);
            indexed := format('shred.blind_index(r.%I::pg_catalog.text, %L, %L)', a.attname, a.context, a.normalization);
            IF TG_OP = 'UPDATE' THEN
                -- An UPDATE keeps the stored envelope (and index) of a value it does not change,
                -- so an erased value or its tombstone is never sealed again under a new DEK.
                unchanged := format('r.%I IS NOT DISTINCT FROM o.%I AND %s IS NOT DISTINCT FROM %s',
                                    a.attname, a.attname, subject_expr, shred.subject_expr(t, 'o'));
                sealed := format('CASE WHEN %s THEN b.%I ELSE %s END', unchanged, a.attname, sealed);
                IF a.blind_index_column IS NOT NULL THEN
                    indexed := format('CASE WHEN %s THEN b.%I ELSE %s END', unchanged, a.blind_index_column, indexed);
                END IF;
            END IF;
            vals := vals || sealed;
            IF a.blind_index_column IS NOT NULL THEN
                cols := cols || quote_ident(a.blind_index_column);
                vals := vals || indexed;
            END IF;
        END IF;
    END LOOP;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO %s AS b (%s)%s SELECT %s FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) r',
                       t.relation, array_to_string(cols, ', '), overriding, array_to_string(vals, ', '), t.view)
            USING pg_catalog.to_jsonb(NEW);
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('UPDATE %s AS b SET (%s) = (SELECT %s) FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) r,
                               pg_catalog.jsonb_populate_record(NULL::%s, $2) o WHERE %s',
                       t.relation, array_to_string(cols, ', '), array_to_string(vals, ', '), t.view, t.view,
                       array_to_string(keys, ' AND '))
            USING pg_catalog.to_jsonb(NEW), pg_catalog.to_jsonb(OLD);
        RETURN NEW;
    ELSE
        EXECUTE format('DELETE FROM %s AS b USING pg_catalog.jsonb_populate_record(NULL::%s, $1) o WHERE %s',
                       t.relation, t.view, array_to_string(keys, ' AND '))
            USING pg_catalog.to_jsonb(OLD);
        RETURN OLD;
    END IF;
END
$$;
COMMENT ON FUNCTION shred.protected_view_write() IS
    'INSTEAD OF trigger of the views made by shred.protect: seals protected columns and maintains blind indexes on INSERT and UPDATE, deletes by primary key.';

CREATE FUNCTION shred.unprotect(tbl pg_catalog.regclass)
    RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    c shred.protected_column;
    alters text[] := '{}';
BEGIN
    SELECT * INTO t FROM shred.protected_table p WHERE p.relation = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: table % is not protected', tbl USING ERRCODE = 'undefined_object';
    END IF;
    FOR c IN SELECT * FROM shred.protected_column pc WHERE pc.relation = tbl LOOP
        alters := alters || format('ALTER COLUMN %I TYPE %s USING %s', c.column_name,
                                   format_type(c.plain_type, c.plain_typmod), shred.open_expr(c, t, ''));
        IF c.blind_index_column IS NOT NULL THEN
            alters := alters || format('DROP COLUMN %I', c.blind_index_column);
        END IF;
    END LOOP;
    -- forgotten first, so that dropping the view is not refused
    DELETE FROM shred.protected_column pc WHERE pc.relation = tbl;
    DELETE FROM shred.protected_table p WHERE p.relation = tbl;
    EXECUTE format('DROP VIEW %s', t.view);
    EXECUTE format('ALTER TABLE %s %s', tbl, array_to_string(alters, ', '));
END
$$;
COMMENT ON FUNCTION shred.unprotect(pg_catalog.regclass) IS
    'Undo shred.protect: drop the view and the blind-index columns, and open every protected value back into its original type (its tombstone, or NULL, where the data subject was erased). Needs shred_reader.';

CREATE FUNCTION shred.set_tombstone(tbl pg_catalog.regclass, column_name pg_catalog.name, tombstone pg_catalog.text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE shred.protected_column pc SET tombstone = set_tombstone.tombstone
     WHERE pc.relation = tbl AND pc.column_name = set_tombstone.column_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: column % of table % is not protected (or not yours)', quote_ident(column_name), tbl
            USING ERRCODE = 'undefined_column';
    END IF;
    PERFORM shred.refresh_view(tbl);
END
$$;
COMMENT ON FUNCTION shred.set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text) IS
    'Set what the plaintext view shows in a protected column once its data subject is erased: NULL (the default) or a constant such as ''[erased]'' (cast to the column''s type).';

-- Which protected tables and columns hold a data subject's values, with counts.
CREATE FUNCTION shred.subject_footprint(subject pg_catalog.text)
    RETURNS TABLE (relation pg_catalog.regclass, column_name pg_catalog.name, row_count pg_catalog.int8, value_count pg_catalog.int8, erased pg_catalog.bool)
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    c shred.protected_column;
BEGIN
    FOR t IN SELECT * FROM shred.protected_table p ORDER BY p.relation::text LOOP
        FOR c IN SELECT * FROM shred.protected_column pc WHERE pc.relation = t.relation ORDER BY pc.column_name LOOP
            EXECUTE format('SELECT count(*), count(%I), coalesce(bool_or(shred.is_erased(%I)), false) FROM %s
                             WHERE (%L || %I::pg_catalog.text) = $1',
                           c.column_name, c.column_name, t.relation, t.subject_prefix, t.subject_column)
                INTO row_count, value_count, erased USING subject;
            IF row_count > 0 THEN
                relation := t.relation;
                column_name := c.column_name;
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION shred.subject_footprint(pg_catalog.text) IS
    'Every protected table and column holding values of a data subject: rows of the subject, non-NULL values, and whether they are erased. Reads the tables with the caller''s privileges.';

-- Everything stored about a data subject in protected tables, decrypted (right of access and
-- portability): {"subject": ..., "tables": {"<table>": [<rows of its view>]}}.
CREATE FUNCTION shred.export_subject(subject pg_catalog.text)
    RETURNS pg_catalog.jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    rows jsonb;
    tables jsonb := '{}';
BEGIN
    FOR t IN SELECT * FROM shred.protected_table p ORDER BY p.relation::text LOOP
        EXECUTE format('SELECT jsonb_agg(to_jsonb(x)) FROM (%s WHERE %s = $1) x', shred.select_plain(t.relation), shred.subject_expr(t, 'b'))
            INTO rows USING subject;
        IF rows IS NOT NULL THEN
            tables := tables || jsonb_build_object(t.relation::text, rows);
        END IF;
    END LOOP;
    IF tables = '{}' THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object('subject', subject, 'exported_at', now(), 'tables', tables);
END
$$;
COMMENT ON FUNCTION shred.export_subject(pg_catalog.text) IS
    'All rows of a data subject in every protected table, decrypted as the plaintext views show them (erased values as their tombstone), as jsonb {"subject", "exported_at", "tables": {"<table>": [rows]}}; NULL when there is none. Reads the tables themselves (never the views'' definitions) with the caller''s rights: needs shred_reader and SELECT on the tables.';

-- Protected values that do not open: malformed envelopes and values that fail authentication.
CREATE FUNCTION shred.check()
    RETURNS TABLE (relation pg_catalog.regclass, column_name pg_catalog.name, problem pg_catalog.text, value_count pg_catalog.int8)
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    c shred.protected_column;
    r record;
    erased_values int8;
    missing int8;
    bad int8;
BEGIN
    FOR c IN SELECT * FROM shred.protected_column pc ORDER BY pc.relation::text, pc.column_name LOOP
        SELECT * INTO t FROM shred.protected_table p WHERE p.relation = c.relation;
        CONTINUE WHEN NOT FOUND;
        erased_values := 0;
        missing := 0;
        bad := 0;
        FOR r IN EXECUTE format('SELECT b.%I AS v, %s AS s FROM %s b WHERE b.%I IS NOT NULL',
                                c.column_name, shred.subject_expr(t, 'b'), c.relation, c.column_name) LOOP
            BEGIN
                IF shred.is_erased(r.v) THEN
                    IF EXISTS (SELECT FROM shred.erasure_log l WHERE l.key_id = shred.key_id(r.v)) THEN
                        erased_values := erased_values + 1;
                    ELSE
                        missing := missing + 1;
                    END IF;
                ELSE
                    EXECUTE format('SELECT %s($1, shred.row_context($2, $3)) IS NULL', shred.kind_opener(shred.sealing_kind(c.plain_type)))
                        USING r.v, c.context, r.s;
                END IF;
            EXCEPTION WHEN OTHERS THEN
                bad := bad + 1;
            END;
        END LOOP;
        IF bad > 0 THEN
            relation := c.relation; column_name := c.column_name; problem := 'does not open'; value_count := bad;
            RETURN NEXT;
        END IF;
        IF missing > 0 THEN
            relation := c.relation; column_name := c.column_name; problem := 'DEK missing (not erased)'; value_count := missing;
            RETURN NEXT;
        END IF;
        IF erased_values > 0 THEN
            relation := c.relation; column_name := c.column_name; problem := 'erased'; value_count := erased_values;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION shred.check() IS
    'Scan every protected column: values that do not open (altered or misplaced envelope, wrong root key), values whose DEK is missing without an erasure record, and values whose data subject was erased, with counts. Needs shred_reader and SELECT on shred.erasure_log (shred_admin has it).';

-- Column renames: keep the catalog's column names, and the view's, in step (table and view
-- renames need nothing: the catalog holds regclass values).
CREATE FUNCTION shred.follow_renames()
    RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cmd record;
    t shred.protected_table;
    new_name name;
    old_name name;
BEGIN
    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
                WHERE command_tag = 'ALTER TABLE' AND object_type = 'table column' LOOP
        SELECT * INTO t FROM shred.protected_table p WHERE p.relation = cmd.objid;
        CONTINUE WHEN NOT FOUND;
        SELECT att.attname INTO new_name FROM pg_attribute att WHERE att.attrelid = cmd.objid AND att.attnum = cmd.objsubid;
        CONTINUE WHEN new_name IS NULL;
        -- the catalog entry whose name no longer exists is the renamed column
        UPDATE shred.protected_table p SET subject_column = new_name
         WHERE p.relation = t.relation
           AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = p.relation AND att.attname = p.subject_column AND NOT att.attisdropped);
        UPDATE shred.protected_column pc SET column_name = new_name
         WHERE pc.relation = t.relation
           AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = pc.relation AND att.attname = pc.column_name AND NOT att.attisdropped);
        UPDATE shred.protected_column pc SET blind_index_column = new_name
         WHERE pc.relation = t.relation AND pc.blind_index_column IS NOT NULL
           AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = pc.relation AND att.attname = pc.blind_index_column AND NOT att.attisdropped);
        -- the view column that no longer matches a column of the table takes the new name
        SELECT va.attname INTO old_name FROM pg_attribute va
         WHERE va.attrelid = t.view AND va.attnum > 0
           AND NOT EXISTS (SELECT FROM pg_attribute ba WHERE ba.attrelid = t.relation AND ba.attname = va.attname AND NOT ba.attisdropped);
        IF old_name IS NOT NULL THEN
            EXECUTE format('ALTER VIEW %s RENAME COLUMN %I TO %I', t.view, old_name, new_name);
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION shred.follow_renames() IS
    'Event trigger: after ALTER TABLE ... RENAME COLUMN on a protected table, renames the column in the catalog and in the plaintext view.';
CREATE EVENT TRIGGER pg_shred_follow_renames ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION shred.follow_renames();

-- DROP TABLE of a protected table forgets its protection; dropping only its plaintext view is
-- refused (the view is how the data is read and written: shred.unprotect removes it).
CREATE FUNCTION shred.follow_drops()
    RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    dropped oid[];
BEGIN
    SELECT array_agg(d.objid) INTO dropped FROM pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0;
    FOR t IN SELECT p.* FROM shred.protected_table p
              WHERE p.relation IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d WHERE d.classid = 'pg_class'::regclass)
                 OR p.view = ANY (dropped) LOOP
        IF t.relation = ANY (dropped) THEN
            DELETE FROM shred.protected_column pc WHERE pc.relation = t.relation;
            DELETE FROM shred.protected_table p WHERE p.relation = t.relation;
        ELSIF t.view = ANY (dropped) THEN
            RAISE EXCEPTION 'pg_shred: this would drop the plaintext view of protected table %', t.relation
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Call shred.unprotect() to turn the table back into plain columns, or drop the table.';
        ELSIF EXISTS (SELECT FROM (SELECT t.subject_column AS n
                                   UNION ALL SELECT pc.column_name FROM shred.protected_column pc WHERE pc.relation = t.relation
                                   UNION ALL SELECT pc.blind_index_column FROM shred.protected_column pc WHERE pc.relation = t.relation) c
                       WHERE c.n IS NOT NULL
                         AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = t.relation AND att.attname = c.n AND NOT att.attisdropped)) THEN
            RAISE EXCEPTION 'pg_shred: this would drop a protected, subject or blind-index column of table %', t.relation
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Call shred.unprotect() first.';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION shred.follow_drops() IS
    'Event trigger: DROP TABLE of a protected table removes its catalog rows; dropping only its plaintext view, or a protected, subject or blind-index column, is refused.';
CREATE EVENT TRIGGER pg_shred_follow_drops ON sql_drop
    EXECUTE FUNCTION shred.follow_drops();

REVOKE ALL ON FUNCTION
    shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text),
    shred.unprotect(pg_catalog.regclass),
    shred.set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred.refresh_view(pg_catalog.regclass, pg_catalog.text),
    shred.subject_footprint(pg_catalog.text),
    shred.export_subject(pg_catalog.text),
    shred.check(),
    shred.sealing_kind(pg_catalog.regtype),
    shred.kind_type(pg_catalog.text),
    shred.kind_opener(pg_catalog.text),
    shred.row_context(pg_catalog.text, pg_catalog.text),
    shred.open_expr(shred.protected_column, shred.protected_table, pg_catalog.text),
    shred.subject_expr(shred.protected_table, pg_catalog.text),
    shred.qualifier(pg_catalog.text),
    shred.select_plain(pg_catalog.regclass),
    shred.catalog_row_ok(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name[]),
    shred.protected_view_write(),
    shred.follow_renames(),
    shred.follow_drops()
FROM PUBLIC;
-- Table owners who protect tables need shred_admin (and shred_writer to seal existing values,
-- shred_reader to unprotect); readers of the views need shred_reader, writers shred_writer.
GRANT EXECUTE ON FUNCTION
    shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text),
    shred.unprotect(pg_catalog.regclass),
    shred.set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred.refresh_view(pg_catalog.regclass, pg_catalog.text),
    shred.check(),
    shred.protected_view_write(),  -- CREATE TRIGGER in protect() needs it; triggers fire without it
    shred.catalog_row_ok(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name[])  -- the catalog's row security
TO shred_admin;
GRANT EXECUTE ON FUNCTION shred.subject_footprint(pg_catalog.text) TO shred_reader, shred_eraser, shred_admin;
GRANT EXECUTE ON FUNCTION shred.export_subject(pg_catalog.text) TO shred_reader;  -- it opens values
-- String helpers the views and their trigger call with the caller's rights: no data, no keys.
GRANT EXECUTE ON FUNCTION
    shred.sealing_kind(pg_catalog.regtype),
    shred.kind_type(pg_catalog.text),
    shred.kind_opener(pg_catalog.text),
    shred.row_context(pg_catalog.text, pg_catalog.text),
    shred.open_expr(shred.protected_column, shred.protected_table, pg_catalog.text),
    shred.subject_expr(shred.protected_table, pg_catalog.text),
    shred.qualifier(pg_catalog.text),
    shred.select_plain(pg_catalog.regclass)
TO shred_reader, shred_writer, shred_eraser, shred_admin;
