-- pg_shred: objects created before any generated SQL.
--
-- The extension creates its schema itself (the control file names none): CREATE EXTENSION
-- fails if a schema "shred" already exists, so nobody else can own the schema the extension's
-- functions live in and plant look-alike functions or operators there.
-- Every name is schema-qualified and every operator is pg_catalog's, so nothing here depends on
-- the search_path of the session that runs CREATE EXTENSION or a restore.

-----------------------------------------------------------------------------------------------
-- The column type shred.sealed: a varlena holding the envelope bytes (format v1).
-----------------------------------------------------------------------------------------------
CREATE SCHEMA shred;
COMMENT ON SCHEMA shred IS 'pg_shred: per-subject envelope encryption and crypto-shredding erasure';

CREATE TYPE shred.sealed;

CREATE FUNCTION shred.sealed_in(pg_catalog.cstring) RETURNS shred.sealed
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sealed_in_wrapper';
CREATE FUNCTION shred.sealed_out(shred.sealed) RETURNS pg_catalog.cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sealed_out_wrapper';
CREATE FUNCTION shred.sealed_recv(pg_catalog.internal) RETURNS shred.sealed
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sealed_recv_wrapper';
CREATE FUNCTION shred.sealed_send(shred.sealed) RETURNS pg_catalog.bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sealed_send_wrapper';

-- STORAGE = external: envelopes are ciphertext and do not compress, so never try.
CREATE TYPE shred.sealed (
    INPUT = shred.sealed_in,
    OUTPUT = shred.sealed_out,
    RECEIVE = shred.sealed_recv,
    SEND = shred.sealed_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = int4,
    STORAGE = external
);
COMMENT ON TYPE shred.sealed IS
    'A value sealed by pg_shred (envelope format v1: version, key id, nonce, AES-256-GCM ciphertext and tag). Text form shred1:<base64>. No cast to or from text exists.';

-----------------------------------------------------------------------------------------------
-- Key store. Applications never read these tables: access goes through the functions below.
-- Both tables and the sequence are extension configuration, so pg_dump keeps them: a restore
-- without keys would erase every data subject.
-----------------------------------------------------------------------------------------------
CREATE TABLE shred.root_key_version (
    version     pg_catalog.int4 CONSTRAINT root_key_version_pkey PRIMARY KEY CHECK (version OPERATOR(pg_catalog.>) 0),
    salt        pg_catalog.bytea NOT NULL CHECK (pg_catalog.length(salt) OPERATOR(pg_catalog.=) 32),
    key_check   pg_catalog.bytea NOT NULL CHECK (pg_catalog.length(key_check) OPERATOR(pg_catalog.=) 32),
    created_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE shred.root_key_version IS
    'One row per root-key version in use: HKDF salt and key-check value (never the key). A root key whose key-check value differs is refused.';

CREATE SEQUENCE shred.subject_key_key_id_seq AS pg_catalog.int8 MINVALUE 1;

CREATE TABLE shred.subject_key (
    key_id            pg_catalog.int8 CONSTRAINT subject_key_pkey PRIMARY KEY
                      DEFAULT pg_catalog.nextval('shred.subject_key_key_id_seq'::pg_catalog.regclass),
    subject           pg_catalog.text NOT NULL CONSTRAINT subject_key_subject_key UNIQUE,
    wrapped_dek       pg_catalog.bytea NOT NULL,  -- 61 bytes; checked when unwrapped
    root_key_version  pg_catalog.int4 NOT NULL,
    created_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
ALTER SEQUENCE shred.subject_key_key_id_seq OWNED BY shred.subject_key.key_id;
-- Key ids start at a random point (below 2^52), so a fresh key store (DROP and CREATE
-- EXTENSION, or a table restored into another database) does not hand out the key ids of old
-- envelopes again: those stay erased (NULL) instead of meeting an unrelated DEK. pg_dump
-- restores the sequence's own value.
SELECT pg_catalog.setval('shred.subject_key_key_id_seq',
                         pg_catalog.floor(pg_catalog.random() * 4503599627370496)::pg_catalog.int8 + 1, false);
COMMENT ON TABLE shred.subject_key IS
    'One row per data subject: the DEK wrapped with AES-256-GCM under the KEK of root_key_version. Deleting a row erases the subject (crypto-shredding).';

SELECT pg_catalog.pg_extension_config_dump('shred.root_key_version', '');
SELECT pg_catalog.pg_extension_config_dump('shred.subject_key', '');
SELECT pg_catalog.pg_extension_config_dump('shred.subject_key_key_id_seq', '');

REVOKE ALL ON shred.root_key_version, shred.subject_key, shred.subject_key_key_id_seq FROM PUBLIC;

-----------------------------------------------------------------------------------------------
-- SQL functions. Thin wrappers over the Rust core; labels are deliberate:
-- seal/erase write the key store (VOLATILE, PARALLEL UNSAFE); open/is_erased read it with the
-- latest snapshot so a committed erasure is seen at once, which PostgreSQL does not allow in
-- parallel mode (VOLATILE, PARALLEL UNSAFE: a query that opens values never runs in parallel);
-- key_id is a pure function of the envelope (IMMUTABLE STRICT PARALLEL SAFE).
-- None is STRICT where a NULL subject or context must raise an error instead of returning NULL.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.text, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_text_wrapper';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'Seal text for a data subject with AES-256-GCM under the subject''s DEK (created on first use). The optional context (e.g. ''customers.email'') is bound as AAD and must be given again to open. NULL plaintext gives NULL; NULL subject or context is an error.';

CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.bytea, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_bytea_wrapper';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.bytea, pg_catalog.text) IS
    'Seal bytes for a data subject; as shred.seal(text, text, text). Open with shred.open_bytea.';

CREATE FUNCTION shred.open(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.text
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_text_wrapper';
COMMENT ON FUNCTION shred.open(shred.sealed, pg_catalog.text) IS
    'Open a sealed value as text. NULL when the data subject has been erased (or the value is NULL). Raises SQLSTATE 22000 for every authentication failure (altered value, other context), 22021 when the plaintext is not text, F0000 when the root key is missing or wrong.';

CREATE FUNCTION shred.open_bytea(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.bytea
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_bytea_wrapper';
COMMENT ON FUNCTION shred.open_bytea(shred.sealed, pg_catalog.text) IS
    'Open a sealed value as bytes; as shred.open.';

CREATE FUNCTION shred.erase(subject pg_catalog.text)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'erase_wrapper';
COMMENT ON FUNCTION shred.erase(pg_catalog.text) IS
    'Erase a data subject by deleting its DEK (crypto-shredding), inside the caller''s transaction: final at COMMIT, undone by ROLLBACK. True when a DEK was destroyed, false when the subject had none. NULL subject is an error.';

CREATE FUNCTION shred.erase(subjects pg_catalog.text[])
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'erase_many_wrapper';
COMMENT ON FUNCTION shred.erase(pg_catalog.text[]) IS
    'Erase many data subjects at once (one DELETE of their DEKs), inside the caller''s transaction. Returns how many DEKs were destroyed. A NULL array or element is an error.';

CREATE FUNCTION shred.is_erased(value shred.sealed)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'is_erased_wrapper';
COMMENT ON FUNCTION shred.is_erased(shred.sealed) IS
    'True when the DEK that sealed this value no longer exists (its data subject was erased). Needs no root key.';

CREATE FUNCTION shred.key_id(value shred.sealed)
    RETURNS pg_catalog.int8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'key_id_wrapper';
COMMENT ON FUNCTION shred.key_id(shred.sealed) IS
    'The key id recorded in a sealed value''s envelope (which DEK sealed it).';

-- Everyone may use the type (and shred.key_id); nothing that opens, seals or erases is
-- executable by PUBLIC: grant it to application roles.
GRANT USAGE ON SCHEMA shred TO PUBLIC;
REVOKE ALL ON FUNCTION
    shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.bytea, pg_catalog.text),
    shred.open(shred.sealed, pg_catalog.text),
    shred.open_bytea(shred.sealed, pg_catalog.text),
    shred.erase(pg_catalog.text),
    shred.erase(pg_catalog.text[]),
    shred.is_erased(shred.sealed)
FROM PUBLIC;

-----------------------------------------------------------------------------------------------
-- DEK cache invalidation: every statement that deletes, updates or truncates a DEK (erase, a
-- DBA's DELETE, logical replication apply, later rotation) invalidates every backend's cache
-- at COMMIT. ENABLE ALWAYS: also fires under session_replication_role = replica.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.subject_key_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'subject_key_changed_wrapper';
REVOKE ALL ON FUNCTION shred.subject_key_changed() FROM PUBLIC;
CREATE TRIGGER subject_key_changed
    AFTER DELETE OR UPDATE OR TRUNCATE ON shred.subject_key
    FOR EACH STATEMENT EXECUTE FUNCTION shred.subject_key_changed();
ALTER TABLE shred.subject_key ENABLE ALWAYS TRIGGER subject_key_changed;

CREATE FUNCTION shred.key_cache_entries() RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'key_cache_entries_wrapper';
COMMENT ON FUNCTION shred.key_cache_entries() IS
    'Number of unwrapped DEKs cached in this backend (bounded by shred.key_cache_size).';

-----------------------------------------------------------------------------------------------
-- DROP EXTENSION pg_shred (or DROP SCHEMA shred CASCADE) would destroy the key store and so
-- erase every data subject at once: refused while DEKs exist, unless the superuser running it
-- sets shred.allow_drop_with_keys = on first.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.refuse_drop_with_keys() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'refuse_drop_with_keys_wrapper';
REVOKE ALL ON FUNCTION shred.refuse_drop_with_keys() FROM PUBLIC;
CREATE EVENT TRIGGER pg_shred_refuse_drop_with_keys ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION shred.refuse_drop_with_keys();
