//! Root-key management against a real server (started by `scripts/test`): keyrings from a
//! file or a command, rotation (also interrupted by a cancel and by `kill -9`), retirement,
//! the status view and erasure horizon, hidden settings, the 0.1.0 -> 0.2.0 upgrade, and a
//! scan of the server log for secrets.
//!
//! Run with one test thread: one test crashes the server on purpose (`kill -9` of a backend),
//! and the log scan (`zz_...`, last in name order) reads what every test before it logged.

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn seal(c: &mut postgres::Client, subject: &str, plaintext: &str) -> String {
    c.query_one("SELECT shred.seal($1, $2::text)::text", &[&subject, &plaintext]).expect("seal").get(0)
}

fn open(c: &mut postgres::Client, env: &str) -> Result<Option<String>, postgres::Error> {
    c.query_one("SELECT shred.open($1::text::shred.sealed)", &[&env]).map(|r| r.get(0))
}

fn use_keyring(c: &mut postgres::Client, path: &str) {
    c.batch_execute(&format!("SET shred.root_key_file = '{path}'")).unwrap();
}

/// (version, state, dek_count) rows of shred.root_key_status.
fn status(c: &mut postgres::Client) -> Vec<(i32, String, i64)> {
    c.query("SELECT version, state, dek_count FROM shred.root_key_status ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// A connection that records the NOTICEs and WARNINGs it receives.
fn connect_with_notices(db: &str) -> (postgres::Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let client = postgres::Config::new()
        .host(&host())
        .port(port().parse().unwrap())
        .user("postgres")
        .dbname(db)
        .notice_callback(move |n| sink.lock().unwrap().push(format!("{}: {}", n.severity(), n.message())))
        .connect(postgres::NoTls)
        .expect("connect");
    (client, notices)
}

/// G10: rotation rewraps every DEK under the newest version; values sealed before and after
/// open; retirement is refused while DEKs depend on a version; a version missing from the
/// keyring or holding another key is reported, never silently fatal.
#[test]
fn rotation_and_retirement() {
    let mut c = fresh_db("rk_rotate");
    let (k1, k2, k3) = (random_key(), random_key(), random_key());
    let v1 = keyring_file("rk_rotate_v1", &[(1, &k1)]);
    use_keyring(&mut c, &v1);
    let mut values: Vec<(String, String)> = (0..50).map(|i| {
        let plain = format!("before rotation {i}");
        (seal(&mut c, &format!("p:{i}"), &plain), plain)
    }).collect();
    assert_eq!(status(&mut c), vec![(1, "current".into(), 50)]);

    let v12 = keyring_file("rk_rotate_v12", &[(1, &k1), (2, &k2)]);
    use_keyring(&mut c, &v12);
    for i in 50..60 {
        let plain = format!("new subject after adding version 2: {i}");
        values.push((seal(&mut c, &format!("p:{i}"), &plain), plain));
    }
    assert_eq!(status(&mut c), vec![(1, "in use".into(), 50), (2, "current".into(), 10)]);
    let uses: Vec<(i32, bool, bool)> = c
        .query("SELECT version, first_used_at IS NOT NULL, superseded_at IS NULL FROM shred.root_key_status ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(uses, vec![(1, true, false), (2, true, true)]);
    let superseded: bool = c
        .query_one("SELECT superseded_at = (SELECT first_used_at FROM shred.root_key_status WHERE version = 2) FROM shred.root_key_status WHERE version = 1", &[])
        .unwrap()
        .get(0);
    assert!(superseded);

    // Retiring a version still in use, or the newest, is refused.
    let e = c.query_one("SELECT shred.retire_root_key(1)", &[]);
    assert_eq!(message(e), "pg_shred: root-key version 1 still wraps 50 DEKs; CALL shred.rotate_root_key() first");
    assert_eq!(sqlstate(c.query_one("SELECT shred.retire_root_key(2)", &[])), "55000");
    assert_eq!(sqlstate(c.query_one("SELECT shred.retire_root_key(7)", &[])), "42704", "version 7 is not registered");

    let before: Vec<(i64, Vec<u8>)> = c
        .query("SELECT key_id, wrapped_dek FROM shred.subject_key WHERE root_key_version = 1 ORDER BY key_id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    drop(c);
    let (mut r, notices) = connect_with_notices("rk_rotate");
    use_keyring(&mut r, &v12);
    r.batch_execute("CALL shred.rotate_root_key(20)").unwrap();
    assert_eq!(
        *notices.lock().unwrap(),
        vec![
            "NOTICE: pg_shred: rewrapped 20 DEKs under root-key version 2; 30 left",
            "NOTICE: pg_shred: rewrapped 20 DEKs under root-key version 2; 10 left",
            "NOTICE: pg_shred: rewrapped 10 DEKs under root-key version 2; 0 left",
            "NOTICE: pg_shred: every DEK is wrapped under root-key version 2",
        ]
    );
    assert_eq!(status(&mut r), vec![(1, "unused".into(), 0), (2, "current".into(), 60)]);
    // Same key ids, new wrappings (fresh nonces under another KEK).
    for (key_id, old) in &before {
        let new: Vec<u8> = r.query_one("SELECT wrapped_dek FROM shred.subject_key WHERE key_id = $1", &[key_id]).unwrap().get(0);
        assert_eq!(new.len(), 61);
        assert_ne!(&new, old);
    }
    for (env, plain) in &values {
        assert_eq!(open(&mut r, env).unwrap().as_deref(), Some(plain.as_str()));
    }

    // Retire version 1; it may now leave the keyring.
    let retired: bool = r.query_one("SELECT shred.retire_root_key(1)", &[]).unwrap().get(0);
    assert!(retired);
    let again: bool = r.query_one("SELECT shred.retire_root_key(1)", &[]).unwrap().get(0);
    assert!(!again);
    assert_eq!(status(&mut r), vec![(1, "retired".into(), 0), (2, "current".into(), 60)]);
    let h = r.query_one("SELECT oldest_needed_version, oldest_live_version, advice FROM shred.erasure_horizon()", &[]).unwrap();
    assert_eq!((h.get::<_, i32>(0), h.get::<_, i32>(1)), (2, 1));
    assert!(h.get::<_, String>(2).contains("version 1 is retired but still in the keyring"), "{}", h.get::<_, String>(2));

    let v2 = keyring_file("rk_rotate_v2", &[(2, &k2)]);
    use_keyring(&mut r, &v2);
    let h = r
        .query_one(
            "SELECT oldest_needed_version, oldest_live_version,
                    erasures_final_before = (SELECT first_used_at FROM shred.root_key_status WHERE version = 2)
               FROM shred.erasure_horizon()",
            &[],
        )
        .unwrap();
    assert_eq!((h.get::<_, i32>(0), h.get::<_, i32>(1), h.get::<_, bool>(2)), (2, 2, true));
    for (env, plain) in values.iter().take(5) {
        assert_eq!(open(&mut r, env).unwrap().as_deref(), Some(plain.as_str()));
    }
    let erased: bool = r.query_one("SELECT shred.erase('p:0')", &[]).unwrap().get(0);
    assert!(erased);
    assert_eq!(open(&mut r, &values[0].0).unwrap(), None);

    // Version 2 missing from the keyring: opening fails closed naming it, the status says so.
    let mut m = connect("rk_rotate");
    use_keyring(&mut m, &v1);
    let e = open(&mut m, &values[1].0);
    assert_eq!(message(e), "pg_shred: root-key version 2 is not in the keyring");
    assert_eq!(sqlstate(open(&mut m, &values[1].0)), "F0000");
    // 59 subjects left, and the key behind the erasure record's digest (pg_shred:audit)
    assert_eq!(status(&mut m), vec![(1, "retired".into(), 0), (2, "missing".into(), 60)]);
    let advice: String = m.query_one("SELECT advice FROM shred.erasure_horizon()", &[]).unwrap().get(0);
    assert!(advice.starts_with("Root-key version 2 is needed by DEKs"), "{advice}");
    // New DEKs cannot go under the retired version 1 either.
    assert_eq!(sqlstate(m.query_one("SELECT shred.seal('p:new', 'x')", &[])), "55000");

    // Another key under version 2: refused, reported as a wrong key.
    let wrong = keyring_file("rk_rotate_wrong", &[(2, &k3)]);
    use_keyring(&mut m, &wrong);
    assert_eq!(message(open(&mut m, &values[1].0)), "pg_shred: the configured root key is not root-key version 2 of this database");
    assert_eq!(status(&mut m), vec![(1, "retired".into(), 0), (2, "wrong key".into(), 60)]);

    // A keyring that lacks version 2 (which wraps DEKs) cannot register a new version 3.
    let skip = keyring_file("rk_rotate_skip", &[(3, &k3)]);
    use_keyring(&mut m, &skip);
    assert_eq!(message(m.query_one("SELECT shred.seal('p:new', 'x')", &[])), "pg_shred: root-key version 2 is not in the keyring");
    let n: i64 = m.query_one("SELECT count(*) FROM shred.root_key_version WHERE version = 3", &[]).unwrap().get(0);
    assert_eq!(n, 0);
    // With version 2 present, version 3 is registered and a rotation moves everything to it.
    let v23 = keyring_file("rk_rotate_v23", &[(2, &k2), (3, &k3)]);
    use_keyring(&mut m, &v23);
    seal(&mut m, "p:new", "x");
    m.batch_execute("CALL shred.rotate_root_key()").unwrap();
    assert_eq!(
        status(&mut m),
        vec![(1, "retired".into(), 0), (2, "unused".into(), 0), (3, "current".into(), 61)]
    );
    for (env, plain) in values.iter().skip(1) {
        assert_eq!(open(&mut m, env).unwrap().as_deref(), Some(plain.as_str()));
    }
}

/// A rotation inside a transaction block runs every batch in it: ROLLBACK undoes all.
#[test]
fn rotation_in_a_transaction_block_is_atomic() {
    let mut c = fresh_db("rk_block");
    let (k1, k2) = (random_key(), random_key());
    use_keyring(&mut c, &keyring_file("rk_block_v1", &[(1, &k1)]));
    let envs: Vec<String> = (0..30).map(|i| seal(&mut c, &format!("b:{i}"), "v")).collect();
    use_keyring(&mut c, &keyring_file("rk_block_v12", &[(1, &k1), (2, &k2)]));
    c.batch_execute("BEGIN; CALL shred.rotate_root_key(7)").unwrap();
    assert_eq!(status(&mut c), vec![(1, "unused".into(), 0), (2, "current".into(), 30)]);
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(status(&mut c), vec![(1, "in use".into(), 30), (2, "current".into(), 0)]);
    assert_eq!(sqlstate(c.batch_execute("CALL shred.rotate_root_key(0)")), "22023");
    for env in &envs {
        assert_eq!(open(&mut c, env).unwrap().as_deref(), Some("v"));
    }
}

/// Blind indexes and pseudonyms do not change when the root key is rotated and the old version
/// retired: their keys are rewrapped like DEKs, not derived from a root-key version.
#[test]
fn tokens_survive_rotation() {
    let mut c = fresh_db("rk_tokens");
    let (k1, k2) = (random_key(), random_key());
    use_keyring(&mut c, &keyring_file("rk_tokens_v1", &[(1, &k1)]));
    seal(&mut c, "t:1", "x");
    // a row token of t:1 (creates the context's key); lookups find it before and after
    let token: Vec<u8> = c.query_one("SELECT shred.blind_token('t:1', 'a@b.example', 'customer.email', 'email')", &[]).unwrap().get(0);
    let tokens = |c: &mut postgres::Client| -> (Vec<u8>, String, Vec<Vec<u8>>) {
        let r = c
            .query_one(
                "SELECT shred.blind_index('a@b.example', 'customer.email', 'email'), shred.pseudonym('t:1', 'analytics'),
                        ARRAY(SELECT shred.blind_match(' A@B.example', 'customer.email', 'email'))",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(tokens(&mut c).2, vec![token]);
    // a purpose DEK, under a consent with evidence (sealed under t:1's default DEK)
    c.batch_execute(
        "SELECT shred.define_purpose('rk_mail', 'Mail', true);
         SELECT shred.confirm_consent(shred.request_consent('t:1', 'rk_mail', '{\"form\": \"f\"}'));",
    )
    .unwrap();
    let mail: String = c.query_one("SELECT shred.seal('t:1', 'a@b.example', 'm', 'rk_mail')::text", &[]).unwrap().get(0);
    let purposes = |c: &mut postgres::Client| -> (Option<String>, Option<String>, bool, Option<String>) {
        let r = c
            .query_one(
                "SELECT shred.open($1::text::shred.sealed, 'm'), shred.pseudonym('t:1', 'analytics', 'rk_mail'),
                        shred.has_consent('t:1', 'rk_mail'), (SELECT evidence::text FROM shred.consent_history('t:1'))",
                &[&mail],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    let purposes_before = purposes(&mut c);
    assert_eq!(purposes_before.0.as_deref(), Some("a@b.example"));
    assert!(purposes_before.1.is_some() && purposes_before.2);
    let before = tokens(&mut c);
    use_keyring(&mut c, &keyring_file("rk_tokens_v12", &[(1, &k1), (2, &k2)]));
    c.batch_execute("CALL shred.rotate_root_key()").unwrap();
    c.query_one("SELECT shred.retire_root_key(1)", &[]).unwrap();
    let mut d = connect("rk_tokens");
    use_keyring(&mut d, &keyring_file("rk_tokens_v2", &[(2, &k2)]));
    assert_eq!(tokens(&mut d), before);
    assert_eq!(purposes(&mut d), purposes_before, "purpose DEKs and consent evidence are rewrapped too");
    // t:1's default and rk_mail DEKs, the blind-index context's key and the audit key
    assert_eq!(status(&mut d), vec![(1, "retired".into(), 0), (2, "current".into(), 4)]);
}

/// Wait until `cond` holds (polled every 50 ms), at most 60 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn deks_under(c: &mut postgres::Client, version: i32) -> i64 {
    c.query_one("SELECT count(*) FROM shred.subject_key WHERE root_key_version = $1", &[&version]).unwrap().get(0)
}

/// G10: a rotation stopped by a cancel, then by `kill -9` of its backend (which makes the
/// server restart), keeps every committed batch; every DEK stays openable under one version or
/// the other, and calling it again finishes the job.
#[test]
fn interrupted_rotation_resumes() {
    let mut c = fresh_db("rk_crash");
    let (k1, k2) = (random_key(), random_key());
    let v1 = keyring_file("rk_crash_v1", &[(1, &k1)]);
    let v12 = keyring_file("rk_crash_v12", &[(1, &k1), (2, &k2)]);
    use_keyring(&mut c, &v1);
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v shred.sealed)").unwrap();
    c.batch_execute("INSERT INTO t SELECT g, shred.seal('c:' || g, 'value ' || g) FROM generate_series(1, 200) g").unwrap();
    let ids: Vec<i64> = c.query("SELECT key_id FROM shred.subject_key ORDER BY key_id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let check_all_open = |c: &mut postgres::Client| {
        let ok: i64 = c
            .query_one("SELECT count(*) FROM t WHERE shred.open(v) = 'value ' || id", &[])
            .unwrap()
            .get(0);
        assert_eq!(ok, 200);
    };

    for (interrupt, locked_index, expected_done) in [("cancel", 100usize, 100i64), ("kill -9", 150, 150)] {
        // Hold a lock on one DEK row, so the rotation stops there after committing the
        // batches before it.
        let mut blocker = connect("rk_crash");
        blocker.batch_execute("BEGIN").unwrap();
        blocker
            .query_one("SELECT 1 FROM shred.subject_key WHERE key_id = $1 FOR UPDATE", &[&ids[locked_index]])
            .unwrap();
        let mut rotator = connect("rk_crash");
        use_keyring(&mut rotator, &v12);
        let pid: i32 = rotator.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        let handle = thread::spawn(move || {
            rotator
                .batch_execute("CALL shred.rotate_root_key(25)")
                .map_err(|e| e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))
        });
        let mut watch = connect("rk_crash");
        wait_for("the rotation to reach the locked row", || deks_under(&mut watch, 2) == expected_done);
        wait_for("the rotation to wait for the lock", || {
            watch
                .query_one("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .map(|r| r.get::<_, Option<bool>>(0) == Some(true))
                .unwrap_or(false)
        });
        if interrupt == "cancel" {
            watch.query_one("SELECT pg_cancel_backend($1)", &[&pid]).unwrap();
            let err = handle.join().unwrap().expect_err("cancelled");
            assert!(err.contains("canceling statement due to user request"), "{err}");
            blocker.batch_execute("ROLLBACK").unwrap();
        } else {
            // SAFETY: signals the server backend running the rotation.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
            assert!(handle.join().unwrap().is_err());
            drop((blocker, watch));
            wait_for("the server to restart", || {
                postgres::Client::connect(&format!("host={} port={} user=postgres dbname=rk_crash", host(), port()), postgres::NoTls)
                    .and_then(|mut c| c.query_one("SELECT 1", &[]))
                    .is_ok()
            });
            thread::sleep(Duration::from_millis(200));
        }
        let mut c = connect("rk_crash");
        use_keyring(&mut c, &v12);
        assert_eq!((deks_under(&mut c, 1), deks_under(&mut c, 2)), (200 - expected_done, expected_done), "after {interrupt}");
        check_all_open(&mut c);
    }
    let mut c = connect("rk_crash");
    use_keyring(&mut c, &v12);
    c.batch_execute("CALL shred.rotate_root_key(25)").unwrap();
    assert_eq!((deks_under(&mut c, 1), deks_under(&mut c, 2)), (0, 200));
    check_all_open(&mut c);
}

/// Whether a process whose command line is exactly `args` is running.
fn process_running(args: &[&str]) -> bool {
    let wanted: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain(std::iter::once(0))).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|cmdline| cmdline == wanted)
}

/// shred.root_key_command: prints a keyring; a failing, hanging or garbage-printing command
/// fails closed with a clear error that holds none of its output; a cancel kills it.
#[test]
fn root_key_command() {
    let mut c = fresh_db("rk_command");
    let (k1, k2) = (random_key(), random_key());
    let ring = keyring_file("rk_command_ring", &[(1, &k1), (2, &k2)]);
    c.batch_execute(&format!("SET shred.root_key_file = ''; SET shred.root_key_command = 'cat {ring}'")).unwrap();
    let env = seal(&mut c, "cmd:1", "through a command");
    assert_eq!(open(&mut c, &env).unwrap().as_deref(), Some("through a command"));
    assert_eq!(status(&mut c), vec![(1, "unregistered".into(), 0), (2, "current".into(), 1)]);
    // The same keyring from the file opens it too.
    let mut f = connect("rk_command");
    use_keyring(&mut f, &ring);
    assert_eq!(open(&mut f, &env).unwrap().as_deref(), Some("through a command"));

    let cases = [
        ("echo $((7000+731))-STDERR >&2; exit 3", "pg_shred: shred.root_key_command failed: it exited with status 3"),
        ("echo 1:not-a-key", "pg_shred: shred.root_key_command failed: its output is unusable: invalid keyring: line 1: it is neither 32 raw bytes nor base64 of 32 bytes"),
        ("true", "pg_shred: shred.root_key_command failed: its output is unusable: invalid root key: it is empty"),
        ("kill -9 $$", "pg_shred: shred.root_key_command failed: it was terminated by signal 9"),
        ("/nonexistent/kms-client", "pg_shred: shred.root_key_command failed: it exited with status 127"),
        ("yes", "pg_shred: shred.root_key_command failed: it printed more than 65536 bytes"),
    ];
    for (command, expected) in cases {
        let mut s = connect("rk_command");
        s.batch_execute(&format!("SET shred.root_key_file = ''; SET shred.root_key_command = $cmd${command}$cmd$")).unwrap();
        let e = open(&mut s, &env);
        assert_eq!(message(e), expected, "{command}");
        assert_eq!(sqlstate(open(&mut s, &env)), "F0000");
        // Nothing was written: no DEK for a new subject.
        assert_eq!(sqlstate(s.query_one("SELECT shred.seal('cmd:none', 'x')", &[])), "F0000");
    }
    let n: i64 = c.query_one("SELECT count(*) FROM shred.subject_key WHERE subject = 'cmd:none'", &[]).unwrap().get(0);
    assert_eq!(n, 0);

    // Both sources set: refused.
    let mut s = connect("rk_command");
    s.batch_execute(&format!("SET shred.root_key_command = 'cat {ring}'")).unwrap();
    assert_eq!(message(open(&mut s, &env)), "pg_shred: both shred.root_key_file and shred.root_key_command are set");

    // A command that hangs is killed after the timeout; once per transaction, not per row.
    let mut s = connect("rk_command");
    s.batch_execute("SET shred.root_key_file = ''; SET shred.root_key_command_timeout = 1; SET shred.root_key_command = 'sleep 987'").unwrap();
    let start = Instant::now();
    let e = s.query_one("SELECT count(shred.open(v)) FROM (VALUES ($1::text::shred.sealed), ($1::text::shred.sealed)) x(v)", &[&env]);
    assert_eq!(message(e), "pg_shred: shred.root_key_command failed: it did not finish within 1 s and was killed");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(!process_running(&["sleep", "987"]));
    // A cancel (here statement_timeout) stops the wait and kills the command.
    s.batch_execute("SET shred.root_key_command_timeout = 600; SET shred.root_key_command = 'sleep 988'; SET statement_timeout = 300").unwrap();
    assert_eq!(sqlstate(open(&mut s, &env)), "57014");
    s.batch_execute("RESET statement_timeout").unwrap();
    wait_for("the key command to be killed", || !process_running(&["sleep", "988"]));
    // Terminating the backend (FATAL: no Rust destructor runs) kills the command too.
    let pid: i32 = s.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    s.batch_execute("SET shred.root_key_command = 'sleep 989'").unwrap();
    let env2 = env.clone();
    let hung = thread::spawn(move || s.query_one("SELECT shred.open($1::text::shred.sealed)", &[&env2]).is_err());
    wait_for("the key command to start", || process_running(&["sleep", "989"]));
    c.query_one("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
    assert!(hung.join().unwrap());
    wait_for("the key command of a terminated backend to be killed", || !process_running(&["sleep", "989"]));

    // The command inherits no descriptor of the backend (client socket, data files).
    let fds = dir().join("rk_command_fds.txt");
    let mut f = connect("rk_command");
    f.batch_execute(&format!(
        "SET shred.root_key_file = ''; SET shred.root_key_command = 'ls -l /proc/$$/fd > {}; cat {ring}'",
        fds.display()
    ))
    .unwrap();
    assert_eq!(open(&mut f, &env).unwrap().as_deref(), Some("through a command"));
    let listing = std::fs::read_to_string(&fds).unwrap();
    assert!(!listing.contains("socket:") && !listing.contains("/base/"), "descriptors leaked to the command:\n{listing}");
}

/// Resets the key sources changed with ALTER SYSTEM by a test, and reloads, even on failure.
struct ResetKeySources;

impl Drop for ResetKeySources {
    fn drop(&mut self) {
        let mut c = connect("postgres");
        let _ = c.batch_execute("ALTER SYSTEM RESET shred.root_key_command");
        let _ = c.batch_execute("ALTER SYSTEM RESET shred.root_key_file");
        let _ = c.batch_execute("SELECT pg_reload_conf()");
        thread::sleep(Duration::from_millis(500));
    }
}

fn reload(c: &mut postgres::Client) {
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    thread::sleep(Duration::from_millis(500));
}

fn version_of(c: &mut postgres::Client, subject: &str) -> i32 {
    c.query_one("SELECT root_key_version FROM shred.subject_key WHERE subject = $1", &[&subject]).unwrap().get(0)
}

/// A keyring from a command is read once per backend; pg_reload_conf() makes running
/// sessions read it again, so a version added to the KMS wraps their next new DEKs.
#[test]
fn reload_refreshes_a_command_keyring() {
    let mut admin = fresh_db("rk_reload");
    let (k1, k2) = (random_key(), random_key());
    let ring = keyring_file("rk_reload_ring", &[(1, &k1)]);
    let _reset = ResetKeySources;
    admin.batch_execute("ALTER SYSTEM SET shred.root_key_file = ''").unwrap();
    admin.batch_execute(&format!("ALTER SYSTEM SET shred.root_key_command = 'cat {ring}'")).unwrap();
    reload(&mut admin);
    let mut a = connect("rk_reload");
    seal(&mut a, "r:1", "x");
    assert_eq!(version_of(&mut admin, "r:1"), 1);
    keyring_file("rk_reload_ring", &[(1, &k1), (2, &k2)]);
    seal(&mut a, "r:2", "x");
    assert_eq!(version_of(&mut admin, "r:2"), 1, "the command runs once per backend");
    reload(&mut admin);
    let env = seal(&mut a, "r:3", "x");
    assert_eq!(version_of(&mut admin, "r:3"), 2, "a reload makes the session read the keyring again");
    assert_eq!(open(&mut a, &env).unwrap().as_deref(), Some("x"));
}

/// E5: the key sources are superuser-only settings; pg_read_all_settings members see a mask,
/// pg_settings lists neither, other roles cannot read them.
#[test]
fn key_settings_are_hidden() {
    let mut admin = fresh_db("rk_settings");
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rk_monitor') THEN CREATE ROLE rk_monitor LOGIN; END IF;
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rk_plain') THEN CREATE ROLE rk_plain LOGIN; END IF;
             END $$;
             GRANT pg_read_all_settings TO rk_monitor;",
        )
        .unwrap();
    // Both key sources set for every session until the guard resets them (even on failure).
    let _reset = ResetKeySources;
    admin.batch_execute("ALTER SYSTEM SET shred.root_key_command = 'kms-client --token 0123-secret-token'").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    thread::sleep(Duration::from_millis(500));
    let path: String = admin.query_one("SHOW shred.root_key_file", &[]).unwrap().get(0);
    assert_eq!(path, dir().join("root.key").to_string_lossy());
    let mut monitor = connect_as("rk_settings", "rk_monitor");
    for setting in ["shred.root_key_file", "shred.root_key_command"] {
        let shown: String = monitor.query_one(&format!("SHOW {setting}"), &[]).unwrap().get(0);
        assert_eq!(shown, "********", "{setting}");
        let current: String = monitor.query_one("SELECT current_setting($1)", &[&setting]).unwrap().get(0);
        assert_eq!(current, "********", "{setting}");
    }
    for who in [&mut monitor, &mut admin] {
        let n: i64 = who
            .query_one("SELECT count(*) FROM pg_settings WHERE name LIKE 'shred.root_key%' AND name <> 'shred.root_key_command_timeout'", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
        let all: i64 = who
            .query_one("SELECT count(*) FROM pg_show_all_settings() WHERE setting LIKE $1 OR reset_val LIKE $1", &[&"%secret-token%"])
            .unwrap()
            .get(0);
        assert_eq!(all, 0);
    }
    let mut plain = connect_as("rk_settings", "rk_plain");
    assert_eq!(sqlstate(plain.query_one("SHOW shred.root_key_command", &[])), "42501");
    assert_eq!(sqlstate(plain.batch_execute("SET shred.root_key_file = '/tmp/x'")), "42501");
    assert_eq!(sqlstate(monitor.batch_execute("SET shred.root_key_command = 'true'")), "42501");
    drop((monitor, plain, _reset));
    admin.batch_execute("DROP OWNED BY rk_monitor, rk_plain").unwrap();
}


/// F1, E2: install 0.1.0, seal, ALTER EXTENSION pg_shred UPDATE, open. The updated database
/// has exactly the objects of a fresh install, and nothing that opens, seals or erases
/// is executable by PUBLIC.
#[test]
fn upgrade_from_0_1_0() {
    let mut c = empty_db("rk_upgrade");
    c.batch_execute("CREATE EXTENSION pg_shred VERSION '0.1.0'").unwrap();
    let version: String = c.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'", &[]).unwrap().get(0);
    assert_eq!(version, "0.1.0");
    c.batch_execute("CREATE TABLE t (id int, v shred.sealed)").unwrap();
    c.batch_execute("INSERT INTO t SELECT g, shred.seal('u:' || g, 'value ' || g) FROM generate_series(1, 20) g").unwrap();
    c.batch_execute("SELECT shred.erase('u:20')").unwrap();
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    let version: String = c.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'", &[]).unwrap().get(0);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let rows = c.query("SELECT id, shred.open(v) FROM t ORDER BY id", &[]).unwrap();
    for r in &rows {
        let id: i32 = r.get(0);
        let opened: Option<String> = r.get(1);
        assert_eq!(opened, (id < 20).then(|| format!("value {id}")));
    }
    let public: Vec<String> = c
        .query(
            "SELECT proname::text FROM pg_proc WHERE pronamespace = 'shred'::regnamespace
                AND has_function_privilege('public', oid, 'EXECUTE') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // the views' trigger function refuses any call outside a trigger and seals only for roles
    // that may execute shred.seal
    assert_eq!(public, vec!["protected_view_write", "sealed_in", "sealed_out", "sealed_recv", "sealed_send"]);
    assert_eq!(status(&mut c), vec![(1, "current".into(), 19)]);
    // F3: the library name carries no version, so old and new scripts load the same library.
    let libs: Vec<String> = c
        .query("SELECT DISTINCT probin FROM pg_proc WHERE pronamespace = 'shred'::regnamespace AND probin IS NOT NULL", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(libs, vec!["$libdir/pg_shred"]);
    let mut fresh = fresh_db("rk_upgrade_fresh");
    assert_eq!(catalogue(&mut c), catalogue(&mut fresh));
}

/// HKDF-SHA256 (RFC 5869) with a 32-byte output, written here independently of pg_shred.
fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm);
    let mut out = [0u8; 32];
    hk.expand(info, &mut out).unwrap();
    out
}

/// Unwrap a DEK as documented (0x01 | nonce | AES-256-GCM(KEK, DEK) | tag, AAD "pg_shred wrap"
/// | 0x01 | key id | subject), or None when `root` is not its root key.
fn unwrap_dek(root: &[u8], salt: &[u8], key_id: i64, subject: &str, wrapped: &[u8]) -> Option<Vec<u8>> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let kek = hkdf32(salt, root, b"pg_shred v1 kek");
    let cipher = aes_gcm::Aes256Gcm::new(&kek.into());
    let mut aad = b"pg_shred wrap\x01".to_vec();
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(subject.as_bytes());
    cipher
        .decrypt(aes_gcm::Nonce::from_slice(wrapped.get(1..13)?), Payload { msg: wrapped.get(13..)?, aad: &aad })
        .ok()
}

/// Every root key the tests used: the cluster's and every key file in the test directory, in
/// each accepted form (raw, base64, keyring lines).
fn all_root_keys() -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir()).unwrap().flatten() {
        let path = entry.path();
        // regular files only: a test leaves a FIFO named *.key behind
        if path.extension().map(|e| e != "key").unwrap_or(true) || !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        let content = std::fs::read(&path).unwrap();
        if content.len() == 32 {
            keys.push(content);
            continue;
        }
        for line in String::from_utf8_lossy(&content).lines() {
            let b64 = line.rsplit(':').next().unwrap_or("").trim();
            if let Ok(k) = B64.decode(b64) {
                if k.len() == 32 {
                    keys.push(k);
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The encodings under which a secret could show up in a text log.
fn encodings(secret: &[u8]) -> Vec<String> {
    vec![
        hex::encode(secret),
        hex::encode_upper(secret),
        B64.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        format!("\\x{}", hex::encode(secret)),
    ]
}

/// E5, H5: after every test above ran against a server with `log_statement = all` and
/// `log_min_messages = debug5` (set by scripts/test), the server log holds no root key and no
/// DEK in any encoding, and marked plaintexts and subjects appear only where PostgreSQL echoes
/// the client's own parameters, never in a message pg_shred emits. pg_stat_statements keeps
/// no plaintext either. Named `zz_` to run last.
#[test]
fn zz_no_secret_in_the_server_log() {
    let mut c = fresh_db("rk_leaks");
    let settings: Vec<String> = c
        .query("SELECT current_setting('log_statement'), current_setting('log_min_messages')", &[])
        .unwrap()
        .iter()
        .flat_map(|r| [r.get::<_, String>(0), r.get::<_, String>(1)])
        .collect();
    assert_eq!(settings, vec!["all", "debug5"], "run through scripts/test");
    c.batch_execute("CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset()").unwrap();

    // Marked plaintexts and subjects, sent as parameters, through every kind of pg_shred message.
    let plain = "PLAINTEXT-MARKER-4417";
    let subject = "SUBJECT-MARKER-8803";
    let env: String = c.query_one("SELECT shred.seal($1, $2::text, 'ctx')::text", &[&subject, &plain]).unwrap().get(0);
    let _ = c.query_one("SELECT shred.open($1::text::shred.sealed, 'other ctx')", &[&env]);
    let _ = c.query_one("SELECT shred.seal($1, $2::text, NULL)", &[&subject, &plain]);
    let _ = c.query_one("SELECT shred.open_bytea($1::text::shred.sealed, $2)", &[&env, &plain]);
    let tampered = format!("shred1:{}", B64.encode(b"\x01tampered envelope bytes ........................"));
    let _ = c.query_one("SELECT shred.open($1::text::shred.sealed)", &[&tampered]);
    // Purposes and consent: a refused seal, a request with evidence, its token confirmed and
    // guessed, the seal, a withdrawal, an undefined purpose, the history.
    let evidence = "EVIDENCE-MARKER-6620";
    c.batch_execute("SELECT shred.define_purpose('marker_mail', 'Marked mail', true)").unwrap();
    let _ = c.query_one("SELECT shred.seal($1, $2::text, 'ctx', 'marker_mail')", &[&subject, &plain]);
    let token: String = c
        .query_one("SELECT shred.request_consent($1, 'marker_mail', jsonb_build_object('form', $2::text))", &[&subject, &evidence])
        .unwrap()
        .get(0);
    let _ = c.query_one("SELECT shred.confirm_consent($1)", &[&token]);
    let _ = c.query_one("SELECT shred.confirm_consent($1)", &[&format!("{}x", &token[..42])]);
    let _ = c.query_one("SELECT shred.seal($1, $2::text, 'ctx', 'marker_mail')", &[&subject, &plain]);
    let _ = c.query_one("SELECT shred.has_consent($1, 'marker_mail')", &[&subject]);
    let _ = c.query_one("SELECT * FROM shred.consent_history($1)", &[&subject]);
    let _ = c.query_one("SELECT shred.withdraw_consent($1, 'marker_mail')", &[&subject]);
    let _ = c.query_one("SELECT shred.seal($1, $2::text, 'ctx', 'marker_mail')", &[&subject, &plain]);
    let _ = c.query_one("SELECT shred.erase($1, 'no_such_purpose')", &[&subject]);
    let _ = c.query_one("SELECT shred.request_consent($1, 'no_such_purpose', jsonb_build_object('form', $2::text))", &[&subject, &evidence]);
    // Retention and legal holds: a hold with a marked reason, the erasures it refuses, an end
    // date, retention runs (NOTICEs) before and after the release, the status and holds.
    let reason = "REASON-MARKER-3391";
    c.batch_execute("SELECT shred.define_purpose('marker_brief', 'Marked brief', false, '1 second')").unwrap();
    let _ = c.query_one("SELECT shred.seal($1, $2::text, 'ctx', 'marker_brief')", &[&subject, &plain]);
    let _ = c.query_one("SELECT shred.hold($1, $2)", &[&subject, &reason]);
    let _ = c.query_one("SELECT shred.erase($1)", &[&subject]);
    let _ = c.query_one("SELECT shred.erase($1, 'marker_brief')", &[&subject]);
    let _ = c.query_one("SELECT shred.erase(ARRAY[$1])", &[&subject]);
    let _ = c.query_one("SELECT shred.expire_subject($1, now())", &[&subject]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    c.batch_execute("CALL shred.run_retention()").unwrap();
    let _ = c.query("SELECT *, shred.open(reason, 'pg_shred:legal_hold') FROM shred.holds", &[]);
    let _ = c.query("SELECT * FROM shred.retention_status", &[]);
    let _ = c.query_one("SELECT shred.release_hold($1)", &[&subject]);
    c.batch_execute("CALL shred.run_retention()").unwrap();
    // Erasure receipts: a receipt and the residue of an erased subject, its verification, a
    // tampered receipt, a receipt refused for a subject never erased and inside the erasing
    // transaction.
    let _ = c.query_one("SELECT shred.erase($1)", &[&subject]);
    let receipt: String = c.query_one("SELECT shred.erasure_receipt($1)::text", &[&subject]).unwrap().get(0);
    let _ = c.query("SELECT * FROM shred.erasure_residue($1)", &[&subject]);
    let _ = c.query_one("SELECT shred.verify_receipt($1::text::jsonb)", &[&receipt]);
    let _ = c.query_one("SELECT shred.verify_receipt($1::text::jsonb)", &[&receipt.replacen("erasure receipt", "erasure receipT", 1)]);
    let _ = c.query_one("SELECT shred.erasure_receipt($1)", &[&plain]);
    let _ = c.query_one("SELECT shred.receipt_public_key()", &[]);
    c.batch_execute("BEGIN").unwrap();
    let _ = c.query_one("SELECT shred.seal($1, $2::text, 'ctx')", &[&plain, &subject]);
    let _ = c.query_one("SELECT shred.erase($1)", &[&plain]);
    let _ = c.query_one("SELECT shred.erasure_receipt($1)", &[&plain]);
    c.batch_execute("ROLLBACK").unwrap();
    c.batch_execute("CALL shred.rotate_root_key()").unwrap();
    // Literal constants: pg_stat_statements must keep them as placeholders.
    c.batch_execute("SELECT shred.seal('LITERAL-SUBJECT-5521', 'LITERAL-PLAIN-5521')").unwrap();
    let leaked: i64 = c
        .query_one("SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%5521%' OR query LIKE '%MARKER%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0, "pg_stat_statements keeps a plaintext or subject");
    let nested: i64 = c
        .query_one("SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%shred.subject_key%'", &[])
        .unwrap()
        .get(0);
    assert!(nested > 0, "pg_stat_statements.track = all sees pg_shred's own statements (with placeholders)");
    c.batch_execute("DROP EXTENSION pg_stat_statements").unwrap();

    // Every DEK still stored in any database, unwrapped with the tests' root keys.
    let roots = all_root_keys();
    assert!(roots.len() > 5, "found only {} root keys", roots.len());
    let mut deks = Vec::new();
    let dbs: Vec<String> = connect("postgres")
        .query("SELECT datname::text FROM pg_database WHERE datallowconn", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for db in dbs {
        let mut d = connect(&db);
        let has: bool = d.query_one("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_shred')", &[]).unwrap().get(0);
        if !has {
            continue;
        }
        let rows = d
            .query(
                "SELECT k.key_id, convert_to(k.subject, 'UTF8'), k.wrapped_dek, v.salt
                   FROM shred.subject_key k JOIN shred.root_key_version v ON v.version = k.root_key_version",
                &[],
            )
            .unwrap();
        for r in rows {
            let subject: Vec<u8> = r.get(1);
            let subject = String::from_utf8_lossy(&subject).into_owned();
            let (key_id, wrapped, salt): (i64, Vec<u8>, Vec<u8>) = (r.get(0), r.get(2), r.get(3));
            if let Some(dek) = roots.iter().find_map(|root| unwrap_dek(root, &salt, key_id, &subject, &wrapped)) {
                deks.push(dek);
            }
        }
    }
    assert!(deks.len() > 100, "unwrapped only {} DEKs", deks.len());

    // Every root key and DEK, raw and in every text encoding, searched in one pass.
    let raw = std::fs::read(dir().join("server.log")).expect("server log");
    let log = String::from_utf8_lossy(&raw).into_owned();
    assert!(log.lines().count() > 10_000, "the log is too short for a debug5 run");
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    for secret in roots.iter().chain(&deks) {
        patterns.push(secret.clone());
        patterns.extend(encodings(secret).into_iter().map(String::into_bytes));
    }
    let finder = aho_corasick::AhoCorasick::new(&patterns).unwrap();
    if let Some(m) = finder.find(&raw) {
        panic!("a root key or DEK appears in the server log at byte {} ({} bytes long)", m.start(), m.len());
    }
    // "secret-plaintext": the text tests/key_store.rs gives 0.2.0's numeric and jsonb helpers.
    for marker in [plain, subject, evidence, reason, &token, "7731-STDERR", "secret-token", "secret-plaintext"] {
        for line in log.lines().filter(|l| l.contains(marker)) {
            // PostgreSQL echoes a client's statements and parameters (log_statement), and logs
            // a setting changed by a reload: the threat model says how to configure both.
            // (PostgreSQL 18 writes the parameters' DETAIL line as "Parameters: $1 = ...".)
            let echoed = line.contains("parameters: $")
                || line.contains("Parameters: $")
                || line.contains("statement: ")
                || line.contains("STATEMENT:  ")
                || line.contains("execute <unnamed>: ")
                || line.contains("parameter \"shred.root_key_command\"");
            assert!(echoed && marker != "7731-STDERR", "{marker} in a server log line: {line}");
        }
    }
}
