-- pg_shred 0.6.0, fourth part: proving an erasure. Runs after protect_purposes.sql (see
-- sql/README.md). Rust side: src/erasure/receipts.rs; the receipt format and its signature:
-- crates/pg_shred_crypto/src/receipt.rs.
--
-- shred.erasure_residue lists a data subject's erased DEKs with what is left of them: copies of
-- the wrapped DEK still in the key table's heap pages (dead tuples not yet vacuumed) and
-- whether the root-key versions that wrapped them are still in the keyring.
-- shred.erasure_receipt turns that, with the erasure horizon, into a signed statement (Ed25519
-- over the receipt's RFC 8785 canonical form), verifiable by shred.verify_receipt and offline
-- by pg-shred-verify or any Ed25519 library with the key of shred.receipt_public_key().

CREATE FUNCTION shred.receipt_public_key()
    RETURNS pg_catalog.text
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'receipt_public_key_wrapper';
COMMENT ON FUNCTION shred.receipt_public_key() IS
    'The Ed25519 public key (RFC 8032; 32 bytes, base64) that verifies this database''s erasure receipts, e.g. with pg-shred-verify --public-key <key> <receipt.json>. The signing key is derived from a random key kept in the key store (the reserved subject pg_shred:receipt), created on first use: wrapped under the root key, rewrapped by rotation, kept by pg_dump, so the public key stays the same.';

CREATE FUNCTION shred.verify_receipt(receipt pg_catalog.jsonb)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'verify_receipt_wrapper';
COMMENT ON FUNCTION shred.verify_receipt(pg_catalog.jsonb) IS
    'Whether an erasure receipt carries a valid signature of this database''s receipt key: its "signature" member is the base64 Ed25519 signature of the receipt without that member in the JSON Canonicalization Scheme (RFC 8785). False for any change to the receipt, and while this database never issued a receipt.';

CREATE FUNCTION shred._sign_receipt(receipt pg_catalog.text, subject pg_catalog.text)
    RETURNS pg_catalog.jsonb
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_sign_receipt_wrapper';
COMMENT ON FUNCTION shred._sign_receipt(pg_catalog.text, pg_catalog.text) IS
    'Internal (erasure_receipt): adds the system identifier, the salted SHA-256 digest of the subject and the public key to a receipt, and signs it. Never granted.';

CREATE FUNCTION shred._erasure_committed(key_id pg_catalog.int8)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_erasure_committed_wrapper';
COMMENT ON FUNCTION shred._erasure_committed(pg_catalog.int8) IS
    'Internal (erasure_residue): whether the erasure record of a key id was written by a committed transaction, not by the current one. Never granted.';

CREATE FUNCTION shred._heap_copies(key_ids pg_catalog.int8[])
    RETURNS TABLE (key_id pg_catalog.int8, root_key_version pg_catalog.int4)
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_heap_copies_wrapper';
COMMENT ON FUNCTION shred._heap_copies(pg_catalog.int8[]) IS
    'Internal (erasure_residue): every tuple of shred.subject_key with one of these key ids still in the table''s heap pages, live or dead (a sequential scan under SnapshotAny), with the root-key version that wrapped it. Never granted.';

CREATE FUNCTION shred._utc(t pg_catalog.timestamptz)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
COMMENT ON FUNCTION shred._utc(pg_catalog.timestamptz) IS
    'Internal (erasure_receipt): a time as RFC 3339 text in UTC with microseconds, whatever the session''s TimeZone. Never granted.';

CREATE FUNCTION shred.erasure_residue(subject pg_catalog.text)
    RETURNS TABLE (key_id pg_catalog.int8, purpose pg_catalog.text, erased_at pg_catalog.timestamptz,
                   heap_copies pg_catalog.int4, root_key_versions pg_catalog.int4[],
                   versions_in_keyring pg_catalog.int4[], final_in_every_copy pg_catalog.bool)
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH e AS (
        SELECT l.key_id, p.name AS purpose, l.erased_at
          FROM shred.erasure_log l
          LEFT JOIN shred.purpose p ON p.purpose_id = l.purpose_id
         -- the digest once (an InitPlan); committed erasures only
         WHERE l.subject_digest = (SELECT shred._subject_digest(subject))
           AND shred._erasure_committed(l.key_id)
    ), c AS (
        SELECT h.key_id, h.root_key_version FROM shred._heap_copies((SELECT array_agg(e.key_id) FROM e)) h
    ), ring AS (
        SELECT k.version FROM shred.keyring() k
    ), horizon AS (
        SELECT erasures_final_before FROM shred.erasure_horizon()
    )
    SELECT e.key_id, e.purpose, e.erased_at,
           (SELECT count(*) FROM c WHERE c.key_id = e.key_id)::int4,
           coalesce((SELECT array_agg(DISTINCT c.root_key_version) FROM c WHERE c.key_id = e.key_id), '{}'),
           coalesce((SELECT array_agg(DISTINCT c.root_key_version) FROM c WHERE c.key_id = e.key_id
                        AND c.root_key_version IN (SELECT version FROM ring)), '{}'),
           coalesce(e.erased_at < (SELECT erasures_final_before FROM horizon), false)
      FROM e
     ORDER BY e.erased_at, e.key_id
$$;
COMMENT ON FUNCTION shred.erasure_residue(pg_catalog.text) IS
    'What is left of a data subject''s erased DEKs (committed erasures, whole or of one purpose; no rows when none is recorded): per erased key id its purpose (NULL: an erasure of the whole subject), when it was erased, how many copies of its key table row are still in the table''s heap pages (dead tuples not yet removed by VACUUM or pruning) and the root-key versions that wrapped them, which of those versions are still in this server''s keyring (a copy under one of them can still be unwrapped by whoever has the pages), and whether the erasure is final in every copy (WAL, replicas, backups, dumps too): it happened before shred.erasure_horizon()''s erasures_final_before. Reads the whole key table (one sequential scan).';

CREATE FUNCTION shred.erasure_receipt(subject pg_catalog.text)
    RETURNS pg_catalog.jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    erasures pg_catalog.jsonb;
    residue pg_catalog.jsonb;
    last_whole pg_catalog.timestamptz;
    all_final pg_catalog.bool;
    h record;
BEGIN
    SELECT jsonb_agg(jsonb_build_object('key_id', r.key_id, 'purpose', r.purpose, 'erased_at', shred._utc(r.erased_at),
                                        'final_in_every_copy', r.final_in_every_copy) ORDER BY r.erased_at, r.key_id),
           jsonb_agg(jsonb_build_object('key_id', r.key_id, 'heap_copies', r.heap_copies,
                                        'root_key_versions', to_jsonb(r.root_key_versions),
                                        'versions_in_keyring', to_jsonb(r.versions_in_keyring)) ORDER BY r.erased_at, r.key_id),
           max(r.erased_at) FILTER (WHERE r.purpose IS NULL),
           bool_and(r.final_in_every_copy)
      INTO erasures, residue, last_whole, all_final
      FROM shred.erasure_residue(subject) r;
    IF erasures IS NULL THEN
        RAISE EXCEPTION 'pg_shred: no committed erasure of this data subject is recorded'
            USING ERRCODE = 'undefined_object',
                  HINT = 'A receipt covers erasures recorded in shred.erasure_log by committed transactions: shred.erase(subject) or shred.erase(subject, purpose), then COMMIT.';
    END IF;
    SELECT * INTO h FROM shred.erasure_horizon();
    RETURN shred._sign_receipt(jsonb_build_object(
        'format', 'pg_shred erasure receipt v1',
        'issued_at', shred._utc(now()),
        'database', current_database(),
        'erasures', erasures,
        'erased_at', shred._utc(last_whole),
        'final_in_every_copy', all_final,
        'horizon', jsonb_build_object(
            'erasures_final_before', shred._utc(h.erasures_final_before),
            'oldest_needed_root_key_version', h.oldest_needed_version,
            'oldest_live_root_key_version', h.oldest_live_version,
            'advice', h.advice),
        'residue', residue)::text, subject);
END
$$;
COMMENT ON FUNCTION shred.erasure_receipt(pg_catalog.text) IS
    'A signed erasure receipt of a data subject, as jsonb: format, issued_at, database, system_identifier, erasures (each erased key id with its purpose, NULL for an erasure of the whole subject, erased_at and final_in_every_copy), erased_at (the last erasure of the whole subject, NULL when only purposes were erased), final_in_every_copy, horizon (shred.erasure_horizon() at issue), residue (shred.erasure_residue at issue), subject (a random salt and SHA-256(salt || subject UTF-8), base64, which the subject''s holder can check), public_key, and signature: the base64 Ed25519 signature (RFC 8032) of the receipt without its signature member in the JSON Canonicalization Scheme (RFC 8785). Covers committed erasures only; none recorded raises 42704. Check it with shred.verify_receipt or offline with pg-shred-verify and the key of shred.receipt_public_key().';

REVOKE ALL ON FUNCTION
    shred.receipt_public_key(),
    shred.verify_receipt(pg_catalog.jsonb),
    shred._sign_receipt(pg_catalog.text, pg_catalog.text),
    shred._erasure_committed(pg_catalog.int8),
    shred._heap_copies(pg_catalog.int8[]),
    shred._utc(pg_catalog.timestamptz),
    shred.erasure_residue(pg_catalog.text),
    shred.erasure_receipt(pg_catalog.text)
FROM PUBLIC;
-- The DPO (or the eraser, at the erasure) issues receipts and reads the residue; anyone with a
-- pg_shred role may check a receipt.
GRANT EXECUTE ON FUNCTION
    shred.erasure_residue(pg_catalog.text),
    shred.erasure_receipt(pg_catalog.text)
TO shred_eraser, shred_admin;
GRANT EXECUTE ON FUNCTION
    shred.receipt_public_key(),
    shred.verify_receipt(pg_catalog.jsonb)
TO shred_reader, shred_writer, shred_eraser, shred_admin;
