//! Integration tests against a real PostgreSQL server of the major in PG_SHRED_PG (started by
//! `scripts/test`): real commits, several sessions, COPY, the binary protocol, pg_dump/pg_restore, encodings.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::*;

const OPEN: &str = "SELECT shred.open($1::text::shred.sealed, $2)";

fn seal(c: &mut postgres::Client, subject: &str, plaintext: &str, context: &str) -> String {
    c.query_one("SELECT shred.seal($1, $2::text, $3)::text", &[&subject, &plaintext, &context])
        .expect("seal")
        .get(0)
}

fn open(c: &mut postgres::Client, env: &str, context: &str) -> Option<String> {
    c.query_one(OPEN, &[&env, &context]).expect("open").get(0)
}

/// The SQLSTATE with which opening `env` fails.
fn open_fails(c: &mut postgres::Client, env: &str, context: &str) -> String {
    sqlstate(c.query_one(OPEN, &[&env, &context]))
}

/// DEKs of data subjects (pg_shred's own keys, under reserved `pg_shred:` subjects, left out).
fn key_count(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM shred.subject_key WHERE NOT starts_with(subject, 'pg_shred:')", &[])
        .expect("count")
        .get(0)
}

/// C1, H4: session A opens (DEK in use), session B erases and commits: A's next open is NULL.
/// Before B commits, A still opens.
#[test]
fn erase_committed_in_one_session_is_seen_by_another() {
    let mut a = fresh_db("it_c1");
    let mut b = connect("it_c1");
    let v = seal(&mut a, "customer:1", "ada@example.org", "customer.email");
    let keep = seal(&mut a, "customer:2", "bob@example.org", "customer.email");
    assert_eq!(open(&mut a, &v, "customer.email").as_deref(), Some("ada@example.org"));

    b.batch_execute("BEGIN").unwrap();
    let erased: bool = b.query_one("SELECT shred.erase('customer:1')", &[]).unwrap().get(0);
    assert!(erased);
    assert_eq!(open(&mut a, &v, "customer.email").as_deref(), Some("ada@example.org"), "not yet committed");
    b.batch_execute("COMMIT").unwrap();

    assert_eq!(open(&mut a, &v, "customer.email"), None);
    let is_erased: bool = a.query_one("SELECT shred.is_erased($1::text::shred.sealed)", &[&v]).unwrap().get(0);
    assert!(is_erased);
    assert_eq!(open(&mut a, &keep, "customer.email").as_deref(), Some("bob@example.org"));
    // and a prepared statement prepared before the erasure sees it too
    let stmt = b.prepare(OPEN).unwrap();
    let got: Option<String> = b.query_one(&stmt, &[&v, &"customer.email"]).unwrap().get(0);
    assert_eq!(got, None);
}

/// D1: ROLLBACK and ROLLBACK TO SAVEPOINT undo an erasure.
#[test]
fn rollback_and_savepoint_keep_the_subject() {
    let mut a = fresh_db("it_d1");
    let mut b = connect("it_d1");
    let v = seal(&mut a, "customer:1", "ada", "");

    b.batch_execute("BEGIN; SELECT shred.erase('customer:1'); ROLLBACK").unwrap();
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("ada"));

    b.batch_execute("BEGIN; SAVEPOINT s; SELECT shred.erase('customer:1'); ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("ada"));
    assert_eq!(open(&mut b, &v, "").as_deref(), Some("ada"));

    // the erasing session itself sees its own uncommitted erasure, and its rollback
    b.batch_execute("BEGIN").unwrap();
    b.query_one("SELECT shred.erase('customer:1')", &[]).unwrap();
    assert_eq!(open(&mut b, &v, ""), None);
    b.batch_execute("ROLLBACK").unwrap();
    assert_eq!(open(&mut b, &v, "").as_deref(), Some("ada"));
}

/// D1: an aborted first seal leaves no key behind, and the subject can be sealed afterwards.
#[test]
fn aborted_first_seal_leaves_no_orphan_key() {
    let mut a = fresh_db("it_d1_orphan");
    let before = key_count(&mut a);
    a.batch_execute("BEGIN").unwrap();
    let v = seal(&mut a, "customer:new", "x", "");
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("x"));
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(key_count(&mut a), before);
    assert_eq!(open_fails(&mut a, &v, ""), "42704", "its DEK was never committed: not erased, unknown");
    let w = seal(&mut a, "customer:new", "y", "");
    assert_eq!(open(&mut a, &w, "").as_deref(), Some("y"));
    assert_eq!(key_count(&mut a), before + 1);
}

/// D2: a REPEATABLE READ transaction that opened a subject before another session's erasure
/// committed gets NULL afterwards, with and without a transaction id of its own.
#[test]
fn old_snapshots_do_not_resurrect_an_erasure() {
    let mut a = fresh_db("it_d2");
    let mut b = connect("it_d2");
    let v1 = seal(&mut a, "customer:1", "one", "");
    let v2 = seal(&mut a, "customer:2", "two", "");

    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(open(&mut a, &v1, "").as_deref(), Some("one"));
    b.query_one("SELECT shred.erase('customer:1')", &[]).unwrap();
    assert_eq!(open(&mut a, &v1, ""), None);
    // the snapshot still sees the key row; the lookup must not
    let rows: i64 = a.query_one("SELECT count(*) FROM shred.subject_key WHERE subject = 'customer:1'", &[]).unwrap().get(0);
    assert_eq!(rows, 1, "the transaction snapshot predates the erasure");
    a.batch_execute("COMMIT").unwrap();

    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; CREATE TEMP TABLE w(x int); INSERT INTO w VALUES (1)").unwrap();
    assert_eq!(open(&mut a, &v2, "").as_deref(), Some("two"));
    b.query_one("SELECT shred.erase('customer:2')", &[]).unwrap();
    assert_eq!(open(&mut a, &v2, ""), None);
    a.batch_execute("COMMIT").unwrap();
}

/// An erasure from a REPEATABLE READ transaction whose snapshot cannot see a DEK created
/// after it began must not report "nothing to erase" and leave the subject readable.
#[test]
fn erase_from_an_old_snapshot_does_not_miss_a_new_key() {
    let mut a = fresh_db("it_erase_rr");
    let mut b = connect("it_erase_rr");
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    a.query_one("SELECT 1", &[]).unwrap(); // take the snapshot
    let v = seal(&mut b, "customer:late", "late", "");
    assert_eq!(sqlstate(a.query_one("SELECT shred.erase('customer:late')", &[])), "40001");
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(open(&mut b, &v, "").as_deref(), Some("late"));
}

/// C5: two sessions seal the first value of a new subject at the same moment: one DEK, both
/// values open. First with an explicit interleaving, then with many threads at once.
#[test]
fn concurrent_first_seals_share_one_dek() {
    let mut a = fresh_db("it_c5");
    a.batch_execute("BEGIN").unwrap();
    let va = seal(&mut a, "customer:race", "from a", "");
    let hb = thread::spawn(|| {
        let mut b = connect("it_c5");
        seal(&mut b, "customer:race", "from b", "") // waits for A's insert to commit
    });
    thread::sleep(Duration::from_millis(300));
    a.batch_execute("COMMIT").unwrap();
    let vb = hb.join().expect("thread b");
    let ids: (i64, i64) = {
        let r = a
            .query_one("SELECT shred.key_id($1::text::shred.sealed), shred.key_id($2::text::shred.sealed)", &[&va, &vb])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(ids.0, ids.1);
    assert_eq!(open(&mut a, &va, "").as_deref(), Some("from a"));
    assert_eq!(open(&mut a, &vb, "").as_deref(), Some("from b"));

    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut c = connect("it_c5");
                barrier.wait();
                (i, seal(&mut c, "customer:stampede", &format!("value {i}"), ""))
            })
        })
        .collect();
    for h in handles {
        let (i, v) = h.join().expect("thread");
        assert_eq!(open(&mut a, &v, "").unwrap(), format!("value {i}"));
    }
    let keys: i64 = a
        .query_one("SELECT count(*) FROM shred.subject_key WHERE subject = 'customer:stampede'", &[])
        .unwrap()
        .get(0);
    assert_eq!(keys, 1);
}

/// C2: several sessions open a subject in a loop while another erases it: once the erasure
/// has committed, no open succeeds any more.
#[test]
fn no_open_succeeds_after_a_concurrent_erasure_commits() {
    let mut a = fresh_db("it_c2");
    let v = seal(&mut a, "customer:hot", "hot value", "");
    let erased = Arc::new(AtomicBool::new(false));
    let late_successes = Arc::new(AtomicUsize::new(0));
    let opens_before = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (erased, late, before, v) = (erased.clone(), late_successes.clone(), opens_before.clone(), v.clone());
            thread::spawn(move || {
                let mut c = connect("it_c2");
                let stmt = c.prepare(OPEN).unwrap();
                for _ in 0..400 {
                    let committed = erased.load(Ordering::SeqCst);
                    let got: Option<String> = c.query_one(&stmt, &[&v, &""]).unwrap().get(0);
                    match (committed, got) {
                        (true, Some(_)) => {
                            late.fetch_add(1, Ordering::SeqCst);
                        }
                        (false, Some(p)) => {
                            assert_eq!(p, "hot value");
                            before.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let mut e = connect("it_c2");
    let done: bool = e.query_one("SELECT shred.erase('customer:hot')", &[]).unwrap().get(0);
    assert!(done);
    erased.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("reader");
    }
    assert!(opens_before.load(Ordering::SeqCst) > 0, "the readers opened the value before the erasure");
    assert_eq!(late_successes.load(Ordering::SeqCst), 0);
}

/// C8: a new subject cannot get a DEK inside a read-only transaction; an existing one can be
/// sealed and opened there.
#[test]
fn read_only_transactions() {
    let mut a = fresh_db("it_c8");
    let v = seal(&mut a, "customer:1", "x", "");
    a.batch_execute("BEGIN READ ONLY").unwrap();
    let w = seal(&mut a, "customer:1", "y", "");
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("x"));
    assert_eq!(open(&mut a, &w, "").as_deref(), Some("y"));
    assert_eq!(sqlstate(a.query_one("SELECT shred.seal('customer:brand-new', 'z')", &[])), "25006");
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(sqlstate(a.batch_execute("BEGIN READ ONLY; SELECT shred.erase('customer:1')")), "25006");
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("x"));
}

/// G9: a missing, empty, short, group-readable or wrong root key fails closed with SQLSTATE
/// F0000, for seal, open and erase, and writes nothing.
#[test]
fn bad_root_keys_fail_closed_and_write_nothing() {
    let mut a = fresh_db("it_g9");
    let v = seal(&mut a, "customer:1", "x", "");
    let before = key_count(&mut a);
    let wrong = key_file("g9_wrong", &random_key(), 0o600);
    let short = key_file("g9_short", &random_key()[..31], 0o600);
    let empty = key_file("g9_empty", b"", 0o600);
    let open_to_group = key_file("g9_group", &random_key(), 0o640);
    let missing = format!("{}/g9_missing.key", dir().display());
    let cases = [
        ("", "no root key is configured"),
        (missing.as_str(), "cannot open it"),
        (empty.as_str(), "it is empty"),
        (short.as_str(), "neither 32 raw bytes nor base64"),
        (open_to_group.as_str(), "must not be accessible by group or others"),
        (wrong.as_str(), "is not root-key version 1 of this database"),
    ];
    for (path, why) in cases {
        a.batch_execute(&format!("SET shred.root_key_file = '{path}'")).unwrap();
        for sql in [
            "SELECT shred.seal('customer:new', 'y')",
            "SELECT shred.seal('customer:1', 'y')",
            "SELECT shred.erase('customer:1')",
        ] {
            let r = a.query_one(sql, &[]);
            let err = r.expect_err(sql);
            assert_eq!(err.code().map(|c| c.code()), Some("F0000"), "{sql} with {path:?}");
            let msg = err.as_db_error().unwrap().message().to_string();
            assert!(msg.contains(why), "{sql} with {path:?}: {msg}");
        }
        let r = a.query_one(OPEN, &[&v, &""]);
        assert_eq!(sqlstate(r), "F0000", "open with {path:?}");
        assert_eq!(key_count(&mut a), before, "nothing written with {path:?}");
    }
    a.batch_execute("RESET shred.root_key_file").unwrap();
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("x"));
    let versions: i64 = a.query_one("SELECT count(*) FROM shred.root_key_version", &[]).unwrap().get(0);
    assert_eq!(versions, 1);
    // the setting is superuser-only: hidden from other roles
    a.batch_execute("CREATE ROLE it_g9_app LOGIN").unwrap();
    a.batch_execute("SET ROLE it_g9_app").unwrap();
    assert_eq!(sqlstate(a.query_one("SHOW shred.root_key_file", &[])), "42501");
    assert_eq!(sqlstate(a.batch_execute("SET shred.root_key_file = '/tmp/x'")), "42501");
    a.batch_execute("RESET ROLE; DROP ROLE it_g9_app").unwrap();
}

/// G3, G6: the same plaintext twice gives different envelopes; a flipped bit anywhere, another
/// context, or an envelope moved to another subject's key id fail with one uniform error.
#[test]
fn tampering_and_moving_fail_uniformly() {
    let mut a = fresh_db("it_g6");
    let v = seal(&mut a, "customer:1", "ada@example.org", "customer.email");
    let w = seal(&mut a, "customer:1", "ada@example.org", "customer.email");
    assert_ne!(v, w);
    let other = seal(&mut a, "customer:2", "bob@example.org", "customer.email");
    let bytes: Vec<u8> = a.query_one("SELECT shred.sealed_send($1::text::shred.sealed)", &[&v]).unwrap().get(0);
    let mut messages = std::collections::HashSet::new();
    for i in 9..bytes.len() {
        let r = a.query_one(
            "SELECT shred.open(('shred1:' || encode(set_byte($1::bytea, $2, get_byte($1::bytea, $2) # 1), 'base64'))::shred.sealed, 'customer.email')",
            &[&bytes, &(i as i32)],
        );
        let err = r.expect_err("tampered envelope must not open");
        assert_eq!(err.code().map(|c| c.code()), Some("22000"), "byte {i}");
        messages.insert(err.as_db_error().unwrap().message().to_string());
    }
    assert_eq!(messages.len(), 1, "one message for every authentication failure");
    let r = a.query_one(OPEN, &[&v, &"customer.phone"]);
    assert_eq!(message(r), "pg_shred: could not open the sealed value");
    // rewrite the key id of customer:1's envelope to customer:2's key
    let r = a.query_one(
        "SELECT shred.open(('shred1:' || encode(overlay(shred.sealed_send($1::text::shred.sealed) placing
                 substr(shred.sealed_send($2::text::shred.sealed), 2, 8) from 2 for 8), 'base64'))::shred.sealed, 'customer.email')",
        &[&v, &other],
    );
    assert_eq!(sqlstate(r), "22000");
    // the error never echoes the plaintext or subject
    let err = a.query_one(OPEN, &[&v, &"customer.phone"]).unwrap_err();
    let db = err.as_db_error().unwrap();
    let all = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
    assert!(!all.contains("ada") && !all.contains("customer:1"), "{all}");
}

/// B1, G2: malformed envelopes in text and binary form are clean errors, never a crash.
#[test]
fn malformed_envelopes_are_clean_errors() {
    let mut a = fresh_db("it_g2");
    let v = seal(&mut a, "customer:1", "", "");
    assert_eq!(open(&mut a, &v, "").as_deref(), Some(""));
    for bad in ["", "shred1:", "shred1:AQ==", "shred1:AQAAAAAAAAAB", "SHRED1:AQ==", "shred1:!!!!", &format!("{v} "), &v[..v.len() - 4]] {
        let r = a.query_one("SELECT $1::text::shred.sealed", &[&bad]);
        assert_eq!(sqlstate(r), "22P02", "{bad:?}");
    }
    // binary receive: empty, 1 byte, one byte short, unknown version, key id 0
    let good: Vec<u8> = a.query_one("SELECT shred.sealed_send($1::text::shred.sealed)", &[&v]).unwrap().get(0);
    let mut zero_id = good.clone();
    zero_id[1..9].copy_from_slice(&[0; 8]);
    let mut v2 = good.clone();
    v2[0] = 2;
    for bad in [vec![], vec![1u8], good[..good.len() - 1].to_vec(), v2, zero_id] {
        let r = a.query_one("SELECT shred.key_id($1)", &[&Raw(bad.clone())]);
        assert_eq!(sqlstate(r), "22P03", "{bad:?}");
    }
    // random garbage: always a clean 22P02 and the connection survives
    let mut rng_bytes = vec![0u8; 4000];
    getrandom::getrandom(&mut rng_bytes).unwrap();
    for chunk in rng_bytes.chunks(40) {
        let s = format!("shred1:{}", chunk.iter().map(|b| (b'A' + b % 26) as char).collect::<String>());
        let r = a.query_one("SELECT $1::text::shred.sealed", &[&s]);
        assert_eq!(sqlstate(r), "22P02");
    }
    let one: i32 = a.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

/// B4: the maximum plaintext size is enforced up front.
#[test]
fn oversized_plaintext_is_refused() {
    let mut a = fresh_db("it_b4");
    let r = a.query_one("SELECT shred.seal('customer:1', repeat('x', 64 * 1024 * 1024 + 1))", &[]);
    assert_eq!(sqlstate(r), "54000");
    let ok: bool = a
        .query_one("SELECT shred.open(shred.seal('customer:1', repeat('é', 1000000))) = repeat('é', 1000000)", &[])
        .unwrap()
        .get(0);
    assert!(ok);
}

fn make_sample(c: &mut postgres::Client, rows: i32) {
    c.batch_execute(&format!(
        "CREATE TABLE person (id int PRIMARY KEY, name shred.sealed, email shred.sealed, photo shred.sealed);
         INSERT INTO person
         SELECT g,
                shred.seal('person:' || g, 'Nåme ' || g || E' \\t tab, \"quote\" \\\\ backslash\\nnewline 🎉', 'person.name'),
                CASE WHEN g % 7 = 0 THEN NULL ELSE shred.seal('person:' || g, 'p' || g || '@example.org', 'person.email') END,
                shred.seal('person:' || g, decode(md5(g::text), 'hex') || '\\x00ff'::bytea, 'person.photo')
           FROM generate_series(1, {rows}) g;"
    ))
    .expect("sample data");
}

/// Every envelope's text form and every opened value, in id order.
fn snapshot(c: &mut postgres::Client) -> Vec<(i32, String, Option<String>, Option<String>, Option<String>, Option<Vec<u8>>)> {
    c.query(
        "SELECT id, name::text, email::text, shred.open(name, 'person.name'), shred.open(email, 'person.email'),
                shred.open_bytea(photo, 'person.photo')
           FROM person ORDER BY id",
        &[],
    )
    .expect("snapshot")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
    .collect()
}

/// A2, A3: COPY text, CSV and binary out and back in keep every envelope byte-identical.
#[test]
fn copy_text_csv_and_binary_round_trip() {
    use std::io::{Read, Write};
    let mut a = fresh_db("it_copy");
    make_sample(&mut a, 120);
    let original = snapshot(&mut a);
    for format in ["text", "csv", "binary"] {
        let mut out = Vec::new();
        a.copy_out(&format!("COPY person TO STDOUT (FORMAT {format})"))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        a.batch_execute("TRUNCATE person").unwrap();
        let mut w = a.copy_in(&format!("COPY person FROM STDIN (FORMAT {format})")).unwrap();
        w.write_all(&out).unwrap();
        w.finish().unwrap();
        assert_eq!(snapshot(&mut a), original, "COPY {format}");
    }
}

/// A3: a binary-protocol client reads the column's wire form (the raw envelope) and writes it
/// back as a parameter of type shred.sealed.
#[test]
fn binary_protocol_client() {
    let mut a = fresh_db("it_binary");
    make_sample(&mut a, 20);
    let original = snapshot(&mut a);
    let rows = a.query("SELECT id, name, email, photo FROM person ORDER BY id", &[]).unwrap();
    a.batch_execute("TRUNCATE person").unwrap();
    let ins = a.prepare("INSERT INTO person VALUES ($1, $2, $3, $4)").unwrap();
    for r in &rows {
        let id: i32 = r.get(0);
        let name: Raw = r.get(1);
        let email: Option<Raw> = r.get(2);
        let photo: Raw = r.get(3);
        assert_eq!(name.0[0], 1, "wire form starts with the format version");
        a.execute(&ins, &[&id, &name, &email, &photo]).unwrap();
    }
    assert_eq!(snapshot(&mut a), original);
}

/// A1, A4, A5, A9: pg_dump (plain, custom, directory) and restore into an empty database with
/// the same root key: every envelope byte-identical and openable, same key count, no
/// duplicate configuration rows, key ids keep increasing. The plain dump sets an empty
/// search_path, so the restore also runs with search_path = ''.
#[test]
fn dump_and_restore_keep_every_envelope() {
    let mut src = fresh_db("it_dump_src");
    make_sample(&mut src, 60);
    src.query_one("SELECT shred.erase('person:3')", &[]).unwrap();
    let original = snapshot(&mut src);
    let keys = key_count(&mut src);
    assert_eq!(keys, 59);
    let max_id: i64 = src.query_one("SELECT max(key_id) FROM shred.subject_key", &[]).unwrap().get(0);
    let base = dir().join("dumps");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    for (format, flag) in [("plain", "-Fp"), ("custom", "-Fc"), ("directory", "-Fd")] {
        let path = base.join(format);
        run(pg_tool("pg_dump").args([flag, "-f", path.to_str().unwrap(), "it_dump_src"]));
        let target = format!("it_dump_{format}");
        drop(empty_db(&target));
        if format == "plain" {
            run(pg_tool("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &target, "-f", path.to_str().unwrap()]));
        } else {
            run(pg_tool("pg_restore").args(["--exit-on-error", "-d", &target, path.to_str().unwrap()]));
        }
        let mut dst = connect(&target);
        assert_eq!(snapshot(&mut dst), original, "{format}");
        assert_eq!(key_count(&mut dst), keys, "{format}");
        let versions: i64 = dst.query_one("SELECT count(*) FROM shred.root_key_version", &[]).unwrap().get(0);
        assert_eq!(versions, 1, "{format}");
        // renaming the table and column does not matter: no OIDs or names in the AAD
        dst.batch_execute("ALTER TABLE person RENAME TO people; ALTER TABLE people RENAME COLUMN email TO mail").unwrap();
        let opened: i64 = dst
            .query_one("SELECT count(shred.open(mail, 'person.email')) FROM people", &[])
            .unwrap()
            .get(0);
        assert_eq!(opened, original.iter().filter(|r| r.4.is_some()).count() as i64);
        let new_id: i64 = dst.query_one("SELECT shred.key_id(shred.seal('person:new', 'n'))", &[]).unwrap().get(0);
        let owner: String = dst.query_one("SELECT subject FROM shred.subject_key WHERE key_id = $1", &[&new_id]).unwrap().get(0);
        assert_eq!(owner, "person:new", "{format}: a new key id is none of the restored ones");
        assert!(new_id != max_id);
        if format == "plain" {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("p5@example.org") && !text.contains("Nåme"), "no plaintext in the dump");
        }
    }
}

/// B5: a LATIN1 database seals and opens non-ASCII text; a value sealed in a UTF-8 database
/// opens to the same characters after a restore into a LATIN1 database.
#[test]
fn non_utf8_database() {
    let mut utf = fresh_db("it_enc_utf8");
    utf.batch_execute(
        "CREATE TABLE t (id int, v shred.sealed);
         INSERT INTO t VALUES (1, shred.seal('pessoa:1', 'São José Köhler', 'ctx'))",
    )
    .unwrap();
    let mut lat = fresh_db_with("it_enc_latin1", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    let v = seal(&mut lat, "pessoa:ã", "Åsa Öberg, São José", "ctx");
    assert_eq!(open(&mut lat, &v, "ctx").as_deref(), Some("Åsa Öberg, São José"));
    let r = lat.query_one("SELECT shred.open(shred.seal('pessoa:ã', '\\x00ff'::bytea))", &[]);
    assert_eq!(sqlstate(r), "22021");
    // UTF-8 → LATIN1 through pg_dump
    let path = dir().join("enc.sql");
    run(pg_tool("pg_dump").args(["-f", path.to_str().unwrap(), "it_enc_utf8"]));
    let mut admin = connect("postgres");
    admin.batch_execute("DROP DATABASE IF EXISTS it_enc_restored WITH (FORCE)").unwrap();
    admin
        .batch_execute("CREATE DATABASE it_enc_restored ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        .unwrap();
    run(pg_tool("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "it_enc_restored", "-f", path.to_str().unwrap()]));
    let mut r = connect("it_enc_restored");
    let got: Option<String> = r.query_one("SELECT shred.open(v, 'ctx') FROM t", &[]).unwrap().get(0);
    assert_eq!(got.as_deref(), Some("São José Köhler"));
}

/// `||` on a sealed value never yields plaintext, and text cannot be stored into a sealed
/// column without going through shred.seal.
#[test]
fn no_implicit_conversion_from_text() {
    let mut a = fresh_db("it_casts");
    a.batch_execute("CREATE TABLE t (v shred.sealed)").unwrap();
    assert_eq!(sqlstate(a.batch_execute("INSERT INTO t SELECT 'plain'::text")), "42804");
    let v = seal(&mut a, "customer:1", "secret", "");
    let cat: String = a.query_one("SELECT $1::text::shred.sealed || 'x'", &[&v]).unwrap().get(0);
    assert_eq!(cat, format!("{v}x"), "|| concatenates the ciphertext's text form");
    assert!(!cat.contains("secret"));
}

/// G4: nonces come from the OS CSPRNG, fresh per seal, also across backends forked from the
/// same postmaster at the same time (no generator state is inherited).
#[test]
fn nonces_are_unique_across_backends() {
    drop(fresh_db("it_g4"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            thread::spawn(move || {
                let mut c = connect("it_g4");
                c.query(
                    "SELECT substr(shred.sealed_send(shred.seal('customer:' || ($1::int % 2), 'same')), 10, 12)
                       FROM generate_series(1, 250)",
                    &[&i],
                )
                .unwrap()
                .iter()
                .map(|r| r.get::<_, Vec<u8>>(0))
                .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = std::collections::HashSet::new();
    for h in handles {
        for nonce in h.join().expect("thread") {
            assert_eq!(nonce.len(), 12);
            assert!(all.insert(nonce), "a nonce repeated");
        }
    }
    assert_eq!(all.len(), 1000);
}

fn cache_entries(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT shred.key_cache_entries()", &[]).unwrap().get(0)
}

/// The DEK cache obeys every invalidation rule: a warm cache in A is dropped when B's erasure
/// commits, kept when B rolls back (also to a savepoint), and a DBA's DELETE, with or without
/// session_replication_role = replica, invalidates it like shred.erase.
#[test]
fn cache_invalidation_rules() {
    let mut a = fresh_db("it_cache");
    let mut b = connect("it_cache");
    let v: Vec<String> = (0..4).map(|i| seal(&mut a, &format!("customer:{i}"), &format!("v{i}"), "")).collect();
    for (i, e) in v.iter().enumerate() {
        assert_eq!(open(&mut a, e, "").unwrap(), format!("v{i}"));
    }
    assert_eq!(cache_entries(&mut a), 4, "warm");

    b.batch_execute("BEGIN; SELECT shred.erase('customer:0'); ROLLBACK").unwrap();
    b.batch_execute("BEGIN; SAVEPOINT s; SELECT shred.erase('customer:0'); ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    assert_eq!(open(&mut a, &v[0], "").as_deref(), Some("v0"));
    assert_eq!(cache_entries(&mut a), 4, "nothing invalidated by rolled-back erasures");

    b.query_one("SELECT shred.erase('customer:0')", &[]).unwrap();
    assert_eq!(open(&mut a, &v[0], ""), None);
    assert_eq!(open(&mut a, &v[1], "").as_deref(), Some("v1"));

    b.batch_execute("DELETE FROM shred.subject_key WHERE subject = 'customer:1'").unwrap();
    // deleted behind pg_shred's back, without an erasure record: unknown, not erased
    assert_eq!(open_fails(&mut a, &v[1], ""), "42704", "a DBA's DELETE invalidates too");

    b.batch_execute("SET session_replication_role = replica; DELETE FROM shred.subject_key WHERE subject = 'customer:2'; RESET session_replication_role").unwrap();
    assert_eq!(open_fails(&mut a, &v[2], ""), "42704", "also as a replication apply would run it");
    assert_eq!(open(&mut a, &v[3], "").as_deref(), Some("v3"));

    // within the erasing transaction, its own cache is dropped at once, for every erasure
    a.batch_execute("BEGIN").unwrap();
    let w: Vec<String> = (10..13).map(|i| seal(&mut a, &format!("customer:{i}"), "w", "")).collect();
    a.batch_execute("COMMIT").unwrap();
    a.batch_execute("BEGIN").unwrap();
    for (i, e) in w.iter().enumerate() {
        assert_eq!(open(&mut a, e, "").as_deref(), Some("w"));
        a.query_one("SELECT shred.erase($1)", &[&format!("customer:{}", 10 + i)]).unwrap();
        assert_eq!(open(&mut a, e, ""), None);
    }
    a.batch_execute("ROLLBACK").unwrap();
    for e in &w {
        assert_eq!(open(&mut b, e, "").as_deref(), Some("w"));
    }
}

/// An aborted first seal leaves no DEK in the cache: the next seal of the subject in the same
/// session makes a value that other sessions open.
#[test]
fn aborted_first_seal_is_not_cached() {
    let mut a = fresh_db("it_cache_abort");
    let mut b = connect("it_cache_abort");
    a.batch_execute("BEGIN").unwrap();
    seal(&mut a, "customer:new", "x", "");
    a.batch_execute("ROLLBACK").unwrap();
    let v = seal(&mut a, "customer:new", "y", "");
    assert_eq!(open(&mut b, &v, "").as_deref(), Some("y"));

    a.batch_execute("BEGIN; SAVEPOINT s").unwrap();
    seal(&mut a, "customer:sp", "x", "");
    a.batch_execute("ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    let w = seal(&mut a, "customer:sp", "z", "");
    assert_eq!(open(&mut b, &w, "").as_deref(), Some("z"));
}

/// The cache holds at most shred.key_cache_size DEKs; 0 disables it.
#[test]
fn cache_is_bounded() {
    let mut a = fresh_db("it_cache_bound");
    a.batch_execute("SET shred.key_cache_size = 10").unwrap();
    let n: i64 = a
        .query_one("SELECT count(shred.open(shred.seal('customer:' || g, 'x'))) FROM generate_series(1, 50) g", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 50);
    assert_eq!(cache_entries(&mut a), 10);
    a.batch_execute("SET shred.key_cache_size = 0").unwrap();
    let n: i64 = a
        .query_one("SELECT count(shred.open(shred.seal('customer:' || g, 'x'))) FROM generate_series(1, 3) g", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    assert_eq!(cache_entries(&mut a), 0, "setting the size to 0 drops what was cached");
    let mut c = connect("it_cache_bound");
    c.batch_execute("SET shred.key_cache_size = 0").unwrap();
    let n: i64 = c
        .query_one("SELECT count(shred.open(shred.seal('customer:' || g, 'x'))) FROM generate_series(1, 5) g", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
    assert_eq!(cache_entries(&mut c), 0);
}

/// Cached key store metadata (root-key version row, key id pool) never outlives the objects it
/// describes: after a rolled-back first registration, and after DROP/CREATE EXTENSION, values
/// sealed by one session open in another.
#[test]
fn metadata_cache_follows_the_key_store() {
    let mut a = fresh_db("it_meta");
    let mut b = connect("it_meta");
    a.batch_execute("BEGIN").unwrap();
    seal(&mut a, "customer:0", "x", ""); // registers root-key version 1, then rolls back
    a.batch_execute("ROLLBACK").unwrap();
    let vb = seal(&mut b, "customer:b", "from b", ""); // registers version 1 with its own salt
    let va = seal(&mut a, "customer:a", "from a", "");
    assert_eq!(open(&mut b, &va, "").as_deref(), Some("from a"));
    assert_eq!(open(&mut a, &vb, "").as_deref(), Some("from b"));

    b.batch_execute("SET shred.allow_drop_with_keys = on; DROP EXTENSION pg_shred CASCADE; CREATE EXTENSION pg_shred; RESET shred.allow_drop_with_keys")
        .unwrap();
    assert_eq!(open_fails(&mut a, &va, ""), "42704", "the old key store is gone with the extension");
    let wb = seal(&mut b, "customer:b", "again b", "");
    let wa = seal(&mut a, "customer:a", "again a", "");
    assert_eq!(open(&mut b, &wa, "").as_deref(), Some("again a"));
    assert_eq!(open(&mut a, &wb, "").as_deref(), Some("again b"));
    let ids: Vec<i64> = a
        .query("SELECT key_id FROM shred.subject_key ORDER BY key_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 2);
    // the fresh key store draws its own key ids: old envelopes are not from it (42704)
    for old in [&va, &vb] {
        assert_eq!(sqlstate(a.query_one("SELECT shred.is_erased($1::text::shred.sealed)", &[old])), "42704");
        assert_eq!(open_fails(&mut a, old, ""), "42704");
    }
}

/// CREATE EXTENSION refuses a schema "shred" that someone else created beforehand (its owner
/// could otherwise plant look-alike functions next to pg_shred's).
#[test]
fn existing_shred_schema_is_refused() {
    let mut admin = connect("postgres");
    admin.batch_execute("DROP DATABASE IF EXISTS it_schema WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE it_schema").unwrap();
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_mallory') THEN CREATE ROLE it_mallory LOGIN; END IF;
             END $$;
             GRANT CREATE ON DATABASE it_schema TO it_mallory",
        )
        .unwrap();
    let mut mallory = connect_as("it_schema", "it_mallory");
    mallory.batch_execute("CREATE SCHEMA shred").unwrap();
    let mut db = connect("it_schema");
    assert_eq!(sqlstate(db.batch_execute("CREATE EXTENSION pg_shred")), "42P06");
    mallory.batch_execute("DROP SCHEMA shred").unwrap();
    db.batch_execute("CREATE EXTENSION pg_shred").unwrap();
    let owner: String = db
        .query_one("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'shred'", &[])
        .unwrap()
        .get(0);
    assert_eq!(owner, "postgres");
}

/// shred.erase(text[]) erases many subjects in one statement, with the same transactional
/// rules as shred.erase(text).
#[test]
fn erase_many_subjects_at_once() {
    let mut a = fresh_db("it_erase_many");
    let mut b = connect("it_erase_many");
    let v: Vec<String> = (0..5).map(|i| seal(&mut a, &format!("customer:{i}"), &format!("v{i}"), "")).collect();
    for e in &v {
        assert!(open(&mut b, e, "").is_some());
    }
    a.batch_execute("BEGIN").unwrap();
    let n: i64 = a
        .query_one("SELECT shred.erase(ARRAY['customer:0', 'customer:2', 'customer:4', 'customer:none'])", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    assert_eq!(open(&mut a, &v[0], ""), None, "the erasing transaction sees its erasure");
    assert_eq!(open(&mut b, &v[0], "").as_deref(), Some("v0"), "others only after COMMIT");
    a.batch_execute("COMMIT").unwrap();
    let opened: Vec<Option<String>> = v.iter().map(|e| open(&mut b, e, "")).collect();
    assert_eq!(opened, vec![None, Some("v1".into()), None, Some("v3".into()), None]);
    assert_eq!(sqlstate(a.query_one("SELECT shred.erase(ARRAY['customer:1', NULL])", &[])), "22004");
    assert_eq!(sqlstate(a.query_one("SELECT shred.erase(NULL::text[])", &[])), "22004");
    assert_eq!(sqlstate(a.query_one("SELECT shred.erase(ARRAY['customer:1', repeat('x', 5000)])", &[])), "54000");
    assert_eq!(open(&mut b, &v[1], "").as_deref(), Some("v1"), "a refused call erased nothing");
    // from an old snapshot that cannot see a DEK created later: refuse, erase nothing
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    a.query_one("SELECT 1", &[]).unwrap();
    let late = seal(&mut b, "customer:late", "late", "");
    assert_eq!(sqlstate(a.query_one("SELECT shred.erase(ARRAY['customer:1', 'customer:late'])", &[])), "40001");
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(open(&mut b, &late, "").as_deref(), Some("late"));
    assert_eq!(open(&mut b, &v[1], "").as_deref(), Some("v1"));
}

/// Queries that open values run even where PostgreSQL would pick a parallel plan (open reads
/// the key store under the latest snapshot, which parallel mode forbids, so it is labelled
/// PARALLEL UNSAFE and the planner keeps such queries serial).
#[test]
fn parallel_plans_do_not_break_open() {
    let mut a = fresh_db("it_parallel");
    // PostgreSQL 16 renamed force_parallel_mode to debug_parallel_query.
    let version: i32 = a.query_one("SELECT current_setting('server_version_num')::int", &[]).unwrap().get(0);
    let force = if version >= 160000 { "debug_parallel_query" } else { "force_parallel_mode" };
    a.batch_execute(&format!(
        "CREATE TABLE t AS SELECT g AS id, shred.seal('p:' || (g % 50), 'addr' || g, 'addr') AS v
           FROM generate_series(1, 5000) g;
         ANALYZE t;
         SET {force} = on; SET max_parallel_workers_per_gather = 2;
         SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0"
    ))
    .unwrap();
    let n: i64 = a.query_one("SELECT count(shred.open(v, 'addr')) FROM t WHERE id % 7 = 0", &[]).unwrap().get(0);
    assert_eq!(n, 714);
    let n: i64 = a.query_one("SELECT count(*) FROM t WHERE NOT shred.is_erased(v)", &[]).unwrap().get(0);
    assert_eq!(n, 5000);
    let b: i64 = a.query_one("SELECT count(shred.open_bytea(v, 'addr')) FROM t", &[]).unwrap().get(0);
    assert_eq!(b, 5000);
}

/// Key lookups never scan the key table sequentially, even when its statistics say it is
/// tiny while one transaction creates thousands of keys (no cached plan to go stale).
#[test]
fn key_lookups_use_the_indexes() {
    let mut a = fresh_db("it_index");
    a.batch_execute("SELECT count(shred.seal('a:' || g, 'x')) FROM generate_series(1, 50) g; ANALYZE shred.subject_key")
        .unwrap();
    // (seq_scan, idx_scan) of the key table as seen by this backend, not yet flushed ones included
    let scans = |c: &mut postgres::Client| -> (i64, i64) {
        let r = c
            .query_one("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relid = 'shred.subject_key'::regclass", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    a.batch_execute("BEGIN").unwrap();
    let before = scans(&mut a);
    let n: i64 = a
        .query_one("SELECT count(shred.open(shred.seal('s:' || g, 'x'))) FROM generate_series(1, 3000) g", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3000);
    let after = scans(&mut a);
    assert_eq!(after.0, before.0, "no sequential scan of the key table");
    assert!(after.1 >= before.1 + 3000, "one index lookup per new subject at least");
    a.batch_execute("COMMIT").unwrap();
}

/// The root key file is checked once per transaction: removing or replacing it fails closed in
/// every session from its next transaction on, without a reload; a FIFO or other non-regular
/// file is refused at once instead of blocking the backend.
#[test]
fn root_key_file_changes_take_effect_in_running_sessions() {
    let mut a = fresh_db("it_keyfile");
    // this session's own copy of the cluster's root key: other tests keep using the original
    let copy = key_file("it_keyfile_copy", &std::fs::read(dir().join("root.key")).unwrap(), 0o600);
    a.batch_execute(&format!("SET shred.root_key_file = '{copy}'")).unwrap();
    let v = seal(&mut a, "customer:1", "x", "");
    let path = std::path::PathBuf::from(&copy);
    let moved = dir().join("it_keyfile_copy.moved");
    std::fs::rename(&path, &moved).unwrap();
    let r = a.query_one(OPEN, &[&v, &""]);
    std::fs::rename(&moved, &path).unwrap();
    assert_eq!(sqlstate(r), "F0000", "a removed key file fails closed in a running session");
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("x"), "and works again once it is back");

    let fifo = dir().join("fifo.key");
    let _ = std::fs::remove_file(&fifo);
    let status = Command::new("mkfifo").args(["-m", "0600"]).arg(&fifo).status().unwrap();
    assert!(status.success());
    let meta = std::fs::metadata(dir().join("data")).unwrap();
    std::os::unix::fs::chown(&fifo, Some(std::os::unix::fs::MetadataExt::uid(&meta)), None).unwrap();
    a.batch_execute(&format!("SET shred.root_key_file = '{}'", fifo.display())).unwrap();
    let err = a.query_one("SELECT shred.seal('customer:1', 'y')", &[]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("F0000"));
    assert!(err.as_db_error().unwrap().message().contains("not a regular file"));
}

/// Encoding errors and limits are pg_shred's own messages: they never echo plaintext or
/// subject bytes.
#[test]
fn encoding_errors_do_not_echo_data() {
    let mut lat = fresh_db_with("it_enc_err_latin1", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    let err = lat
        .query_one("SELECT shred.open(shred.seal('l:1', decode('536563726574e282ac4e616d65', 'hex')))", &[])
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "22P05");
    assert!(!format!("{} {:?}", db.message(), db.detail()).contains("0x"), "{}", db.message());
    let bytes: Vec<u8> = lat
        .query_one("SELECT shred.open_bytea(shred.seal('l:1', decode('536563726574e282ac4e616d65', 'hex')))", &[])
        .unwrap()
        .get(0);
    assert_eq!(bytes, "Secret€Name".as_bytes());

    let mut ascii = fresh_db_with("it_enc_err_sqlascii", "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    for sql in [
        "SELECT shred.seal('s:1', convert_from('\\x736563726574206361666520e9'::bytea, 'SQL_ASCII'))",
        "SELECT shred.seal(convert_from('\\x6361666520e9'::bytea, 'SQL_ASCII'), 'x')",
    ] {
        let err = ascii.query_one(sql, &[]).unwrap_err();
        let db = err.as_db_error().unwrap();
        assert_eq!(db.code().code(), "22021", "{sql}");
        assert!(db.message().starts_with("pg_shred:") && !db.message().contains("0x"), "{}", db.message());
    }
    let ok: String = ascii.query_one("SELECT shred.open(shred.seal('s:1', 'São'))", &[]).unwrap().get(0);
    assert_eq!(ok, "São");

    let mut a = fresh_db("it_subject_len");
    let err = a.query_one("SELECT shred.seal(repeat('x', 1025), 'y')", &[]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("54000"));
    let ok: String = a.query_one("SELECT shred.open(shred.seal(repeat('x', 1024), 'y'))", &[]).unwrap().get(0);
    assert_eq!(ok, "y");
}

/// A non-superuser role: without grants every sealing, opening or erasing function is refused
/// (42501); with EXECUTE on them (the README's recipe, no privilege on the key tables) it
/// seals new subjects, opens and erases, and still cannot read or write the key tables.
#[test]
fn application_role_with_documented_grants() {
    let mut admin = fresh_db("it_roles");
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_app') THEN CREATE ROLE it_app LOGIN; END IF;
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_dpo') THEN CREATE ROLE it_dpo LOGIN; END IF;
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_ops') THEN CREATE ROLE it_ops LOGIN; END IF;
             END $$;
             REVOKE shred_reader, shred_writer, shred_eraser, shred_admin FROM it_app, it_dpo, it_ops",
        )
        .unwrap();
    let v = seal(&mut admin, "customer:1", "x", "");
    let mut app = connect_as("it_roles", "it_app");
    for sql in [
        "SELECT shred.seal('customer:2', 'y')",
        "SELECT shred.erase('customer:1')",
        "SELECT shred.erase(ARRAY['customer:1'])",
        "SELECT shred.key_cache_entries()",
        "SELECT * FROM shred.root_key_status",
        "SELECT * FROM shred.erasure_horizon()",
        "CALL shred.rotate_root_key()",
        "SELECT shred.retire_root_key(1)",
    ] {
        assert_eq!(sqlstate(app.batch_execute(sql)), "42501", "{sql}");
    }
    assert_eq!(sqlstate(app.query_one(OPEN, &[&v, &""])), "42501");
    assert_eq!(sqlstate(app.query_one("SELECT shred.key_id($1::text::shred.sealed)", &[&v])), "42501");

    // The documented recipe: grant the roles an application needs.
    admin
        .batch_execute(
            "GRANT shred_reader, shred_writer TO it_app;
             GRANT shred_eraser TO it_dpo;
             GRANT shred_admin TO it_ops;",
        )
        .unwrap();
    let mut app = connect_as("it_roles", "it_app");
    assert_eq!(open(&mut app, &v, "").as_deref(), Some("x"));
    let w = seal(&mut app, "customer:2", "y", "");
    assert_eq!(open(&mut app, &w, "").as_deref(), Some("y"));
    let id: i64 = app.query_one("SELECT shred.key_id($1::text::shred.sealed)", &[&v]).unwrap().get(0);
    assert!(id > 0);
    for sql in ["SELECT shred.erase('customer:1')", "SELECT * FROM shred.root_key_status", "CALL shred.rotate_root_key()"] {
        assert_eq!(sqlstate(app.batch_execute(sql)), "42501", "{sql}");
    }
    for sql in [
        "SELECT count(*) FROM shred.subject_key",
        "SELECT count(*) FROM shred.root_key_version",
        "DELETE FROM shred.subject_key",
        "INSERT INTO shred.subject_key (key_id, subject, wrapped_dek, root_key_version) VALUES (99999, 'planted', '', 1)",
        "SELECT nextval('shred.subject_key_key_id_seq')",
    ] {
        assert_eq!(sqlstate(app.query_one(sql, &[])), "42501", "{sql}");
    }
    let mut ops = connect_as("it_roles", "it_ops");
    let state: String = ops.query_one("SELECT state FROM shred.root_key_status WHERE version = 1", &[]).unwrap().get(0);
    assert_eq!(state, "current");
    ops.batch_execute("CALL shred.rotate_root_key()").unwrap();
    let needed: i32 = ops.query_one("SELECT oldest_needed_version FROM shred.erasure_horizon()", &[]).unwrap().get(0);
    assert_eq!(needed, 1);
    assert_eq!(sqlstate(ops.query_one(OPEN, &[&v, &""])), "42501");
    assert_eq!(sqlstate(ops.batch_execute("SELECT count(*) FROM shred.subject_key")), "42501");

    let mut dpo = connect_as("it_roles", "it_dpo");
    assert_eq!(sqlstate(dpo.query_one(OPEN, &[&v, &""])), "42501");
    let erased: bool = dpo.query_one("SELECT shred.erase('customer:1')", &[]).unwrap().get(0);
    assert!(erased);
    let n: i64 = dpo.query_one("SELECT shred.erase(ARRAY['customer:2'])", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    assert_eq!(open(&mut app, &v, ""), None);
    assert_eq!(open(&mut app, &w, ""), None);
    // the caller's identity is restored after the key store writes, also after an error
    let user: String = app.query_one("SELECT current_user::text", &[]).unwrap().get(0);
    assert_eq!(user, "it_app");
    assert_eq!(sqlstate(app.batch_execute("SET shred.key_cache_size = 0")), "42501", "superuser-only");
    assert_eq!(sqlstate(app.query_one("SELECT shred.seal(NULL, 'x')", &[])), "22004");
    let user: String = app.query_one("SELECT current_user::text", &[]).unwrap().get(0);
    assert_eq!(user, "it_app");
    drop((app, dpo, ops));
    admin.batch_execute("DROP OWNED BY it_app, it_dpo, it_ops").unwrap();
}

/// Resident memory per cached DEK (the backend's private memory, RssAnon, before and after
/// caching 40,000 more DEKs once the 16,384 kept expanded are in place) stays within 256 bytes:
/// beyond the hot tier a DEK is cached as its 32 bytes, its subject and the maps' entries.
#[test]
fn cached_dek_memory_is_bounded() {
    const WARM: i64 = 20_000; // more than the 16,384 kept expanded
    const MORE: i64 = 40_000;
    let _setup = db_with_sealed_table("it_cache_mem", "m:", WARM + MORE);
    // a new session starts with an empty cache; the first DEKs also warm plans and catalog caches
    let mut a = connect("it_cache_mem");
    a.batch_execute("SET shred.key_cache_size = 100000").unwrap();
    let pid: i32 = a.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let rss_anon_kib = || rss_anon_kib(pid);
    a.query_one(&format!("SELECT count(shred.open(v)) FROM t WHERE g <= {WARM}"), &[]).unwrap();
    let before = rss_anon_kib();
    let n: i64 = a.query_one(&format!("SELECT count(shred.open(v)) FROM t WHERE g > {WARM}"), &[]).unwrap().get(0);
    assert_eq!(n, MORE);
    let after = rss_anon_kib();
    let entries: i64 = a.query_one("SELECT shred.key_cache_entries()", &[]).unwrap().get(0);
    assert_eq!(entries, WARM + MORE);
    let per_entry = (after - before) * 1024 / MORE;
    assert!(per_entry <= 256, "{per_entry} bytes of resident memory per cached DEK");
}

/// Issue finding: `shred.key_cache_memory` bounds what the DEK cache really takes. With 8 MB,
/// opening the values of 60,000 subjects (more than fit, in three statements, so each fills
/// the cache anew) grows the backend's private memory (RssAnon) by at most 8 MiB, and the cache
/// holds fewer DEKs than its entry limit would allow.
#[test]
fn key_cache_memory_bounds_resident_memory() {
    const N: i64 = 60_000;
    let setup = db_with_sealed_table("it_cache_budget", "b:", N);
    let mut a = connect("it_cache_budget");
    a.batch_execute("SET shred.key_cache_size = 1000000; SET shred.key_cache_memory = '8MB'").unwrap();
    let pid: i32 = a.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    // plans and catalog caches first
    a.query_one("SELECT count(shred.open(v)) FROM t WHERE g <= 100", &[]).unwrap();
    let before = rss_anon_kib(pid);
    for part in 0..3 {
        let n: i64 = a
            .query_one(&format!("SELECT count(shred.open(v)) FROM t WHERE g % 3 = {part}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(n, N / 3);
    }
    let grown = rss_anon_kib(pid) - before;
    let entries: i64 = a.query_one("SELECT shred.key_cache_entries()", &[]).unwrap().get(0);
    assert!(grown <= 8 * 1024, "the cache grew the backend by {grown} KiB with shred.key_cache_memory = 8MB");
    assert!(entries > 1_000 && entries < 8 * 1024 * 1024 / 256, "{entries} DEKs cached in 8 MB");
    // Its 60,000 DEKs would only lengthen the closing scan of the server log for key material.
    drop((a, setup));
    connect("postgres").batch_execute("DROP DATABASE it_cache_budget WITH (FORCE)").unwrap();
}

/// A fresh database `name` with a DEK for each of `n` subjects `prefix || g` and a table
/// `t (g, v)` holding one value sealed for each.
fn db_with_sealed_table(name: &str, prefix: &str, n: i64) -> postgres::Client {
    let mut c = fresh_db(name);
    c.batch_execute(&format!(
        "SELECT shred.create_keys(ARRAY(SELECT '{prefix}' || g FROM generate_series(1, {n}) g));
         CREATE TABLE t AS SELECT g, shred.seal('{prefix}' || g, 'x') AS v FROM generate_series(1, {n}) g"
    ))
    .unwrap();
    c
}

/// The backend's private resident memory (RssAnon) in KiB.
fn rss_anon_kib(pid: i32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("backend status");
    status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("RssAnon")
}

/// Issue finding: `shred.erase(text[])` of a large array is bounded in memory. It deletes in
/// slices of 10,000 subjects, one statement each (counted by pg_stat_statements), each slice
/// probing the subject index per subject, so a key store fresh from a bulk load (no statistics
/// yet) is not scanned once per slice. The backend's private memory (RssAnon, sampled while the
/// call runs) grows by less than 48 MiB at its peak and keeps less than 16 MiB afterwards.
#[test]
fn erasing_a_large_array_is_sliced_and_bounded_in_memory() {
    const N: i64 = 200_000;
    let mut setup = fresh_db("it_erase_many_mem");
    setup
        .batch_execute(&format!(
            "CREATE EXTENSION pg_stat_statements;
             SELECT shred.create_keys(ARRAY(SELECT 'big:' || g FROM generate_series(1, {N}) g))"
        ))
        .unwrap();
    let kept = seal(&mut setup, "other", "stays", "");
    let gone = seal(&mut setup, "big:7", "goes", "");
    let mut a = connect("it_erase_many_mem");
    let pid: i32 = a.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    a.query_one("SELECT shred.erase(ARRAY['warm:up'])", &[]).unwrap();
    let before = rss_anon_kib(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_anon_kib(pid));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    let erased: i64 = a
        .query_one(&format!("SELECT shred.erase(ARRAY(SELECT 'big:' || g FROM generate_series(1, {N}) g))"), &[])
        .unwrap()
        .get(0);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap().max(rss_anon_kib(pid));
    let after = rss_anon_kib(pid);
    assert_eq!(erased, N);
    assert!(peak - before < 48 * 1024, "erasing {N} subjects took {} KiB at its peak", peak - before);
    assert!(after - before < 16 * 1024, "erasing {N} subjects kept {} KiB", after - before);
    let (calls, rows): (i64, i64) = a
        .query_one(
            "SELECT sum(calls)::bigint, sum(rows)::bigint FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND query LIKE 'DELETE FROM shred.subject_key%unnest%'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    // one DELETE per slice of 10,000 subjects, and the warm-up's
    assert_eq!((calls, rows), ((N + 9_999) / 10_000 + 1, N), "one DELETE per slice of 10,000 subjects");
    let left: i64 = a.query_one("SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'big:%'", &[]).unwrap().get(0);
    let logged: i64 = a.query_one("SELECT count(*) FROM shred.erasure_log", &[]).unwrap().get(0);
    assert_eq!((left, logged), (0, N));
    assert_eq!(open(&mut a, &gone, ""), None);
    assert_eq!(open(&mut a, &kept, "").as_deref(), Some("stays"));
    // An ERROR after a first slice was deleted and its records written (a NULL further on),
    // inside a savepoint: nothing of the call stays.
    a.batch_execute("SELECT shred.create_keys(ARRAY(SELECT 'again:' || g FROM generate_series(1, 15000) g))").unwrap();
    a.batch_execute("BEGIN; SAVEPOINT s").unwrap();
    let e = a.query_one("SELECT shred.erase(ARRAY(SELECT 'again:' || g FROM generate_series(1, 15000) g) || NULL::text)", &[]);
    assert_eq!(sqlstate(e), "22004");
    a.batch_execute("ROLLBACK TO s; COMMIT").unwrap();
    let left: i64 = a.query_one("SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'again:%'", &[]).unwrap().get(0);
    let logged: i64 = a.query_one("SELECT count(*) FROM shred.erasure_log", &[]).unwrap().get(0);
    assert_eq!((left, logged), (15_000, N));
}

/// Stops a server started by a test, even when the test fails.
struct Server {
    data: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// C6: a hot standby opens values; sealing a new subject there fails clearly (read-only); an
/// erasure committed on the primary is seen on the standby after replay, also by a session
/// whose DEK cache is warm (the relcache invalidation travels with the commit record).
#[test]
fn hot_standby_replays_erasures() {
    let mut a = fresh_db("it_standby");
    let v = seal(&mut a, "customer:1", "ada", "");
    let w = seal(&mut a, "customer:2", "bob", "");
    let data = dir().join("standby");
    let _ = std::fs::remove_dir_all(&data);
    let as_postgres = |program: &str| {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(program));
        c
    };
    run(as_postgres("pg_basebackup")
        .args(["-h", &host(), "-p", &port(), "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "-D"])
        .arg(&data));
    // The standby's port: three above the test server's (scripts/test: PG_SHRED_TEST_PORT).
    let standby_port = (port().parse::<u16>().expect("PG_SHRED_TEST_PORT") + 3).to_string();
    std::fs::write(
        data.join("postgresql.auto.conf"),
        format!(
            "{}\nport = {standby_port}\nhot_standby = on\n",
            std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap_or_default()
        ),
    )
    .unwrap();
    run(as_postgres("pg_ctl").arg("-D").arg(&data).args(["-l"]).arg(dir().join("standby.log")).args(["-w", "start"]));
    let _server = Server { data: data.clone() };
    let dsn = format!("host={} port={standby_port} user=postgres dbname=it_standby", host());
    let mut s = postgres::Client::connect(&dsn, postgres::NoTls).expect("connect to the standby");

    assert_eq!(open(&mut s, &v, "").as_deref(), Some("ada"));
    assert_eq!(open(&mut s, &w, "").as_deref(), Some("bob"));
    let entries: i64 = s.query_one("SELECT shred.key_cache_entries()", &[]).unwrap().get(0);
    assert_eq!(entries, 2, "warm cache on the standby");
    assert_eq!(sqlstate(s.query_one("SELECT shred.seal('customer:new', 'x')", &[])), "25006");
    let existing = seal(&mut s, "customer:2", "sealed on the standby", "");
    assert_eq!(open(&mut s, &existing, "").as_deref(), Some("sealed on the standby"));

    a.query_one("SELECT shred.erase('customer:1')", &[]).unwrap();
    let lsn: String = a.query_one("SELECT pg_current_wal_lsn()::text", &[]).unwrap().get(0);
    let mut replayed = false;
    for _ in 0..200 {
        let done: bool = s
            .query_one("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", &[&lsn])
            .unwrap()
            .get(0);
        if done {
            replayed = true;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(replayed, "the standby replayed the erasure");
    assert_eq!(open(&mut s, &v, ""), None, "the erasure reached the standby's warm cache");
    assert_eq!(open(&mut s, &w, "").as_deref(), Some("bob"));
}

/// DROP EXTENSION pg_shred, or DROP SCHEMA shred CASCADE, is refused while DEKs exist (it
/// would erase every data subject) unless shred.allow_drop_with_keys confirms it; other drops
/// are untouched, and an empty key store drops freely.
#[test]
fn drop_extension_with_keys_needs_confirmation() {
    let mut a = fresh_db("it_drop");
    let v = seal(&mut a, "customer:1", "x", "");
    for sql in ["DROP EXTENSION pg_shred", "DROP EXTENSION pg_shred CASCADE", "DROP SCHEMA shred CASCADE", "DROP EXTENSION IF EXISTS pg_stat_statements, pg_shred"] {
        let err = a.batch_execute(sql).unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("2BP01"), "{sql}");
        assert!(err.as_db_error().unwrap().message().contains("1 data subject(s)"), "{sql}");
    }
    assert_eq!(open(&mut a, &v, "").as_deref(), Some("x"), "nothing was dropped");
    a.batch_execute("CREATE EXTENSION pg_stat_statements; DROP EXTENSION pg_stat_statements; CREATE SCHEMA other; DROP SCHEMA other").unwrap();
    a.query_one("SELECT shred.erase('customer:1')", &[]).unwrap();
    a.batch_execute("DROP EXTENSION pg_shred; CREATE EXTENSION pg_shred").unwrap();
    seal(&mut a, "customer:2", "y", "");
    a.batch_execute("SET shred.allow_drop_with_keys = on; DROP EXTENSION pg_shred").unwrap();
    let gone: i64 = a.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'shred'", &[]).unwrap().get(0);
    assert_eq!(gone, 0);
}

/// Typed values (envelope v2): every supported type round-trips exactly, also across
/// TimeZone and DateStyle changes; each opens only as its own type; NULL stays NULL; an
/// erasure reaches typed values too.
#[test]
fn typed_values_round_trip() {
    let mut c = fresh_db("it_typed");
    c.batch_execute("SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY'").unwrap();
    c.batch_execute(
        "CREATE TABLE t (id int, kind text, v shred.sealed);
         INSERT INTO t VALUES
           (1, 'integer', shred.seal('typed:1', 0)),
           (2, 'integer', shred.seal('typed:1', -2147483648)),
           (3, 'integer', shred.seal('typed:1', 2147483647)),
           (4, 'bigint', shred.seal('typed:1', -9223372036854775808)),
           (5, 'bigint', shred.seal('typed:1', 9223372036854775807::bigint)),
           (6, 'numeric', shred.seal('typed:1', -12.3400)),
           (7, 'numeric', shred.seal('typed:1', 'NaN'::numeric)),
           (8, 'numeric', shred.seal('typed:1', 1e100::numeric + 0.000001)),
           (9, 'date', shred.seal('typed:1', '2024-02-29'::date)),
           (10, 'date', shred.seal('typed:1', 'infinity'::date)),
           (11, 'date', shred.seal('typed:1', '4713-01-01 BC'::date)),
           (12, 'timestamptz', shred.seal('typed:1', '2024-03-31 02:30:00.123456+02'::timestamptz)),
           (13, 'timestamptz', shred.seal('typed:1', '-infinity'::timestamptz)),
           (14, 'jsonb', shred.seal('typed:1', '{\"name\": \"Zoë\", \"n\": [1, 2.50, 1e30], \"nested\": {\"ok\": true}}'::jsonb)),
           (15, 'integer', shred.seal('typed:1', NULL::int)),
           (16, 'text', shred.seal('typed:1', 'plain text')),
           (17, 'integer', shred.seal('typed:2', 42));",
    )
    .unwrap();
    c.batch_execute("SET TimeZone = 'America/Los_Angeles'; SET DateStyle = 'ISO, MDY'").unwrap();
    let got: Vec<(i32, Option<String>)> = c
        .query(
            "SELECT id, CASE kind
                   WHEN 'integer' THEN shred.open_integer(v)::text
                   WHEN 'bigint' THEN shred.open_bigint(v)::text
                   WHEN 'numeric' THEN shred.open_numeric(v)::text
                   WHEN 'date' THEN shred.open_date(v)::text
                   WHEN 'timestamptz' THEN (shred.open_timestamptz(v) AT TIME ZONE 'UTC')::text
                   WHEN 'jsonb' THEN shred.open_jsonb(v)::text
                   ELSE shred.open(v) END
               FROM t ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want: Vec<(i32, Option<&str>)> = vec![
        (1, Some("0")),
        (2, Some("-2147483648")),
        (3, Some("2147483647")),
        (4, Some("-9223372036854775808")),
        (5, Some("9223372036854775807")),
        (6, Some("-12.3400")),
        (7, Some("NaN")),
        (8, Some("10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000.000001")),
        (9, Some("2024-02-29")),
        (10, Some("infinity")),
        (11, Some("4713-01-01 BC")),
        (12, Some("2024-03-31 00:30:00.123456")),
        (13, Some("-infinity")),
        (14, Some(r#"{"n": [1, 2.50, 1000000000000000000000000000000], "name": "Zoë", "nested": {"ok": true}}"#)),
        (15, None),
        (16, Some("plain text")),
        (17, Some("42")),
    ];
    let got_ref: Vec<(i32, Option<&str>)> = got.iter().map(|(i, s)| (*i, s.as_deref())).collect();
    assert_eq!(got_ref, want);
    // Typed values are envelope v2; their text form goes back in.
    let prefixes: Vec<String> = c
        .query("SELECT left(v::text, 7) FROM t WHERE id IN (1, 16) ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(prefixes, vec!["shred2:", "shred1:"]);
    let n: i32 = c.query_one("SELECT shred.open_integer(v::text::shred.sealed) FROM t WHERE id = 17", &[]).unwrap().get(0);
    assert_eq!(n, 42);
    // Each opens only as its own type.
    for (sql, msg) in [
        ("SELECT shred.open(v) FROM t WHERE id = 1", "pg_shred: the sealed value holds integer, not text"),
        ("SELECT shred.open_bytea(v) FROM t WHERE id = 9", "pg_shred: the sealed value holds date, not bytea"),
        ("SELECT shred.open_bigint(v) FROM t WHERE id = 1", "pg_shred: the sealed value holds integer, not bigint"),
        ("SELECT shred.open_integer(v) FROM t WHERE id = 16", "pg_shred: the sealed value holds text or bytea, not integer"),
        ("SELECT shred.open_jsonb(v) FROM t WHERE id = 6", "pg_shred: the sealed value holds numeric, not jsonb"),
    ] {
        let e = c.query_one(sql, &[]);
        assert_eq!(message(e), msg, "{sql}");
        assert_eq!(sqlstate(c.query_one(sql, &[])), "42804", "{sql}");
    }
    // Another context fails like any authentication failure.
    assert_eq!(sqlstate(c.query_one("SELECT shred.open_integer(v, 'other') FROM t WHERE id = 17", &[])), "22000");
    let erased: bool = c.query_one("SELECT shred.erase('typed:2')", &[]).unwrap().get(0);
    assert!(erased);
    let n: Option<i32> = c.query_one("SELECT shred.open_integer(v) FROM t WHERE id = 17", &[]).unwrap().get(0);
    assert_eq!(n, None);
}

/// Blind indexes: normalisation, one key per context, lookups through an index; pseudonyms:
/// stable per (subject, domain), unlinkable across domains, NULL after a committed erasure
/// (G5) and unchanged after a rolled-back one. Reserved subjects are refused.
#[test]
fn blind_indexes_and_pseudonyms() {
    let mut c = fresh_db("it_tokens");
    let bidx = |c: &mut postgres::Client, v: &str, ctx: &str, rule: &str| -> Vec<u8> {
        c.query_one("SELECT shred.blind_index($1, $2, $3)", &[&v, &ctx, &rule]).unwrap().get(0)
    };
    // Readers never create keys: a context nothing was indexed under is an error (42704), and
    // the key store is unchanged; a writer's first row token creates the context's key.
    let keys = |c: &mut postgres::Client| -> i64 { c.query_one("SELECT count(*) FROM shred.subject_key", &[]).unwrap().get(0) };
    let before = keys(&mut c);
    assert_eq!(sqlstate(c.query_one("SELECT shred.blind_index('x', 'customer.email')", &[])), "42704");
    assert_eq!(sqlstate(c.query_one("SELECT shred.blind_match('x', 'customer.email')", &[])), "42704");
    assert_eq!(keys(&mut c), before);
    c.batch_execute("SELECT shred.blind_token('k:1', 'x', 'customer.email'), shred.blind_token('k:1', 'x', 'invoice.email')").unwrap();
    let labels: (String, String) = {
        let r = c.query_one("SELECT p.provolatile::text, q.provolatile::text FROM pg_proc p, pg_proc q
                              WHERE p.oid = 'shred.blind_index(text,text,text)'::regprocedure
                                AND q.oid = 'shred.blind_match(text,text,text)'::regprocedure", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(labels, ("s".into(), "s".into()), "lookups are STABLE");
    let a = bidx(&mut c, " Alice@Example.COM ", "customer.email", "email");
    assert_eq!(a.len(), 32);
    assert_eq!(a, bidx(&mut c, "alice@example.com", "customer.email", "email"));
    assert_eq!(a, bidx(&mut c, "alice@example.com", "customer.email", "exact"));
    assert_ne!(a, bidx(&mut c, " Alice@Example.COM ", "customer.email", "exact"));
    assert_ne!(a, bidx(&mut c, "alice@example.com", "invoice.email", "email"));
    let null: Option<Vec<u8>> = c.query_one("SELECT shred.blind_index(NULL, 'customer.email')", &[]).unwrap().get(0);
    assert_eq!(null, None);
    assert_eq!(sqlstate(c.query_one("SELECT shred.blind_index('x', NULL)", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.blind_index('x', 'c', 'lower')", &[])), "22023");
    assert_eq!(sqlstate(c.query_one("SELECT shred.blind_index('x', '')", &[])), "22023");
    // Stable in another session; a lookup finds the row through a btree index.
    let mut other = connect("it_tokens");
    assert_eq!(a, bidx(&mut other, "ALICE@example.com", "customer.email", "email"));
    c.batch_execute(
        "CREATE TABLE customer (id int, email shred.sealed, email_bidx bytea);
         CREATE INDEX ON customer (email_bidx);
         INSERT INTO customer SELECT g, shred.seal('customer:' || g, 'user' || g || '@example.com', 'customer.email'),
                                     shred.blind_index('user' || g || '@example.com', 'customer.email', 'email')
           FROM generate_series(1, 2000) g;
         ANALYZE customer;",
    )
    .unwrap();
    let found: Vec<(i32, String)> = c
        .query(
            "SELECT id, shred.open(email, 'customer.email') FROM customer
              WHERE email_bidx = shred.blind_index($1, 'customer.email', 'email')",
            &[&"User1234@Example.com"],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(found, vec![(1234, "user1234@example.com".to_string())]);
    let plan: String = c
        .query("EXPLAIN SELECT id FROM customer WHERE email_bidx = '\\x00'::bytea", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains("Index") || plan.contains("Bitmap"), "{plan}");

    // Pseudonyms.
    let pseudo = |c: &mut postgres::Client, s: &str, d: &str| -> Option<String> {
        c.query_one("SELECT shred.pseudonym($1, $2)", &[&s, &d]).unwrap().get(0)
    };
    let p1 = pseudo(&mut c, "customer:1", "analytics").expect("subject exists");
    assert_eq!(p1.len(), 22);
    assert!(p1.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{p1}");
    assert_eq!(pseudo(&mut other, "customer:1", "analytics").as_deref(), Some(p1.as_str()));
    assert_ne!(pseudo(&mut c, "customer:1", "marketing").as_deref(), Some(p1.as_str()));
    assert_ne!(pseudo(&mut c, "customer:2", "analytics").as_deref(), Some(p1.as_str()));
    assert_eq!(pseudo(&mut c, "customer:never-sealed", "analytics"), None);
    let null: Option<String> = c.query_one("SELECT shred.pseudonym(NULL, 'analytics')", &[]).unwrap().get(0);
    assert_eq!(null, None);
    // A rolled-back erasure changes nothing; a committed one ends the pseudonym everywhere.
    c.batch_execute("BEGIN; SELECT shred.erase('customer:1'); ROLLBACK").unwrap();
    assert_eq!(pseudo(&mut other, "customer:1", "analytics").as_deref(), Some(p1.as_str()));
    assert_eq!(a, bidx(&mut other, "alice@example.com", "customer.email", "email"));
    c.batch_execute("SELECT shred.erase('customer:1')").unwrap();
    assert_eq!(pseudo(&mut other, "customer:1", "analytics"), None);
    assert_eq!(pseudo(&mut c, "customer:1", "analytics"), None);
    // The blind-index key belongs to no subject: erasures leave it alone.
    assert_eq!(a, bidx(&mut other, "alice@example.com", "customer.email", "email"));
    // Reserved subjects.
    for sql in [
        "SELECT shred.seal('pg_shred:blind-index:customer.email', 'x')",
        "SELECT shred.erase('pg_shred:blind-index:customer.email')",
        "SELECT shred.erase(ARRAY['pg_shred:blind-index:customer.email'])",
        "SELECT shred.pseudonym('pg_shred:blind-index:customer.email', 'd')",
    ] {
        assert_eq!(sqlstate(c.query_one(sql, &[])), "22023", "{sql}");
    }
}

/// A7: restoring a backup taken before some erasures brings those subjects back; replaying
/// the key ids of the newer erasure log erases exactly them again (key ids are never reused),
/// records the erasures in the restored database, and is idempotent.
#[test]
fn older_backup_replays_erasures() {
    let mut src = fresh_db("it_replay_src");
    make_sample(&mut src, 6);
    let path = dir().join("it_replay.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-f", path.to_str().unwrap(), "it_replay_src"]));
    let erased: bool = src.query_one("SELECT shred.erase('person:2')", &[]).unwrap().get(0);
    assert!(erased);
    let n: i64 = src.query_one("SELECT shred.erase(ARRAY['person:4', 'person:5'])", &[]).unwrap().get(0);
    assert_eq!(n, 2);
    let key_ids: Vec<i64> = src
        .query("SELECT key_id FROM shred.erasure_log ORDER BY key_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(key_ids.len(), 3);

    drop(empty_db("it_replay_old"));
    run(pg_tool("pg_restore").args(["--exit-on-error", "-d", "it_replay_old", path.to_str().unwrap()]));
    let mut old = connect("it_replay_old");
    let names = |c: &mut postgres::Client| -> Vec<Option<String>> {
        c.query("SELECT shred.open(name, 'person.name') FROM person ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, Option<String>>(0).map(|s| s.split(' ').take(2).collect::<Vec<_>>().join(" ")))
            .collect()
    };
    // the backup predates the erasures: the subjects are back
    assert_eq!(names(&mut old).iter().filter(|n| n.is_some()).count(), 6);
    let replayed: i64 = old.query_one("SELECT shred.replay_erasures($1)", &[&key_ids]).unwrap().get(0);
    assert_eq!(replayed, 3);
    let expected: Vec<Option<String>> = (1..=6)
        .map(|i| (![2, 4, 5].contains(&i)).then(|| format!("Nåme {i}")))
        .collect();
    assert_eq!(names(&mut old), expected);
    let recorded: bool = old.query_one("SELECT shred.erased_at('person:4') IS NOT NULL AND shred.erased_at('person:1') IS NULL", &[]).unwrap().get(0);
    assert!(recorded);
    let again: i64 = old.query_one("SELECT shred.replay_erasures($1)", &[&key_ids]).unwrap().get(0);
    assert_eq!(again, 0);
}
