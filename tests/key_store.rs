//! The key store against a real server (started by `scripts/test`): set-based key creation and
//! its races, an erased key told from one never held here, pg_shred's own keys out of reach,
//! typed values that cannot be forged through the SQL surface, the drop guard and the limits on
//! settings.

mod common;

use std::collections::HashSet;

use common::*;

const OPEN: &str = "SELECT shred.open($1::text::shred.sealed, 'ks')";
const IS_ERASED: &str = "SELECT shred.is_erased($1::text::shred.sealed)";

fn seal(c: &mut postgres::Client, subject: &str, plaintext: &str) -> String {
    c.query_one("SELECT shred.seal($1, $2, 'ks')::text", &[&subject, &plaintext]).unwrap().get(0)
}

fn key_id(c: &mut postgres::Client, value: &str) -> i64 {
    c.query_one("SELECT shred.key_id($1::text::shred.sealed)", &[&value]).unwrap().get(0)
}

/// `value` with byte `i` of its binary envelope XORed with `mask`, in text form.
fn flipped(c: &mut postgres::Client, value: &str, i: i32, mask: i32) -> String {
    c.query_one(
        "SELECT ('shred1:' || encode(set_byte(shred.sealed_send($1::text::shred.sealed), $2, get_byte(shred.sealed_send($1::text::shred.sealed), $2) # $3), 'base64'))",
        &[&value, &i, &mask],
    )
    .unwrap()
    .get(0)
}

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Item 3: a value whose key id this key store never held raises 42704 (from `open` and
/// `is_erased`) for every byte of the key id altered, for a value copied from another database,
/// and for an envelope mangled by a client that decoded it as UTF-8; an erased value opens as
/// NULL and `is_erased` says so.
#[test]
fn unknown_key_is_not_erased() {
    let mut c = fresh_db("ks_unknown");
    let v = seal(&mut c, "s1", "ada@example.org");
    let id = key_id(&mut c, &v);
    for i in 1..=8 {
        let w = flipped(&mut c, &v, i, 1);
        assert_ne!(key_id(&mut c, &w), id);
        assert_eq!(sqlstate(c.query_one(OPEN, &[&w])), "42704", "key id byte {i}");
        assert_eq!(sqlstate(c.query_one(IS_ERASED, &[&w])), "42704", "key id byte {i}");
    }
    let w = flipped(&mut c, &v, 1, 1);
    let r = c.query_one(OPEN, &[&w]);
    assert_eq!(message(r), "pg_shred: the sealed value's key is not in this key store");

    // sealed in another database: never "erased" here
    let mut other = fresh_db("ks_unknown_other");
    let foreign = seal(&mut other, "s1", "ada@example.org");
    assert_eq!(sqlstate(c.query_one(OPEN, &[&foreign])), "42704");
    assert_eq!(sqlstate(c.query_one(IS_ERASED, &[&foreign])), "42704");

    // a client decoding the binary envelope as UTF-8 and writing it back: find a value whose
    // key id that decoding changes (key ids are random; a byte >= 0x80 may still begin a valid
    // UTF-8 sequence and survive, and then the value fails to open with 22000 instead)
    let (mut mangled, mut n) = (None, 0);
    while mangled.is_none() {
        n += 1;
        let v = seal(&mut c, &format!("m{n}"), "x");
        let bytes: Vec<u8> = c.query_one("SELECT shred.sealed_send($1::text::shred.sealed)", &[&v]).unwrap().get(0);
        let lossy = String::from_utf8_lossy(&bytes).into_owned().into_bytes();
        if lossy[1..9] != bytes[1..9] {
            mangled = Some(lossy);
        }
    }
    let r = c.query_one("SELECT shred.open($1::shred.sealed, 'ks')", &[&Raw(mangled.unwrap())]);
    let code = sqlstate(r);
    assert!(matches!(code.as_str(), "42704" | "22P03" | "XX001"), "a mangled envelope must not read as erased: {code}");

    // erased here: NULL and is_erased
    assert_eq!(c.query_one(IS_ERASED, &[&v]).unwrap().get::<_, bool>(0), false);
    assert!(c.query_one("SELECT shred.erase('s1')", &[]).unwrap().get::<_, bool>(0));
    assert_eq!(c.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0), None);
    assert!(c.query_one(IS_ERASED, &[&v]).unwrap().get::<_, bool>(0));
}

/// Item 3 inside one transaction: an erasure not yet written to the erasure log (it is written
/// before COMMIT) already makes the value read as erased, not unknown.
#[test]
fn erased_in_this_transaction_opens_as_null() {
    let mut c = fresh_db("ks_same_txn");
    let v = seal(&mut c, "s1", "x");
    let mut t = c.transaction().unwrap();
    t.execute("SELECT shred.erase('s1')", &[]).unwrap();
    assert_eq!(t.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0), None);
    assert!(t.query_one(IS_ERASED, &[&v]).unwrap().get::<_, bool>(0));
    t.rollback().unwrap();
    assert_eq!(c.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("x"));
}

/// Item 3 across a dump and restore, and `replay_erasures` after restoring an older backup: the
/// restored key store still tells erased values from unknown ones, and key ids erased after the
/// backup (even of subjects created after it) read as erased once replayed.
#[test]
fn dump_restore_and_replay_keep_erased_apart_from_unknown() {
    let mut a = fresh_db("ks_dump_src");
    let v1 = seal(&mut a, "s1", "one");
    let v2 = seal(&mut a, "s2", "two");
    let dump = dir().join("ks_dump_src.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-d", "ks_dump_src", "-f"]).arg(&dump));
    // after the backup: s1 erased, s3 created and erased
    let v3 = seal(&mut a, "s3", "three");
    a.batch_execute("SELECT shred.erase('s1'); SELECT shred.erase('s3')").unwrap();
    let dump_after = dir().join("ks_dump_src_after.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-d", "ks_dump_src", "-f"]).arg(&dump_after));

    // the newer dump restored: erased and unknown stay apart
    let mut b = empty_db("ks_dump_new");
    drop(b);
    run(pg_tool("pg_restore").args(["-d", "ks_dump_new"]).arg(&dump_after));
    b = connect("ks_dump_new");
    assert_eq!(b.query_one(OPEN, &[&v1]).unwrap().get::<_, Option<String>>(0), None);
    assert!(b.query_one(IS_ERASED, &[&v3]).unwrap().get::<_, bool>(0));
    assert_eq!(b.query_one(OPEN, &[&v2]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("two"));
    let w = flipped(&mut b, &v2, 1, 1);
    assert_eq!(sqlstate(b.query_one(OPEN, &[&w])), "42704");

    // the older backup restored, then the newer erasure log replayed
    let c = empty_db("ks_dump_old");
    drop(c);
    run(pg_tool("pg_restore").args(["-d", "ks_dump_old"]).arg(&dump));
    let mut c = connect("ks_dump_old");
    assert_eq!(c.query_one(OPEN, &[&v1]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("one"));
    assert_eq!(sqlstate(c.query_one(OPEN, &[&v3])), "42704", "s3 did not exist at the backup");
    let erased: Vec<i64> = a.query_one("SELECT array_agg(key_id ORDER BY key_id) FROM shred.erasure_log", &[]).unwrap().get(0);
    let deleted: i64 = c.query_one("SELECT shred.replay_erasures($1)", &[&erased]).unwrap().get(0);
    assert_eq!(deleted, 1, "only s1's DEK was in the backup");
    assert_eq!(c.query_one(OPEN, &[&v1]).unwrap().get::<_, Option<String>>(0), None);
    assert!(c.query_one(IS_ERASED, &[&v3]).unwrap().get::<_, bool>(0), "s3 is recorded as erased");
    assert_eq!(c.query_one(OPEN, &[&v2]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("two"));
    // s1's record carries its digest (erased_at finds it); s3's has none
    assert!(c.query_one("SELECT shred.erased_at('s1') IS NOT NULL", &[]).unwrap().get::<_, bool>(0));
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.erasure_log WHERE subject_digest IS NULL"), 1);
    // idempotent
    assert_eq!(c.query_one("SELECT shred.replay_erasures($1)", &[&erased]).unwrap().get::<_, i64>(0), 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.erasure_log"), 2);
}

/// Item 4: `replay_erasures` never deletes pg_shred's own keys (blind-index and audit keys),
/// whose key ids a hostile eraser may guess; blind-index lookups and `erased_at` keep working.
#[test]
fn replay_erasures_spares_reserved_keys() {
    let mut c = fresh_db("ks_reserved");
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, email text);
         INSERT INTO t VALUES (1, 'ada@example.org'), (2, 'bob@example.org');
         SELECT shred.protect('t', 'id', ARRAY['email'], searchable => ARRAY['email']);
         SELECT shred.erase('2');",
    )
    .unwrap();
    let reserved: Vec<i64> = c
        .query_one("SELECT array_agg(key_id) FROM shred.subject_key WHERE subject LIKE 'pg_shred:%'", &[])
        .unwrap()
        .get(0);
    assert!(reserved.len() >= 2, "a blind-index key and the audit key: {reserved:?}");
    c.batch_execute("CREATE ROLE ks_eraser LOGIN; GRANT shred_eraser, shred_reader TO ks_eraser").ok();
    let mut e = connect_as("ks_reserved", "ks_eraser");
    let deleted: i64 = e.query_one("SELECT shred.replay_erasures($1)", &[&reserved]).unwrap().get(0);
    assert_eq!(deleted, 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'pg_shred:%'"), reserved.len() as i64);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.erasure_log"), 1, "no record for a reserved key");
    assert_eq!(sqlstate(e.query_one("SELECT shred.replay_erasures(NULL)", &[])), "22004");
    // key ids below 1 (no envelope holds one) and NULLs are not recorded
    let deleted: i64 = e.query_one("SELECT shred.replay_erasures(ARRAY[-1, 0, NULL]::bigint[])", &[]).unwrap().get(0);
    assert_eq!(deleted, 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.erasure_log"), 1);
    let found: i64 = c
        .query_one("SELECT count(*) FROM t WHERE email_bidx IN (SELECT shred.blind_match('ada@example.org', 't.email'))", &[])
        .unwrap()
        .get(0);
    assert_eq!(found, 1);
    assert!(c.query_one("SELECT shred.erased_at('2') IS NOT NULL", &[]).unwrap().get::<_, bool>(0));
    // erase() refuses reserved subjects; direct DML on the key store is refused to non-owners
    assert_eq!(sqlstate(e.query_one("SELECT shred.erase('pg_shred:audit')", &[])), "22023");
    assert_eq!(sqlstate(e.execute("DELETE FROM shred.subject_key", &[])), "42501");
}

/// Item 5: numeric and jsonb are sealed from the value itself; the helpers that sealed any
/// text as numeric or jsonb are gone, and values round-trip exactly.
#[test]
fn typed_values_cannot_be_forged() {
    let mut c = fresh_db("ks_typed");
    for helper in ["seal_numeric_text", "seal_jsonb_text", "open_numeric_text", "open_jsonb_text"] {
        let n = count(&mut c, &format!("SELECT count(*) FROM pg_proc WHERE proname = '{helper}'"));
        assert_eq!(n, 0, "{helper} is gone");
    }
    let row = c
        .query_one(
            "SELECT shred.open_numeric(shred.seal('s', 1.500::numeric, 'n'), 'n')::text,
                    shred.open_numeric(shred.seal('s', 'NaN'::numeric, 'n'), 'n')::text,
                    shred.open_jsonb(shred.seal('s', '{\"b\": [1, 2.50], \"a\": null}'::jsonb, 'j'), 'j')::text,
                    shred.seal('s', NULL::numeric, 'n') IS NULL",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "1.500");
    assert_eq!(row.get::<_, String>(1), "NaN");
    assert_eq!(row.get::<_, String>(2), r#"{"a": null, "b": [1, 2.50]}"#);
    assert!(row.get::<_, bool>(3));
    assert_eq!(sqlstate(c.query_one("SELECT shred.seal(NULL, 1::numeric, 'n')", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.open_numeric(shred.seal('s', '{}'::jsonb))", &[])), "42804");
}

/// Item 5 for a database still on 0.2.0's SQL with this library: the old text-taking helper
/// refuses a text that is not a numeric, without showing it.
#[test]
fn old_numeric_helper_refuses_text() {
    let mut admin = connect("postgres");
    admin.batch_execute("DROP DATABASE IF EXISTS ks_typed_old WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE ks_typed_old").unwrap();
    let mut c = connect("ks_typed_old");
    c.batch_execute("CREATE EXTENSION pg_shred VERSION '0.2.0'").unwrap();
    // bind parameters, as the README asks: PostgreSQL itself echoes statement texts in its log
    let secret = "secret-plaintext";
    let r = c.query_one("SELECT shred.seal_numeric_text('s', $1, 'n')", &[&secret]);
    let m = message(r);
    assert!(!m.contains("secret"), "{m}");
    let r = c.query_one("SELECT shred.seal_jsonb_text('s', $1, 'n')", &[&secret]);
    let m = message(r);
    assert!(!m.contains("secret"), "{m}");
    let ok: String = c.query_one("SELECT shred.open_numeric(shred.seal('s', 2.0::numeric, 'n'), 'n')::text", &[]).unwrap().get(0);
    assert_eq!(ok, "2.0");
}

/// Item 6: `DROP OWNED BY` the extension's owner is refused while DEKs exist, like DROP
/// EXTENSION; with `shred.allow_drop_with_keys` it goes ahead.
#[test]
fn drop_owned_is_guarded() {
    let mut admin = connect("postgres");
    admin
        .batch_execute("DO $$ BEGIN CREATE ROLE ks_owner SUPERUSER LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        .unwrap();
    admin.batch_execute("DROP DATABASE IF EXISTS ks_drop_owned WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE ks_drop_owned OWNER ks_owner").unwrap();
    let mut c = connect_as("ks_drop_owned", "ks_owner");
    c.batch_execute("CREATE EXTENSION pg_shred").unwrap();
    seal(&mut c, "s1", "x");
    assert_eq!(sqlstate(c.batch_execute("DROP OWNED BY ks_owner")), "2BP01");
    assert_eq!(sqlstate(c.batch_execute("DROP OWNED BY postgres, ks_owner")), "2BP01");
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_shred'"), 1);
    // another role's DROP OWNED is no concern of pg_shred's
    c.batch_execute("DO $$ BEGIN CREATE ROLE ks_other; EXCEPTION WHEN duplicate_object THEN NULL; END $$; DROP OWNED BY ks_other")
        .unwrap();
    c.batch_execute("SET shred.allow_drop_with_keys = on; DROP OWNED BY ks_owner").unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_shred'"), 0);
}

/// Item 7: only superusers size the DEK cache.
#[test]
fn key_cache_size_is_superuser_only() {
    let mut c = fresh_db("ks_cache_guc");
    c.batch_execute("DO $$ BEGIN CREATE ROLE ks_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$").unwrap();
    let mut app = connect_as("ks_cache_guc", "ks_app");
    assert_eq!(sqlstate(app.batch_execute("SET shred.key_cache_size = 1000000")), "42501");
    c.batch_execute("SET shred.key_cache_size = 10").unwrap();
}

/// Item 8: key ids are random in [2^52, 2^53): not in creation order, exact as IEEE doubles.
#[test]
fn key_ids_do_not_reveal_creation_order() {
    let mut c = fresh_db("ks_ids");
    let ids: Vec<i64> = c
        .query_one("SELECT array_agg(shred.key_id(shred.seal('s' || g, 'x')) ORDER BY g) FROM generate_series(1, 64) g", &[])
        .unwrap()
        .get(0);
    assert!(ids.iter().all(|id| (1i64 << 52..1i64 << 53).contains(id)), "{ids:?}");
    assert!(ids.windows(2).any(|w| w[0] > w[1]), "ids must not follow creation order: {ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 64);
}

/// Item 1: `create_keys` creates the missing DEKs set-based; seals afterwards use them;
/// duplicates, existing subjects and a second call create nothing; bad input is refused.
#[test]
fn create_keys_creates_missing_keys_once() {
    let mut c = fresh_db("ks_create");
    let before = seal(&mut c, "old", "x");
    let made: i64 = c
        .query_one("SELECT shred.create_keys(array['old', 'a', 'b', 'a'] || array(SELECT 'n' || g FROM generate_series(1, 1000) g))", &[])
        .unwrap()
        .get(0);
    assert_eq!(made, 1002);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject NOT LIKE 'pg_shred:%'"), 1003);
    let again: i64 = c.query_one("SELECT shred.create_keys(array['a', 'b', 'old'])", &[]).unwrap().get(0);
    assert_eq!(again, 0);
    // a seal uses the DEK created, in this session and in another one
    let stored: i64 = c.query_one("SELECT key_id FROM shred.subject_key WHERE subject = 'n500'", &[]).unwrap().get(0);
    let v = seal(&mut c, "n500", "x");
    assert_eq!(key_id(&mut c, &v), stored);
    let mut d = connect("ks_create");
    let w = seal(&mut d, "n1", "y");
    assert_eq!(d.query_one(OPEN, &[&w]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("y"));
    assert_eq!(c.query_one(OPEN, &[&before]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("x"));
    assert_eq!(sqlstate(c.query_one("SELECT shred.create_keys(NULL)", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.create_keys(array['a', NULL])", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.create_keys(array['pg_shred:x'])", &[])), "22023");
    assert_eq!(c.query_one("SELECT shred.create_keys('{}')", &[]).unwrap().get::<_, i64>(0), 0);
    // shred_writer may call it; a role without it may not
    c.batch_execute(
        "DO $$ BEGIN CREATE ROLE ks_nobody LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
    )
    .unwrap();
    let mut nobody = connect_as("ks_create", "ks_nobody");
    assert_eq!(sqlstate(nobody.query_one("SELECT shred.create_keys(array['z'])", &[])), "42501");
}

/// Item 1, races: two sessions creating overlapping sets of subjects (`create_keys` against
/// `create_keys` and against single first seals), each in an open transaction, end with one DEK
/// per subject, and every value sealed by either opens.
#[test]
fn create_keys_races_end_with_one_key_per_subject() {
    let mut setup = fresh_db("ks_race");
    drop(setup.batch_execute("SELECT 1"));
    let mut a = connect("ks_race");
    let mut b = connect("ks_race");
    a.batch_execute("BEGIN; SELECT shred.create_keys(array(SELECT 'r' || g FROM generate_series(1, 200) g))").unwrap();
    // b overlaps: it waits for a on the conflicting subjects, then keeps a's DEKs
    let handle = std::thread::spawn(move || {
        b.batch_execute("BEGIN").unwrap();
        let made: i64 = b
            .query_one("SELECT shred.create_keys(array(SELECT 'r' || g FROM generate_series(101, 300) g))", &[])
            .unwrap()
            .get(0);
        let v: String = b.query_one("SELECT shred.seal('r150', 'from b', 'ks')::text", &[]).unwrap().get(0);
        b.batch_execute("COMMIT").unwrap();
        (made, v)
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let single: String = a.query_one("SELECT shred.seal('r250', 'from a', 'ks')::text", &[]).unwrap().get(0);
    a.batch_execute("COMMIT").ok();
    let (made_b, from_b) = handle.join().unwrap();
    // b created r201..r300 but r250 when a's single seal, not blocked behind b, got there first
    assert!(made_b == 99 || made_b == 100, "b created only (some of) r201..r300: {made_b}");
    assert_eq!(count(&mut setup, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'r%'"), 300);
    assert_eq!(count(&mut setup, "SELECT count(DISTINCT subject) FROM shred.subject_key WHERE subject LIKE 'r%'"), 300);
    let mut check = connect("ks_race");
    assert_eq!(check.query_one(OPEN, &[&from_b]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("from b"));
    let r = check.query_one(OPEN, &[&single]);
    // a's single seal of r250 either waited for b (and used b's DEK) or created it first
    assert_eq!(r.unwrap().get::<_, Option<String>>(0).as_deref(), Some("from a"));
}

/// Item 1 against erasure: a `create_keys` of subjects whose erasure another session has not
/// committed yet waits for it (their DEK rows are locked by the erasure), then gives each of them
/// one new DEK: the erasure stands for every value sealed before it, and the subjects exist again
/// with new DEKs only.
#[test]
fn create_keys_against_erase() {
    let mut c = fresh_db("ks_race_erase");
    c.batch_execute("SELECT shred.create_keys(array(SELECT 'e' || g FROM generate_series(1, 100) g))").unwrap();
    let old: String = c.query_one("SELECT shred.seal('e1', 'old', 'ks')::text", &[]).unwrap().get(0);
    let mut a = connect("ks_race_erase");
    let mut b = connect("ks_race_erase");
    a.batch_execute("BEGIN; SELECT shred.erase(array(SELECT 'e' || g FROM generate_series(1, 100) g))").unwrap();
    let handle = std::thread::spawn(move || {
        let made: i64 = b
            .query_one("SELECT shred.create_keys(array(SELECT 'e' || g FROM generate_series(1, 150) g))", &[])
            .unwrap()
            .get(0);
        made
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!handle.is_finished(), "create_keys waits for the erasure");
    a.batch_execute("COMMIT").unwrap();
    let made = handle.join().unwrap();
    assert_eq!(made, 150);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'e%'"), 150);
    assert_eq!(count(&mut c, "SELECT count(DISTINCT subject) FROM shred.subject_key WHERE subject LIKE 'e%'"), 150);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.erasure_log"), 100);
    assert_eq!(c.query_one(OPEN, &[&old]).unwrap().get::<_, Option<String>>(0), None, "the old value stays erased");
    assert_eq!(c.query_one("SELECT shred.create_keys(array(SELECT 'e' || g FROM generate_series(1, 150) g))", &[]).unwrap().get::<_, i64>(0), 0);
}

/// An erasure's record survives a flush of the queue inside a subtransaction that is then rolled
/// back (a PL/pgSQL exception block): the rolled-back write is queued again and committed, so the
/// erased values read as erased (NULL), not as unknown, and `erased_at` knows the erasure. The
/// same holds for blind-index terms written by an enclosing transaction.
#[test]
fn erasure_record_survives_rolled_back_subtransaction() {
    let mut c = fresh_db("ks_subxact");
    c.batch_execute(
        "CREATE TABLE pt (id int PRIMARY KEY, subj text NOT NULL, email text);
         INSERT INTO pt VALUES (1, 'alice', 'a@x'), (2, 'bob', 'b@x');
         SELECT shred.protect('pt', 'subj', ARRAY['email'], searchable => ARRAY['email']);",
    )
    .unwrap();
    c.batch_execute(
        "BEGIN;
         SELECT shred.erase('alice');
         INSERT INTO pt_plain (id, subj, email) VALUES (3, 'carol', 'c@x');
         DO $$ BEGIN PERFORM shred.erased_at('zzz'); RAISE EXCEPTION 'x'; EXCEPTION WHEN others THEN NULL; END $$;
         COMMIT;",
    )
    .unwrap();
    let rows: Vec<(i32, Option<String>)> = c
        .query("SELECT id, email FROM pt_plain ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, vec![(1, None), (2, Some("b@x".into())), (3, Some("c@x".into()))]);
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.erasure_log"), 1);
    assert!(c.query_one("SELECT shred.erased_at('alice') IS NOT NULL", &[]).unwrap().get::<_, bool>(0));
    let found = count(&mut c, "SELECT count(*) FROM pt WHERE email_bidx IN (SELECT shred.blind_match('c@x', 'pt.email'))");
    assert_eq!(found, 1, "carol's term was written again after the rollback undid it");
    let missing = count(&mut c, "SELECT coalesce(sum(value_count), 0)::bigint FROM shred.check() WHERE problem = 'DEK missing (not erased)'");
    assert_eq!(missing, 0);
}

/// The drop guard covers every path that drops the key store: the schema the extension was
/// created in (`DROP SCHEMA public CASCADE` by the database owner) and `DROP OWNED BY` its owner.
#[test]
fn drop_guard_covers_the_extension_schema() {
    let mut admin = connect("postgres");
    admin
        .batch_execute("DO $$ BEGIN CREATE ROLE ks_dbown LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        .unwrap();
    admin.batch_execute("DROP DATABASE IF EXISTS ks_drop_schema WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE ks_drop_schema OWNER ks_dbown").unwrap();
    let mut c = connect("ks_drop_schema");
    c.batch_execute("CREATE EXTENSION pg_shred; ALTER SCHEMA public OWNER TO ks_dbown").unwrap();
    seal(&mut c, "s1", "x");
    let mut owner = connect_as("ks_drop_schema", "ks_dbown");
    assert_eq!(sqlstate(owner.batch_execute("DROP SCHEMA public CASCADE")), "2BP01");
    assert_eq!(sqlstate(owner.batch_execute("DROP OWNED BY ks_dbown CASCADE")), "2BP01");
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_shred'"), 1);
    // another schema is no concern of pg_shred's
    owner.batch_execute("CREATE SCHEMA other; DROP SCHEMA other CASCADE").unwrap();
}

/// On a fresh key store no sequential key id was ever handed out: a pre-0.4.0-shaped value (key
/// id 7) from elsewhere is unknown (42704), not erased.
#[test]
fn unissued_sequential_key_id_is_unknown() {
    let mut c = fresh_db("ks_unissued");
    let v = seal(&mut c, "s1", "x");
    let forged: String = c
        .query_one(
            "SELECT 'shred1:' || encode(overlay(shred.sealed_send($1::text::shred.sealed) placing '\\x0000000000000007'::bytea from 2 for 8), 'base64')",
            &[&v],
        )
        .unwrap()
        .get(0);
    assert_eq!(key_id(&mut c, &forged), 7);
    assert_eq!(sqlstate(c.query_one(IS_ERASED, &[&forged])), "42704");
    assert_eq!(sqlstate(c.query_one(OPEN, &[&forged])), "42704");
}

/// The window between installing this library and `ALTER EXTENSION pg_shred UPDATE` on a 0.3.0
/// database: 0.3.0's SQL keeps working (protect, writes through the view, typed values, erasure
/// with its record, unknown key ids), and after the update every value opens as before.
#[test]
fn library_window_with_0_3_0_sql() {
    let mut admin = connect("postgres");
    admin.batch_execute("DROP DATABASE IF EXISTS ks_window WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE ks_window").unwrap();
    let mut c = connect("ks_window");
    c.batch_execute("CREATE EXTENSION pg_shred VERSION '0.3.0'").unwrap();
    c.batch_execute(
        "CREATE TABLE w (id int PRIMARY KEY, email text, score numeric);
         INSERT INTO w VALUES (1, 'a@x', 1.50), (2, 'b@x', 2);
         SELECT shred.protect('w', 'id', ARRAY['email', 'score'], searchable => ARRAY['email']);
         INSERT INTO w_plain (id, email, score) VALUES (3, 'c@x', 3.25);
         SELECT shred.erase('2');",
    )
    .unwrap();
    let v = seal(&mut c, "s1", "x");
    let foreign = seal(&mut fresh_db("ks_window_other"), "s1", "y");
    let check = |c: &mut postgres::Client| {
        let rows: Vec<(i32, Option<String>, Option<String>)> = c
            .query("SELECT id, email, score::text FROM w_plain ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            rows,
            vec![(1, Some("a@x".into()), Some("1.50".into())), (2, None, None), (3, Some("c@x".into()), Some("3.25".into()))]
        );
        assert_eq!(count(c, "SELECT count(*) FROM w WHERE email_bidx IN (SELECT shred.blind_match('c@x', 'w.email'))"), 1);
        assert!(c.query_one("SELECT shred.erased_at('2') IS NOT NULL", &[]).unwrap().get::<_, bool>(0));
    };
    check(&mut c);
    assert_eq!(sqlstate(c.query_one(OPEN, &[&foreign])), "42704");
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    assert_eq!(c.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'", &[]).unwrap().get::<_, String>(0), env!("CARGO_PKG_VERSION"));
    check(&mut c);
    assert_eq!(c.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("x"));
    assert_eq!(sqlstate(c.query_one(OPEN, &[&foreign])), "42704");
    assert_eq!(c.query_one("SELECT shred.create_keys(ARRAY['n1', 's1'])", &[]).unwrap().get::<_, i64>(0), 1);
}

/// A backend remembers key ids whose erasure a committed transaction recorded (opening them again
/// reads nothing), but never its own transaction's records, which a rollback takes away, and it
/// forgets them all with the key store they came from.
#[test]
fn remembered_erasures_follow_commits_and_the_key_store() {
    let mut c = fresh_db("ks_remember");
    let v = seal(&mut c, "s1", "x");
    // erased and recorded (erased_at flushes the record) in a transaction that rolls back
    c.batch_execute("BEGIN; SELECT shred.erase('s1'); SELECT shred.erased_at('s1')").unwrap();
    assert_eq!(c.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0), None);
    assert!(c.query_one(IS_ERASED, &[&v]).unwrap().get::<_, bool>(0));
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(c.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("x"));
    assert!(!c.query_one(IS_ERASED, &[&v]).unwrap().get::<_, bool>(0));
    // erased for good by another session: remembered here once seen
    let mut d = connect("ks_remember");
    d.query_one("SELECT shred.erase('s1')", &[]).unwrap();
    for _ in 0..2 {
        assert_eq!(c.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0), None);
        assert!(c.query_one(IS_ERASED, &[&v]).unwrap().get::<_, bool>(0));
    }
    // a new key store in the same session never held that key id
    c.batch_execute("SET shred.allow_drop_with_keys = on; DROP EXTENSION pg_shred; CREATE EXTENSION pg_shred; RESET shred.allow_drop_with_keys")
        .unwrap();
    assert_eq!(sqlstate(c.query_one(OPEN, &[&v])), "42704");
    assert_eq!(sqlstate(c.query_one(IS_ERASED, &[&v])), "42704");
}

/// Issue "open and seal at real scale", items 2 and 3: the DEK cache's two tiers (compact DEKs,
/// and the 16,384 most recently used kept expanded) over more subjects than the hot tier holds:
/// every value opens to what was sealed on a first and a second pass, the cache holds every
/// DEK while it has room and never more than `shred.key_cache_size`, and an erasure (this
/// session's own or another session's) takes effect in both tiers.
#[test]
fn key_cache_tiers_and_bound_hold_over_many_subjects() {
    const N: i64 = 20_000; // more than the hot tier's 16,384
    let mut c = fresh_db("ks_cache_tiers");
    c.batch_execute(&format!(
        "CREATE TABLE t AS SELECT g, 'c' || g AS subject, shred.seal('c' || g, 'v' || g, 'ks') AS v
           FROM generate_series(1, {N}) g"
    ))
    .unwrap();
    let mut a = connect("ks_cache_tiers");
    a.batch_execute("SET shred.key_cache_size = 30000").unwrap();
    let right = "SELECT count(*) FROM t WHERE shred.open(v, 'ks') = 'v' || g";
    let entries = "SELECT shred.key_cache_entries()";
    for pass in 1..=2 {
        assert_eq!(count(&mut a, right), N, "pass {pass}");
        assert_eq!(count(&mut a, entries), N, "pass {pass}: every DEK cached");
    }
    // erased here (c1 is no longer expanded, c20000 is), seen in the erasing transaction and
    // after it
    a.batch_execute(&format!("BEGIN; SELECT shred.erase('c1'); SELECT shred.erase('c{N}')")).unwrap();
    assert_eq!(count(&mut a, right), N - 2);
    a.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut a, right), N - 2);
    assert_eq!(count(&mut a, "SELECT count(*) FROM t WHERE shred.open(v, 'ks') IS NULL"), 2);
    // erased by another session: gone here too once it commits (the whole cache is dropped)
    let mut b = connect("ks_cache_tiers");
    b.batch_execute("SELECT shred.erase('c2'); SELECT shred.erase('c19999')").unwrap();
    assert_eq!(count(&mut a, right), N - 4);
    assert_eq!(count(&mut a, "SELECT count(*) FROM t WHERE shred.open(v, 'ks') IS NULL"), 4);
    // a small cache: bounded, full after a pass, and still right on every row
    a.batch_execute("SET shred.key_cache_size = 1000").unwrap();
    for pass in 1..=2 {
        assert_eq!(count(&mut a, right), N - 4, "small cache, pass {pass}");
        assert_eq!(count(&mut a, entries), 1000, "small cache, pass {pass}");
    }
    // sealing through the full cache: existing subjects keep their DEK
    let reseal = format!("SELECT count(*) FROM t WHERE g BETWEEN 3 AND {} AND shred.open(shred.seal(subject, 'w', 'ks'), 'ks') = 'w'", N - 2);
    assert_eq!(count(&mut a, &reseal), N - 4);
    assert_eq!(count(&mut a, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'c%'"), N - 4);
}

/// Issue "open and seal at real scale", item 3: a transaction that meets many erased values
/// reads the erasure log's committed key ids once (one sequential scan) and then answers every
/// erased key id from memory (no more index probes), never counting its own erasure as final:
/// after a rollback that subject's values open again.
#[test]
fn erased_scan_reads_the_log_once_and_keeps_own_erasures_apart() {
    const N: i64 = 1_500; // more than the 1,000 lookups after which the log is read at once
    let mut c = fresh_db("ks_erased_scan");
    c.batch_execute(&format!(
        "CREATE TABLE t AS SELECT g, shred.seal('e' || g, 'v' || g, 'ks') AS v FROM generate_series(1, {N}) g;
         SELECT shred.erase(ARRAY(SELECT 'e' || g FROM generate_series(1, {N}) g))"
    ))
    .unwrap();
    let own = seal(&mut c, "own", "x");
    let mut a = connect("ks_erased_scan");
    let nulls = "SELECT count(*) FROM t WHERE shred.open(v, 'ks') IS NULL";
    let stats = "SELECT coalesce(seq_scan, 0) + 0 * coalesce(idx_scan, 0), coalesce(idx_scan, 0)
                   FROM pg_stat_xact_user_tables WHERE relid = 'shred.erasure_log'::regclass";
    let mut t = a.transaction().unwrap();
    // this transaction's own erasure, recorded in the log (erased_at writes the record)
    t.batch_execute("SELECT shred.erase('own'); SELECT shred.erased_at('own')").unwrap();
    assert_eq!(t.query_one(nulls, &[]).unwrap().get::<_, i64>(0), N);
    let row = t.query_one(stats, &[]).unwrap();
    let (seq1, idx1): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(seq1, 1, "the log was read at once, one time");
    assert!(idx1 >= 1_000 && idx1 < N, "probes only until the log was read: {idx1}");
    assert_eq!(t.query_one(nulls, &[]).unwrap().get::<_, i64>(0), N);
    let row = t.query_one(stats, &[]).unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (seq1, idx1), "a second pass reads nothing");
    assert_eq!(t.query_one(OPEN, &[&own]).unwrap().get::<_, Option<String>>(0), None);
    t.rollback().unwrap();
    // the own erasure rolled back: not remembered as erased
    assert_eq!(a.query_one(OPEN, &[&own]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("x"));
    assert!(!a.query_one(IS_ERASED, &[&own]).unwrap().get::<_, bool>(0));
    assert_eq!(count(&mut a, nulls), N);
}

/// A DEK created by a transaction that is prepared (two-phase commit) and then rolled back is
/// not left in the preparing backend's cache: a later seal there creates a DEK that exists, so
/// another session opens its value.
#[test]
fn prepared_then_rolled_back_key_is_not_cached() {
    let mut c = fresh_db("ks_prepared");
    c.batch_execute("BEGIN; SELECT shred.seal('p1', 'x', 'ks'); PREPARE TRANSACTION 'ks_prepared_p1'").unwrap();
    c.batch_execute("ROLLBACK PREPARED 'ks_prepared_p1'").unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject = 'p1'"), 0);
    let v = seal(&mut c, "p1", "y");
    assert_eq!(count(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject = 'p1'"), 1);
    let mut d = connect("ks_prepared");
    assert_eq!(d.query_one(OPEN, &[&v]).unwrap().get::<_, Option<String>>(0).as_deref(), Some("y"));
}
