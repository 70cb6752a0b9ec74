-- pg_shred 0.6.0, second part: consent with double opt-in, bound to the keys. Runs after
-- purposes.sql (see sql/README.md). Rust side: src/purposes/consent.rs.
--
-- request_consent records the first opt-in and returns a confirmation token; confirm_consent
-- is the second opt-in; withdraw_consent records the withdrawal and erases the purpose's DEK
-- in the same transaction. For a purpose that requires consent, a DEK is created only under a
-- confirmed, unwithdrawn consent, so nothing is sealed for it without one.

-----------------------------------------------------------------------------------------------
-- The consent ledger: never the subject (its keyed digest, as in shred.erasure_log), never the
-- token (its SHA-256). The evidence is sealed under the subject's default DEK: it dies with the
-- subject, while the times and the digest stay, to prove the consent and its withdrawal.
-----------------------------------------------------------------------------------------------
CREATE TABLE shred.consent (
    token_digest      pg_catalog.bytea CONSTRAINT consent_pkey PRIMARY KEY
                      CHECK (pg_catalog.length(token_digest) OPERATOR(pg_catalog.=) 32),
    purpose_id        pg_catalog.int4 NOT NULL,
    subject_digest    pg_catalog.bytea NOT NULL CHECK (pg_catalog.length(subject_digest) OPERATOR(pg_catalog.=) 32),
    evidence          shred.sealed,
    requested_at      pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    token_expires_at  pg_catalog.timestamptz NOT NULL,
    confirmed_at      pg_catalog.timestamptz,
    withdrawn_at      pg_catalog.timestamptz,
    erased_at         pg_catalog.timestamptz,
    used_at           pg_catalog.timestamptz
);
CREATE INDEX consent_subject ON shred.consent (subject_digest, purpose_id);
COMMENT ON TABLE shred.consent IS
    'One row per consent requested (shred.request_consent): SHA-256 of its confirmation token, purpose, keyed digest of the data subject (HMAC-SHA256, as in shred.erasure_log), the evidence of the first opt-in sealed under the subject''s default DEK (unreadable once the subject is erased), and the times of the request, token expiry, confirmation, withdrawal, erasure of the whole subject (which ends its consents) and first DEK created under it. Kept by pg_dump.';
SELECT pg_catalog.pg_extension_config_dump('shred.consent', '');
REVOKE ALL ON shred.consent FROM PUBLIC;
GRANT SELECT ON shred.consent TO shred_eraser, shred_admin;

CREATE FUNCTION shred.request_consent(subject pg_catalog.text, purpose pg_catalog.text, evidence pg_catalog.jsonb DEFAULT NULL)
    RETURNS pg_catalog.text
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'request_consent_wrapper';
COMMENT ON FUNCTION shred.request_consent(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb) IS
    'First opt-in of a data subject for a purpose: records it now, with evidence (e.g. the form, its text and version, the IP address) sealed under the subject''s default DEK, and returns a single-use confirmation token (43 URL-safe characters, 256 random bits; only its SHA-256 is stored), valid for shred.consent_token_lifetime (7 days by default). Confirm with shred.confirm_consent. NULL subject or purpose is an error (22004); an undefined purpose is 42704.';

CREATE FUNCTION shred.confirm_consent(token pg_catalog.text)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'confirm_consent_wrapper';
COMMENT ON FUNCTION shred.confirm_consent(pg_catalog.text) IS
    'Second opt-in: true when the token confirms a pending consent, and again for the same token while it is within its lifetime (a second click); false for an unknown, expired or malformed token, one whose consent was withdrawn, or NULL. Never an error, and the answer tells nothing about any data subject.';

CREATE FUNCTION shred.withdraw_consent(subject pg_catalog.text, purpose pg_catalog.text)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'withdraw_consent_wrapper';
COMMENT ON FUNCTION shred.withdraw_consent(pg_catalog.text, pg_catalog.text) IS
    'Withdraw a data subject''s consent for a purpose: records the withdrawal of every pending or confirmed consent and, for a purpose that requires consent, erases the subject''s DEK of the purpose (as shred.erase(subject, purpose)), in the caller''s transaction: final at COMMIT, undone by ROLLBACK. A purpose that does not require consent keeps its data (it is kept on another ground). True when a consent was withdrawn. The subject''s other data stays readable.';

CREATE FUNCTION shred.has_consent(subject pg_catalog.text, purpose pg_catalog.text)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'has_consent_wrapper';
COMMENT ON FUNCTION shred.has_consent(pg_catalog.text, pg_catalog.text) IS
    'Whether a data subject has a standing consent for a purpose: confirmed, not withdrawn, and not ended by an erasure of the whole subject (a withdrawal or erasure committed by any session counts at once): ask before using the data for it, e.g. before sending a marketing e-mail. NULL subject or purpose is an error (22004); an undefined purpose is 42704.';

CREATE FUNCTION shred._subject_digest(subject pg_catalog.text)
    RETURNS pg_catalog.bytea
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_subject_digest_wrapper';
COMMENT ON FUNCTION shred._subject_digest(pg_catalog.text) IS
    'Internal (consent_history): the keyed digest of a data subject that erasure and consent records hold; NULL while none was ever written. Never granted.';

CREATE FUNCTION shred.consent_history(subject pg_catalog.text)
    RETURNS TABLE (purpose pg_catalog.text, status pg_catalog.text, requested_at pg_catalog.timestamptz,
                   confirmed_at pg_catalog.timestamptz, withdrawn_at pg_catalog.timestamptz,
                   erased_at pg_catalog.timestamptz, token_expires_at pg_catalog.timestamptz, evidence pg_catalog.jsonb)
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.name,
           CASE WHEN c.withdrawn_at IS NOT NULL THEN 'withdrawn'
                WHEN c.erased_at IS NOT NULL THEN 'erased'
                WHEN c.confirmed_at IS NOT NULL THEN 'confirmed'
                WHEN c.token_expires_at <= now() THEN 'expired'
                ELSE 'pending' END,
           c.requested_at, c.confirmed_at, c.withdrawn_at, c.erased_at, c.token_expires_at,
           shred._open_row(c.evidence, subject, 'pg_shred.consent', NULL::jsonb)
      FROM shred.consent c
      JOIN shred.purpose p ON p.purpose_id = c.purpose_id
     -- the digest once (an InitPlan)
     WHERE c.subject_digest = (SELECT shred._subject_digest(subject))
     ORDER BY c.requested_at, p.name, c.token_digest
$$;
COMMENT ON FUNCTION shred.consent_history(pg_catalog.text) IS
    'Every consent of a data subject, per purpose: status (pending, confirmed, expired, withdrawn, or erased: ended by an erasure of the whole subject), the times of request, confirmation, withdrawal, erasure and token expiry, and the evidence (NULL once the subject is erased). Found by the keyed digest of the subject, so it still answers after an erasure: the proof that consent was given and its withdrawal honoured.';

REVOKE ALL ON FUNCTION
    shred.request_consent(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb),
    shred.confirm_consent(pg_catalog.text),
    shred.withdraw_consent(pg_catalog.text, pg_catalog.text),
    shred.has_consent(pg_catalog.text, pg_catalog.text),
    shred._subject_digest(pg_catalog.text),
    shred.consent_history(pg_catalog.text)
FROM PUBLIC;
-- The application records, confirms, withdraws and checks consent; the DPO reads histories.
GRANT EXECUTE ON FUNCTION
    shred.request_consent(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb),
    shred.confirm_consent(pg_catalog.text),
    shred.withdraw_consent(pg_catalog.text, pg_catalog.text)
TO shred_writer;
GRANT EXECUTE ON FUNCTION shred.has_consent(pg_catalog.text, pg_catalog.text) TO shred_reader, shred_writer;
GRANT EXECUTE ON FUNCTION shred.consent_history(pg_catalog.text) TO shred_reader, shred_eraser, shred_admin;
