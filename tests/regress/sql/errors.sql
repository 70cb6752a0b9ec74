-- Pins down every error pg_shred's SQL surface raises: for each error of src/error.rs that SQL
-- can reach, and each RAISE of the SQL scripts in force in 0.7.0, one statement that triggers
-- it, with the SQLSTATE, message, detail and hint it gets. Every input that could be secret (a
-- subject, a plaintext, a context, a value to index, a key file's or a key command's output, an
-- envelope) carries the marker S3CR3T, and shows_marker says whether message, detail or hint
-- show it: never, but for one message of PostgreSQL's own about a tombstone. (Identifiers,
-- such as table and column names, are named in messages on purpose.)
-- Not reachable from SQL on a server that preloads pg_shred, so not here: the library not in
-- shared_preload_libraries (55000); a key store change of a concurrent transaction this one
-- cannot see (40001); the operating system's random number generator failing, a key store in a
-- state pg_shred never leaves it in, internal errors (XX000); a stored envelope that does not
-- parse (input refuses it first) and a typed value that authenticates but does not decode
-- (only the DEK could forge one) (XX001); a protected column of a type protect refuses (the
-- catalog's constraint refuses it first); pg_shred's view trigger called as a function, and a
-- changed type of a subject or protected column (PostgreSQL refuses them first).
-- Runs in databases of its own (pg_shred_regress_errors, and pg_shred_regress_errors_latin1 and
-- pg_shred_regress_errors_sql_ascii for the encodings), with roles regress_pg_shred_*, all
-- dropped at the end. Changes only its own session's settings (root key sources among them),
-- and writes and removes one file, pg_shred_regress_errors.key, in the data directory.
SELECT current_database() AS launch_db \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS pg_shred_regress_errors WITH (FORCE);
DROP DATABASE IF EXISTS pg_shred_regress_errors_latin1 WITH (FORCE);
DROP DATABASE IF EXISTS pg_shred_regress_errors_sql_ascii WITH (FORCE);
DROP ROLE IF EXISTS regress_pg_shred_owner, regress_pg_shred_admin, regress_pg_shred_reader;
-- The owner of the application's tables, who protects them (and seals while protecting), an
-- administrator of protection who owns nothing, and a reader who may not seal.
CREATE ROLE regress_pg_shred_owner IN ROLE shred_admin, shred_writer, shred_reader;
CREATE ROLE regress_pg_shred_admin IN ROLE shred_admin;
CREATE ROLE regress_pg_shred_reader IN ROLE shred_reader;
CREATE DATABASE pg_shred_regress_errors;
\c pg_shred_regress_errors
SET client_min_messages = warning;
CREATE EXTENSION pg_shred;

CREATE SCHEMA regress;
GRANT USAGE ON SCHEMA regress TO PUBLIC;
-- Runs one statement (or several, separated by semicolons) that must fail, in a subtransaction:
-- whatever it changed is rolled back. Returns the error's SQLSTATE, message, detail and hint,
-- and whether any of these shows the marker S3CR3T (in any letter case); 'none' and 'the
-- statement did not fail' when it succeeds.
CREATE FUNCTION regress.fails(statement text, OUT sqlstate text, OUT message text, OUT detail text, OUT hint text,
                              OUT shows_marker boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    state text;
    msg text;
    msg_detail text;
    msg_hint text;
BEGIN
    BEGIN
        EXECUTE statement;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                msg_detail = PG_EXCEPTION_DETAIL, msg_hint = PG_EXCEPTION_HINT;
    END;
    sqlstate := coalesce(state, 'none');
    message := coalesce(msg, 'the statement did not fail');
    detail := msg_detail;
    hint := msg_hint;
    shows_marker := strpos(upper(concat_ws(' ', msg, msg_detail, msg_hint)), 'S3CR3T') > 0;
END
$$;
-- Its definition, to create it again in the databases of other encodings below.
SELECT pg_get_functiondef('regress.fails'::regproc) AS fails_function \gset

-- Values to open: text, bytes with a zero byte, an integer; envelopes are forged from them
-- below. One subject erased (the first erasure also creates the key of the erasure log's
-- subject digests).
CREATE TABLE regress.sealed (name text PRIMARY KEY, value shred.sealed);
INSERT INTO regress.sealed VALUES
    ('text', shred.seal('customer:S3CR3T-1', 'S3CR3T plaintext', 'customer.S3CR3T')),
    ('bytes', shred.seal('customer:S3CR3T-1', '\x0053334352335400'::bytea, 'customer.S3CR3T')),
    ('integer', shred.seal('customer:S3CR3T-1', 42, 'customer.S3CR3T')),
    ('erased', shred.seal('customer:S3CR3T-0', 'S3CR3T plaintext', 'customer.S3CR3T'));
SELECT shred.erase('customer:S3CR3T-0');
-- The text form, with this prefix, of the envelope of a value above with bytes [from, from +
-- length) replaced (byte 1: the format version, 2-9: the key id, 10 in format 2: the type).
CREATE FUNCTION regress.forged(source text, prefix text, replacement bytea, "from" int) RETURNS text
    LANGUAGE sql AS $$
    SELECT prefix || translate(encode(overlay(decode(substr(value::text, 8), 'base64') PLACING replacement FROM "from"),
                                      'base64'), E'\n', '')
      FROM regress.sealed WHERE name = source
$$;
\x on

-------------------------------------------------------------------------------------------------
-- Arguments of seal, open, erase and key creation
-------------------------------------------------------------------------------------------------
SELECT * FROM regress.fails($$SELECT shred.seal(NULL, 'S3CR3T plaintext', 'customer.S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', 'S3CR3T plaintext', NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.open(value, NULL) FROM regress.sealed WHERE name = 'text'$$);
SELECT * FROM regress.fails($$SELECT shred.erase(NULL::text)$$);
SELECT * FROM regress.fails($$SELECT shred.erase(NULL::text[])$$);
SELECT * FROM regress.fails($$SELECT shred.erase(ARRAY['customer:S3CR3T', NULL])$$);
SELECT * FROM regress.fails($$SELECT shred.create_keys(NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.replay_erasures(NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.blind_index('S3CR3T', 'customer.S3CR3T', NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.blind_token(NULL, 'S3CR3T', 'customer.S3CR3T')$$);
-- Subjects: reserved prefix (seal, erase, pseudonym, create_keys), longer than 1024 bytes.
SELECT * FROM regress.fails($$SELECT shred.seal('pg_shred:S3CR3T', 'S3CR3T plaintext')$$);
SELECT * FROM regress.fails($$SELECT shred.erase('pg_shred:S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.pseudonym('pg_shred:S3CR3T', 'S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.create_keys(ARRAY['pg_shred:S3CR3T'])$$);
SELECT * FROM regress.fails($$SELECT shred.seal(repeat('S3CR3T', 200), 'S3CR3T plaintext')$$);
-- A plaintext larger than 64 MiB.
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', repeat('S3CR3T', 11184811))$$);

-------------------------------------------------------------------------------------------------
-- Opening
-------------------------------------------------------------------------------------------------
-- Another context than the value was sealed with.
SELECT * FROM regress.fails($$SELECT shred.open(value, 'customer.other') FROM regress.sealed WHERE name = 'text'$$);
-- Another type than the value was sealed as.
SELECT * FROM regress.fails($$SELECT shred.open_integer(value, 'customer.S3CR3T') FROM regress.sealed WHERE name = 'text'$$);
SELECT * FROM regress.fails($$SELECT shred.open(value, 'customer.S3CR3T') FROM regress.sealed WHERE name = 'integer'$$);
-- Bytes that are not text (a zero byte) opened as text.
SELECT * FROM regress.fails($$SELECT shred.open(value, 'customer.S3CR3T') FROM regress.sealed WHERE name = 'bytes'$$);
-- A key id this key store never held (2^52 + 12345): opened, or asked whether erased.
SELECT * FROM regress.fails($$SELECT shred.open(regress.forged('text', 'shred1:', '\x0010000000003039', 2)::shred.sealed, 'customer.S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.is_erased(regress.forged('text', 'shred1:', '\x0010000000003039', 2)::shred.sealed)$$);
-- The key store's row of the value's DEK altered (one ciphertext bit), or cut short.
SELECT * FROM regress.fails($$
    UPDATE shred.subject_key SET wrapped_dek = set_byte(wrapped_dek, 20, get_byte(wrapped_dek, 20) # 1)
     WHERE subject = 'customer:S3CR3T-1';
    SELECT shred.open(value, 'customer.S3CR3T') FROM regress.sealed WHERE name = 'text'$$);
SELECT * FROM regress.fails($$
    UPDATE shred.subject_key SET wrapped_dek = '\x01' WHERE subject = 'customer:S3CR3T-1';
    SELECT shred.open(value, 'customer.S3CR3T') FROM regress.sealed WHERE name = 'text'$$);

-------------------------------------------------------------------------------------------------
-- Input of shred.sealed: text (22P02) and binary (22P03) forms
-------------------------------------------------------------------------------------------------
SELECT * FROM regress.fails($$SELECT 'S3CR3T'::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT 'shred1:S3CR3T'::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT 'shred1:'::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT 'shred1:UzNDUjNU'::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT ('shred1:' || repeat('UzNDUjNU', 11200000))::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT regress.forged('text', 'shred1:', '\x09', 1)::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT regress.forged('text', 'shred1:', '\x0000000000000000', 2)::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT regress.forged('text', 'shred2:', '\x01', 1)::shred.sealed$$);
SELECT * FROM regress.fails($$SELECT regress.forged('integer', 'shred2:', '\xff', 10)::shred.sealed$$);
-- COPY in binary format of one row whose one field holds the bytes "S3CR3T".
CREATE TABLE regress.copied (value shred.sealed);
SELECT * FROM regress.fails($q$
    COPY regress.copied FROM PROGRAM $p$printf 'PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0\0\1\0\0\0\6S3CR3T\377\377'$p$ (FORMAT binary)$q$);

-------------------------------------------------------------------------------------------------
-- Blind indexes and row tokens
-------------------------------------------------------------------------------------------------
SELECT * FROM regress.fails($$SELECT shred.blind_index('S3CR3T', 'customer.S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.blind_match('S3CR3T', 'customer.S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.blind_match('S3CR3T', '')$$);
SELECT * FROM regress.fails($$SELECT shred.blind_token('customer:S3CR3T', 'S3CR3T', repeat('S3CR3T', 43))$$);
SELECT * FROM regress.fails($$SELECT shred.blind_token('customer:S3CR3T', 'S3CR3T', 'customer.S3CR3T', 'S3CR3T')$$);

-------------------------------------------------------------------------------------------------
-- Protected tables: shred.protect's checks, run by a superuser on tables of
-- regress_pg_shred_owner
-------------------------------------------------------------------------------------------------
CREATE SCHEMA app AUTHORIZATION regress_pg_shred_owner;
SET ROLE regress_pg_shred_owner;
CREATE TABLE app.customer (id int PRIMARY KEY, name text, email text, email_bidx bytea, born date, location point,
                           nick text DEFAULT 'none', code text UNIQUE, label text GENERATED ALWAYS AS (nick || '!') STORED);
CREATE VIEW app.customer_view AS SELECT id, name FROM app.customer;
CREATE TABLE app.secured (id int PRIMARY KEY, name text);
ALTER TABLE app.secured ENABLE ROW LEVEL SECURITY;
CREATE TABLE app.unkeyed (id int, name text);
CREATE TABLE app.orphan (id int PRIMARY KEY, customer_id int, name text);
INSERT INTO app.orphan VALUES (1, NULL, 'S3CR3T name');
-- Protected: person (subject column customer_id, e-mail searchable), member (an identity).
CREATE TABLE app.person (id int PRIMARY KEY, customer_id int, name text, email text, country text);
SELECT shred.protect('app.person', 'customer_id', ARRAY['name', 'email'], searchable => ARRAY['email'],
                     subject_prefix => 'customer:');
CREATE TABLE app.member (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, born date);
SELECT shred.protect('app.member', 'id', ARRAY['name', 'born'], subject_prefix => 'member:');
INSERT INTO app.member_plain (name, born) VALUES ('S3CR3T name', '2000-01-01');
RESET ROLE;

SELECT * FROM regress.fails($$SELECT shred.protect('app.customer_view', 'id', ARRAY['name'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.secured', 'id', ARRAY['name'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.person', 'id', ARRAY['country'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], normalization => 'S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], subject_prefix => 'pg_shred:S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY[]::name[])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name', 'name'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'missing', ARRAY['name'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'born', ARRAY['name'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'label', ARRAY['name'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['id'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], searchable => ARRAY['email'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.unkeyed', 'id', ARRAY['name'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], view_name => 'customer_view')$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['missing'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['location'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['nick'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['code'])$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['email'], searchable => ARRAY['email'])$$);
-- A row with a value to protect but no subject.
SELECT * FROM regress.fails($$SELECT shred.protect('app.orphan', 'customer_id', ARRAY['name'], subject_prefix => 'customer:')$$);
-- unprotect, set_tombstone and refresh_view of what is not protected.
SELECT * FROM regress.fails($$SELECT shred.unprotect('app.customer')$$);
SELECT * FROM regress.fails($$SELECT shred.set_tombstone('app.person', 'country', 'S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.refresh_view('app.customer')$$);
-- A tombstone that is no value of the column's type: PostgreSQL's own message names it (a
-- constant the administrator chose, not a value of a data subject).
SELECT * FROM regress.fails($$SELECT shred.set_tombstone('app.member', 'born', 'S3CR3T')$$);
-- Purposes of protected columns (shred.protect's purposes, shred.set_purpose): columns and
-- purposes are named (identifiers), no value of the table is shown, not even one of a subject
-- without the consent the purpose requires.
SELECT shred.define_purpose('regress_billing', 'Invoices');
SELECT shred.define_purpose('regress_marketing', 'Newsletters', requires_consent => true);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], purposes => '["name"]')$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], purposes => '{"missing": "regress_billing"}')$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], purposes => '{"email": "regress_billing"}')$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], purposes => '{"name": 1}')$$);
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'], purposes => '{"name": "regress_undefined"}')$$);
SELECT * FROM regress.fails($$SELECT shred.set_purpose('app.customer', 'name', 'regress_billing')$$);
SELECT * FROM regress.fails($$SELECT shred.set_purpose('app.person', 'country', 'regress_billing')$$);
SELECT * FROM regress.fails($$SELECT shred.set_purpose('app.person', 'name', 'regress_undefined')$$);
SELECT * FROM regress.fails($$
    INSERT INTO app.person_plain VALUES (90, 90, 'S3CR3T name', 'S3CR3T@example.org', 'UK');
    SELECT shred.set_purpose('app.person', 'name', 'regress_marketing')$$);
SELECT * FROM regress.fails($$
    SELECT shred.set_purpose('app.person', 'email', 'regress_marketing');
    INSERT INTO app.person_plain VALUES (91, 91, 'S3CR3T name', 'S3CR3T@example.org', 'UK')$$);
SELECT * FROM regress.fails($$SELECT shred.blind_token('customer:S3CR3T', 'S3CR3T', 'customer.S3CR3T', 'exact', 'regress_marketing')$$);

-------------------------------------------------------------------------------------------------
-- Protected tables: whose rights
-------------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA app TO regress_pg_shred_admin;
SET ROLE regress_pg_shred_admin;
-- Without the privileges of the table's owner.
SELECT * FROM regress.fails($$SELECT shred.protect('app.customer', 'id', ARRAY['name'])$$);
-- The implementation called without shred.protect's authorisation.
SELECT * FROM regress.fails($$SELECT shred._protect('app.customer', 'id', ARRAY['name'], '{}', '', NULL, 'exact')$$);
-- Likewise for set_purpose.
SELECT * FROM regress.fails($$SELECT shred.set_purpose('app.person', 'name', 'regress_billing')$$);
SELECT * FROM regress.fails($$SELECT shred._set_purpose('app.person', 'name', 'regress_billing')$$);
RESET ROLE;
-- A write through the view by a role that may not seal (no shred_writer).
GRANT USAGE ON SCHEMA app TO regress_pg_shred_reader;
GRANT SELECT, INSERT, UPDATE ON app.person, app.person_plain TO regress_pg_shred_reader;
SET ROLE regress_pg_shred_reader;
SELECT * FROM regress.fails($$INSERT INTO app.person_plain VALUES (1, 1, 'S3CR3T name', 'S3CR3T@example.org', 'UK')$$);
RESET ROLE;
-- The internal functions, by a superuser: a relation that does not exist, a table that is not
-- protected, a type protected columns do not open as.
SELECT * FROM regress.fails($$SELECT shred._authorize(0)$$);
SELECT * FROM regress.fails($$SELECT shred._export_rows('app.customer', 'S3CR3T', 'customer:S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred._reseal_column('app.customer', 'name')$$);
SELECT * FROM regress.fails($$SELECT shred._open_row(value, 'customer:S3CR3T-1', 'customer.S3CR3T', NULL::point) FROM regress.sealed WHERE name = 'text'$$);

-------------------------------------------------------------------------------------------------
-- Protected tables: writes through the view, and its trigger elsewhere
-------------------------------------------------------------------------------------------------
-- A row without a subject.
SELECT * FROM regress.fails($$INSERT INTO app.person_plain VALUES (2, NULL, 'S3CR3T name', 'S3CR3T@example.org', 'UK')$$);
-- An identity column GENERATED ALWAYS changed through the view.
SELECT * FROM regress.fails($$UPDATE app.member_plain SET id = 100, name = 'S3CR3T'$$);
-- Under session_replication_role = replica, where PostgreSQL fires no INSTEAD OF trigger.
SELECT * FROM regress.fails($$
    SET LOCAL session_replication_role = replica;
    INSERT INTO app.person_plain VALUES (3, 3, 'S3CR3T name', 'S3CR3T@example.org', 'UK')$$);
-- The table lost its primary key.
SELECT * FROM regress.fails($$
    ALTER TABLE app.person DROP CONSTRAINT person_pkey;
    INSERT INTO app.person_plain VALUES (4, 4, 'S3CR3T name', 'S3CR3T@example.org', 'UK')$$);
-- pg_shred's trigger function on a table, on another view, and for DELETE.
SELECT * FROM regress.fails($$
    CREATE TRIGGER shred_write BEFORE INSERT ON app.customer FOR EACH ROW EXECUTE FUNCTION shred.protected_view_write();
    INSERT INTO app.customer (id, name) VALUES (1, 'S3CR3T')$$);
SELECT * FROM regress.fails($$
    CREATE TRIGGER shred_write INSTEAD OF INSERT ON app.customer_view FOR EACH ROW EXECUTE FUNCTION shred.protected_view_write();
    INSERT INTO app.customer_view VALUES (1, 'S3CR3T')$$);
SELECT * FROM regress.fails($$
    CREATE TRIGGER shred_delete INSTEAD OF DELETE ON app.person_plain FOR EACH ROW EXECUTE FUNCTION shred.protected_view_write();
    INSERT INTO app.person_plain VALUES (5, 5, 'S3CR3T name', 'S3CR3T@example.org', 'UK');
    DELETE FROM app.person_plain WHERE id = 5$$);

-------------------------------------------------------------------------------------------------
-- Protected tables: what their event triggers refuse
-------------------------------------------------------------------------------------------------
SELECT * FROM regress.fails($$ALTER TABLE app.person ENABLE ROW LEVEL SECURITY$$);
SELECT * FROM regress.fails($$ALTER TABLE app.person ALTER COLUMN email_bidx TYPE text$$);
SELECT * FROM regress.fails($$ALTER TABLE app.person DROP COLUMN email_bidx$$);
SELECT * FROM regress.fails($$DROP VIEW app.person_plain$$);

-------------------------------------------------------------------------------------------------
-- The drop guard: the key store holds DEKs
-------------------------------------------------------------------------------------------------
SELECT * FROM regress.fails($$DROP EXTENSION pg_shred CASCADE$$);
SELECT * FROM regress.fails($$DROP SCHEMA shred CASCADE$$);
SELECT * FROM regress.fails($$DROP SCHEMA public CASCADE$$);

-------------------------------------------------------------------------------------------------
-- Root keys: the sources (a superuser's session settings)
-------------------------------------------------------------------------------------------------
-- Key files are written by the server into its data directory, where a relative
-- shred.root_key_file points.
COPY (SELECT 'S3CR3T') TO PROGRAM 'cat > pg_shred_regress_errors.key && chmod 0640 pg_shred_regress_errors.key';
SET shred.root_key_file = 'pg_shred_regress_errors.key';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
COPY (SELECT 'S3CR3T') TO PROGRAM 'cat > pg_shred_regress_errors.key && chmod 0600 pg_shred_regress_errors.key';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
COPY (SELECT E'1:S3CR3T\n2:S3CR3T') TO PROGRAM 'cat > pg_shred_regress_errors.key';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
COPY (SELECT '') TO PROGRAM 'rm pg_shred_regress_errors.key';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
SET shred.root_key_file = '/';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
SET shred.root_key_file = '';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
SET shred.root_key_command = 'echo S3CR3T';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
SET shred.root_key_command = 'echo S3CR3T; exit 3';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
SET shred.root_key_command = 'echo S3CR3T; kill -9 $$';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
SET shred.root_key_command_timeout = 1;
SET shred.root_key_command = 'echo S3CR3T; sleep 5';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
RESET shred.root_key_command_timeout;
RESET shred.root_key_command;
RESET shred.root_key_file;

-------------------------------------------------------------------------------------------------
-- Purposes and consent
-------------------------------------------------------------------------------------------------
SELECT shred.define_purpose('regress_mail', 'Regress mail', requires_consent => true) AS mail,
       shred.define_purpose('regress_stats', 'Regress statistics') AS stats;
-- An undefined purpose: sealing (also a NULL plaintext), erasing, pseudonyms, consent.
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', 'S3CR3T plaintext', '', 'no_such_purpose')$$);
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', NULL::text, '', 'no_such_purpose')$$);
SELECT * FROM regress.fails($$SELECT shred.erase('customer:S3CR3T', 'no_such_purpose')$$);
SELECT * FROM regress.fails($$SELECT shred.pseudonym('customer:S3CR3T', 'S3CR3T', 'no_such_purpose')$$);
SELECT * FROM regress.fails($$SELECT shred.request_consent('customer:S3CR3T', 'no_such_purpose')$$);
SELECT * FROM regress.fails($$SELECT shred.has_consent('customer:S3CR3T', 'no_such_purpose')$$);
SELECT * FROM regress.fails($$SELECT shred.withdraw_consent('customer:S3CR3T', 'no_such_purpose')$$);
-- NULL arguments.
SELECT * FROM regress.fails($$SELECT shred.erase('customer:S3CR3T', NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.request_consent(NULL, 'regress_mail')$$);
SELECT * FROM regress.fails($$SELECT shred.request_consent('customer:S3CR3T', NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.withdraw_consent('customer:S3CR3T', NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.has_consent(NULL, 'regress_mail')$$);
-- A reserved subject.
SELECT * FROM regress.fails($$SELECT shred.request_consent('pg_shred:S3CR3T', 'regress_mail')$$);
-- Erasure receipts: a subject with no erasure recorded, a reserved subject.
SELECT * FROM regress.fails($$SELECT shred.erasure_receipt('customer:S3CR3T-never')$$);
SELECT * FROM regress.fails($$SELECT shred.erasure_receipt('pg_shred:S3CR3T')$$);
-- Legal holds: every erasure of a held subject names the hold, never the subject or reason.
SELECT shred.seal('customer:S3CR3T-held', 'S3CR3T plaintext') IS NOT NULL AS sealed,
       shred.seal('customer:S3CR3T-held', 'S3CR3T plaintext', '', 'regress_stats') IS NOT NULL AS sealed_for_stats;
SELECT shred.hold('customer:S3CR3T-held', 'S3CR3T reason') AS hold_id \gset
SELECT * FROM regress.fails($$SELECT shred.erase('customer:S3CR3T-held')$$);
SELECT * FROM regress.fails($$SELECT shred.erase(ARRAY['customer:S3CR3T-other', 'customer:S3CR3T-held'])$$);
SELECT * FROM regress.fails($$SELECT shred.erase('customer:S3CR3T-held', 'regress_stats')$$);
SELECT * FROM regress.fails($$SELECT shred.hold('customer:S3CR3T', NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.hold('pg_shred:S3CR3T', 'S3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.hold('customer:S3CR3T-no-key', 'S3CR3T')$$);
SELECT shred.release_hold('customer:S3CR3T-held') AS released;
-- Retention: end dates of reserved or NULL subjects, batch sizes out of range.
SELECT * FROM regress.fails($$SELECT shred.expire_subject('pg_shred:S3CR3T', now())$$);
SELECT * FROM regress.fails($$SELECT shred.expire_subject(NULL, now())$$);
SELECT * FROM regress.fails($$CALL shred.run_retention(0)$$);
SELECT * FROM regress.fails($$SELECT shred._retention_batch(100001, true)$$);
-- Citus: distributing the key store where Citus is not installed. (Its other errors need a
-- Citus cluster: tests/citus.rs.)
SELECT * FROM regress.fails($$SELECT shred.distribute_key_store()$$);
-- Sealing for a purpose that requires consent, without it: every type, and after a request
-- that was not confirmed.
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', 'S3CR3T plaintext', '', 'regress_mail')$$);
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', 42, '', 'regress_mail')$$);
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', '{"S3CR3T": 1}'::jsonb, purpose => 'regress_mail')$$);
SELECT * FROM regress.fails($$SELECT shred.request_consent('customer:S3CR3T-2', 'regress_mail', '{"S3CR3T": "evidence"}');
                               SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext', '', 'regress_mail')$$);
-- Tokens never fail.
SELECT * FROM regress.fails($$SELECT shred.confirm_consent('S3CR3T not a token')$$);
SELECT * FROM regress.fails($$SELECT shred.confirm_consent(NULL)$$);
-- Defining purposes: names, NULLs, retention, requires_consent fixed, and who may.
SELECT * FROM regress.fails($$SELECT shred.define_purpose('Not A Name', 'x')$$);
SELECT * FROM regress.fails($$SELECT shred.define_purpose(NULL, 'x')$$);
SELECT * FROM regress.fails($$SELECT shred.define_purpose('regress_x', 'x', NULL)$$);
SELECT * FROM regress.fails($$SELECT shred.define_purpose('regress_x', 'x', false, interval '-1 day')$$);
SELECT * FROM regress.fails($$SELECT shred.define_purpose('regress_mail', 'Regress mail', false)$$);
SELECT * FROM regress.fails($$SET LOCAL ROLE regress_pg_shred_reader; SELECT shred.define_purpose('regress_x', 'x')$$);
SELECT * FROM regress.fails($$SET LOCAL ROLE regress_pg_shred_reader; SELECT shred.request_consent('customer:S3CR3T', 'regress_mail')$$);
-- (The token lifetime's bounds are PostgreSQL's own message, whose wording differs between
-- majors: tests/purposes.rs checks them.)

-------------------------------------------------------------------------------------------------
-- Root keys: versions, rotation and retirement
-------------------------------------------------------------------------------------------------
-- A key command that prints a keyring of entries 'version:key', key 'file' for this server's
-- root key file, else a byte (hex) repeated 32 times.
CREATE FUNCTION regress.keyring(VARIADIC entries text[]) RETURNS text
    LANGUAGE sql AS $$
    SELECT 'printf ''' || string_agg(split_part(e, ':', 1) || ':%s\n', '' ORDER BY n) || ''''
           || string_agg(CASE split_part(e, ':', 2)
                             WHEN 'file' THEN ' "$(cat ''' || current_setting('shred.root_key_file') || ''')"'
                             ELSE ' ' || encode(decode(repeat(split_part(e, ':', 2), 32), 'hex'), 'base64') END, '' ORDER BY n)
      FROM unnest(entries) WITH ORDINALITY AS x(e, n)
$$;
SELECT regress.keyring('1:09') AS keyring_wrong_1, regress.keyring('1:file', '3:03') AS keyring_1_3,
       regress.keyring('3:03') AS keyring_3, regress.keyring('1:file', '2:02') AS keyring_1_2,
       regress.keyring('1:file') AS keyring_1 \gset
SELECT * FROM regress.fails($$CALL shred.rotate_root_key(0)$$);
SELECT * FROM regress.fails($$SELECT shred.retire_root_key(7)$$);
SELECT * FROM regress.fails($$SELECT shred.retire_root_key(1)$$);
SET shred.root_key_command = :'keyring_1_3';
-- Both sources set.
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
SET shred.root_key_file = '';
-- Another key under version 1 than the one this database's DEKs are wrapped under.
SET shred.root_key_command = :'keyring_wrong_1';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
-- Version 3 added: a new subject's DEK is wrapped under it; version 1 cannot be retired yet.
SET shred.root_key_command = :'keyring_1_3';
SELECT shred.seal('customer:S3CR3T-3', 'S3CR3T plaintext') IS NOT NULL AS sealed;
SELECT * FROM regress.fails($$SELECT shred.retire_root_key(1)$$);
-- Version 1 missing, in a new session (whose DEK cache is empty).
\c
SET client_min_messages = warning;
SET shred.root_key_file = '';
SET shred.root_key_command = :'keyring_3';
SELECT * FROM regress.fails($$SELECT shred.open(value, 'customer.S3CR3T') FROM regress.sealed WHERE name = 'text'$$);
-- Version 2 added after version 3 (which wraps no DEK any more once its one subject is erased).
SET shred.root_key_command = :'keyring_1_3';
SELECT shred.erase('customer:S3CR3T-3');
SET shred.root_key_command = :'keyring_1_2';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
-- Every DEK rewrapped under version 3, version 1 retired, then the only one in the keyring.
SET shred.root_key_command = :'keyring_1_3';
CALL shred.rotate_root_key();
SELECT shred.retire_root_key(1);
SET shred.root_key_command = :'keyring_1';
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T-2', 'S3CR3T plaintext')$$);
RESET shred.root_key_command;
RESET shred.root_key_file;

-------------------------------------------------------------------------------------------------
-- Encodings: a LATIN1 database (opened text with a character it lacks), a SQL_ASCII one (text
-- given to pg_shred must be UTF-8 there)
-------------------------------------------------------------------------------------------------
\c :launch_db
SET client_min_messages = warning;
CREATE DATABASE pg_shred_regress_errors_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE pg_shred_regress_errors_sql_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c pg_shred_regress_errors_latin1
CREATE EXTENSION pg_shred;
CREATE SCHEMA regress;
:fails_function;
-- The euro sign, then the marker, sealed as UTF-8 bytes, opened as text.
SELECT * FROM regress.fails($$SELECT shred.open(shred.seal('customer:S3CR3T', '\xe282ac533343523354'::bytea))$$);
\c pg_shred_regress_errors_sql_ascii
CREATE EXTENSION pg_shred;
CREATE SCHEMA regress;
:fails_function;
-- Byte 0xff before the marker, as subject, plaintext, context, blind-index value, pseudonym domain.
SELECT * FROM regress.fails($$SELECT shred.seal(E'customer:\xffS3CR3T', 'S3CR3T plaintext')$$);
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', E'\xffS3CR3T plaintext')$$);
SELECT * FROM regress.fails($$SELECT shred.seal('customer:S3CR3T', 'S3CR3T plaintext', E'customer.\xffS3CR3T')$$);
SELECT * FROM regress.fails($$SELECT shred.blind_token('customer:S3CR3T', E'\xffS3CR3T', 'customer.email')$$);
SELECT * FROM regress.fails($$SELECT shred.pseudonym('customer:S3CR3T', E'\xffS3CR3T')$$);

\c :launch_db
DROP DATABASE pg_shred_regress_errors WITH (FORCE);
DROP DATABASE pg_shred_regress_errors_latin1 WITH (FORCE);
DROP DATABASE pg_shred_regress_errors_sql_ascii WITH (FORCE);
DROP ROLE regress_pg_shred_owner, regress_pg_shred_admin, regress_pg_shred_reader;
