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
