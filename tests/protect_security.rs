//! Protected tables against hostile roles (started by `scripts/test`): every test reproduces an
//! attack as the attacking role would run it and asserts the secure outcome with real values.
//! A canary table owned by the superuser must stay empty, and no attacker becomes superuser.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A client that collects the NOTICE/WARNING messages the server sends it.
fn connect_collecting(db: &str, user: &str) -> (postgres::Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let c = postgres::Config::new()
        .host(&host())
        .port(port().parse().unwrap())
        .user(user)
        .dbname(db)
        .notice_callback(move |n| sink.lock().unwrap().push(format!("{}: {}", n.severity(), n.message())))
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}"));
    (c, notices)
}

/// customer (searchable e-mail, subject 'customer:<id>') with Ada (1), Bob (2) and Cy (3).
fn customers(c: &mut postgres::Client) {
    c.batch_execute(
        "CREATE TABLE customer (id int PRIMARY KEY, name text, email text, country text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', 'UK'), (2, 'Bob', 'bob@example.org', 'FR'),
                                     (3, 'Cy', 'cy@example.org', 'DE');
         SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], searchable => ARRAY['email'],
                              subject_prefix => 'customer:', normalization => 'email');",
    )
    .unwrap();
}

/// The attacker's code: a function that, run by anyone but the attacker, tries to write the
/// canary and to make the attacker a superuser (each attempt's failure swallowed, so that a
/// run with too few privileges still shows), and records who ran it in public.ran_as, which
/// every role may write.
fn attacker_code(att: &mut postgres::Client, attacker: &str) {
    att.batch_execute(&format!(
        "CREATE TABLE public.ran_as (who name, su bool, what text);
         GRANT INSERT ON public.ran_as TO PUBLIC;
         CREATE FUNCTION public.pwn(what text) RETURNS void LANGUAGE plpgsql VOLATILE AS $f$
         BEGIN
           IF current_user <> '{attacker}' THEN
             BEGIN INSERT INTO public.canary VALUES (what || ' as ' || current_user); EXCEPTION WHEN OTHERS THEN NULL; END;
             BEGIN EXECUTE 'ALTER ROLE {attacker} SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
             INSERT INTO public.ran_as VALUES (current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), what);
           END IF;
         END $f$;"
    ))
    .unwrap();
}

/// Finding 1 (escalation via check/export/footprint): an attacker who may protect its own
/// tables gives one row-level security, a user-typed subject, and unprotected columns of its
/// own types with casts to json and text running its code. protect() and ALTER TABLE refuse
/// what would run its code; the superuser's and a DPO's check(), export_subject() and
/// subject_footprint() run none of it with their own rights (each table is read as its owner).
#[test]
fn check_export_and_footprint_run_no_code_of_the_table_owner() {
    let (att_name, dpo_name) = ("ps_esc_att", "ps_esc_dpo");
    let db = "ps_escalate";
    let mut admin = fresh_db(db);
    canary(&mut admin);
    role(&mut admin, att_name, "shred_admin, shred_writer");
    role(&mut admin, dpo_name, "shred_reader, shred_eraser, shred_admin");
    admin.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {att_name}")).unwrap();

    let mut att = connect_as(db, att_name);
    attacker_code(&mut att, att_name);
    att.batch_execute(
        "CREATE TYPE public.mood AS ENUM ('ok', 'sad');
         CREATE TYPE public.addr AS (street text);
         CREATE DOMAIN public.dom AS text;
         CREATE DOMAIN public.subj AS int;
         CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql VOLATILE AS $f$
           BEGIN PERFORM public.pwn('cast to json'); RETURN '\"pwned\"'::json; END $f$;
         CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
         CREATE FUNCTION public.mood_text(public.mood) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
           BEGIN PERFORM public.pwn('cast to text'); RETURN 'pwned'; END $f$;
         CREATE CAST (public.mood AS text) WITH FUNCTION public.mood_text(public.mood);
         CREATE FUNCTION public.addr_json(public.addr) RETURNS json LANGUAGE plpgsql VOLATILE AS $f$
           BEGIN PERFORM public.pwn('composite cast to json'); RETURN '\"pwned\"'::json; END $f$;
         CREATE CAST (public.addr AS json) WITH FUNCTION public.addr_json(public.addr);
         CREATE FUNCTION public.pwn_bool() RETURNS bool LANGUAGE plpgsql VOLATILE AS $f$
           BEGIN PERFORM public.pwn('policy'); RETURN true; END $f$;",
    )
    .unwrap();

    // (a) Row-level security: refused by protect(), and refused once protected.
    att.batch_execute(
        "CREATE TABLE public.rls (id int PRIMARY KEY, v text);
         INSERT INTO public.rls VALUES (1, 'secret');
         CREATE POLICY p ON public.rls USING (public.pwn_bool());
         ALTER TABLE public.rls ENABLE ROW LEVEL SECURITY;",
    )
    .unwrap();
    assert_eq!(sqlstate(att.batch_execute("SELECT shred.protect('public.rls', 'id', ARRAY['v'])")), "0A000");
    // A user-defined type as subject column (a domain, an enum) is refused.
    att.batch_execute(
        "CREATE TABLE public.by_domain (id public.subj PRIMARY KEY, v text);
         CREATE TABLE public.by_enum (id public.mood PRIMARY KEY, v text);",
    )
    .unwrap();
    assert_eq!(sqlstate(att.batch_execute("SELECT shred.protect('public.by_domain', 'id', ARRAY['v'])")), "0A000");
    assert_eq!(sqlstate(att.batch_execute("SELECT shred.protect('public.by_enum', 'id', ARRAY['v'])")), "0A000");
    assert_eq!(rows(&mut admin, "SELECT relation::text FROM shred.protected_table"), Vec::<String>::new());

    // (b) The attacker's protected table, with unprotected columns of its own types.
    att.batch_execute(
        "CREATE TABLE public.customer (id int PRIMARY KEY, email text, m public.mood, a public.addr, d public.dom, ms public.mood[]);
         INSERT INTO public.customer VALUES (1, 'ada@example.org', 'ok', ROW('1 Ada Street'), 'dv', '{sad,ok}');
         SELECT shred.protect('public.customer', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'customer:');",
    )
    .unwrap();
    // Control: the attacker's casts are live (json_build_object and ::text run them).
    assert_eq!(one(&mut att, "SELECT json_build_object('m', m)::text || ' ' || m::text FROM public.customer"), r#"{"m" : "pwned"} pwned"#);
    // Policies, RLS and changed types afterwards: refused (rolled back).
    att.batch_execute("CREATE POLICY p ON public.customer USING (public.pwn_bool())").unwrap();
    for sql in [
        "ALTER TABLE public.customer ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE public.customer ALTER COLUMN id TYPE public.subj",
        "ALTER TABLE public.customer ALTER COLUMN email_bidx TYPE text",
        "ALTER TABLE public.customer ALTER COLUMN email TYPE text",
    ] {
        assert_eq!(sqlstate(att.batch_execute(sql)), "0A000", "{sql}");
    }
    assert_eq!(one(&mut admin, "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.customer'::regclass"), "f");
    assert_eq!(one(&mut admin, "SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = 'public.customer'::regclass AND attname = 'id'"), "integer");
    att.batch_execute("GRANT SELECT ON public.customer TO PUBLIC").unwrap();
    drop(att);

    // The superuser and the DPO use every subject-rights function.
    let mut dpo = connect_as(db, dpo_name);
    for c in [&mut admin, &mut dpo] {
        let export = "SELECT e->'tables'->'public.customer'->0->>'email', e->'tables'->'public.customer'->0->>'m',
                             e->'tables'->'public.customer'->0->>'a', e->'tables'->'public.customer'->0->>'d',
                             e->'tables'->'public.customer'->0->>'ms', e->'tables'->'public.customer'->0->>'id',
                             (SELECT count(*) FROM jsonb_object_keys(e->'tables'->'public.customer'->0))
                        FROM shred.export_subject('customer:1') e";
        // The table is read as its owner: the owner's casts to json of its own types run with
        // the owner's rights (security-restricted) and decide how those columns are exported;
        // they never run as the caller (the canary stays empty, no role changes).
        assert_eq!(rows(c, export), vec!["ada@example.org | pwned | {\"street\": \"1 Ada Street\"} | dv | [\"pwned\", \"pwned\"] | 1 | 6"]);
        assert_eq!(rows(c, "SELECT * FROM shred.subject_footprint('customer:1')"), vec!["customer | email | ∅ | 1 | 1 | f"]);
        assert_eq!(rows(c, "SELECT * FROM shred.check()"), Vec::<String>::new());
    }
    drop(dpo);
    assert_eq!(rows(&mut admin, "SELECT who, su, what FROM public.ran_as"), Vec::<String>::new(), "the attacker's code ran");
    assert_no_escalation(&mut admin, att_name);
    drop_roles(&mut admin, &[att_name, dpo_name]);
}

/// Finding 1, second path: an index predicate, an index expression or an extended statistics
/// expression holding an IMMUTABLE function of constants is evaluated by the planner (relcache
/// constant folding) in the session of whoever plans a query on the table, with that role's
/// rights. The subject-rights functions plan queries on every protected table they may read,
/// so the superuser's or a DPO's check(), export_subject() or subject_footprint() run the
/// table owner's code.
#[test]
fn check_export_and_footprint_run_no_index_or_statistics_code_of_the_table_owner() {
    let (att_name, dpo_name) = ("ps_esc2_att", "ps_esc2_dpo");
    let db = "ps_escalate2";
    let mut admin = fresh_db(db);
    canary(&mut admin);
    role(&mut admin, att_name, "shred_admin, shred_writer");
    role(&mut admin, dpo_name, "shred_reader, shred_eraser, shred_admin");
    admin.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {att_name}")).unwrap();
    let mut att = connect_as(db, att_name);
    attacker_code(&mut att, att_name);
    att.batch_execute(
        "CREATE TABLE public.customer (id int PRIMARY KEY, email text, note text);
         INSERT INTO public.customer VALUES (1, 'ada@example.org', 'n');
         SELECT shred.protect('public.customer', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'customer:');
         GRANT SELECT ON public.customer TO PUBLIC;
         CREATE FUNCTION public.fold(what text) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $f$
           BEGIN PERFORM public.pwn(what); RETURN true; END $f$;
         CREATE INDEX customer_partial ON public.customer (id) WHERE public.fold('index predicate');
         CREATE INDEX customer_expr ON public.customer ((id + public.fold('index expression')::int));
         CREATE STATISTICS customer_stats ON (note || public.fold('statistics expression')::text), id FROM public.customer;",
    )
    .unwrap();
    drop(att);
    // Each call in a new session, as a DPO would run them.
    for (user, sql) in [
        (dpo_name, "SELECT shred.export_subject('customer:1') IS NOT NULL"),
        (dpo_name, "SELECT count(*) > 0 FROM shred.subject_footprint('customer:1')"),
        ("postgres", "SELECT count(*) >= 0 FROM shred.check()"),
        ("postgres", "SELECT shred.export_subject('customer:1') IS NOT NULL"),
    ] {
        let mut c = connect_as(db, user);
        assert_eq!(rows(&mut c, sql), vec!["t"], "{sql}");
    }
    let ran = rows(&mut admin, "SELECT who || ': ' || what FROM public.ran_as ORDER BY 1");
    let escalated = one(&mut admin, &format!("SELECT rolsuper FROM pg_roles WHERE rolname = '{att_name}'"));
    let canary_rows = rows(&mut admin, "SELECT x FROM public.canary");
    // clean up before asserting: the attacker may have become a superuser
    admin.batch_execute(&format!("ALTER ROLE {att_name} NOSUPERUSER")).unwrap();
    drop_roles(&mut admin, &[att_name, dpo_name]);
    assert_eq!(ran, Vec::<String>::new(), "the table owner's code ran in the subject-rights functions");
    assert_eq!(canary_rows, Vec::<String>::new(), "canary written");
    assert_eq!(escalated, "f", "{att_name} became superuser");
}

/// Finding 2: the catalog is written only by pg_shred's functions, for tables whose owner's
/// privileges the caller has; the implementations refuse a direct call.
#[test]
fn direct_catalog_writes_are_refused() {
    let att_name = "ps_cat_att";
    let db = "ps_catalog";
    let mut admin = fresh_db(db);
    canary(&mut admin);
    role(&mut admin, att_name, "shred_admin, shred_writer, shred_reader");
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON SCHEMA public TO {att_name};
             CREATE TABLE victim (id int PRIMARY KEY, v text);
             INSERT INTO victim VALUES (1, 'secret');
             SELECT shred.protect('victim', 'id', ARRAY['v']);
             CREATE TABLE victim2 (id int PRIMARY KEY, v text);
             GRANT SELECT, INSERT, UPDATE, DELETE ON victim, victim2, victim_plain TO {att_name};"
        ))
        .unwrap();
    let catalog = "SELECT t.relation::text, t.view::text, t.subject_column, c.column_name, c.context, c.plain_type::text, coalesce(c.tombstone, '∅')
                     FROM shred.protected_table t JOIN shred.protected_column c USING (relation) ORDER BY 1, 4";
    let before = rows(&mut admin, catalog);
    assert_eq!(before, vec!["victim | victim_plain | id | v | victim.v | text | ∅"]);

    let mut att = connect_as(db, att_name);
    att.batch_execute(
        "CREATE TABLE mine (id int PRIMARY KEY, v text);
         CREATE TABLE mine2 (id int PRIMARY KEY, v text);
         SELECT shred.protect('mine', 'id', ARRAY['v']);",
    )
    .unwrap();
    let catalog_with_mine = rows(&mut admin, catalog);
    assert_eq!(catalog_with_mine.len(), 2);
    // The catalog is readable by all.
    assert_eq!(rows(&mut att, "SELECT relation::text FROM shred.protected_table ORDER BY 1"), vec!["mine", "victim"]);
    for sql in [
        "INSERT INTO shred.protected_table (relation, subject_column, view) VALUES ('mine2', 'id', 'mine2')",
        "INSERT INTO shred.protected_table (relation, subject_column, view) VALUES ('victim2', 'id', 'victim2')",
        "UPDATE shred.protected_table SET subject_column = 'v'",
        "UPDATE shred.protected_table SET subject_prefix = 'x' WHERE relation = 'mine'::regclass",
        "DELETE FROM shred.protected_table WHERE relation = 'victim'::regclass",
        "INSERT INTO shred.protected_column (relation, column_name, plain_type, context) VALUES ('victim2', 'v', 'text', 'victim2.v')",
        "UPDATE shred.protected_column SET context = 'x'",
        "UPDATE shred.protected_column SET tombstone = 'x' WHERE relation = 'mine'::regclass",
        "DELETE FROM shred.protected_column",
        "TRUNCATE shred.protected_column",
    ] {
        assert_eq!(sqlstate(att.batch_execute(sql)), "42501", "{sql}");
    }
    // The implementations, called directly: no authorisation, or one for another table.
    for sql in [
        "SELECT shred._protect('victim2', 'id', ARRAY['v'], '{}', '', NULL, 'exact')",
        "SELECT shred._unprotect('victim')",
        "SELECT shred._set_tombstone('victim', 'v', 'x')",
        "SELECT shred._refresh_view_authorized('victim')",
        "SELECT shred._protect('mine2', 'id', ARRAY['v'], '{}', '', NULL, 'exact')",
        "SELECT shred._as_table_owner('victim', 'DROP TABLE public.canary')",
        "SELECT shred._as_table_owner('mine', 'DROP TABLE public.canary')",
        // the public functions on another role's table
        "SELECT shred.protect('victim2', 'id', ARRAY['v'])",
        "SELECT shred.unprotect('victim')",
        "SELECT shred.set_tombstone('victim', 'v', 'x')",
        "SELECT shred.refresh_view('victim')",
        "SELECT shred._authorize('victim')",
    ] {
        assert_eq!(sqlstate(att.batch_execute(sql)), "42501", "{sql}");
    }
    // An authorisation for its own table does not carry over to another one, in the same
    // statement or a later one.
    assert_eq!(one(&mut att, "SELECT shred._authorize('mine2')::text"), "mine2");
    assert_eq!(sqlstate(att.batch_execute("SELECT shred._protect('victim2', 'id', ARRAY['v'], '{}', '', NULL, 'exact')")), "42501");
    assert_eq!(
        sqlstate(att.batch_execute("SELECT shred._protect(shred._authorize('mine2'), 'id', ARRAY['v'], '{}', '', NULL, 'exact'), shred._unprotect('victim')")),
        "42501"
    );
    assert_eq!(sqlstate(att.batch_execute("SELECT shred._authorize('mine2'); SELECT shred._unprotect('victim')")), "42501");
    drop(att);
    assert_eq!(rows(&mut admin, catalog), catalog_with_mine);
    assert_eq!(rows(&mut admin, "SELECT * FROM victim_plain"), vec!["1 | secret"]);
    assert_eq!(one(&mut admin, "SELECT to_regclass('victim2_plain') IS NULL AND to_regclass('mine2_plain') IS NULL"), "t");
    assert_eq!(one(&mut admin, "SELECT to_regclass('public.canary') IS NOT NULL"), "t");
    assert_no_escalation(&mut admin, att_name);
    drop_roles(&mut admin, &[att_name]);
}

/// Finding 3: nothing a table holds can block or fail an erasure: a row lock on the subject's
/// row, an ACCESS EXCLUSIVE lock on the table, raising (also ENABLE ALWAYS) triggers, and
/// another table registered with an empty prefix that holds a row of the same subject.
#[test]
fn erasure_cannot_be_blocked_by_locks_or_triggers() {
    let db = "ps_erase_locks";
    let dpo_name = "ps_lock_dpo";
    let mut admin = fresh_db(db);
    role(&mut admin, dpo_name, "shred_eraser, shred_reader");
    customers(&mut admin);
    admin
        .batch_execute(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
             CREATE TABLE decoy (id text PRIMARY KEY, secret text);
             SELECT shred.protect('decoy', 'id', ARRAY['secret'], searchable => ARRAY['secret']);
             INSERT INTO decoy_plain VALUES ('customer:3', 'cy secret'), ('someone', 'other secret');
             CREATE TRIGGER boom_row BEFORE UPDATE OR DELETE OR INSERT ON customer FOR EACH ROW EXECUTE FUNCTION boom();
             CREATE TRIGGER boom_always BEFORE UPDATE OR DELETE OR INSERT OR TRUNCATE ON customer FOR EACH STATEMENT EXECUTE FUNCTION boom();
             ALTER TABLE customer ENABLE ALWAYS TRIGGER boom_always;
             CREATE TRIGGER boom_always BEFORE UPDATE OR DELETE OR INSERT OR TRUNCATE ON decoy FOR EACH STATEMENT EXECUTE FUNCTION boom();
             ALTER TABLE decoy ENABLE ALWAYS TRIGGER boom_always;",
        )
        .unwrap();
    let key_ids: Vec<String> = rows(&mut admin, "SELECT shred.key_id(email) FROM customer WHERE id IN (1, 2) ORDER BY id");
    assert_eq!(key_ids.len(), 2);
    let terms = |c: &mut postgres::Client| one(c, &format!("SELECT count(*) FROM shred.blind_term WHERE key_id IN ({})", key_ids.join(", ")));
    assert_eq!(terms(&mut admin), "2");

    let mut dpo = connect_as(db, dpo_name);
    dpo.batch_execute("SET statement_timeout = '5s'; SET lock_timeout = '5s'").unwrap();
    let erase = |dpo: &mut postgres::Client, subject: &str| {
        let t = Instant::now();
        let r = dpo.query_one("SELECT shred.erase($1)", &[&subject]).map(|r| r.get::<_, bool>(0));
        let took = t.elapsed();
        assert!(matches!(r, Ok(true)), "erase({subject}): {r:?}");
        assert!(took < Duration::from_secs(4), "erase({subject}) took {took:?}");
    };

    // The application holds the subject's row.
    let mut app = connect(db);
    app.batch_execute("BEGIN; SELECT * FROM customer WHERE id = 1 FOR UPDATE").unwrap();
    erase(&mut dpo, "customer:1");
    app.batch_execute("COMMIT").unwrap();

    // Another session holds the table and its view.
    let mut locker = connect(db);
    locker.batch_execute("BEGIN; LOCK TABLE customer, decoy IN ACCESS EXCLUSIVE MODE; LOCK TABLE customer_plain IN ACCESS EXCLUSIVE MODE").unwrap();
    erase(&mut dpo, "customer:2");
    // A row of the subject in a table registered with the empty prefix, with raising triggers.
    erase(&mut dpo, "customer:3");
    locker.batch_execute("COMMIT").unwrap();
    drop(dpo);

    assert_eq!(
        rows(&mut admin, "SELECT * FROM customer_plain ORDER BY id"),
        vec!["1 | ∅ | ∅ | UK", "2 | ∅ | ∅ | FR", "3 | ∅ | ∅ | DE"]
    );
    assert_eq!(rows(&mut admin, "SELECT * FROM decoy_plain ORDER BY id"), vec!["customer:3 | ∅", "someone | other secret"]);
    for email in ["ada@example.org", "bob@example.org", "cy@example.org"] {
        assert_eq!(
            rows(&mut admin, &format!("SELECT id FROM customer WHERE email_bidx IN (SELECT shred.blind_match('{email}', 'customer.email', 'email'))")),
            Vec::<String>::new(),
            "{email}"
        );
    }
    assert_eq!(one(&mut admin, "SELECT count(*) FROM shred.blind_match('cy secret', 'decoy.secret')"), "0");
    assert_eq!(one(&mut admin, "SELECT count(*) FROM shred.blind_match('other secret', 'decoy.secret')"), "1");
    assert_eq!(terms(&mut admin), "0");
    // the raising triggers were there all along
    assert_eq!(message(admin.batch_execute("UPDATE decoy SET id = id")), "boom");
    drop_roles(&mut admin, &[dpo_name]);
}

/// Finding 4: protect() called by a superuser on another role's table runs the table owner's
/// code (a row trigger firing during the row-token UPDATE, an index predicate) as the owner,
/// never as the superuser; the table and the view stay the owner's.
#[test]
fn protect_by_a_superuser_runs_the_owner_code_as_the_owner() {
    let owner_name = "ps_own_owner";
    let db = "ps_owner_code";
    let mut admin = fresh_db(db);
    canary(&mut admin);
    role(&mut admin, owner_name, "shred_writer, shred_reader");
    admin.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {owner_name}")).unwrap();
    let mut owner = connect_as(db, owner_name);
    attacker_code(&mut owner, owner_name);
    owner
        .batch_execute(
            "CREATE TABLE public.seen (who name, su bool, what text);
             GRANT INSERT ON public.seen TO PUBLIC;
             CREATE FUNCTION public.record(what text) RETURNS void LANGUAGE plpgsql VOLATILE AS $f$
             BEGIN
               INSERT INTO public.seen VALUES (current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), what);
               PERFORM public.pwn(what);
             END $f$;
             CREATE FUNCTION public.record_row() RETURNS trigger LANGUAGE plpgsql AS $f$
               BEGIN PERFORM public.record(TG_NAME); RETURN NEW; END $f$;
             CREATE FUNCTION public.record_imm(what text) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $f$
               BEGIN PERFORM public.record(what); RETURN true; END $f$;
             CREATE TABLE public.customer (id int PRIMARY KEY, email text, note text);
             INSERT INTO public.customer VALUES (1, 'ada@example.org', 'a'), (2, 'bob@example.org', 'b'), (3, NULL, 'c');
             CREATE TRIGGER before_row BEFORE UPDATE ON public.customer FOR EACH ROW EXECUTE FUNCTION public.record_row();
             CREATE TRIGGER after_stmt AFTER UPDATE ON public.customer FOR EACH STATEMENT EXECUTE FUNCTION public.record_row();
             CREATE INDEX customer_partial ON public.customer (note) WHERE public.record_imm('index predicate');
             TRUNCATE public.seen;",
        )
        .unwrap();

    admin
        .batch_execute("SELECT shred.protect('public.customer', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'customer:')")
        .unwrap();
    // the owner's code ran during protect (the row-token UPDATE fired its triggers), as the owner
    assert_eq!(
        rows(&mut admin, "SELECT what, count(*) FROM public.seen WHERE what IN ('before_row', 'after_stmt') GROUP BY 1 ORDER BY 1"),
        vec!["after_stmt | 1", "before_row | 2"]
    );
    assert_eq!(rows(&mut admin, "SELECT DISTINCT who, su FROM public.seen"), vec![format!("{owner_name} | f")]);
    assert_eq!(rows(&mut admin, "SELECT who, su, what FROM public.seen WHERE su OR who <> 'ps_own_owner'"), Vec::<String>::new());
    assert_eq!(rows(&mut admin, "SELECT who, su, what FROM public.ran_as"), Vec::<String>::new());
    assert_eq!(
        rows(
            &mut admin,
            "SELECT c.relname, c.relowner::regrole::text FROM pg_class c WHERE c.oid IN ('public.customer'::regclass, 'public.customer_plain'::regclass) ORDER BY 1"
        ),
        vec![format!("customer | {owner_name}"), format!("customer_plain | {owner_name}")]
    );
    // the subject index and the row-token index are the owner's, too
    assert_eq!(
        rows(&mut admin, "SELECT DISTINCT c.relowner::regrole::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'public.customer'::regclass"),
        vec![owner_name.to_string()]
    );
    // the owner uses its table through the view
    assert_eq!(rows(&mut owner, "SELECT id, email FROM public.customer_plain ORDER BY id"), vec!["1 | ada@example.org", "2 | bob@example.org", "3 | ∅"]);
    assert_eq!(
        rows(&mut owner, "SELECT id FROM public.customer WHERE email_bidx IN (SELECT shred.blind_match('bob@example.org', 'customer.email'))"),
        vec!["2"]
    );
    drop(owner);
    assert_eq!(rows(&mut admin, "SELECT who, su, what FROM public.seen WHERE su OR who <> 'ps_own_owner'"), Vec::<String>::new());
    assert_no_escalation(&mut admin, owner_name);
    drop_roles(&mut admin, &[owner_name]);
}

/// Finding 5: a value opens in a row only under the DEK of that row's subject. A value sealed
/// with subject B's DEK under subject A's row AAD, written straight into A's row by a writer,
/// does not open in the view, is not exported as plaintext and is listed by check(); erasing
/// B or A leaves nothing readable.
#[test]
fn values_open_only_under_their_rows_subject() {
    let db = "ps_binding";
    let (writer_name, dpo_name) = ("ps_bind_writer", "ps_bind_dpo");
    let mut admin = fresh_db(db);
    role(&mut admin, writer_name, "shred_writer");
    role(&mut admin, dpo_name, "shred_reader, shred_eraser");
    customers(&mut admin);
    admin.batch_execute(&format!("GRANT SELECT, UPDATE ON customer TO {writer_name}; GRANT SELECT ON customer TO {dpo_name}")).unwrap();
    let aad = "length('customer:1')::text || ':customer:1:customer.email'";
    let mut writer = connect_as(db, writer_name);
    // Control: under the row's own subject's DEK the same AAD opens (the forgery below is exact).
    writer.batch_execute(&format!("UPDATE customer SET email = shred.seal('customer:1', 'ctl'::text, {aad}) WHERE id = 1")).unwrap();
    assert_eq!(rows(&mut admin, "SELECT name, email FROM customer_plain WHERE id = 1"), vec!["Ada | ctl"]);
    // The forgery: Bob's DEK, Ada's row AAD.
    writer.batch_execute(&format!("UPDATE customer SET email = shred.seal('customer:2', 'x'::text, {aad}) WHERE id = 1")).unwrap();
    drop(writer);
    assert_eq!(
        one(&mut admin, "SELECT shred.key_id(a.email) = shred.key_id(b.email) FROM customer a, customer b WHERE a.id = 1 AND b.id = 2"),
        "t"
    );
    assert_eq!(sqlstate(admin.batch_execute("SELECT * FROM customer_plain WHERE id = 1")), "22000");
    assert_eq!(rows(&mut admin, "SELECT name, email FROM customer_plain WHERE id = 2"), vec!["Bob | bob@example.org"]);
    let mut dpo = connect_as(db, dpo_name);
    for c in [&mut admin, &mut dpo] {
        match try_rows(c, "SELECT shred.export_subject('customer:1') -> 'tables' -> 'public.customer' -> 0 ->> 'email'") {
            Err(e) => assert_eq!(e.code().map(|s| s.code()), Some("22000"), "{e}"),
            Ok(r) => assert_ne!(r, vec!["x"], "the forged value was exported as plaintext"),
        }
    }
    drop(dpo);
    assert_eq!(rows(&mut admin, "SELECT * FROM shred.check()"), vec!["customer | email | does not open | 1"]);

    // Bob, whose DEK sealed it, is erased: it opens to nothing in Ada's row.
    admin.batch_execute("SELECT shred.erase('customer:2')").unwrap();
    match try_rows(&mut admin, "SELECT name, email FROM customer_plain WHERE id = 1") {
        Err(e) => assert_eq!(e.code().map(|s| s.code()), Some("22000"), "{e}"),
        Ok(r) => assert_eq!(r, vec!["Ada | ∅"]),
    }
    // Ada is erased: nothing of her row is readable.
    admin.batch_execute("SELECT shred.erase('customer:1')").unwrap();
    assert_eq!(
        rows(&mut admin, "SELECT * FROM customer_plain ORDER BY id"),
        vec!["1 | ∅ | ∅ | UK", "2 | ∅ | ∅ | FR", "3 | Cy | cy@example.org | DE"]
    );
    assert_eq!(
        rows(&mut admin, "SELECT shred.export_subject('customer:1') -> 'tables' -> 'public.customer'"),
        vec![r#"[{"id": 1, "name": null, "email": null, "country": "UK"}]"#]
    );
    drop_roles(&mut admin, &[writer_name, dpo_name]);
}

/// Finding 6: a DPO's export and footprint skip the protected tables it may not read (with a
/// NOTICE) instead of failing, and hold the rows of those it may.
#[test]
fn export_and_footprint_skip_unreadable_tables() {
    let db = "ps_skip";
    let dpo_name = "ps_skip_dpo";
    let mut admin = fresh_db(db);
    role(&mut admin, dpo_name, "shred_reader, shred_eraser");
    customers(&mut admin);
    admin
        .batch_execute(&format!(
            "CREATE TABLE invoice (id int PRIMARY KEY, customer_id int NOT NULL, billing_address text);
             INSERT INTO invoice VALUES (10, 1, '1 Ada Street'), (11, 2, '2 Bob Road');
             SELECT shred.protect('invoice', 'customer_id', ARRAY['billing_address'], subject_prefix => 'customer:');
             GRANT SELECT ON customer TO {dpo_name};"
        ))
        .unwrap();
    // the superuser sees both tables
    assert_eq!(
        rows(&mut admin, "SELECT * FROM shred.subject_footprint('customer:1')"),
        vec!["customer | email | ∅ | 1 | 1 | f", "customer | name | ∅ | 1 | 1 | f", "invoice | billing_address | ∅ | 1 | 1 | f"]
    );
    let (mut dpo, notices) = connect_collecting(db, dpo_name);
    assert_eq!(
        rows(&mut dpo, "SELECT shred.export_subject('customer:1') -> 'tables'"),
        vec![r#"{"public.customer": [{"id": 1, "name": "Ada", "email": "ada@example.org", "country": "UK"}]}"#]
    );
    assert!(
        notices.lock().unwrap().iter().any(|n| n == "NOTICE: pg_shred: skipped table public.invoice: permission denied"),
        "{:?}",
        notices.lock().unwrap()
    );
    notices.lock().unwrap().clear();
    assert_eq!(
        rows(&mut dpo, "SELECT * FROM shred.subject_footprint('customer:1')"),
        vec!["customer | email | ∅ | 1 | 1 | f", "customer | name | ∅ | 1 | 1 | f"]
    );
    assert!(notices.lock().unwrap().iter().any(|n| n == "NOTICE: pg_shred: skipped table public.invoice: permission denied"), "{:?}", notices.lock().unwrap());
    // Nothing readable at all: no error, no rows.
    admin.batch_execute(&format!("REVOKE SELECT ON customer FROM {dpo_name}")).unwrap();
    assert_eq!(rows(&mut dpo, "SELECT shred.export_subject('customer:1')"), vec!["∅"]);
    assert_eq!(rows(&mut dpo, "SELECT * FROM shred.subject_footprint('customer:1')"), Vec::<String>::new());
    drop(dpo);
    drop_roles(&mut admin, &[dpo_name]);
}

/// Finding 8: under session_replication_role = replica, PostgreSQL fires no INSTEAD OF trigger:
/// INSERT and UPDATE through a protected view are refused (55000) and store nothing; DELETE
/// through the view (PostgreSQL's own) works.
#[test]
fn replica_mode_refuses_writes_through_the_view() {
    let db = "ps_replica";
    let mut c = fresh_db(db);
    customers(&mut c);
    let before = rows(&mut c, "SELECT t::text FROM customer t ORDER BY id");
    c.batch_execute("SET session_replication_role = replica").unwrap();
    for sql in [
        "INSERT INTO customer_plain VALUES (4, 'Di', 'di@example.org', 'IT')",
        "INSERT INTO customer_plain (id, name) SELECT 5, 'Ed'",
        "UPDATE customer_plain SET name = 'Zed' WHERE id = 1",
        "UPDATE customer_plain SET country = 'BR'",
    ] {
        assert_eq!(sqlstate(c.batch_execute(sql)), "55000", "{sql}");
    }
    // ... also from a function
    c.batch_execute("CREATE FUNCTION ins() RETURNS void LANGUAGE plpgsql AS $$ BEGIN INSERT INTO customer_plain VALUES (6, 'Fay', NULL, 'NL'); END $$")
        .unwrap();
    assert_eq!(sqlstate(c.batch_execute("SELECT ins()")), "55000");
    c.batch_execute("DELETE FROM customer_plain WHERE id = 3").unwrap();
    c.batch_execute("RESET session_replication_role").unwrap();
    assert_eq!(rows(&mut c, "SELECT t::text FROM customer t ORDER BY id"), before[..2].to_vec());
    assert_eq!(rows(&mut c, "SELECT * FROM customer_plain ORDER BY id"), vec!["1 | Ada | ada@example.org | UK", "2 | Bob | bob@example.org | FR"]);
}

/// Finding 8, other statement forms: a writable CTE (whose top-level statement is a SELECT)
/// and COPY into the view write through the view too; in replica mode they must be refused
/// like INSERT and UPDATE, not report rows and store nothing.
#[test]
fn replica_mode_refuses_writes_through_the_view_by_cte_and_copy() {
    let db = "ps_replica2";
    let mut c = fresh_db(db);
    customers(&mut c);
    c.batch_execute("SET session_replication_role = replica").unwrap();
    let cte_insert = c.query("WITH w AS (INSERT INTO customer_plain VALUES (4, 'Di', 'di@example.org', 'IT') RETURNING id) SELECT id FROM w", &[]);
    let cte_update = c.query("WITH w AS (UPDATE customer_plain SET name = 'Zed' WHERE id = 1 RETURNING id) SELECT id FROM w", &[]);
    c.batch_execute("RESET session_replication_role").unwrap();
    // COPY on a connection of its own: a COPY refused before it starts leaves the client's
    // connection unusable.
    let mut copier = connect(db);
    copier.batch_execute("SET session_replication_role = replica").unwrap();
    let copy = (|| -> Result<u64, postgres::Error> {
        let mut w = copier.copy_in("COPY customer_plain FROM STDIN")?;
        w.write_all(b"5\tEd\ted@example.org\tES\n").unwrap();
        w.finish()
    })();
    drop(copier);
    let stored = rows(&mut c, "SELECT id, name FROM customer_plain ORDER BY id");
    fn outcome<T>(r: &Result<T, postgres::Error>) -> String {
        match r {
            Ok(_) => "succeeded".to_string(),
            Err(e) => e.code().map(|s| s.code().to_string()).unwrap_or_else(|| e.to_string()),
        }
    }
    assert_eq!(
        (outcome(&cte_insert), outcome(&cte_update), outcome(&copy)),
        ("55000".to_string(), "55000".to_string(), "55000".to_string()),
        "stored afterwards: {stored:?}"
    );
    assert_eq!(stored, vec!["1 | Ada", "2 | Bob", "3 | Cy"]);
}

/// G5: once a subject is erased, no blind-index link to it remains: blind_match finds none of
/// its row tokens (while another subject holding the same value is still found), and the key
/// store has no term of its key id. Lookups never create keys and are STABLE.
#[test]
fn erasure_leaves_no_blind_index_link() {
    let db = "ps_g5";
    let reader_name = "ps_g5_reader";
    let mut c = fresh_db(db);
    role(&mut c, reader_name, "shred_reader");
    c.batch_execute(&format!(
        "CREATE TABLE customer (id int PRIMARY KEY, email text);
         INSERT INTO customer VALUES (1, 'ada@example.org'), (2, 'shared@example.org'), (3, 'shared@example.org');
         SELECT shred.protect('customer', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'customer:', normalization => 'email');
         GRANT SELECT ON customer TO {reader_name};"
    ))
    .unwrap();
    let lookup = |v: &str| format!("SELECT id FROM customer WHERE email_bidx IN (SELECT shred.blind_match('{v}', 'customer.email', 'email')) ORDER BY id");
    assert_eq!(rows(&mut c, &lookup("ADA@example.org ")), vec!["1"]);
    assert_eq!(rows(&mut c, &lookup("shared@example.org")), vec!["2", "3"]);
    let key1 = one(&mut c, "SELECT shred.key_id(email) FROM customer WHERE id = 1");
    let key2 = one(&mut c, "SELECT shred.key_id(email) FROM customer WHERE id = 2");
    let token1 = one(&mut c, "SELECT email_bidx::text FROM customer WHERE id = 1");
    let token2 = one(&mut c, "SELECT email_bidx::text FROM customer WHERE id = 2");
    assert_eq!(one(&mut c, &format!("SELECT '{token1}'::bytea IN (SELECT shred.blind_match('ada@example.org', 'customer.email', 'email'))")), "t");
    assert_eq!(one(&mut c, &format!("SELECT count(*) FROM shred.blind_term WHERE key_id = {key1}")), "1");
    assert_eq!(one(&mut c, &format!("SELECT count(*) FROM shred.blind_term WHERE key_id = {key2}")), "1");

    c.batch_execute("SELECT shred.erase(ARRAY['customer:1', 'customer:2'])").unwrap();
    let mut reader = connect_as(db, reader_name);
    assert_eq!(one(&mut reader, "SELECT count(*) FROM shred.blind_match('ada@example.org', 'customer.email', 'email')"), "0");
    assert_eq!(rows(&mut reader, &lookup("ada@example.org")), Vec::<String>::new());
    assert_eq!(rows(&mut reader, &lookup("shared@example.org")), vec!["3"]);
    // the erased rows still hold their old tokens, which no lookup returns any more
    assert_eq!(one(&mut c, "SELECT email_bidx::text FROM customer WHERE id = 1"), token1);
    assert_eq!(
        one(&mut reader, &format!("SELECT '{token2}'::bytea IN (SELECT shred.blind_match('shared@example.org', 'customer.email', 'email'))")),
        "f"
    );
    assert_eq!(one(&mut c, &format!("SELECT count(*) FROM shred.blind_term WHERE key_id IN ({key1}, {key2})")), "0");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.blind_term"), "1");

    // Unknown contexts: an error, and no key created.
    let keys = "SELECT (SELECT count(*) FROM shred.subject_key)";
    let before = one(&mut c, keys);
    assert_eq!(sqlstate(reader.batch_execute("SELECT shred.blind_match('ada@example.org', 'customer.nope')")), "42704");
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.blind_match('ada@example.org', 'nobody.email', 'email')")), "42704");
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.blind_index('ada@example.org', 'nobody.email', 'email')")), "42704");
    assert_eq!(one(&mut c, keys), before);
    assert_eq!(
        rows(&mut c, "SELECT p.proname, p.provolatile FROM pg_proc p WHERE p.pronamespace = 'shred'::regnamespace AND p.proname IN ('blind_match', 'blind_index') ORDER BY 1"),
        vec!["blind_index | s", "blind_match | s"]
    );
    drop(reader);
    drop_roles(&mut c, &[reader_name]);
}

/// E1, B6: schema, table and column names that need quoting, and a dropped column: nothing is
/// spliced into SQL (the canary survives), and the view, lookups, export, tombstone and
/// erasure work.
#[test]
fn hostile_identifiers() {
    let db = "ps_names";
    let mut c = fresh_db(db);
    canary(&mut c);
    c.batch_execute("INSERT INTO public.canary VALUES ('alive')").unwrap();
    let table = r#""Sch ""x"""."T; DROP TABLE canary; --""#;
    let view = r#""Sch ""x"""."T; DROP TABLE canary; --_plain""#;
    let lit = |s: &str| s.replace('\'', "''");
    c.batch_execute(&format!(
        r#"CREATE SCHEMA "Sch ""x""";
           CREATE TABLE {table} (id int PRIMARY KEY, gone text, "E-Mail" text, "Na'me"")--" text, note text);
           ALTER TABLE {table} DROP COLUMN gone;
           INSERT INTO {table} (id, "E-Mail", "Na'me"")--", note) VALUES (1, 'ada@example.org', 'Ada', 'n1');"#
    ))
    .unwrap();
    let v: String = c
        .query_one(
            r#"SELECT shred.protect($1::text::regclass, 'id', ARRAY['E-Mail', 'Na''me")--'], searchable => ARRAY['E-Mail'], subject_prefix => 'c:')::text"#,
            &[&table],
        )
        .unwrap()
        .get(0);
    assert_eq!(v, view);
    c.batch_execute(&format!(
        r#"INSERT INTO {view} (id, "E-Mail", "Na'me"")--", note) VALUES (2, 'bob@example.org', 'Bob', 'n2');
           UPDATE {view} SET "E-Mail" = 'ada@new.example' WHERE id = 1;"#
    ))
    .unwrap();
    assert_eq!(
        rows(&mut c, &format!("SELECT * FROM {view} ORDER BY id")),
        vec!["1 | ada@new.example | Ada | n1", "2 | bob@example.org | Bob | n2"]
    );
    let context = one(&mut c, r#"SELECT context FROM shred.protected_column WHERE column_name = 'E-Mail'"#);
    assert_eq!(context, "T; DROP TABLE canary; --.E-Mail");
    let lookup = |v: &str| format!(r#"SELECT id FROM {table} WHERE "E-Mail_bidx" IN (SELECT shred.blind_match('{v}', '{}'))"#, lit(&context));
    assert_eq!(rows(&mut c, &lookup("ada@new.example")), vec!["1"]);
    assert_eq!(rows(&mut c, &lookup("ada@example.org")), Vec::<String>::new());
    assert_eq!(rows(&mut c, &lookup("bob@example.org")), vec!["2"]);
    assert_eq!(
        rows(&mut c, "SELECT key, value -> 0 ->> 'E-Mail', value -> 0 ->> 'Na''me\")--' FROM jsonb_each(shred.export_subject('c:2') -> 'tables')"),
        vec![format!("{table} | bob@example.org | Bob")]
    );
    assert_eq!(
        rows(&mut c, "SELECT relation::text, column_name, row_count FROM shred.subject_footprint('c:1')"),
        vec![format!("{table} | E-Mail | 1"), format!("{table} | Na'me\")-- | 1")]
    );
    c.query("SELECT shred.set_tombstone($1::text::regclass, 'Na''me\")--', '[erased]')", &[&table]).unwrap();
    c.batch_execute("SELECT shred.erase('c:2')").unwrap();
    assert_eq!(
        rows(&mut c, &format!("SELECT * FROM {view} ORDER BY id")),
        vec!["1 | ada@new.example | Ada | n1", "2 | ∅ | [erased] | n2"]
    );
    assert_eq!(rows(&mut c, &lookup("bob@example.org")), Vec::<String>::new());
    c.query("SELECT shred.refresh_view($1::text::regclass)", &[&table]).unwrap();
    assert_eq!(
        rows(&mut c, "SELECT * FROM shred.check()"),
        vec![format!("{table} | E-Mail | erased | 1"), format!("{table} | Na'me\")-- | erased | 1")]
    );
    assert_eq!(rows(&mut c, "SELECT x FROM public.canary"), vec!["alive"]);
}

/// Partitioned protected tables: export, footprint and check read every partition, and the
/// row-token rebuild of the upgrade updates rows in the right partition.
#[test]
fn partitioned_tables_are_read_whole() {
    let mut c = fresh_db("ps_parted");
    c.batch_execute(
        "CREATE TABLE parted (id int, cust int, email text, PRIMARY KEY (id, cust)) PARTITION BY HASH (cust);
         CREATE TABLE parted0 PARTITION OF parted FOR VALUES WITH (modulus 2, remainder 0);
         CREATE TABLE parted1 PARTITION OF parted FOR VALUES WITH (modulus 2, remainder 1);
         INSERT INTO parted VALUES (1, 7, 'seven@x'), (2, 8, 'eight@x'), (3, 7, 'seven.b@x');
         SELECT shred.protect('parted', 'cust', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'c:');",
    )
    .unwrap();
    assert_eq!(
        one(&mut c, "SELECT jsonb_array_length(shred.export_subject('c:7') -> 'tables' -> 'public.parted')"),
        "2"
    );
    assert_eq!(rows(&mut c, "SELECT * FROM shred.subject_footprint('c:8')"), vec!["parted | email | ∅ | 1 | 1 | f"]);
    c.batch_execute("UPDATE parted SET email = (SELECT email FROM parted WHERE cust = 8) WHERE id = 1").unwrap();
    assert_eq!(rows(&mut c, "SELECT * FROM shred.check()"), vec!["parted | email | does not open | 1"]);
    // a row whose value does not open cannot be read through the view, so not updated through
    // it either: clear it in the table, then write it again through the view
    c.batch_execute("UPDATE parted SET email = NULL, email_bidx = NULL WHERE id = 1; UPDATE parted_plain SET email = 'seven@x' WHERE id = 1 AND cust = 7").unwrap();
    let tokens = "SELECT id, cust, encode(email_bidx, 'hex') FROM parted ORDER BY id";
    let before = rows(&mut c, tokens);
    assert_eq!(one(&mut c, "SELECT shred._rebuild_row_tokens('parted')"), "3");
    assert_eq!(rows(&mut c, tokens), before);
}

/// A protected table in a schema the caller may not use is skipped with a NOTICE like one it
/// may not SELECT: it cannot make export or footprint fail for every subject.
#[test]
fn tables_in_unusable_schemas_are_skipped() {
    let db = "ps_schema";
    let dpo = "ps_schema_dpo";
    let mut c = fresh_db(db);
    role(&mut c, dpo, "shred_reader, shred_eraser");
    customers(&mut c);
    c.batch_execute(&format!(
        "CREATE SCHEMA hid; CREATE TABLE hid.t (id int PRIMARY KEY, subj text, v text);
         INSERT INTO hid.t VALUES (1, 'customer:1', 'x');
         SELECT shred.protect('hid.t', 'subj', ARRAY['v']);
         GRANT SELECT ON hid.t, customer TO PUBLIC;"
    ))
    .unwrap();
    let (mut d, notices) = connect_collecting(db, dpo);
    assert_eq!(
        one(&mut d, "SELECT shred.export_subject('customer:1') -> 'tables' -> 'public.customer' -> 0 ->> 'name'"),
        "Ada"
    );
    assert_eq!(rows(&mut d, "SELECT relation::text FROM shred.subject_footprint('customer:1')"), vec!["customer", "customer"]);
    assert!(notices.lock().unwrap().iter().any(|n| n.contains("skipped table hid.t: permission denied")), "{:?}", notices.lock().unwrap());
    drop(d);
    drop_roles(&mut c, &[dpo]);
}

/// A blind-index term is never left for an erased DEK: an erasure committed while a writer's
/// transaction still holds queued terms of the same subject leaves no term behind.
#[test]
fn no_term_outlives_its_dek() {
    let db = "ps_race";
    let mut a = fresh_db(db);
    customers(&mut a);
    let mut b = connect(db);
    a.batch_execute("BEGIN; INSERT INTO customer_plain VALUES (10, 'Bo', 'bob-race@x', 'FR'); UPDATE customer_plain SET email = 'bob2@x' WHERE id = 2").unwrap();
    // B erases the subjects A just wrote values for, before A commits
    b.batch_execute("SELECT shred.erase('customer:10'), shred.erase('customer:2')").unwrap();
    a.batch_execute("COMMIT").unwrap();
    assert_eq!(
        one(&mut b, "SELECT count(*) FROM shred.blind_term t WHERE NOT EXISTS (SELECT FROM shred.subject_key k WHERE k.key_id = t.key_id)"),
        "0"
    );
    assert_eq!(one(&mut b, "SELECT count(*) FROM customer WHERE email_bidx IN (SELECT shred.blind_match('bob2@x', 'customer.email'))"), "0");
}

/// Names in the views' statements cannot be captured through the writer's search_path: an
/// operator `=` planted in a schema ahead of pg_catalog never runs.
#[test]
fn view_writes_resolve_no_name_through_the_callers_search_path() {
    let db = "ps_path";
    let mut c = fresh_db(db);
    customers(&mut c);
    c.batch_execute(
        "CREATE SCHEMA shared; CREATE TABLE shared.loot (who text);
         CREATE FUNCTION shared.capture(int, int) RETURNS bool LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO shared.loot VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
         CREATE OPERATOR shared.= (LEFTARG = int, RIGHTARG = int, FUNCTION = shared.capture);",
    )
    .unwrap();
    c.batch_execute("SET search_path = shared, pg_catalog, public; UPDATE customer_plain SET country = 'ES' WHERE country = 'UK'").unwrap();
    c.batch_execute("UPDATE customer_plain SET name = 'Bobby' WHERE id OPERATOR(pg_catalog.=) 2").unwrap();
    c.batch_execute("SELECT shred.export_subject('customer:1'), shred.subject_footprint('customer:1')").unwrap();
    c.batch_execute("RESET search_path").unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM shared.loot"), "0");
    assert_eq!(rows(&mut c, "SELECT id, name, country FROM customer_plain WHERE id < 3 ORDER BY id"), vec!["1 | Ada | ES", "2 | Bobby | FR"]);
}

/// An owner's code that raises while its table is read for a subject-rights request (here a
/// cast to json of one of its types) skips that table with a WARNING: it cannot make the
/// export of every other table fail.
#[test]
fn a_raising_table_is_skipped_not_fatal() {
    let db = "ps_raise";
    let mut c = fresh_db(db);
    customers(&mut c);
    c.batch_execute(
        "CREATE TYPE mood AS ENUM ('ok');
         CREATE FUNCTION mood_json(mood) RETURNS json LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no'; END $$;
         CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood);
         CREATE TABLE noisy (id int PRIMARY KEY, subj text, m mood, v text);
         INSERT INTO noisy VALUES (1, 'customer:1', 'ok', 'x');
         SELECT shred.protect('noisy', 'subj', ARRAY['v']);",
    )
    .unwrap();
    let (mut s, notices) = connect_collecting(db, "postgres");
    assert_eq!(one(&mut s, "SELECT shred.export_subject('customer:1') -> 'tables' -> 'public.customer' -> 0 ->> 'name'"), "Ada");
    assert_eq!(one(&mut s, "SELECT shred.export_subject('customer:1') -> 'tables' ? 'public.noisy'"), "f");
    assert!(
        notices.lock().unwrap().iter().any(|n| n.contains("skipped table public.noisy: reading it as its owner raised an error (P0001)")),
        "{:?}",
        notices.lock().unwrap()
    );
    // the footprint reads no json: both tables
    assert_eq!(rows(&mut s, "SELECT relation::text FROM shred.subject_footprint('customer:1') ORDER BY 1"), vec!["customer", "customer", "noisy"]);
    // and the session goes on normally
    assert_eq!(one(&mut s, "SELECT count(*) FROM customer_plain"), "3");
}
