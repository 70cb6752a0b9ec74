-- pg_shred 0.6.0, fifth part: retention that erases by itself, and legal holds. Runs after
-- receipts.sql (see sql/README.md). Rust side: src/retention/ (the clocks, the batches, the
-- background worker) and src/erasure/ (every erasure checks the holds and forgets end dates).
--
-- A purpose's retention (shred.define_purpose) counts from the last seal under a subject's DEK
-- of that purpose; shred.expire_subject gives a whole subject an end date. CALL
-- shred.run_retention() erases what is due, in batches that commit one by one, and the
-- background worker does the same every shred.retention_naptime seconds. A subject under a
-- legal hold (shred.hold) is erased by nothing, neither retention nor shred.erase, until the
-- hold is released.

-----------------------------------------------------------------------------------------------
-- Retention clocks. A seal for a purpose does not write here: the backend remembers, per DEK,
-- until when its last record covers it, and writes one row per DEK at COMMIT only once that
-- time has passed (at most once a day per DEK and backend; more often only for a retention
-- shorter than ten days, every tenth of it). sealed_before is an upper bound of the last seal:
-- retention never erases early, and late by at most that granule.
-----------------------------------------------------------------------------------------------
CREATE TABLE shred.key_use (
    key_id         pg_catalog.int8 CONSTRAINT key_use_pkey PRIMARY KEY,
    purpose_id     pg_catalog.int4 NOT NULL,
    sealed_before  pg_catalog.timestamptz NOT NULL
);
CREATE INDEX key_use_due ON shred.key_use (purpose_id, sealed_before);
ALTER TABLE shred.key_use SET (autovacuum_vacuum_scale_factor = 0.05);
COMMENT ON TABLE shred.key_use IS
    'One row per DEK of a purpose: a time no seal under it came after (the last seal, rounded up by at most a day, or a tenth of the purpose''s retention). A purpose''s retention counts from it. Written at COMMIT of the transactions that seal, at most once a day per DEK and backend. Kept by pg_dump.';
SELECT pg_catalog.pg_extension_config_dump('shred.key_use', '');

CREATE TABLE shred.subject_expiry (
    subject     pg_catalog.text COLLATE "C" CONSTRAINT subject_expiry_pkey PRIMARY KEY,
    expires_at  pg_catalog.timestamptz NOT NULL,
    set_at      pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX subject_expiry_due ON shred.subject_expiry (expires_at);
COMMENT ON TABLE shred.subject_expiry IS
    'End dates of whole data subjects (shred.expire_subject): retention erases the subject at expires_at. The row goes with the subject''s erasure, whatever erases it. Kept by pg_dump.';
SELECT pg_catalog.pg_extension_config_dump('shred.subject_expiry', '');

-----------------------------------------------------------------------------------------------
-- Legal holds (GDPR Art. 17(3)(e)): a held subject is never erased. The reason is sealed under
-- the subject's default DEK with the context 'pg_shred:legal_hold': whoever may open values
-- reads it with shred.open(reason, 'pg_shred:legal_hold').
-----------------------------------------------------------------------------------------------
CREATE SEQUENCE shred.legal_hold_hold_id_seq AS pg_catalog.int8 MINVALUE 1;
CREATE TABLE shred.legal_hold (
    hold_id    pg_catalog.int8 CONSTRAINT legal_hold_pkey PRIMARY KEY
               DEFAULT pg_catalog.nextval('shred.legal_hold_hold_id_seq'::pg_catalog.regclass),
    subject    pg_catalog.text COLLATE "C" NOT NULL CONSTRAINT legal_hold_subject_key UNIQUE,
    reason     shred.sealed NOT NULL,
    placed_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    placed_by  pg_catalog.text NOT NULL
);
ALTER SEQUENCE shred.legal_hold_hold_id_seq OWNED BY shred.legal_hold.hold_id;
COMMENT ON TABLE shred.legal_hold IS
    'One row per data subject under a legal hold (shred.hold): neither retention nor shred.erase erases it until shred.release_hold. Kept by pg_dump.';
SELECT pg_catalog.pg_extension_config_dump('shred.legal_hold', '');
SELECT pg_catalog.pg_extension_config_dump('shred.legal_hold_hold_id_seq', '');

-- What retention did in this database (the worker's runs and shred.run_retention's).
CREATE TABLE shred.retention_run (
    singleton     pg_catalog.bool CONSTRAINT retention_run_pkey PRIMARY KEY DEFAULT true CHECK (singleton),
    last_run_at   pg_catalog.timestamptz NOT NULL,
    last_run_by   pg_catalog.text NOT NULL,
    keys_erased_last_run  pg_catalog.int8 NOT NULL,
    keys_erased   pg_catalog.int8 NOT NULL,
    runs          pg_catalog.int8 NOT NULL
);
COMMENT ON TABLE shred.retention_run IS
    'The last retention run in this database and the totals since the extension was created (one row; see shred.retention_status).';

REVOKE ALL ON shred.key_use, shred.subject_expiry, shred.legal_hold, shred.legal_hold_hold_id_seq,
    shred.retention_run FROM PUBLIC;

-----------------------------------------------------------------------------------------------
-- Functions
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.expire_subject(subject pg_catalog.text, at pg_catalog.timestamptz)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'expire_subject_wrapper';
COMMENT ON FUNCTION shred.expire_subject(pg_catalog.text, pg_catalog.timestamptz) IS
    'Give a whole data subject an end date: retention (shred.run_retention, the background worker) erases every DEK of the subject once `at` has passed, as shred.erase(subject) would, unless it is under a legal hold. A later call moves the date; a NULL `at` removes it. True when the subject had an end date before. For shred_eraser and shred_admin.';

CREATE FUNCTION shred.hold(subject pg_catalog.text, reason pg_catalog.text)
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'hold_wrapper';
COMMENT ON FUNCTION shred.hold(pg_catalog.text, pg_catalog.text) IS
    'Place a data subject under a legal hold (GDPR Art. 17(3)(e)): from COMMIT on, shred.erase, erasure by purpose, withdraw_consent, replay_erasures and retention refuse to erase it (SQLSTATE 55006, naming the hold) until shred.release_hold. The reason is sealed under the subject''s default DEK (context ''pg_shred:legal_hold''). A second hold on a held subject replaces its reason and time. Returns the hold id. A subject without a DEK cannot be held (42704); one erased while the hold is being placed fails it with 40001. For shred_admin.';

CREATE FUNCTION shred.release_hold(subject pg_catalog.text)
    RETURNS pg_catalog.bool
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'release_hold_wrapper';
COMMENT ON FUNCTION shred.release_hold(pg_catalog.text) IS
    'Release the legal hold of a data subject: erasure is allowed again, and retention that is overdue erases it on its next run. True when a hold was released. For shred_admin.';

CREATE VIEW shred.holds AS
SELECT h.hold_id, h.subject, h.reason, h.placed_at, h.placed_by
  FROM shred.legal_hold h;
COMMENT ON VIEW shred.holds IS
    'The legal holds in force: hold id, data subject, the reason (sealed: shred.open(reason, ''pg_shred:legal_hold'') for a role that may open values), when and by whom it was placed.';
REVOKE ALL ON shred.holds FROM PUBLIC;

CREATE VIEW shred.end_dates AS
SELECT e.subject, e.expires_at, e.set_at
  FROM shred.subject_expiry e;
COMMENT ON VIEW shred.end_dates IS
    'The end dates of whole data subjects (shred.expire_subject): retention erases each subject once expires_at has passed.';
REVOKE ALL ON shred.end_dates FROM PUBLIC;

CREATE FUNCTION shred._retention_batch(batch_size pg_catalog.int4, first_batch pg_catalog.bool)
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_retention_batch_wrapper';
COMMENT ON FUNCTION shred._retention_batch(pg_catalog.int4, pg_catalog.bool) IS
    'Internal (shred.run_retention): erases up to batch_size DEKs that retention has made due (whole subjects past their end date first, then purpose DEKs past their purpose''s retention), none of a held subject, and adds them to the totals of shred.retention_status (first_batch: the first batch of a run). Returns how many DEKs it erased. For shred_eraser and shred_admin.';

CREATE PROCEDURE shred.run_retention(batch_size pg_catalog.int4 DEFAULT 1000)
    LANGUAGE plpgsql
-- No SET clause (a procedure with one cannot COMMIT): every operator is qualified instead.
AS $$
DECLARE
    erased pg_catalog.int8;
    total pg_catalog.int8 := 0;
    batch pg_catalog.int4 := 0;
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 OR batch_size OPERATOR(pg_catalog.>) 100000 THEN
        RAISE EXCEPTION 'pg_shred: batch_size must be between 1 and 100000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        erased := shred._retention_batch(batch_size, batch OPERATOR(pg_catalog.=) 0);
        EXIT WHEN erased OPERATOR(pg_catalog.=) 0;
        batch := batch OPERATOR(pg_catalog.+) 1;
        total := total OPERATOR(pg_catalog.+) erased;
        RAISE NOTICE 'pg_shred: retention batch %, DEKs erased: %', batch, erased;
        COMMIT;
    END LOOP;
    RAISE NOTICE 'pg_shred: retention done, DEKs erased: %, batches: %', total, batch;
END
$$;
COMMENT ON PROCEDURE shred.run_retention(pg_catalog.int4) IS
    'Erase every DEK retention has made due (see shred._retention_batch), batch_size DEKs per transaction, committing after each batch with a NOTICE of its count: an interrupted run keeps the batches it committed, and the next run goes on from there. Call it outside a transaction block. For shred_eraser and shred_admin; the background worker does the same every shred.retention_naptime seconds.';

CREATE FUNCTION shred._retention_due(held pg_catalog.bool)
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_retention_due_wrapper';
COMMENT ON FUNCTION shred._retention_due(pg_catalog.bool) IS
    'Internal (shred.retention_status, whose readers may run it): how many DEKs retention has made due, of subjects under a legal hold (held) or not.';

CREATE FUNCTION shred._retention_naptime()
    RETURNS pg_catalog.int4
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_retention_naptime_wrapper';
COMMENT ON FUNCTION shred._retention_naptime() IS
    'Internal (shred.retention_status, whose readers may run it): shred.retention_naptime in seconds; NULL when pg_shred is not in shared_preload_libraries (no worker runs).';

CREATE VIEW shred.retention_status AS
SELECT pg_catalog.current_database()::pg_catalog.text AS database,
       r.last_run_at, r.last_run_by, r.keys_erased_last_run, r.keys_erased,
       shred._retention_due(false) AS backlog,
       shred._retention_due(true) AS held,
       CASE WHEN n.naptime OPERATOR(pg_catalog.>) 0
            THEN GREATEST(COALESCE(r.last_run_at, pg_catalog.now()) OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => n.naptime),
                          pg_catalog.now())
       END AS next_run_at
  FROM (SELECT shred._retention_naptime() AS naptime) n
  LEFT JOIN shred.retention_run r ON true;
COMMENT ON VIEW shred.retention_status IS
    'Retention in this database: when it last ran and by whom (the worker, or shred.run_retention), DEKs erased by that run and in all, DEKs due now (backlog) and due but held, and when the worker runs next (NULL when shred.retention_naptime is 0, or pg_shred is not preloaded).';
REVOKE ALL ON shred.retention_status FROM PUBLIC;

REVOKE ALL ON FUNCTION
    shred.expire_subject(pg_catalog.text, pg_catalog.timestamptz),
    shred.hold(pg_catalog.text, pg_catalog.text),
    shred.release_hold(pg_catalog.text),
    shred._retention_batch(pg_catalog.int4, pg_catalog.bool),
    shred._retention_due(pg_catalog.bool),
    shred._retention_naptime()
FROM PUBLIC;
REVOKE ALL ON PROCEDURE shred.run_retention(pg_catalog.int4) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shred.expire_subject(pg_catalog.text, pg_catalog.timestamptz),
    shred._retention_batch(pg_catalog.int4, pg_catalog.bool),
    shred._retention_due(pg_catalog.bool),
    shred._retention_naptime() TO shred_eraser, shred_admin;
GRANT EXECUTE ON PROCEDURE shred.run_retention(pg_catalog.int4) TO shred_eraser, shred_admin;
GRANT EXECUTE ON FUNCTION shred.hold(pg_catalog.text, pg_catalog.text), shred.release_hold(pg_catalog.text) TO shred_admin;
GRANT SELECT ON shred.holds, shred.end_dates TO shred_eraser, shred_admin;
GRANT SELECT ON shred.retention_status TO shred_eraser, shred_admin;
