-- pg_shred 0.6.0, first part: purposes, and one DEK per data subject and purpose. A fresh
-- install runs it after postgres_majors.sql; the update script from 0.5.0 is this file,
-- consent.sql, protect_purposes.sql and receipts.sql joined (scripts/lib.sh; see sql/README.md).
--
-- A purpose says why data is kept ('marketing', 'billing'). A subject may hold one DEK per
-- purpose besides its default DEK: shred.seal(..., purpose => 'marketing') seals under it,
-- shred.erase(subject, 'marketing') destroys only it (a withdrawn consent), shred.erase(subject)
-- destroys every DEK of the subject. The envelope format is unchanged: the key id names the DEK,
-- whatever its purpose. Every existing DEK becomes the default DEK of its subject.

-----------------------------------------------------------------------------------------------
-- Purposes. Ids are never reused and a purpose is never dropped: DEKs and records name it by id.
-----------------------------------------------------------------------------------------------
CREATE SEQUENCE shred.purpose_purpose_id_seq AS pg_catalog.int4 MINVALUE 1;
CREATE TABLE shred.purpose (
    purpose_id        pg_catalog.int4 CONSTRAINT purpose_pkey PRIMARY KEY CHECK (purpose_id OPERATOR(pg_catalog.>) 0)
                      DEFAULT pg_catalog.nextval('shred.purpose_purpose_id_seq'::pg_catalog.regclass),
    name              pg_catalog.text COLLATE "C" NOT NULL CONSTRAINT purpose_name_key UNIQUE
                      CHECK (name OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$'),
    description       pg_catalog.text NOT NULL,
    requires_consent  pg_catalog.bool NOT NULL,
    retention         pg_catalog.interval CHECK (retention OPERATOR(pg_catalog.>) '0'::pg_catalog.interval),
    created_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE shred.purpose IS
    'One row per purpose data is kept for (shred.define_purpose): its id in the key store, name, description, whether sealing for it needs the data subject''s confirmed consent, and its retention period. Kept by pg_dump.';
ALTER SEQUENCE shred.purpose_purpose_id_seq OWNED BY shred.purpose.purpose_id;
SELECT pg_catalog.pg_extension_config_dump('shred.purpose', '');
SELECT pg_catalog.pg_extension_config_dump('shred.purpose_purpose_id_seq', '');
REVOKE ALL ON shred.purpose, shred.purpose_purpose_id_seq FROM PUBLIC;

CREATE VIEW shred.purposes AS
SELECT p.name, p.description, p.requires_consent, p.retention, p.created_at
  FROM shred.purpose p;
COMMENT ON VIEW shred.purposes IS
    'The purposes defined with shred.define_purpose: name, description, whether sealing for it needs the data subject''s confirmed consent (shred.request_consent, shred.confirm_consent), and its retention period (NULL: none).';
REVOKE ALL ON shred.purposes FROM PUBLIC;
GRANT SELECT ON shred.purposes TO shred_reader, shred_writer, shred_eraser, shred_admin;

CREATE FUNCTION shred.define_purpose(
    name pg_catalog.text,
    description pg_catalog.text,
    requires_consent pg_catalog.bool DEFAULT false,
    retention pg_catalog.interval DEFAULT NULL)
    RETURNS pg_catalog.bool
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p shred.purpose;
BEGIN
    IF define_purpose.name IS NULL OR define_purpose.description IS NULL OR define_purpose.requires_consent IS NULL THEN
        RAISE EXCEPTION 'pg_shred: name, description and requires_consent must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF define_purpose.name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'pg_shred: a purpose name is 1 to 63 lower-case letters, digits and underscores, starting with a letter'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF define_purpose.retention IS NOT NULL AND define_purpose.retention <= interval '0' THEN
        RAISE EXCEPTION 'pg_shred: retention must be positive (or NULL for none)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one definition at a time
    LOCK TABLE shred.purpose IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO p FROM shred.purpose x WHERE x.name = define_purpose.name;
    IF FOUND THEN
        IF p.requires_consent <> define_purpose.requires_consent THEN
            RAISE EXCEPTION 'pg_shred: purpose "%" is defined with requires_consent = %; it cannot change', p.name, p.requires_consent
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'Its DEKs were created under that rule.',
                      HINT = 'Define a new purpose, and seal new values for it.';
        END IF;
        UPDATE shred.purpose x SET description = define_purpose.description, retention = define_purpose.retention
         WHERE x.purpose_id = p.purpose_id;
        RETURN false;
    END IF;
    BEGIN
        INSERT INTO shred.purpose (name, description, requires_consent, retention)
        VALUES (define_purpose.name, define_purpose.description, define_purpose.requires_consent, define_purpose.retention);
    EXCEPTION WHEN unique_violation THEN
        -- defined by a transaction this one's snapshot (REPEATABLE READ) does not see
        RAISE EXCEPTION 'pg_shred: purpose "%" was defined concurrently', define_purpose.name
            USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
    END;
    RETURN true;
END
$$;
COMMENT ON FUNCTION shred.define_purpose(pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.interval) IS
    'Define a purpose data is kept for (name: 1 to 63 lower-case letters, digits and underscores, starting with a letter), or set the description and retention of a defined one (a NULL retention clears it; requires_consent must be given as defined). requires_consent (fixed once defined): sealing for it needs the data subject''s confirmed consent. retention: how long its data may be kept (NULL: no limit). True when it was created, false when it existed. For shred_admin.';

-----------------------------------------------------------------------------------------------
-- Purpose DEKs: the key store holds one DEK per (subject, purpose); purpose 0 is the default
-- DEK, which every DEK created before 0.6.0 is. A column with a constant default: no rewrite.
-----------------------------------------------------------------------------------------------
ALTER TABLE shred.subject_key ADD COLUMN purpose_id pg_catalog.int4 NOT NULL DEFAULT 0;
ALTER TABLE shred.subject_key DROP CONSTRAINT subject_key_subject_key,
    ADD CONSTRAINT subject_key_subject_key UNIQUE (subject, purpose_id);
COMMENT ON COLUMN shred.subject_key.purpose_id IS
    'The purpose (shred.purpose.purpose_id) whose data this DEK seals; 0 for the data subject''s default DEK.';
COMMENT ON TABLE shred.subject_key IS
    'One row per DEK: the data subject''s default DEK, and one per purpose it has data for, wrapped with AES-256-GCM under the KEK of root_key_version. Deleting a row erases what it sealed (crypto-shredding).';

-- Erasure records say whether one purpose was erased, or the whole data subject.
ALTER TABLE shred.erasure_log ADD COLUMN purpose_id pg_catalog.int4;
COMMENT ON COLUMN shred.erasure_log.purpose_id IS
    'The purpose erased alone (shred.erase(subject, purpose), shred.withdraw_consent); NULL when the whole data subject was erased.';

-----------------------------------------------------------------------------------------------
-- Sealing for a purpose: every shred.seal takes `purpose` (NULL: the default DEK) after the
-- context. The three-argument functions are replaced (a call with two or three arguments
-- means what it meant), and the EXECUTE privileges granted on them are carried over.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.text, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_text_for_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.bytea, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_bytea_for_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.int4, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_int4_for_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.int8, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_int8_for_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.numeric, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_numeric_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.date, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_date_for_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.timestamptz, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_timestamptz_for_wrapper';
CREATE FUNCTION shred.seal(subject pg_catalog.text, plaintext pg_catalog.jsonb, context pg_catalog.text DEFAULT '', purpose pg_catalog.text DEFAULT NULL)
    RETURNS shred.sealed
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'seal_jsonb_wrapper';
CREATE FUNCTION shred.pseudonym(subject pg_catalog.text, domain pg_catalog.text, purpose pg_catalog.text DEFAULT NULL)
    RETURNS pg_catalog.text
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'pseudonym_for_wrapper';
REVOKE ALL ON FUNCTION
    shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.bytea, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.numeric, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.date, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.timestamptz, pg_catalog.text, pg_catalog.text),
    shred.seal(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.text),
    shred.pseudonym(pg_catalog.text, pg_catalog.text, pg_catalog.text)
FROM PUBLIC;

-- Whoever may EXECUTE a replaced function (shred_writer, or a role a DBA granted it to) may
-- EXECUTE its replacement.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT m.new_fn, a.grantee, a.is_grantable
          FROM (VALUES ('text', 'shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text)'),
                       ('bytea', 'shred.seal(pg_catalog.text, pg_catalog.bytea, pg_catalog.text, pg_catalog.text)'),
                       ('int4', 'shred.seal(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.text)'),
                       ('int8', 'shred.seal(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.text)'),
                       ('numeric', 'shred.seal(pg_catalog.text, pg_catalog.numeric, pg_catalog.text, pg_catalog.text)'),
                       ('date', 'shred.seal(pg_catalog.text, pg_catalog.date, pg_catalog.text, pg_catalog.text)'),
                       ('timestamptz', 'shred.seal(pg_catalog.text, pg_catalog.timestamptz, pg_catalog.text, pg_catalog.text)'),
                       ('jsonb', 'shred.seal(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.text)'))
               m (typ, new_fn)
          JOIN pg_catalog.pg_proc p
            ON p.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(pg_catalog.format('shred.seal(pg_catalog.text, pg_catalog.%s, pg_catalog.text)', m.typ))
         CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
         WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE' AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
        UNION ALL
        SELECT 'shred.pseudonym(pg_catalog.text, pg_catalog.text, pg_catalog.text)', a.grantee, a.is_grantable
          FROM pg_catalog.pg_proc p
         CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid OPERATOR(pg_catalog.=) 'shred.pseudonym(pg_catalog.text, pg_catalog.text)'::pg_catalog.regprocedure
           AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE' AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', g.new_fn,
                                  CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE g.grantee::pg_catalog.regrole::pg_catalog.text END,
                                  CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

DROP FUNCTION shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text),
              shred.seal(pg_catalog.text, pg_catalog.bytea, pg_catalog.text),
              shred.seal(pg_catalog.text, pg_catalog.int4, pg_catalog.text),
              shred.seal(pg_catalog.text, pg_catalog.int8, pg_catalog.text),
              shred.seal(pg_catalog.text, pg_catalog.numeric, pg_catalog.text),
              shred.seal(pg_catalog.text, pg_catalog.date, pg_catalog.text),
              shred.seal(pg_catalog.text, pg_catalog.timestamptz, pg_catalog.text),
              shred.seal(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text),
              shred.pseudonym(pg_catalog.text, pg_catalog.text);

COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'Seal text for a data subject with AES-256-GCM under the subject''s DEK for purpose (NULL: its default DEK), created on first use; for a purpose that requires consent, only under the subject''s confirmed consent (55000 otherwise). The optional context (e.g. ''customers.email'') is bound as AAD and must be given again to open. NULL plaintext gives NULL; NULL subject or context is an error; an undefined purpose is 42704.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.bytea, pg_catalog.text, pg_catalog.text) IS
    'Seal bytes for a data subject and purpose; as shred.seal(text, text, text, text). Open with shred.open_bytea.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.text) IS
    'Seal an integer for a data subject and purpose (envelope format v2, which records the type); as shred.seal(text, text, text, text). Open with shred.open_integer.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.text) IS
    'Seal a bigint for a data subject and purpose (envelope format v2). Open with shred.open_bigint.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.numeric, pg_catalog.text, pg_catalog.text) IS
    'Seal a numeric (its exact text form, NaN and scale included) for a data subject and purpose (envelope format v2). Open with shred.open_numeric.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.date, pg_catalog.text, pg_catalog.text) IS
    'Seal a date (days since 2000-01-01, infinities included) for a data subject and purpose (envelope format v2). Open with shred.open_date.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.timestamptz, pg_catalog.text, pg_catalog.text) IS
    'Seal a timestamptz (microseconds since 2000-01-01 UTC; independent of TimeZone) for a data subject and purpose (envelope format v2). Open with shred.open_timestamptz.';
COMMENT ON FUNCTION shred.seal(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.text) IS
    'Seal a jsonb (its canonical text form) for a data subject and purpose (envelope format v2). Open with shred.open_jsonb.';
COMMENT ON FUNCTION shred.pseudonym(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'A stable, URL-safe token (22 characters) for a data subject within a domain (e.g. ''analytics''), keyed by the subject''s DEK for purpose (NULL: its default DEK): the same while that DEK exists, NULL once it is erased (or before anything was sealed under it), and unlinkable across domains and purposes. NULL subject or domain gives NULL.';

-----------------------------------------------------------------------------------------------
-- Erasure of one purpose
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.erase(subject pg_catalog.text, purpose pg_catalog.text)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'erase_purpose_wrapper';
COMMENT ON FUNCTION shred.erase(pg_catalog.text, pg_catalog.text) IS
    'Erase only what a data subject''s data is kept for one purpose: delete its DEK of that purpose (crypto-shredding) inside the caller''s transaction, recorded in shred.erasure_log with the purpose; final at COMMIT, undone by ROLLBACK. The default DEK and other purposes'' DEKs stay. True when a DEK was destroyed. NULL subject or purpose is an error (22004); shred.erase(subject) erases every DEK of the subject.';
REVOKE ALL ON FUNCTION shred.erase(pg_catalog.text, pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shred.erase(pg_catalog.text, pg_catalog.text) TO shred_eraser;

COMMENT ON FUNCTION shred.erase(pg_catalog.text) IS
    'Erase a data subject by deleting every DEK it has (its default DEK and its purposes'' DEKs: crypto-shredding), inside the caller''s transaction: final at COMMIT, undone by ROLLBACK. True when a DEK was destroyed, false when the subject had none. NULL subject is an error.';
COMMENT ON FUNCTION shred.erased_at(pg_catalog.text) IS
    'When a data subject was last erased as a whole (shred.erase(subject)), from shred.erasure_log (matched by the keyed digest of the subject); NULL when there is no record. Erasures of one purpose are not counted: see shred.consent_history and shred.erasure_log.purpose_id.';

REVOKE ALL ON FUNCTION shred.define_purpose(pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shred.define_purpose(pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.interval) TO shred_admin;
