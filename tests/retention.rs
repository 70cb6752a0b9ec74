//! Retention, end dates and legal holds against a real server (started by `scripts/test`, where
//! the retention worker is idle: `CALL shred.run_retention()` runs retention here), and the
//! background worker on a cluster of its own (short naptime): it erases what is due and nothing
//! else, survives an error in one database and its own termination, follows a reload, stops
//! promptly at shutdown, and writes no subject to the log.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use postgres::Client;

/// Purposes: `brief` keeps data 1 second after its last seal, `kept` a day.
fn purposes(c: &mut Client) {
    c.batch_execute(
        "SELECT shred.define_purpose('brief', 'kept one second', false, '1 second');
         SELECT shred.define_purpose('kept', 'kept a day', false, '1 day');
         SELECT shred.define_purpose('plain', 'kept without limit');",
    )
    .unwrap();
}

/// `n` subjects `{prefix}{i}`, each with a default value, a `brief` value and a `kept` value in
/// table `t`.
fn seal_subjects(c: &mut Client, prefix: &str, n: i32) {
    c.batch_execute("CREATE TABLE IF NOT EXISTS t (subject text, d shred.sealed, b shred.sealed, k shred.sealed)").unwrap();
    c.execute(
        "INSERT INTO t SELECT $1 || g, shred.seal($1 || g, 'default ' || g), shred.seal($1 || g, 'brief ' || g, '', 'brief'),
                              shred.seal($1 || g, 'kept ' || g, '', 'kept')
           FROM generate_series(1, $2) g",
        &[&prefix, &n],
    )
    .unwrap();
}

/// (default, brief, kept) values of `subject` opened, "∅" for NULL.
fn opened(c: &mut Client, subject: &str) -> String {
    one(
        c,
        &format!("SELECT shred.open(d), shred.open(b), shred.open(k) FROM t WHERE subject = '{subject}'"),
    )
}

fn live_keys(c: &mut Client) -> i64 {
    c.query_one("SELECT count(*) FROM shred.subject_key WHERE subject NOT LIKE 'pg_shred:%'", &[]).unwrap().get(0)
}

/// Retention by `CALL shred.run_retention`: purpose DEKs past their retention and whole subjects
/// past their end date are erased as manual erasures are (records, pseudonyms, blind-index
/// terms, consents), held subjects are not until released, nothing else is touched.
#[test]
fn run_retention_erases_what_is_due() {
    let mut c = fresh_db("pg_shred_ret_due");
    purposes(&mut c);
    seal_subjects(&mut c, "due-", 12);
    c.batch_execute("SELECT shred.hold('due-1', 'claim 7'); SELECT shred.expire_subject('due-2', now());").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.expire_subject('due-3', now() + interval '1 day')"), "f");
    // A pseudonym under the brief DEK, and a subject with an end date but no DEK.
    let pseudonym: String = c.query_one("SELECT shred.pseudonym('due-4', 'crm', 'brief')", &[]).unwrap().get(0);
    c.batch_execute("SELECT shred.expire_subject('due-none', now() - interval '1 hour')").unwrap();
    // Nothing is due yet: the clocks run from the last seal.
    assert_eq!(one(&mut c, "SELECT backlog, held FROM shred.retention_status"), "3 | 0");
    thread::sleep(Duration::from_millis(1500));
    // 3 DEKs of due-2 and the brief DEKs of due-3 to due-12 are due; due-1's is held.
    assert_eq!(one(&mut c, "SELECT backlog, held FROM shred.retention_status"), "13 | 1");
    let keys_before = live_keys(&mut c);

    // Batches of 5: each commits on its own, with a NOTICE of its count.
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = notices.clone();
    let mut config = postgres::Config::new();
    config.host(&host()).port(port().parse().unwrap()).user("postgres").dbname("pg_shred_ret_due");
    config.notice_callback(move |n| seen.lock().unwrap().push(n.message().to_string()));
    let mut caller = config.connect(postgres::NoTls).unwrap();
    caller.batch_execute("CALL shred.run_retention(5)").unwrap();
    let notices = notices.lock().unwrap().clone();
    assert_eq!(notices.first().map(String::as_str), Some("pg_shred: retention batch 1, DEKs erased: 5"), "{notices:?}");
    assert_eq!(notices.last().map(String::as_str), Some("pg_shred: retention done, DEKs erased: 13, batches: 3"), "{notices:?}");
    assert!(notices.iter().all(|n| !n.contains("due-")), "a subject in a notice: {notices:?}");
    assert_eq!(live_keys(&mut c), keys_before - 13);

    // The held subject keeps everything; due-2 is gone whole; the others lost the brief value.
    assert_eq!(opened(&mut c, "due-1"), "default 1 | brief 1 | kept 1");
    assert_eq!(opened(&mut c, "due-2"), "∅ | ∅ | ∅");
    assert_eq!(opened(&mut c, "due-3"), "default 3 | ∅ | kept 3");
    assert_eq!(opened(&mut c, "due-12"), "default 12 | ∅ | kept 12");
    assert_eq!(one(&mut c, "SELECT shred.pseudonym('due-4', 'crm', 'brief') IS NULL"), "t");
    assert_ne!(pseudonym, "");
    // Erasure records as manual erasures write them: by purpose, and whole for due-2.
    assert_eq!(
        one(&mut c, "SELECT count(*) FILTER (WHERE p.name = 'brief'), count(*) FILTER (WHERE l.purpose_id IS NULL)
                       FROM shred.erasure_log l LEFT JOIN shred.purpose p USING (purpose_id)"),
        "10 | 3"
    );
    assert_eq!(one(&mut c, "SELECT shred.erased_at('due-2') IS NOT NULL, shred.erased_at('due-3') IS NULL"), "t | t");
    // The end dates of due-2 and of the subject without DEKs went with them, their clocks too.
    assert_eq!(one(&mut c, "SELECT string_agg(subject, ',') FROM shred.subject_expiry"), "due-3");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.key_use u WHERE NOT EXISTS (SELECT FROM shred.subject_key k WHERE k.key_id = u.key_id)"), "0");
    assert_eq!(
        one(&mut c, "SELECT last_run_by, keys_erased_last_run, keys_erased, backlog, held FROM shred.retention_status"),
        "shred.run_retention | 13 | 13 | 0 | 1"
    );

    // Released: the overdue brief DEK of due-1 goes on the next run.
    assert_eq!(one(&mut c, "SELECT shred.release_hold('due-1')"), "t");
    assert_eq!(one(&mut c, "SELECT shred.release_hold('due-1')"), "f");
    caller.batch_execute("CALL shred.run_retention()").unwrap();
    assert_eq!(opened(&mut c, "due-1"), "default 1 | ∅ | kept 1");
    assert_eq!(one(&mut c, "SELECT keys_erased_last_run, keys_erased, backlog, held FROM shred.retention_status"), "1 | 14 | 0 | 0");

    // A new seal under a brief DEK starts its clock again; an end date moved away is kept.
    c.batch_execute("INSERT INTO t SELECT 'due-5', NULL, shred.seal('due-5', 'brief again', '', 'brief'), NULL").unwrap();
    assert_eq!(one(&mut c, "SELECT backlog FROM shred.retention_status"), "0");
    assert_eq!(one(&mut c, "SELECT shred.expire_subject('due-3', NULL)"), "t");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_expiry"), "0");
    assert_eq!(sqlstate(c.batch_execute("CALL shred.run_retention(0)")), "22023");
}

/// End dates of subjects that have no DEK take no erasure: more of them than a batch holds do
/// not stop a run before the DEKs due after them.
#[test]
fn end_dates_without_deks_do_not_stop_a_run() {
    let mut c = fresh_db("pg_shred_ret_nodek");
    purposes(&mut c);
    c.batch_execute("SELECT shred.expire_subject('nodek-' || g, now() - interval '1 hour') FROM generate_series(1, 12) g").unwrap();
    seal_subjects(&mut c, "nodek-due-", 1);
    c.batch_execute("SELECT shred.expire_subject('nodek-due-1', now())").unwrap();
    assert_eq!(one(&mut c, "SELECT backlog FROM shred.retention_status"), "3");
    c.batch_execute("CALL shred.run_retention(5)").unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_expiry"), "0");
    assert_eq!(opened(&mut c, "nodek-due-1"), "∅ | ∅ | ∅");
    assert_eq!(one(&mut c, "SELECT keys_erased, backlog FROM shred.retention_status"), "3 | 0");
}

/// A held subject is erased by nothing: shred.erase (one, many), erasure by purpose and
/// withdraw_consent fail with 55006 naming the hold, with nothing erased or recorded; the
/// reason is sealed; a manual erasure of a subject with an end date removes the end date.
#[test]
fn legal_hold_stops_every_erasure() {
    let mut c = fresh_db("pg_shred_ret_hold");
    purposes(&mut c);
    c.batch_execute("SELECT shred.define_purpose('news', 'newsletter', true)").unwrap();
    seal_subjects(&mut c, "hold-", 3);
    let token: String = c.query_one("SELECT shred.request_consent('hold-1', 'news')", &[]).unwrap().get(0);
    assert_eq!(one(&mut c, &format!("SELECT shred.confirm_consent('{token}')")), "t");
    c.batch_execute("INSERT INTO t SELECT 'hold-1', NULL, shred.seal('hold-1', 'letter', '', 'news'), NULL").unwrap();
    let id: i64 = c.query_one("SELECT shred.hold('hold-1', 'litigation: case 2026-114')", &[]).unwrap().get(0);
    assert_eq!(c.query_one("SELECT shred.hold('hold-1', 'litigation: case 2026-115')", &[]).unwrap().get::<_, i64>(0), id);
    let keys = live_keys(&mut c);
    for sql in [
        "SELECT shred.erase('hold-1')",
        "SELECT shred.erase(ARRAY['hold-2', 'hold-1'])",
        "SELECT shred.erase('hold-1', 'kept')",
        "SELECT shred.withdraw_consent('hold-1', 'news')",
    ] {
        let r = c.batch_execute(sql);
        let msg = message(c.batch_execute(sql));
        assert_eq!(sqlstate(r), "55006", "{sql}");
        assert!(msg.contains(&format!("legal hold {id}")), "{sql}: {msg}");
        assert!(!msg.contains("hold-1") && !msg.contains("litigation"), "{sql}: {msg}");
    }
    // Nor by a replay of erasures after a restore, whatever key id it is given.
    let r = c.batch_execute("SELECT shred.replay_erasures(array(SELECT shred.key_id(reason) FROM shred.holds))");
    assert_eq!(sqlstate(r), "55006");
    assert_eq!(live_keys(&mut c), keys);
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.erasure_log"), "0");
    // A withdrawal that erases nothing (no DEK of the purpose) says nothing about holds.
    c.batch_execute("SELECT shred.hold('hold-3', 'r')").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.withdraw_consent('hold-3', 'news')"), "f");
    c.batch_execute("SELECT shred.release_hold('hold-3')").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.has_consent('hold-1', 'news')"), "t");
    assert_eq!(opened(&mut c, "hold-2"), "default 2 | brief 2 | kept 2");
    assert_eq!(
        one(&mut c, "SELECT hold_id, subject, shred.open(reason, 'pg_shred:legal_hold'), placed_by FROM shred.holds"),
        format!("{id} | hold-1 | litigation: case 2026-115 | postgres")
    );
    // Only the reason's sealed form is stored.
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.legal_hold WHERE reason::text LIKE '%litigation%'"), "0");

    // Released, everything works again; an erased subject leaves no end date behind.
    c.batch_execute("SELECT shred.release_hold('hold-1'); SELECT shred.expire_subject('hold-2', now() + interval '1 year')").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.withdraw_consent('hold-1', 'news'), shred.erase('hold-1'), shred.erase('hold-2')"), "t | t | t");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_expiry"), "0");
    // Nothing to hold without a DEK: no DEK is made for the subject.
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.hold('hold-none', 'r')")), "42704");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject = 'hold-none'"), "0");
    // NULL arguments and reserved subjects.
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.hold('x', NULL)")), "22004");
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.hold(NULL, 'r')")), "22004");
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.expire_subject('pg_shred:audit', now())")), "22023");
}

/// Run `sql` in a session of its own on `db`, and return once it waits for a lock; the thread
/// gives its SQLSTATE ("none" when it succeeded).
fn waiting(watch: &mut Client, db: &'static str, sql: &'static str) -> thread::JoinHandle<String> {
    let (tx, rx) = mpsc::channel();
    let session = thread::spawn(move || {
        let mut s = connect(db);
        tx.send(()).unwrap();
        match s.batch_execute(sql) {
            Ok(()) => "none".to_string(),
            r => sqlstate(r),
        }
    });
    rx.recv().unwrap();
    let quoted = sql.replace('\'', "''");
    wait_until("the session to wait for a lock", 30, || {
        one(watch, &format!("SELECT count(*) FROM pg_stat_activity WHERE query = '{quoted}' AND wait_event_type = 'Lock'")) == "1"
    });
    session
}

/// A hold and an erasure of the same subject in two sessions: the one that commits first wins,
/// and the other fails cleanly (an erasure waiting for a hold's locks: 55006; a hold waiting
/// for an erasure: 40001), never an erased subject reported as held; a REPEATABLE READ erasure
/// with an older snapshot sees a committed hold too.
#[test]
fn hold_and_erasure_race() {
    let mut c = fresh_db("pg_shred_ret_race");
    c.batch_execute("SELECT shred.seal('race-1', 'x'), shred.seal('race-2', 'y')").unwrap();
    // Hold first, erasure waits for it.
    let mut h = connect("pg_shred_ret_race");
    h.batch_execute("BEGIN; SELECT shred.hold('race-1', 'r')").unwrap();
    let eraser = waiting(&mut c, "pg_shred_ret_race", "SELECT shred.erase('race-1')");
    h.batch_execute("COMMIT").unwrap();
    assert_eq!(eraser.join().unwrap(), "55006");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject = 'race-1'"), "1");

    // Erasure first, the hold waits for it and fails.
    let mut e = connect("pg_shred_ret_race");
    e.batch_execute("BEGIN; SELECT shred.erase('race-2')").unwrap();
    let holder = waiting(&mut c, "pg_shred_ret_race", "SELECT shred.hold('race-2', 'r')");
    e.batch_execute("COMMIT").unwrap();
    assert_eq!(holder.join().unwrap(), "40001");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.legal_hold WHERE subject = 'race-2'"), "0");

    // A REPEATABLE READ erasure whose snapshot is older than a committed hold still sees it
    // (the check reads the latest committed state), by subject and by array.
    c.batch_execute("SELECT shred.seal('race-3', 'z')").unwrap();
    let mut old = connect("pg_shred_ret_race");
    old.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM shred.purposes").unwrap();
    c.batch_execute("SELECT shred.hold('race-3', 'r')").unwrap();
    assert_eq!(sqlstate(old.batch_execute("SELECT shred.erase('race-3')")), "55006");
    old.batch_execute("ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM shred.purposes").unwrap();
    c.batch_execute("SELECT shred.release_hold('race-3'); SELECT shred.hold('race-3', 'again')").unwrap();
    assert_eq!(sqlstate(old.batch_execute("SELECT shred.erase(ARRAY['race-3'])")), "55006");
    old.batch_execute("ROLLBACK").unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject = 'race-3'"), "1");
}

/// `CALL shred.run_retention` cancelled inside a batch keeps the batches it committed, leaves
/// the interrupted one wholly undone (no DEK deleted without its record), and the next call
/// finishes.
#[test]
fn run_retention_resumes_after_cancel() {
    let mut c = fresh_db("pg_shred_ret_cancel");
    purposes(&mut c);
    seal_subjects(&mut c, "cancel-", 30);
    thread::sleep(Duration::from_millis(1200));
    // Another session locks one due DEK: the batch that reaches it waits.
    let mut blocker = connect("pg_shred_ret_cancel");
    blocker
        .batch_execute(
            "BEGIN; SELECT k.key_id FROM shred.subject_key k JOIN shred.purpose p USING (purpose_id)
                     WHERE p.name = 'brief' AND k.subject = 'cancel-17' FOR KEY SHARE",
        )
        .unwrap();
    let runner = waiting(&mut c, "pg_shred_ret_cancel", "CALL shred.run_retention(10)");
    c.batch_execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'CALL shred.run_retention(10)'").unwrap();
    assert_eq!(runner.join().unwrap(), "57014");
    blocker.batch_execute("ROLLBACK").unwrap();
    let erased: i64 = c.query_one("SELECT count(*) FROM shred.erasure_log", &[]).unwrap().get(0);
    let left: i64 = c
        .query_one("SELECT count(*) FROM shred.subject_key k JOIN shred.purpose p USING (purpose_id) WHERE p.name = 'brief'", &[])
        .unwrap()
        .get(0);
    assert_eq!(erased % 10, 0, "only whole batches committed");
    assert_eq!(erased + left, 30);
    assert!(left >= 10);
    assert_eq!(one(&mut c, "SELECT shred.open(b) FROM t WHERE subject = 'cancel-17'"), "brief 17");
    c.batch_execute("CALL shred.run_retention(10)").unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.erasure_log"), "30");
    assert_eq!(one(&mut c, "SELECT count(*) FILTER (WHERE shred.open(b) IS NULL), count(*) FILTER (WHERE shred.open(k) IS NULL) FROM t"), "30 | 0");
}

/// The retention clock: written at COMMIT, at most once per granule per DEK and backend (a
/// second seal in the same backend writes nothing), never for a rolled-back seal alone, never
/// in a read-only transaction (which still commits), and never before the seal it covers.
#[test]
fn retention_clock_is_cheap_and_never_early() {
    let mut c = fresh_db("pg_shred_ret_clock");
    purposes(&mut c);
    c.batch_execute("BEGIN; SELECT shred.seal('clock-1', 'a', '', 'kept'); ROLLBACK").unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.key_use"), "0");
    let before: String = one(&mut c, "SELECT clock_timestamp()");
    c.batch_execute("SELECT shred.seal('clock-1', 'a', '', 'kept')").unwrap();
    let written = one(&mut c, "SELECT xmin, sealed_before FROM shred.key_use");
    assert_eq!(
        one(&mut c, &format!("SELECT sealed_before >= '{before}'::timestamptz + interval '2 hours 23 minutes' FROM shred.key_use")),
        "t",
        "a day's retention: the clock covers a tenth of it"
    );
    for _ in 0..20 {
        c.batch_execute("SELECT shred.seal('clock-1', 'a', '', 'kept')").unwrap();
    }
    assert_eq!(one(&mut c, "SELECT xmin, sealed_before FROM shred.key_use"), written, "no write within the granule");
    // No retention: the default DEK has no clock; a purpose without retention a day's granule.
    c.batch_execute("SELECT shred.seal('clock-2', 'a'), shred.seal('clock-2', 'b', '', 'plain')").unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.key_use"), "2");
    // A read-only transaction seals under existing DEKs and commits; it writes no clock.
    let mut ro = connect("pg_shred_ret_clock");
    ro.batch_execute("BEGIN READ ONLY; SELECT shred.seal('clock-1', 'c', '', 'kept'); COMMIT").unwrap();
    // A value sealed in a subtransaction that rolls back can be stored after it: its clock is
    // written when the transaction commits. And a prepared transaction that is rolled back
    // leaves no clock the backend takes for written.
    c.batch_execute("SELECT shred.define_purpose('ten', 'ten seconds', false, '10 seconds')").unwrap();
    c.batch_execute("CREATE TABLE kept_values (v shred.sealed); SELECT shred.seal('clock-4', 'a', '', 'ten')").unwrap();
    thread::sleep(Duration::from_millis(1200));
    let before = one(&mut c, "SELECT clock_timestamp()");
    c.batch_execute(
        "DO $$ DECLARE v shred.sealed; BEGIN
             BEGIN v := shred.seal('clock-4', 'escaped', '', 'ten'); RAISE EXCEPTION 'rolled back'; EXCEPTION WHEN others THEN NULL; END;
             INSERT INTO kept_values VALUES (v);
         END $$",
    )
    .unwrap();
    let covered = "SELECT u.sealed_before >= '{before}'::timestamptz FROM shred.key_use u JOIN shred.subject_key k USING (key_id) WHERE k.subject = 'clock-4'";
    assert_eq!(one(&mut c, &covered.replace("{before}", &before)), "t", "the escaped seal is covered");
    thread::sleep(Duration::from_millis(1200));
    c.batch_execute("BEGIN; SELECT shred.seal('clock-4', 'b', '', 'ten'); PREPARE TRANSACTION 'pg_shred_ret_clock'").unwrap();
    c.batch_execute("ROLLBACK PREPARED 'pg_shred_ret_clock'").unwrap();
    let before = one(&mut c, "SELECT clock_timestamp()");
    c.batch_execute("SELECT shred.seal('clock-4', 'c', '', 'ten')").unwrap();
    assert_eq!(one(&mut c, &covered.replace("{before}", &before)), "t", "the seal after ROLLBACK PREPARED is covered");
    // The brief purpose: a clock is a tenth of a second past the seal, and due a second later.
    c.batch_execute("SELECT shred.seal('clock-3', 'x', '', 'brief')").unwrap();
    assert_eq!(one(&mut c, "SELECT backlog FROM shred.retention_status"), "0");
    thread::sleep(Duration::from_millis(1300));
    assert_eq!(one(&mut c, "SELECT backlog FROM shred.retention_status"), "1");
}

/// pg_dump and restore keep retention clocks, end dates and holds: in the restored database the
/// held subject is still refused, and retention erases there what was due in the source.
#[test]
fn dump_and_restore_keep_retention_and_holds() {
    let mut src = fresh_db("pg_shred_ret_dump_src");
    purposes(&mut src);
    seal_subjects(&mut src, "dump-", 3);
    src.batch_execute("SELECT shred.hold('dump-1', 'kept for court'); SELECT shred.expire_subject('dump-2', now())").unwrap();
    let clocks = one(&mut src, "SELECT count(*) FROM shred.key_use");
    let path = dir().join("retention.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-f", path.to_str().unwrap(), "pg_shred_ret_dump_src"]));
    drop(empty_db("pg_shred_ret_dump_dst"));
    run(pg_tool("pg_restore").args(["--exit-on-error", "-d", "pg_shred_ret_dump_dst", path.to_str().unwrap()]));
    let mut dst = connect("pg_shred_ret_dump_dst");
    assert_eq!(one(&mut dst, "SELECT count(*) FROM shred.key_use"), clocks);
    assert_eq!(one(&mut dst, "SELECT subject, shred.open(reason, 'pg_shred:legal_hold') FROM shred.holds"), "dump-1 | kept for court");
    assert_eq!(sqlstate(dst.batch_execute("SELECT shred.erase('dump-1')")), "55006");
    thread::sleep(Duration::from_millis(1200));
    dst.batch_execute("CALL shred.run_retention()").unwrap();
    assert_eq!(opened(&mut dst, "dump-1"), "default 1 | brief 1 | kept 1");
    assert_eq!(opened(&mut dst, "dump-2"), "∅ | ∅ | ∅");
    assert_eq!(opened(&mut dst, "dump-3"), "default 3 | ∅ | kept 3");
    // A new hold in the restored database takes the next id.
    dst.batch_execute("SELECT shred.release_hold('dump-1')").unwrap();
    assert_eq!(one(&mut dst, "SELECT shred.hold('dump-3', 'again')"), "2");
}

/// Who may do what: holds for shred_admin; end dates and retention runs for shred_eraser and
/// shred_admin; the holds and status for them too; nothing for an application's roles.
#[test]
fn retention_roles() {
    let mut c = fresh_db("pg_shred_ret_roles");
    purposes(&mut c);
    role(&mut c, "ret_app", "shred_writer, shred_reader");
    role(&mut c, "ret_eraser", "shred_eraser");
    role(&mut c, "ret_admin", "shred_admin");
    c.batch_execute("SELECT shred.seal('roles-1', 'x')").unwrap();
    let mut app = connect_as("pg_shred_ret_roles", "ret_app");
    for sql in [
        "SELECT shred.hold('roles-1', 'r')",
        "SELECT shred.release_hold('roles-1')",
        "SELECT shred.expire_subject('roles-1', now())",
        "CALL shred.run_retention()",
        "SELECT * FROM shred.holds",
        "SELECT * FROM shred.retention_status",
        "SELECT shred._retention_batch(1, true)",
    ] {
        assert_eq!(sqlstate(app.batch_execute(sql)), "42501", "{sql}");
    }
    let mut eraser = connect_as("pg_shred_ret_roles", "ret_eraser");
    assert_eq!(sqlstate(eraser.batch_execute("SELECT shred.hold('roles-1', 'r')")), "42501");
    eraser.batch_execute("SELECT shred.expire_subject('roles-1', now() + interval '1 day'); CALL shred.run_retention()").unwrap();
    assert_eq!(one(&mut eraser, "SELECT last_run_by, backlog FROM shred.retention_status"), "shred.run_retention | 0");
    let mut admin = connect_as("pg_shred_ret_roles", "ret_admin");
    admin.batch_execute("SELECT shred.hold('roles-1', 'r')").unwrap();
    assert_eq!(one(&mut eraser, "SELECT subject, placed_by FROM shred.holds"), "roles-1 | ret_admin");
    // The eraser sees that a hold exists, but cannot open its reason.
    assert_eq!(sqlstate(eraser.batch_execute("SELECT shred.open(reason, 'pg_shred:legal_hold') FROM shred.holds")), "42501");
    assert_eq!(sqlstate(eraser.batch_execute("SELECT shred.erase('roles-1')")), "55006");
    admin.batch_execute("SELECT shred.release_hold('roles-1')").unwrap();
    drop((app, eraser, admin));
    drop_roles(&mut c, &["ret_app", "ret_eraser", "ret_admin"]);
}

// ---------------------------------------------------------------------------------------------
// The background worker, on a cluster of its own.

/// ALTER SYSTEM SET `setting`, and reload.
fn reload(c: &mut Client, setting: &str) {
    c.batch_execute(&format!("ALTER SYSTEM SET {setting}")).unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
}

fn launcher_pid(c: &mut Client) -> Option<i32> {
    c.query_opt("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_shred retention launcher'", &[]).unwrap().map(|r| r.get(0))
}

/// The worker erases what is due in every database with pg_shred, and nothing else; an ERROR in
/// one database (its root key unreadable) does not stop the others; a terminated launcher is
/// started again; naptime 0 (reloaded) stops it; shutdown while it erases is prompt and leaves
/// no half-done erasure; the log holds counts, never a subject.
#[test]
fn retention_worker() {
    let port: u16 = port().parse::<u16>().unwrap() + 6;
    let cluster = OwnCluster::new(
        format!("{}.retention", dir().display()).into(),
        port,
        &["shred.retention_naptime = 1", "log_min_messages = info"],
    );
    let mut admin = cluster.connect("postgres");
    for db in ["ret_ok", "ret_bad", "ret_none"] {
        admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    }
    let mut ok = cluster.connect("ret_ok");
    ok.batch_execute("CREATE EXTENSION pg_shred").unwrap();
    purposes(&mut ok);
    let mut bad = cluster.connect("ret_bad");
    bad.batch_execute("CREATE EXTENSION pg_shred").unwrap();
    purposes(&mut bad);
    seal_subjects(&mut bad, "secret-subject-bad-", 5);
    // Every later session of ret_bad, the worker's among them, has no usable root key.
    admin.batch_execute("ALTER DATABASE ret_bad SET shred.root_key_file = '/nonexistent/pg_shred.key'").unwrap();

    // A database owner's own schema shred, in a database without the extension, shaped to
    // mislead: the worker leaves it alone (it belongs to no extension).
    admin.batch_execute("CREATE ROLE ret_owner LOGIN").unwrap();
    admin.batch_execute("CREATE DATABASE ret_fake OWNER ret_owner").unwrap();
    let mut fake = Client::connect(&cluster.dsn("ret_fake").replace("user=postgres", "user=ret_owner"), postgres::NoTls).unwrap();
    fake.batch_execute(
        "CREATE SCHEMA shred;
         CREATE TABLE shred.key_use (x int);
         CREATE TABLE shred.subject_key (key_id int8, subject text);
         CREATE TABLE shred.subject_expiry (subject text, expires_at timestamptz);
         CREATE TABLE shred.legal_hold (subject text);
         CREATE TABLE shred.root_key_version (version text CONSTRAINT root_key_version_pkey PRIMARY KEY);
         INSERT INTO shred.root_key_version VALUES ('a');
         INSERT INTO shred.subject_expiry VALUES ('x', '-infinity');",
    )
    .unwrap();
    let postmaster = cluster.postmaster_pid();
    seal_subjects(&mut ok, "secret-subject-ok-", 20);
    wait_until("the worker to erase the brief DEKs", 30, || one(&mut ok, "SELECT count(*) FROM t WHERE shred.open(b) IS NOT NULL") == "0");
    assert_eq!(one(&mut ok, "SELECT count(*) FROM t WHERE shred.open(d) IS NULL OR shred.open(k) IS NULL"), "0");
    assert_eq!(one(&mut ok, "SELECT last_run_by, keys_erased >= 20, backlog, next_run_at > now() - interval '2 s' FROM shred.retention_status"), "worker | t | 0 | t");
    assert_eq!(one(&mut fake, "SELECT count(*) FROM shred.subject_expiry"), "1");
    assert_eq!(cluster.postmaster_pid(), postmaster);
    drop(fake);
    // The broken database kept its DEKs, and its errors did not stop the launcher.
    assert_eq!(one(&mut bad, "SELECT count(*) FROM t WHERE shred.open(b) IS NOT NULL"), "5");
    let launcher = launcher_pid(&mut admin).expect("the launcher runs");

    // Terminated, the launcher comes back and goes on.
    admin.batch_execute(&format!("SELECT pg_terminate_backend({launcher})")).unwrap();
    wait_until("a new launcher", 30, || launcher_pid(&mut admin).is_some_and(|p| p != launcher));
    seal_subjects(&mut ok, "secret-subject-ok2-", 5);
    wait_until("the new launcher to erase", 30, || one(&mut ok, "SELECT count(*) FROM t WHERE shred.open(b) IS NOT NULL") == "0");

    // Naptime 0, reloaded: nothing more is erased; 1 again: it is.
    reload(&mut admin, "shred.retention_naptime = 0");
    thread::sleep(Duration::from_millis(1500));
    seal_subjects(&mut ok, "secret-subject-ok3-", 5);
    thread::sleep(Duration::from_millis(3000));
    assert_eq!(one(&mut ok, "SELECT count(*) FROM t WHERE shred.open(b) IS NOT NULL"), "5");
    assert_eq!(one(&mut ok, "SELECT next_run_at FROM shred.retention_status"), "∅");
    reload(&mut admin, "shred.retention_naptime = 1");
    wait_until("the worker to resume", 30, || one(&mut ok, "SELECT count(*) FROM t WHERE shred.open(b) IS NOT NULL") == "0");

    // A name in shred.retention_databases that no database has: one WARNING.
    reload(&mut admin, "shred.retention_databases = 'ret_ok, ret_nosuchdb'");
    wait_until("the warning about ret_nosuchdb", 30, || {
        std::fs::read_to_string(cluster.dir.join("server.log")).is_ok_and(|l| l.contains("ret_nosuchdb"))
    });
    reload(&mut admin, "shred.retention_databases = ''");

    // Shutdown while the worker erases, one DEK per batch: prompt, and every DEK it deleted
    // has its erasure record (nothing half-done).
    reload(&mut admin, "shred.retention_batch_size = 1");
    ok.batch_execute("SELECT shred.define_purpose('bulk', 'bulk', false, '1 second')").unwrap();
    ok.batch_execute("SELECT shred.seal('secret-subject-bulk-' || g, 'v', '', 'bulk') FROM generate_series(1, 3000) g").unwrap();
    wait_until("the worker to erase bulk DEKs", 30, || {
        one(&mut ok, "SELECT count(*) FROM shred.erasure_log l JOIN shred.purpose p USING (purpose_id) WHERE p.name = 'bulk'") != "0"
    });
    drop((ok, bad, admin));
    let started = Instant::now();
    lib_sh(r#"as_pg_user "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w -t 60 stop"#, &[&cluster.dir.to_string_lossy()]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    cluster.start();
    let mut ok = cluster.connect("ret_ok");
    reload(&mut ok, "shred.retention_naptime = 0");
    let (records, left): (i64, i64) = {
        let r = ok
            .query_one(
                "SELECT (SELECT count(*) FROM shred.erasure_log l JOIN shred.purpose p USING (purpose_id) WHERE p.name = 'bulk'),
                        (SELECT count(*) FROM shred.subject_key k JOIN shred.purpose p USING (purpose_id) WHERE p.name = 'bulk')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(records + left, 3000, "every bulk DEK is either live or recorded as erased");
    assert!(left > 0, "the shutdown came before the worker was done");

    // The log: counts and database names, an error for ret_bad, no subject.
    let log = std::fs::read_to_string(cluster.dir.join("server.log")).expect("server log");
    assert!(log.contains("pg_shred retention: database \"ret_ok\":"), "no count in the log");
    assert!(log.lines().any(|l| l.contains("ERROR") && l.contains("shred.root_key_file")), "no error of ret_bad in the log");
    assert!(log.len() > 1000 && log.contains("DEKs erased: "), "the log holds too little to conclude anything");
    assert!(!log.contains("secret-subject"), "a subject in the server log");
    assert!(!log.contains("terminated by signal"), "a server process crashed");
}
