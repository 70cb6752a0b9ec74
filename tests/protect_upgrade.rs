//! Protected tables across the 0.2.0 -> 0.3.0 upgrade and across pg_dump/pg_restore, against a
//! real server (started by `scripts/test`): tables protected under 0.2.0 keep working after
//! ALTER EXTENSION pg_shred UPDATE, an upgraded database has exactly the objects of a fresh
//! install, a dump restores into a working database, and the upgrade leaves no privilege
//! holes.

mod common;

use common::*;

fn pg(program: &str, args: &[&str]) -> Vec<u8> {
    run(pg_tool(program).args(args))
}

fn extversion(c: &mut postgres::Client) -> String {
    c.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'", &[]).unwrap().get(0)
}

/// An empty database `name` with pg_shred 0.2.0 (PostgreSQL installs 0.1.0 and runs the
/// 0.1.0 -> 0.2.0 script, or runs an installed 0.2.0 script: the same SQL).
fn db_0_2_0(name: &str) -> postgres::Client {
    let mut c = empty_db(name);
    c.batch_execute("CREATE EXTENSION pg_shred VERSION '0.2.0'").unwrap();
    assert_eq!(extversion(&mut c), "0.2.0");
    c
}

/// Ids of the rows of `customer` whose e-mail is `value` (e-mail normalisation), by the 0.3.0
/// lookup through row tokens.
fn lookup(c: &mut postgres::Client, value: &str) -> Vec<i32> {
    c.query(
        "SELECT id FROM customer WHERE email_bidx IN (SELECT shred.blind_match($1, 'customer.email', 'email')) ORDER BY id",
        &[&value],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The same by 0.2.0's lookup (the blind index itself stored in the table).
fn lookup_0_2_0(c: &mut postgres::Client, value: &str) -> Vec<i32> {
    c.query("SELECT id FROM customer WHERE email_bidx = shred.blind_index($1, 'customer.email', 'email') ORDER BY id", &[&value])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// pg_trigger.tgtype of the view's triggers (ROW 1, INSERT 4, DELETE 8, UPDATE 16, INSTEAD 64).
fn view_triggers(c: &mut postgres::Client, view: &str) -> Vec<String> {
    rows(c, &format!("SELECT tgname || ' ' || tgtype FROM pg_trigger WHERE tgrelid = '{view}'::regclass ORDER BY tgname"))
}

const CUSTOMER: &str = "SELECT * FROM customer_plain ORDER BY id";
const INVOICE: &str = "SELECT * FROM invoice_plain ORDER BY id";

/// Everything 0.3.0 promises for tables protected under 0.2.0, after ALTER EXTENSION UPDATE.
#[test]
fn upgrade_from_0_2_0_keeps_every_protected_table_working() {
    let mut c = db_0_2_0("pu_upgrade");
    c.batch_execute(
        "CREATE TABLE customer (id int PRIMARY KEY, name text, email text, born date, score numeric, country text);
         CREATE TABLE invoice (id int PRIMARY KEY, customer_id int, total numeric, address text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', '1815-12-10', 99.5, 'UK'),
                                     (2, 'Bob', 'bob@example.org', '2000-02-29', -0.01, 'FR'),
                                     (3, 'Cy', 'cy@example.org', NULL, NULL, 'DE');
         INSERT INTO invoice VALUES (10, 1, 9.99, '1 Ada Street'), (11, 2, 5, '2 Bob Road'), (12, 3, 7, '3 Cy Lane');
         SELECT shred.protect('customer', 'id', ARRAY['name', 'email', 'born', 'score'], searchable => ARRAY['email'],
                              subject_prefix => 'customer:', normalization => 'email');
         SELECT shred.protect('invoice', 'customer_id', ARRAY['address'], subject_prefix => 'customer:');",
    )
    .unwrap();
    // Writes through 0.2.0's views (its PL/pgSQL trigger, INSTEAD OF INSERT OR UPDATE OR DELETE).
    assert_eq!(view_triggers(&mut c, "customer_plain"), vec!["shred_write 93"]);
    c.batch_execute(
        "INSERT INTO customer_plain VALUES (4, 'Di', 'Di@Example.org', '1990-01-01', 1.5, 'IT'),
                                           (5, 'Eve', 'ADA@example.org', NULL, NULL, 'NL');
         UPDATE customer_plain SET score = 100.25 WHERE id = 1;
         UPDATE customer_plain SET email = 'bob@new.example' WHERE id = 2;
         INSERT INTO invoice_plain VALUES (13, 4, 1.00, '4 Di Road'), (14, 1, 20, '1 Ada Street');
         UPDATE invoice_plain SET address = '2 Bob Avenue' WHERE id = 11;
         DELETE FROM invoice_plain WHERE id = 14;
         SELECT shred.set_tombstone('customer', 'name', '[erased]');
         SELECT shred.erase('customer:3');",
    )
    .unwrap();
    let customers = rows(&mut c, CUSTOMER);
    let invoices = rows(&mut c, INVOICE);
    assert_eq!(
        customers,
        vec![
            "1 | Ada | ada@example.org | 1815-12-10 | 100.25 | UK",
            "2 | Bob | bob@new.example | 2000-02-29 | -0.01 | FR",
            "3 | [erased] | ∅ | ∅ | ∅ | DE",
            "4 | Di | Di@Example.org | 1990-01-01 | 1.5 | IT",
            "5 | Eve | ADA@example.org | ∅ | ∅ | NL",
        ]
    );
    assert_eq!(invoices, vec!["10 | 1 | 9.99 | 1 Ada Street", "11 | 2 | 5 | 2 Bob Avenue", "12 | 3 | 7 | ∅", "13 | 4 | 1.00 | 4 Di Road"]);
    assert_eq!(lookup_0_2_0(&mut c, " ADA@Example.org"), vec![1, 5]);

    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    assert_eq!(extversion(&mut c), env!("CARGO_PKG_VERSION"));
    // Every row reads exactly as before, in a new session too.
    assert_eq!(rows(&mut c, CUSTOMER), customers);
    assert_eq!(rows(&mut c, INVOICE), invoices);
    let mut other = connect("pu_upgrade");
    assert_eq!(rows(&mut other, CUSTOMER), customers);
    assert_eq!(rows(&mut other, INVOICE), invoices);
    // Row tokens were rebuilt from the sealed values: one per subject holding the value, none
    // for the erased subject.
    assert_eq!(lookup(&mut c, " ADA@Example.org"), vec![1, 5]);
    assert_eq!(lookup(&mut c, "di@example.org"), vec![4]);
    assert_eq!(lookup(&mut c, "bob@new.example"), vec![2]);
    assert_eq!(lookup(&mut c, "bob@example.org"), Vec::<i32>::new());
    assert_eq!(lookup(&mut c, "cy@example.org"), Vec::<i32>::new());
    assert_eq!(rows(&mut c, "SELECT id FROM customer WHERE email_bidx IS NULL ORDER BY id"), vec!["3"]);
    // The new trigger (INSTEAD OF INSERT OR UPDATE), and an index on each subject column.
    assert_eq!(view_triggers(&mut c, "customer_plain"), vec!["shred_write 85"]);
    assert_eq!(view_triggers(&mut c, "invoice_plain"), vec!["shred_write 85"]);
    assert_eq!(
        rows(
            &mut c,
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
              WHERE i.indrelid = 'invoice'::regclass AND a.attname = 'customer_id' AND i.indpred IS NULL"
        ),
        vec!["1"]
    );
    assert_eq!(rows(&mut c, "SELECT count(*) FROM pg_proc WHERE proname = 'row_context'"), vec!["0"]);
    // Writes through the views after the upgrade, found by lookups.
    c.batch_execute(
        "INSERT INTO customer_plain VALUES (6, 'Fay', 'fay@example.org', '2001-01-01', 7, 'ES');
         UPDATE customer_plain SET email = 'di@new.example' WHERE id = 4;
         DELETE FROM customer_plain WHERE id = 5;
         INSERT INTO invoice_plain VALUES (15, 6, 3.50, '6 Fay Road');
         UPDATE invoice_plain SET total = 6 WHERE id = 11;
         DELETE FROM invoice_plain WHERE id = 13;",
    )
    .unwrap();
    assert_eq!(
        rows(&mut other, CUSTOMER),
        vec![
            "1 | Ada | ada@example.org | 1815-12-10 | 100.25 | UK",
            "2 | Bob | bob@new.example | 2000-02-29 | -0.01 | FR",
            "3 | [erased] | ∅ | ∅ | ∅ | DE",
            "4 | Di | di@new.example | 1990-01-01 | 1.5 | IT",
            "6 | Fay | fay@example.org | 2001-01-01 | 7 | ES",
        ]
    );
    assert_eq!(
        rows(&mut other, INVOICE),
        vec!["10 | 1 | 9.99 | 1 Ada Street", "11 | 2 | 6 | 2 Bob Avenue", "12 | 3 | 7 | ∅", "15 | 6 | 3.50 | 6 Fay Road"]
    );
    assert_eq!(lookup(&mut c, "FAY@example.org "), vec![6]);
    assert_eq!(lookup(&mut c, "di@new.example"), vec![4]);
    assert_eq!(lookup(&mut c, "di@example.org"), Vec::<i32>::new());
    assert_eq!(lookup(&mut c, " ADA@Example.org"), vec![1]);
    // Subject rights.
    assert_eq!(
        rows(
            &mut c,
            r#"SELECT shred.export_subject('customer:1') -> 'tables' = '{"public.customer": [{"id": 1, "name": "Ada", "email": "ada@example.org", "born": "1815-12-10", "score": 100.25, "country": "UK"}],
                                                                    "public.invoice": [{"id": 10, "customer_id": 1, "total": 9.99, "address": "1 Ada Street"}]}'::jsonb"#
        ),
        vec!["t"]
    );
    assert_eq!(
        rows(
            &mut c,
            r#"SELECT shred.export_subject('customer:3') -> 'tables' = '{"public.customer": [{"id": 3, "name": "[erased]", "email": null, "born": null, "score": null, "country": "DE"}],
                                                                    "public.invoice": [{"id": 12, "customer_id": 3, "total": 7, "address": null}]}'::jsonb"#
        ),
        vec!["t"]
    );
    assert_eq!(
        rows(&mut c, "SELECT * FROM shred.subject_footprint('customer:1')"),
        vec![
            "customer | born | ∅ | 1 | 1 | f",
            "customer | email | ∅ | 1 | 1 | f",
            "customer | name | ∅ | 1 | 1 | f",
            "customer | score | ∅ | 1 | 1 | f",
            "invoice | address | ∅ | 1 | 1 | f",
        ]
    );
    assert_eq!(
        rows(&mut c, "SELECT * FROM shred.subject_footprint('customer:3')"),
        vec![
            "customer | born | ∅ | 1 | 0 | f",
            "customer | email | ∅ | 1 | 1 | t",
            "customer | name | ∅ | 1 | 1 | t",
            "customer | score | ∅ | 1 | 0 | f",
            "invoice | address | ∅ | 1 | 1 | t",
        ]
    );
    assert_eq!(
        rows(&mut c, "SELECT * FROM shred.check()"),
        vec!["customer | email | erased | 1", "customer | name | erased | 1", "invoice | address | erased | 1"]
    );
    // Erasure after the upgrade empties the subject's lookups and values.
    c.batch_execute("SELECT shred.erase('customer:1')").unwrap();
    assert_eq!(lookup(&mut other, " ADA@Example.org"), Vec::<i32>::new());
    assert_eq!(lookup(&mut other, "fay@example.org"), vec![6]);
    assert_eq!(rows(&mut other, "SELECT * FROM customer_plain WHERE id = 1"), vec!["1 | [erased] | ∅ | ∅ | ∅ | UK"]);
    assert_eq!(rows(&mut other, "SELECT * FROM invoice_plain WHERE id = 10"), vec!["10 | 1 | 9.99 | ∅"]);
    assert_eq!(
        rows(&mut other, "SELECT * FROM shred.check()"),
        vec![
            "customer | born | erased | 1",
            "customer | email | erased | 2",
            "customer | name | erased | 2",
            "customer | score | erased | 1",
            "invoice | address | erased | 2",
        ]
    );
}

/// The rows of shred.check() and the lookups a fresh 0.3.0 install gives for the same data as
/// the upgrade test: the upgrade test's expectations are those of 0.3.0 itself.
#[test]
fn fresh_0_3_0_gives_what_the_upgrade_test_expects() {
    let mut c = fresh_db("pu_fresh_control");
    c.batch_execute(
        "CREATE TABLE customer (id int PRIMARY KEY, name text, email text, born date, score numeric, country text);
         CREATE TABLE invoice (id int PRIMARY KEY, customer_id int, total numeric, address text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', '1815-12-10', 99.5, 'UK'),
                                     (2, 'Bob', 'bob@example.org', '2000-02-29', -0.01, 'FR'),
                                     (3, 'Cy', 'cy@example.org', NULL, NULL, 'DE');
         INSERT INTO invoice VALUES (10, 1, 9.99, '1 Ada Street'), (11, 2, 5, '2 Bob Road'), (12, 3, 7, '3 Cy Lane');
         SELECT shred.protect('customer', 'id', ARRAY['name', 'email', 'born', 'score'], searchable => ARRAY['email'],
                              subject_prefix => 'customer:', normalization => 'email');
         SELECT shred.protect('invoice', 'customer_id', ARRAY['address'], subject_prefix => 'customer:');
         INSERT INTO customer_plain VALUES (4, 'Di', 'Di@Example.org', '1990-01-01', 1.5, 'IT'),
                                           (5, 'Eve', 'ADA@example.org', NULL, NULL, 'NL');
         UPDATE customer_plain SET score = 100.25 WHERE id = 1;
         UPDATE customer_plain SET email = 'bob@new.example' WHERE id = 2;
         INSERT INTO invoice_plain VALUES (13, 4, 1.00, '4 Di Road');
         UPDATE invoice_plain SET address = '2 Bob Avenue' WHERE id = 11;
         SELECT shred.set_tombstone('customer', 'name', '[erased]');
         SELECT shred.erase('customer:3');",
    )
    .unwrap();
    assert_eq!(
        rows(&mut c, CUSTOMER),
        vec![
            "1 | Ada | ada@example.org | 1815-12-10 | 100.25 | UK",
            "2 | Bob | bob@new.example | 2000-02-29 | -0.01 | FR",
            "3 | [erased] | ∅ | ∅ | ∅ | DE",
            "4 | Di | Di@Example.org | 1990-01-01 | 1.5 | IT",
            "5 | Eve | ADA@example.org | ∅ | ∅ | NL",
        ]
    );
    assert_eq!(lookup(&mut c, " ADA@Example.org"), vec![1, 5]);
    assert_eq!(lookup(&mut c, "cy@example.org"), Vec::<i32>::new());
    assert_eq!(view_triggers(&mut c, "customer_plain"), vec!["shred_write 85"]);
    assert_eq!(
        rows(&mut c, "SELECT * FROM shred.subject_footprint('customer:3')"),
        vec![
            "customer | born | ∅ | 1 | 0 | f",
            "customer | email | ∅ | 1 | 1 | t",
            "customer | name | ∅ | 1 | 1 | t",
            "customer | score | ∅ | 1 | 0 | f",
            "invoice | address | ∅ | 1 | 1 | t",
        ]
    );
    assert_eq!(
        rows(
            &mut c,
            r#"SELECT shred.export_subject('customer:3') -> 'tables' = '{"public.customer": [{"id": 3, "name": "[erased]", "email": null, "born": null, "score": null, "country": "DE"}],
                                                                    "public.invoice": [{"id": 12, "customer_id": 3, "total": 7, "address": null}]}'::jsonb"#
        ),
        vec!["t"]
    );
    assert_eq!(
        rows(&mut c, "SELECT * FROM shred.check()"),
        vec!["customer | email | erased | 1", "customer | name | erased | 1", "invoice | address | erased | 1"]
    );
}

/// A database created at 0.2.0 and updated has exactly the objects, privileges, policies and
/// event triggers of a fresh install; the 0.2.0 one does not (the comparison can fail).
#[test]
fn fresh_install_equals_upgraded_install() {
    let mut upgraded = db_0_2_0("pu_cat_upgraded");
    let old = catalogue(&mut upgraded);
    upgraded.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    assert_eq!(extversion(&mut upgraded), env!("CARGO_PKG_VERSION"));
    let mut fresh = fresh_db("pu_cat_fresh");
    assert_eq!(extversion(&mut fresh), env!("CARGO_PKG_VERSION"));
    let new = catalogue(&mut fresh);
    assert_eq!(catalogue(&mut upgraded), new);
    // what the comparison covers is in the listing, and tells 0.2.0 from 0.3.0
    assert_ne!(old, new);
    for item in [
        "policy shred.protected_table table_owner *",
        "event trigger pg_shred_follow_renames ddl_command_end shred.follow_renames O ALTER TABLE",
    ] {
        assert!(old.iter().any(|l| l == item), "0.2.0 lacks {item:?}");
        assert!(!new.iter().any(|l| l == item), "0.3.0 has {item:?}");
    }
    for item in [
        "event trigger pg_shred_follow_alter ddl_command_end shred._follow_alter O ALTER TABLE",
        "event trigger pg_shred_follow_drops sql_drop shred._follow_drops O ",
        "config shred.blind_term ",
    ] {
        assert!(new.iter().any(|l| l == item), "0.3.0 lacks {item:?}: {new:#?}");
    }
    assert!(new.iter().any(|l| l.starts_with("shred.protected_table r ") && l.contains(" rls=false,false ")), "{new:#?}");
    assert!(old.iter().any(|l| l.starts_with("shred.protected_table r ") && l.contains(" rls=true,false ")), "{old:#?}");
}

/// A database at 0.4.0, with a protected table, updated to 0.5.0 (which changes `_protect`
/// alone) and then to this version: the objects and function bodies of a fresh install (0.4.0's
/// differ: the listing can tell them apart), the
/// table still works, and a NOT NULL column, which 0.4.0 refused on PostgreSQL 18, is
/// protected.
#[test]
fn update_from_0_4_0_equals_fresh_install() {
    let mut c = empty_db("pu_from_040");
    c.batch_execute(
        "CREATE EXTENSION pg_shred VERSION '0.4.0';
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'one');
         SELECT shred.protect('t', 'id', ARRAY['v']);",
    )
    .unwrap();
    assert_eq!(extversion(&mut c), "0.4.0");
    let old = catalogue(&mut c);
    // 0.5.0 changed _protect alone
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE TO '0.5.0'").unwrap();
    let mid = catalogue(&mut c);
    let changed: Vec<_> = mid.iter().filter(|l| !old.contains(l)).collect();
    assert!(changed.len() == 1 && changed[0].starts_with("shred._protect("), "{changed:#?}");
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    assert_eq!(extversion(&mut c), env!("CARGO_PKG_VERSION"));
    let new = catalogue(&mut fresh_db("pu_from_040_fresh"));
    assert_eq!(catalogue(&mut c), new);
    // 0.4.0's shred._protect, whose body 0.5.0 replaced and whose signature 0.6.0 extended, is
    // in the old listing only
    let protect_0_4_0 = "shred._protect(regclass,name,name[],name[],text,name,text) ";
    assert!(old.iter().any(|l| l.starts_with(protect_0_4_0)), "{old:#?}");
    assert!(!new.iter().any(|l| l.starts_with(protect_0_4_0)), "{new:#?}");
    c.batch_execute(
        "INSERT INTO t_plain VALUES (2, 'two');
         CREATE TABLE nn (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO nn VALUES (1, 'x');
         SELECT shred.protect('nn', 'id', ARRAY['v']);",
    )
    .unwrap();
    assert_eq!(rows(&mut c, "SELECT id || ' ' || v FROM t_plain ORDER BY id"), vec!["1 one", "2 two"]);
    assert_eq!(rows(&mut c, "SELECT v FROM nn_plain"), vec!["x"]);
}

/// A protected table with a searchable column, written through its view and with one erased
/// subject, dumped (custom format) and restored into an empty database: same rows, same
/// envelopes and row tokens, lookups through the dumped blind-index terms, working writes and
/// erasure, intact catalog rows.
#[test]
fn dump_and_restore_of_protected_tables() {
    let mut c = fresh_db("pu_dump");
    c.batch_execute(
        "CREATE TABLE customer (id int PRIMARY KEY, name text, email text, country text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', 'UK'), (2, 'Bob', 'bob@example.org', 'FR');
         SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], searchable => ARRAY['email'],
                              subject_prefix => 'customer:', normalization => 'email');
         INSERT INTO customer_plain VALUES (3, 'Cy', 'cy@example.org', 'DE'), (4, 'Di', 'ADA@example.org', 'IT');
         UPDATE customer_plain SET email = 'bob@new.example' WHERE id = 2;
         SELECT shred.erase('customer:3');",
    )
    .unwrap();
    let view = rows(&mut c, CUSTOMER);
    assert_eq!(
        view,
        vec!["1 | Ada | ada@example.org | UK", "2 | Bob | bob@new.example | FR", "3 | ∅ | ∅ | DE", "4 | Di | ADA@example.org | IT"]
    );
    assert_eq!(lookup(&mut c, "ada@example.org"), vec![1, 4]);
    let stored = "SELECT t::text FROM customer t ORDER BY id";
    let catalog = "SELECT relation, subject_column, subject_prefix, view, protected_at FROM shred.protected_table ORDER BY 1;
                   SELECT * FROM shred.protected_column ORDER BY 1, 2";
    let terms = "SELECT encode(blind_index, 'hex'), key_id FROM shred.blind_term ORDER BY 1, 2";
    // terms of Ada, Di (the same e-mail), Bob's old and new e-mail; none of the erased Cy
    assert_eq!(rows(&mut c, terms).len(), 4);

    let dump = dir().join("pu_dump.dump");
    let dump = dump.to_str().unwrap();
    pg("pg_dump", &["-Fc", "-f", dump, "pu_dump"]);
    let mut r = empty_db("pu_restored");
    pg("pg_restore", &["-d", "pu_restored", dump]);
    assert_eq!(extversion(&mut r), env!("CARGO_PKG_VERSION"));
    assert_eq!(rows(&mut r, CUSTOMER), view);
    assert_eq!(rows(&mut r, stored), rows(&mut c, stored));
    assert_eq!(rows(&mut r, catalog), rows(&mut c, catalog));
    assert_eq!(rows(&mut r, catalog).len(), 3);
    assert_eq!(rows(&mut r, terms), rows(&mut c, terms));
    assert_eq!(view_triggers(&mut r, "customer_plain"), vec!["shred_write 85"]);
    assert_eq!(lookup(&mut r, " ADA@Example.org"), vec![1, 4]);
    assert_eq!(lookup(&mut r, "bob@new.example"), vec![2]);
    assert_eq!(lookup(&mut r, "bob@example.org"), Vec::<i32>::new());
    assert_eq!(lookup(&mut r, "cy@example.org"), Vec::<i32>::new());
    // writes through the restored view
    r.batch_execute(
        "INSERT INTO customer_plain VALUES (5, 'Ed', 'ed@example.org', 'ES');
         UPDATE customer_plain SET email = 'ada@example.org' WHERE id = 5;
         DELETE FROM customer_plain WHERE id = 2;",
    )
    .unwrap();
    assert_eq!(lookup(&mut r, "ada@example.org"), vec![1, 4, 5]);
    assert_eq!(lookup(&mut r, "ed@example.org"), Vec::<i32>::new());
    assert_eq!(lookup(&mut r, "bob@new.example"), Vec::<i32>::new());
    // erasure in the restored database
    r.batch_execute("SELECT shred.erase('customer:1')").unwrap();
    assert_eq!(lookup(&mut r, "ada@example.org"), vec![4, 5]);
    assert_eq!(
        rows(&mut r, CUSTOMER),
        vec!["1 | ∅ | ∅ | UK", "3 | ∅ | ∅ | DE", "4 | Di | ADA@example.org | IT", "5 | Ed | ada@example.org | ES"]
    );
    assert_eq!(rows(&mut r, "SELECT * FROM shred.check()"), vec!["customer | email | erased | 2", "customer | name | erased | 2"]);
    // the source database is untouched by what happened in the restored one
    assert_eq!(lookup(&mut c, "ada@example.org"), vec![1, 4]);
}

/// In an upgraded database, a plain role (no pg_shred role) can neither write the catalog nor
/// run pg_shred's internal functions, and PUBLIC executes only the type's I/O functions and
/// the views' trigger.
#[test]
fn no_privilege_holes_after_upgrade() {
    let mut c = db_0_2_0("pu_privileges");
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    assert_eq!(extversion(&mut c), env!("CARGO_PKG_VERSION"));
    c.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pu_plain') THEN CREATE ROLE pu_plain LOGIN; END IF;
         END $$;
         REVOKE shred_reader, shred_writer, shred_eraser, shred_admin FROM pu_plain;
         CREATE TABLE person (id int PRIMARY KEY, email text);
         INSERT INTO person VALUES (1, 'p1@example.org');
         SELECT shred.protect('person', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'person:');
         GRANT SELECT, INSERT, UPDATE, DELETE ON person, person_plain TO pu_plain;",
    )
    .unwrap();
    let catalog = "SELECT * FROM shred.protected_table; SELECT * FROM shred.protected_column";
    let before = rows(&mut c, catalog);
    assert_eq!(before.len(), 2);
    let mut p = connect_as("pu_privileges", "pu_plain");
    for sql in [
        "INSERT INTO shred.protected_table (relation, subject_column, view) VALUES ('person', 'id', 'person')",
        "UPDATE shred.protected_table SET subject_prefix = 'x'",
        "DELETE FROM shred.protected_table",
        "INSERT INTO shred.protected_column (relation, column_name, plain_type, context) VALUES ('person', 'id', 'int4', 'x')",
        "UPDATE shred.protected_column SET context = 'x'",
        "DELETE FROM shred.protected_column",
        "SELECT shred._as_table_owner('person', 'DROP TABLE person')",
        "SELECT shred._rebuild_row_tokens('person')",
        "SELECT shred._protect('person', 'id', ARRAY['email'], '{}', '', NULL, 'exact')",
        "SELECT shred._open_row(email, 'person:1', 'person.email', NULL::text) FROM person",
        "SELECT * FROM person_plain",
        "SELECT * FROM shred.blind_term",
    ] {
        assert_eq!(sqlstate(p.batch_execute(sql)), "42501", "{sql}");
    }
    assert_eq!(rows(&mut c, catalog), before);
    assert_eq!(rows(&mut c, "SELECT count(*) FROM person"), vec!["1"]);
    let public = rows(
        &mut c,
        "SELECT proname FROM pg_proc WHERE pronamespace = 'shred'::regnamespace
            AND has_function_privilege('public', oid, 'EXECUTE') ORDER BY 1",
    );
    assert_eq!(public, vec!["protected_view_write", "sealed_in", "sealed_out", "sealed_recv", "sealed_send"]);
    // nothing of 0.2.0's catalog access is left: no row-level security, no policies, no writes
    assert_eq!(
        rows(
            &mut c,
            "SELECT c.relname || ' ' || c.relrowsecurity || ' ' || has_table_privilege('public', c.oid, 'INSERT, UPDATE, DELETE')
               FROM pg_class c WHERE c.relnamespace = 'shred'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'protected_%' ORDER BY 1"
        ),
        vec!["protected_column false false", "protected_table false false"]
    );
    assert_eq!(rows(&mut c, "SELECT count(*) FROM pg_policy WHERE polrelid::regclass::text LIKE 'shred.%'"), vec!["0"]);
    drop(p);
    c.batch_execute("DROP TABLE person CASCADE; DROP OWNED BY pu_plain").unwrap();
}

/// shred._rebuild_row_tokens, which the upgrade runs for every table protected under 0.2.0,
/// recomputes the row tokens of a searchable column: lookups find the same rows afterwards.
#[test]
fn rebuild_row_tokens_keeps_lookups() {
    let mut c = fresh_db("pu_rebuild");
    c.batch_execute(
        "CREATE TABLE customer (id int PRIMARY KEY, email text);
         INSERT INTO customer VALUES (1, 'ada@example.org'), (2, 'bob@example.org'), (3, 'cy@example.org');
         SELECT shred.protect('customer', 'id', ARRAY['email'], searchable => ARRAY['email'], normalization => 'email');
         SELECT shred.erase('3');",
    )
    .unwrap();
    let tokens = "SELECT id, encode(email_bidx, 'hex') FROM customer WHERE id < 3 ORDER BY id";
    let before = rows(&mut c, tokens);
    assert_eq!(rows(&mut c, "SELECT shred._rebuild_row_tokens('customer')"), vec!["3"]);
    assert_eq!(rows(&mut c, tokens), before);
    assert_eq!(lookup(&mut c, "ADA@example.org"), vec![1]);
    assert_eq!(rows(&mut c, "SELECT id FROM customer WHERE email_bidx IS NULL"), vec!["3"]);
}

/// 0.2.0's SQL on the current library (between installing the new library and ALTER EXTENSION
/// UPDATE): protect() with a searchable column works, as it did with the 0.2.0 library.
#[test]
fn zero_two_protect_with_a_searchable_column_on_the_current_library() {
    let mut c = db_0_2_0("pu_zero_two_protect");
    c.batch_execute(
        "CREATE TABLE customer (id int PRIMARY KEY, email text);
         INSERT INTO customer VALUES (1, 'ada@example.org');
         SELECT shred.protect('customer', 'id', ARRAY['email'], searchable => ARRAY['email'], normalization => 'email');",
    )
    .unwrap();
    assert_eq!(lookup_0_2_0(&mut c, "ADA@example.org"), vec![1]);
}

/// 0.2.0's SQL on the current library (installed, ALTER EXTENSION ... UPDATE not yet run): an
/// erasure deletes the DEK, so the values are gone at once, but it no longer writes user
/// tables, so 0.2.0's blind indexes of the erased subject stay until the update, which
/// recomputes every row token from the sealed values and leaves the erased subject's NULL
/// (documented: install the library and update the extension together).
#[test]
fn zero_two_erasure_on_the_current_library_ends_lookups_at_the_update() {
    let mut c = db_0_2_0("pu_zero_two_erase");
    c.batch_execute(
        "CREATE TABLE customer (id int PRIMARY KEY, email text);
         INSERT INTO customer VALUES (1, 'ada@example.org'), (2, 'bob@example.org');
         SELECT shred.protect('customer', 'id', ARRAY['email'], searchable => ARRAY['email'], normalization => 'email');",
    )
    .unwrap();
    assert_eq!(lookup_0_2_0(&mut c, "ada@example.org"), vec![1]);
    c.batch_execute("SELECT shred.erase('1')").unwrap();
    assert_eq!(rows(&mut c, "SELECT id, email FROM customer_plain ORDER BY id"), vec!["1 | ∅", "2 | bob@example.org"]);
    assert_eq!(lookup_0_2_0(&mut c, "ada@example.org"), vec![1], "the window the README documents");
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    let lookup = |c: &mut postgres::Client, v: &str| -> Vec<i32> {
        c.query("SELECT id FROM customer WHERE email_bidx IN (SELECT shred.blind_match($1, 'customer.email', 'email')) ORDER BY id", &[&v])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(lookup(&mut c, "ada@example.org"), Vec::<i32>::new());
    assert_eq!(lookup(&mut c, "bob@example.org"), vec![2]);
    assert_eq!(rows(&mut c, "SELECT count(*) FROM customer WHERE id = 1 AND email_bidx IS NULL"), vec!["1"]);
}
