-- pg_shred 0.4.0: the key store. Run by a fresh install after the 0.3.0 scripts, and as the
-- update script from 0.3.0 (scripts/lib.sh joins it in; see sql/README.md).

-----------------------------------------------------------------------------------------------
-- Set-based key creation.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.create_keys(subjects pg_catalog.text[])
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'create_keys_wrapper';
COMMENT ON FUNCTION shred.create_keys(pg_catalog.text[]) IS
    'Create the DEK of every subject in the array that has none, set-based (one lookup, one INSERT), before sealing their values: a bulk load of new subjects pays one statement instead of one per subject. Race-safe like shred.seal (a subject created concurrently keeps one DEK). Returns how many DEKs were created. NULL array or element: 22004; subjects are checked as by shred.seal.';
REVOKE ALL ON FUNCTION shred.create_keys(pg_catalog.text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shred.create_keys(pg_catalog.text[]) TO shred_writer;

-----------------------------------------------------------------------------------------------
-- An erased key id is told from one this key store never held: erasure records may have no
-- subject digest (shred.replay_erasures records key ids erased elsewhere after a backup).
-----------------------------------------------------------------------------------------------
ALTER TABLE shred.erasure_log ALTER COLUMN subject_digest DROP NOT NULL;
COMMENT ON TABLE shred.erasure_log IS
    'One row per erased DEK: key id, keyed digest of the data subject (HMAC-SHA256, see shred.erased_at; NULL for a key id recorded by shred.replay_erasures that this database never held), time of the erasure. Written in the erasing transaction; kept by pg_dump. A value whose key id has neither a DEK nor a record here is not from this key store: opening it raises 42704.';
COMMENT ON FUNCTION shred.is_erased(shred.sealed) IS
    'True when the value''s DEK was erased in this key store (its erasure record exists), false while it exists. A key id this key store never held (a value from another database, or altered) raises 42704. Needs no root key.';
COMMENT ON FUNCTION shred.replay_erasures(pg_catalog.int8[]) IS
    'After restoring an older backup: erase again the DEKs with these key ids (from a newer shred.erasure_log, e.g. SELECT array_agg(key_id) FROM shred.erasure_log WHERE erased_at >= <backup time>), recording each erasure and deleting its blind-index terms; key ids this database never held are recorded as erased too. pg_shred''s own keys are never deleted. Returns how many DEKs were deleted; idempotent.';

-----------------------------------------------------------------------------------------------
-- numeric and jsonb: sealed from the datum itself (its output function), opened through the
-- input function without showing the text in any error. The text-taking helpers are gone: they
-- sealed any text as numeric or jsonb.
-----------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.numeric, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_numeric_wrapper';
CREATE OR REPLACE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.jsonb, context pg_catalog.text DEFAULT '')
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_jsonb_wrapper';
CREATE OR REPLACE FUNCTION shred.open_numeric(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.numeric
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_numeric_wrapper';
CREATE OR REPLACE FUNCTION shred.open_jsonb(value shred.sealed, context pg_catalog.text DEFAULT '')
    RETURNS pg_catalog.jsonb
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'open_jsonb_wrapper';
DROP FUNCTION shred.seal_numeric_text(pg_catalog.text, pg_catalog.text, pg_catalog.text),
              shred.seal_jsonb_text(pg_catalog.text, pg_catalog.text, pg_catalog.text),
              shred.open_numeric_text(shred.sealed, pg_catalog.text),
              shred.open_jsonb_text(shred.sealed, pg_catalog.text);

-----------------------------------------------------------------------------------------------
-- The drop guard also covers DROP OWNED BY the owner of the extension or of its key table.
-----------------------------------------------------------------------------------------------
DROP EVENT TRIGGER pg_shred_refuse_drop_with_keys;
CREATE EVENT TRIGGER pg_shred_refuse_drop_with_keys ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION shred.refuse_drop_with_keys();
COMMENT ON FUNCTION shred.refuse_drop_with_keys() IS
    'Event trigger: refuses DROP EXTENSION pg_shred, DROP SCHEMA shred, and DROP OWNED BY the owner of the extension or its key table, while DEKs exist (such a drop erases every data subject), unless shred.allow_drop_with_keys is on.';
