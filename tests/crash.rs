//! Crash recovery under load, on a cluster of the test's own (made and started by
//! scripts/lib.sh's functions like every test cluster, in PG_SHRED_TEST_DIR.crash on port
//! PG_SHRED_TEST_PORT + 4): while three clients seal values, write a protected table through
//! its view and erase subjects, `kill -9` of
//!   1. a backend inside `shred.erase` of 400 subjects,
//!   2. a backend inside an INSERT sealing values for 600 new subjects,
//!   3. a backend inside `shred.create_keys` of 4,000 new subjects,
//!   4. a backend inside `CALL shred.rotate_root_key()`, after committing some batches,
//!   5. the postmaster, with a resumed rotation inside its next batches,
//!   6. the postmaster, under the load alone;
//! the server restarts (crash recovery; the test restarts a killed postmaster itself). Each
//! victim is inside its operation when killed: it waits for a lock that another session holds
//! in the middle of the operation's work (an uncommitted erasure, an uncommitted first seal, a
//! DEK row locked FOR UPDATE), which pg_stat_activity shows before the kill; the load clients
//! are inside transactions then too.
//!
//! Invariant after every restart (`common::verify_ledger`): every committed value and row
//! opens to its plaintext, or as erased if its subject's erasure committed; nothing of a
//! transaction that did not commit is there (values, rows, DEKs of new subjects, erasure
//! records); a transaction whose COMMIT the crash cut off is there entirely or not at all; the
//! erasure log holds exactly the committed erasures; every DEK unwraps under a root-key version
//! of the keyring (`shred.root_key_status`, `shred.check()`); an interrupted rotation keeps the
//! batches it committed and, called again, finishes.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use postgres::{Client, NoTls};

const DB: &str = "crash";
/// Subjects of the load (prefix "crash:"); the first BASE of them have a value from the start.
const SUBJECTS: usize = 3000;
const BASE: usize = 1500;
/// The first RESERVED subjects are never erased by the load: victims and blockers use them.
const RESERVED: usize = 750;
const CLIENTS: u64 = 3;

/// What a client sees when the server crashes under it: a closed connection, or its session
/// terminated (57P01: the postmaster exited; 57P02: another server process crashed; 57P03: not
/// accepting connections yet).
fn crash_error(e: &postgres::Error) -> bool {
    match e.as_db_error() {
        Some(d) => matches!(d.code().code(), "57P01" | "57P02" | "57P03"),
        None => e.is_closed() || std::error::Error::source(e).map(|s| s.is::<std::io::Error>()).unwrap_or(false),
    }
}

/// A transaction the crash cut off in its COMMIT: it is there entirely or not at all.
enum InDoubt {
    Write { values: Vec<(i64, Value)>, row: Row },
    Erasure { subject: usize },
}

/// What one load client did until the crash.
#[derive(Default)]
struct Load {
    committed: u64,
    cut_off: u64,
    in_doubt: Vec<InDoubt>,
    tally: Tally,
    error: Option<String>,
}

enum Failed {
    /// The crash ended the session.
    Crash,
    Other(String),
}

fn failed(e: postgres::Error) -> Failed {
    if crash_error(&e) { Failed::Crash } else { Failed::Other(describe(&e)) }
}

/// One transaction: a value for each of up to 6 subjects and a row through the view, held
/// open a few milliseconds before COMMIT.
fn write(c: &mut Client, l: &Ledger, rng: &mut Rng, load: &mut Load) -> Result<(), Failed> {
    let mut subjects: Vec<usize> = (0..6).map(|_| rng.below(SUBJECTS)).collect();
    subjects.sort_unstable();
    subjects.dedup();
    let _w: Vec<_> = subjects.iter().map(|&s| l.subjects[s].writes.read().unwrap()).collect();
    let values: Vec<Value> = subjects
        .iter()
        .map(|&subject| {
            let id = l.next_id();
            let kind = ['t', 'b', 'j'][rng.below(3)];
            Value { id, subject, kind, plain: plaintext(kind, id, rng), gen: lock(&l.subjects[subject].state).gen }
        })
        .collect();
    let id = l.next_id();
    let owner = subjects[0];
    let gen = lock(&l.subjects[owner].state).gen;
    let row = Row {
        id,
        owner,
        name: (format!("Ñame {id}"), gen),
        email: (format!("Crash{id}.{:x}@Example.org", rng.next() % 0xffff), gen),
        country: "UK".into(),
        exists: true,
        old_emails: Vec::new(),
    };
    let mut t = c.transaction().map_err(|e| failed(e))?;
    let mut sealed = Vec::new();
    let mut work = || -> Result<(), postgres::Error> {
        for v in &values {
            let key_id: i64 = t.query_one(seal_sql(v.kind), &[&v.id, &l.name(v.subject), &v.kind.to_string(), &v.plain])?.get(0);
            sealed.push((key_id, v.clone()));
        }
        t.execute(INSERT_TRACKED_ROW, &[&id, &(owner as i32), &row.name.0, &row.email.0, &row.country])?;
        Ok(())
    };
    let worked = work();
    let cut_off = |load: &mut Load| {
        lock(&l.absent_values).extend(values.iter().map(|v| v.id));
        lock(&l.absent_rows).push(id);
        load.cut_off += 1;
    };
    if let Err(e) = worked {
        cut_off(load);
        return Err(failed(e));
    }
    thread::sleep(Duration::from_millis(rng.below(12) as u64));
    match t.commit() {
        Ok(()) => {
            commit_values(l, sealed, &mut load.tally);
            commit_row(l, row);
            load.committed += 1;
            Ok(())
        }
        Err(e) if crash_error(&e) => {
            load.in_doubt.push(InDoubt::Write { values: sealed, row });
            Err(Failed::Crash)
        }
        Err(e) => {
            cut_off(load);
            Err(failed(e))
        }
    }
}

/// Committed values (with their key ids) into the ledger, of the generation their subjects
/// have now (the caller holds the subjects' `writes` locks, or the load has stopped).
fn commit_values(l: &Ledger, values: Vec<(i64, Value)>, tally: &mut Tally) {
    for (key_id, mut v) in values {
        match l.sealed(v.subject, Some(key_id)) {
            Ok(gen) => v.gen = gen,
            Err(p) => tally.problem(p),
        }
        l.add_value(v);
    }
}

/// A committed row into the ledger, likewise.
fn commit_row(l: &Ledger, mut row: Row) {
    if let Ok(gen) = l.sealed(row.owner, None) {
        (row.name.1, row.email.1) = (gen, gen);
    }
    l.add_row(row);
}

/// One transaction erasing a subject with a DEK whose key id is known, held open a few
/// milliseconds before COMMIT.
fn erase(c: &mut Client, l: &Ledger, rng: &mut Rng, load: &mut Load) -> Result<(), Failed> {
    let Some(subject) = (0..20).map(|_| RESERVED + rng.below(SUBJECTS - RESERVED)).find(|&s| {
        let st = lock(&l.subjects[s].state);
        st.has_dek && st.key_ids.get(st.gen as usize).copied().flatten().is_some()
    }) else {
        return write(c, l, rng, load);
    };
    let _w = l.subjects[subject].writes.write().unwrap();
    l.erasure_begins(subject);
    let mut t = match c.transaction() {
        Ok(t) => t,
        Err(e) => {
            l.erasure_abandoned(subject);
            return Err(failed(e));
        }
    };
    match t.query_one("SELECT shred.erase($1)", &[&l.name(subject)]) {
        Ok(r) if r.get::<_, bool>(0) => {}
        Ok(_) => load.tally.problem(format!("{} had a DEK, erase returned false", l.name(subject))),
        Err(e) => {
            l.erasure_abandoned(subject);
            load.cut_off += 1;
            return Err(failed(e));
        }
    }
    thread::sleep(Duration::from_millis(rng.below(12) as u64));
    match t.commit() {
        Ok(()) => {
            l.erasure_committed(subject, true);
            load.committed += 1;
            Ok(())
        }
        Err(e) if crash_error(&e) => {
            load.in_doubt.push(InDoubt::Erasure { subject });
            Err(Failed::Crash)
        }
        Err(e) => {
            l.erasure_abandoned(subject);
            Err(failed(e))
        }
    }
}

/// A load client: transactions until the crash ends its session (or `stop`).
fn load(dsn: String, l: Arc<Ledger>, seed: u64, stop: Arc<AtomicBool>) -> Load {
    let mut load = Load::default();
    let mut rng = Rng::new(seed);
    let mut c = match Client::connect(&dsn, NoTls) {
        Ok(c) => c,
        Err(e) => {
            load.error = Some(format!("connect: {e}"));
            return load;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let r = if rng.one_in(6) { erase(&mut c, &l, &mut rng, &mut load) } else { write(&mut c, &l, &mut rng, &mut load) };
        match r {
            Ok(()) => {}
            Err(Failed::Crash) => {
                // every later transaction would be cut off too: stop at the first
                stop.store(true, Ordering::Relaxed);
                return load;
            }
            Err(Failed::Other(e)) => {
                load.error = Some(e);
                return load;
            }
        }
    }
    load
}

/// After the restart, with the load stopped: a transaction cut off in its COMMIT is there
/// entirely or not at all; into the ledger as what it turned out to be.
fn resolve(c: &mut Client, l: &Ledger, in_doubt: Vec<InDoubt>, t: &mut Tally) -> (u64, u64) {
    let (mut committed, mut not) = (0, 0);
    for d in in_doubt {
        match d {
            InDoubt::Write { values, row } => {
                let ids: Vec<i64> = values.iter().map(|(_, v)| v.id).collect();
                let n: i64 = c.query_one("SELECT count(*) FROM tracked_value WHERE id = ANY($1)", &[&ids]).unwrap().get(0);
                let r: i64 = c.query_one("SELECT count(*) FROM tracked_customer WHERE id = $1", &[&row.id]).unwrap().get(0);
                if n == ids.len() as i64 && r == 1 {
                    commit_values(l, values, t);
                    commit_row(l, row);
                    committed += 1;
                } else if n == 0 && r == 0 {
                    lock(&l.absent_values).extend(ids);
                    lock(&l.absent_rows).push(row.id);
                    not += 1;
                } else {
                    t.problem(format!("a transaction cut off in its COMMIT left {n} of {} values and {r} of 1 row", ids.len()));
                }
            }
            InDoubt::Erasure { subject } => {
                let key_id = {
                    let st = lock(&l.subjects[subject].state);
                    st.key_ids[st.gen as usize].expect("erased subjects have a known DEK")
                };
                let recorded: bool =
                    c.query_one("SELECT EXISTS (SELECT FROM shred.erasure_log WHERE key_id = $1)", &[&key_id]).unwrap().get(0);
                if recorded {
                    l.erasure_committed(subject, true);
                    committed += 1;
                } else {
                    l.erasure_abandoned(subject);
                    not += 1;
                }
            }
        }
    }
    (committed, not)
}

/// What is killed.
#[derive(Clone, Copy, PartialEq)]
enum Kill {
    Victim,
    Postmaster,
}

/// A victim: a session inside an operation, waiting for the lock a blocker holds.
struct Victim {
    /// What pg_stat_activity shows the victim running.
    marker: &'static str,
    /// The blocker's statements, in an open transaction.
    block: Box<dyn FnOnce(&mut postgres::Transaction) + Send>,
    /// The victim's operation; it must fail (the victim is killed inside it).
    run: Box<dyn FnOnce(&mut Client) -> Result<(), postgres::Error> + Send>,
}

struct Crash<'a> {
    cluster: &'a OwnCluster,
    ledger: Arc<Ledger>,
    rng: Rng,
    kills: u32,
}

impl Crash<'_> {
    fn connect(&self) -> Client {
        self.cluster.connect(DB)
    }

    /// Run the load, put the victim (if any) inside its operation, kill it or the postmaster
    /// while load transactions are open, restart, and verify everything the ledger holds.
    fn kill(&mut self, what: &str, kill: Kill, victim: Option<Victim>) {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let loads: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (dsn, l, stop, seed) = (self.cluster.dsn(DB), self.ledger.clone(), stop.clone(), self.rng.next() ^ i);
                thread::spawn(move || load(dsn, l, seed, stop))
            })
            .collect();
        thread::sleep(Duration::from_millis(500));
        let mut watch = self.connect();
        let mut quiet = vec![watch.query_one("SELECT pg_backend_pid()", &[]).unwrap().get::<_, i32>(0)];
        let mut blocker = self.connect();
        quiet.push(blocker.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0));
        let mut inside = String::from("load only");
        let mut victim_thread = None;
        let mut victim_pid = 0;
        let mut blocking = None;
        if let Some(v) = victim {
            let mut t = blocker.transaction().unwrap();
            (v.block)(&mut t);
            blocking = Some(t);
            let mut c = self.connect();
            victim_pid = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
            quiet.push(victim_pid);
            victim_thread = Some(thread::spawn(move || (v.run)(&mut c)));
            wait_until(&format!("the victim to wait inside {}", v.marker), 60, || {
                let r = watch
                    .query_one(
                        "SELECT state = 'active' AND wait_event_type = 'Lock' AND strpos(query, $2) > 0, wait_event
                           FROM pg_stat_activity WHERE pid = $1",
                        &[&victim_pid, &v.marker],
                    )
                    .unwrap();
                if r.get::<_, Option<bool>>(0) == Some(true) {
                    inside = format!("inside {}, waiting for a lock ({})", v.marker, r.get::<_, String>(1));
                }
                r.get::<_, Option<bool>>(0) == Some(true)
            });
        }
        wait_until("load transactions to be open", 30, || {
            watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND xact_start IS NOT NULL AND pid <> ALL($2)",
                    &[&DB, &quiet],
                )
                .unwrap()
                .get::<_, i64>(0)
                > 0
        });
        let postmaster = self.cluster.postmaster_pid();
        let server = children_of(postmaster);
        match kill {
            // SAFETY: signals a backend of this test's own server.
            Kill::Victim => assert_eq!(unsafe { libc::kill(victim_pid, libc::SIGKILL) }, 0, "kill -9 {victim_pid}"),
            Kill::Postmaster => self.cluster.kill_postmaster(),
        }
        self.kills += 1;

        if let Some(h) = victim_thread {
            match h.join().unwrap() {
                Ok(()) => panic!("{what}: the victim's operation completed"),
                Err(e) => assert!(crash_error(&e), "{what}: the victim failed otherwise: {}", describe(&e)),
            }
        }
        let loads: Vec<Load> = loads.into_iter().map(|h| h.join().unwrap()).collect();
        drop(blocking);
        drop((blocker, watch));
        // Every process of the server before the kill exits (the postmaster resets after a
        // backend's crash); then the server restarts, by itself or, its postmaster killed, by us.
        wait_until("the server's processes to exit", 60, || !server.iter().any(|&p| running(p)));
        if kill == Kill::Postmaster {
            self.cluster.start();
        }
        wait_until("the server to accept connections", 120, || self.cluster.accepts(DB));
        assert_eq!(self.cluster.postmaster_pid() != postmaster, kill == Kill::Postmaster, "{what}: the postmaster");

        let mut t = Tally::default();
        let mut c = self.connect();
        let (mut committed, mut cut_off, mut in_doubt) = (0, 0, Vec::new());
        for l in loads {
            assert!(l.error.is_none(), "{what}: a load client failed: {}", l.error.unwrap());
            t.add(&l.tally);
            committed += l.committed;
            cut_off += l.cut_off;
            in_doubt.extend(l.in_doubt);
        }
        let doubtful = in_doubt.len();
        let (were, were_not) = resolve(&mut c, &self.ledger, in_doubt, &mut t);
        let fig = verify_ledger(&mut c, &self.ledger, &mut t);
        println!(
            "kill -9 {} ({inside}): load {committed} committed, {cut_off} cut off before COMMIT, {doubtful} cut off in it \
             ({were} there, {were_not} not); after recovery {} values, {} rows, {} lookups, {} DEKs, {} erasure records: {} ({:.1} s)",
            if kill == Kill::Victim { "of a backend" } else { "of the postmaster" },
            fig.values,
            fig.rows,
            fig.lookups,
            fig.deks,
            fig.erasure_records,
            t.counts(),
            started.elapsed().as_secs_f64(),
        );
        for n in &t.notes {
            println!("  ! {n}");
        }
        assert_eq!(t.discrepancies(), 0, "{what}: discrepancies after recovery");
        assert!(committed > 0, "{what}: no load transaction committed before the kill");
    }

    /// DEKs under root-key version `version`.
    fn deks_under(&self, version: i32) -> i64 {
        self.connect().query_one("SELECT count(*) FROM shred.subject_key WHERE root_key_version = $1", &[&version]).unwrap().get(0)
    }
}

/// DEKs under root-key version 1 of reserved subjects, in key-id order.
fn reserved_deks(c: &mut Client, l: &Ledger) -> Vec<i64> {
    let names: Vec<String> = (0..RESERVED).map(|s| l.name(s)).collect();
    c.query("SELECT key_id FROM shred.subject_key WHERE root_key_version = 1 AND subject = ANY($1) ORDER BY key_id", &[&names])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A blocker erasing `subject` (a DEK row deleted, not committed).
fn erasing(subject: String) -> Box<dyn FnOnce(&mut postgres::Transaction) + Send> {
    Box::new(move |t| assert!(t.query_one("SELECT shred.erase($1)", &[&subject]).unwrap().get::<_, bool>(0)))
}

/// A victim running a rotation in batches of 100, stopped at the DEK `locked` (a blocker holds
/// its row FOR UPDATE) after committing the batches before it.
fn rotation(locked: i64) -> Victim {
    Victim {
        marker: "shred.rotate_root_key",
        block: Box::new(move |t| {
            t.query_one("SELECT 1 FROM shred.subject_key WHERE key_id = $1 FOR UPDATE", &[&locked]).unwrap();
        }),
        run: Box::new(|c| c.batch_execute("CALL shred.rotate_root_key(100)")),
    }
}

#[test]
fn crash_recovery() {
    let started = Instant::now();
    let cluster = OwnCluster::new(format!("{}.crash", dir().display()).into(), port().parse::<u16>().unwrap() + 4, &[]);
    let mut admin = cluster.connect("postgres");
    admin.batch_execute(&format!("CREATE DATABASE {DB}")).unwrap();
    let mut c = cluster.connect(DB);
    c.batch_execute("CREATE EXTENSION pg_shred").unwrap();
    let ledger = Arc::new(Ledger::new("crash:", SUBJECTS));
    ledger.create_tables(&mut c);
    let seed = Rng::seed();
    println!("crash recovery on PostgreSQL {}, seed {seed}", c.query_one("SHOW server_version", &[]).unwrap().get::<_, String>(0));

    // Committed before any crash: a value for each of the first BASE subjects, a row for each
    // of the first BASE / 5.
    let mut rng = Rng::new(seed);
    let values: Vec<Value> = (0..BASE)
        .map(|s| {
            let id = ledger.next_id();
            Value { id, subject: s, kind: 't', plain: plaintext('t', id, &mut rng), gen: 0 }
        })
        .collect();
    let ids: Vec<i64> = values.iter().map(|v| v.id).collect();
    let names: Vec<String> = values.iter().map(|v| ledger.name(v.subject)).collect();
    let plains: Vec<&str> = values.iter().map(|v| v.plain.as_str()).collect();
    c.execute(
        "INSERT INTO tracked_value SELECT i, s, 't', shred.seal(s, p, 'tracked.value') FROM unnest($1::bigint[], $2::text[], $3::text[]) AS x(i, s, p)",
        &[&ids, &names, &plains],
    )
    .unwrap();
    let key_of: HashMap<i64, i64> =
        c.query("SELECT id, shred.key_id(v) FROM tracked_value", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut t = Tally::default();
    commit_values(&ledger, values.into_iter().map(|v| (key_of[&v.id], v)).collect(), &mut t);
    let mut tx = c.transaction().unwrap();
    for owner in 0..BASE / 5 {
        let id = ledger.next_id();
        let r = Row {
            id,
            owner,
            name: (format!("Ñame {id}"), 0),
            email: (format!("Base{id}@Example.org"), 0),
            country: "FR".into(),
            exists: true,
            old_emails: Vec::new(),
        };
        tx.execute(INSERT_TRACKED_ROW, &[&r.id, &(r.owner as i32), &r.name.0, &r.email.0, &r.country]).unwrap();
        commit_row(&ledger, r);
    }
    tx.commit().unwrap();
    assert_eq!(t.discrepancies(), 0, "{:?}", t.notes);
    drop((c, admin));

    let mut crash = Crash { cluster: &cluster, ledger: ledger.clone(), rng: Rng::new(seed ^ 1), kills: 0 };

    // 1. Inside an erasure of 400 subjects: one of them (the 200th) is being erased by another
    //    transaction that has not committed.
    let targets: Vec<String> = (0..400).map(|s| ledger.name(s)).collect();
    let held = targets[200].clone();
    crash.kill(
        "mid-erase",
        Kill::Victim,
        Some(Victim {
            marker: "shred.erase",
            block: erasing(held),
            run: Box::new(move |c| c.query_one("SELECT shred.erase($1::text[])", &[&targets]).map(drop)),
        }),
    );

    // 2. Inside an INSERT sealing values for 600 new subjects: the 300th's first seal waits
    //    for another transaction's uncommitted first seal of it.
    let subjects: Vec<String> = (0..600).map(|i| format!("victim:seal:{i}")).collect();
    let ids: Vec<i64> = subjects.iter().map(|_| ledger.next_id()).collect();
    lock(&ledger.absent_values).extend(&ids);
    lock(&ledger.no_dek).extend(subjects.iter().cloned());
    let held = subjects[300].clone();
    crash.kill(
        "mid-seal",
        Kill::Victim,
        Some(Victim {
            marker: "INSERT INTO tracked_value",
            block: Box::new(move |t| {
                t.query_one("SELECT shred.seal($1, 'x')", &[&held]).unwrap();
            }),
            run: Box::new(move |c| {
                c.execute(
                    "INSERT INTO tracked_value SELECT i, s, 't', shred.seal(s, 'v' || i, 'tracked.value')
                       FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS x(i, s, n) ORDER BY n",
                    &[&ids, &subjects],
                )
                .map(drop)
            }),
        }),
    );

    // 3. Inside create_keys of 4,000 new subjects and one being erased by another transaction
    //    that has not committed (create_keys waits for it).
    let erased = ledger.name(RESERVED - 1);
    let mut subjects: Vec<String> = (0..4000).map(|i| format!("victim:keys:{i}")).collect();
    lock(&ledger.no_dek).extend(subjects.iter().cloned());
    subjects.insert(2000, erased.clone());
    crash.kill(
        "mid-create_keys",
        Kill::Victim,
        Some(Victim {
            marker: "shred.create_keys",
            block: erasing(erased),
            run: Box::new(move |c| c.query_one("SELECT shred.create_keys($1)", &[&subjects]).map(drop)),
        }),
    );

    // 4. Inside a rotation to a new root-key version 2: the keyring gets it (the cluster's key
    //    stays version 1); the rotation commits batches of 100 until the DEK a blocker locks.
    let root = std::fs::read_to_string(cluster.dir.join("root.key")).unwrap();
    let keyring = cluster.key_file(
        "keyring.key",
        format!("1:{}\n2:{}\n", root.trim(), base64::engine::general_purpose::STANDARD.encode(random_key())).as_bytes(),
    );
    let mut c = crash.connect();
    c.batch_execute(&format!("ALTER SYSTEM SET shred.root_key_file = '{keyring}'")).unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_until("new sessions to read the keyring", 30, || {
        crash.connect().query_one("SELECT count(*) FROM shred.keyring()", &[]).unwrap().get::<_, i64>(0) == 2
    });
    let v1 = reserved_deks(&mut c, &ledger);
    crash.kill("mid-rotation", Kill::Victim, Some(rotation(v1[v1.len() / 2])));
    let (left, done) = (crash.deks_under(1), crash.deks_under(2));
    assert!(left > 0 && done >= 100, "the rotation committed batches before the kill: {left} DEKs left under version 1, {done} under 2");
    let states: Vec<(i32, String)> = crash
        .connect()
        .query("SELECT version, state FROM shred.root_key_status ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(states, vec![(1, "in use".into()), (2, "current".into())]);

    // 5. The postmaster, while the rotation, resumed, waits inside its next batches.
    let v1 = reserved_deks(&mut crash.connect(), &ledger);
    crash.kill("postmaster mid-rotation", Kill::Postmaster, Some(rotation(v1[v1.len() / 2])));
    assert!(crash.deks_under(1) < left, "the resumed rotation committed batches before the kill");

    // 6. The postmaster, under the load alone.
    crash.kill("postmaster under load", Kill::Postmaster, None);

    // The rotation, called again, finishes; version 1 retires; everything verified again.
    let mut c = crash.connect();
    c.batch_execute("CALL shred.rotate_root_key(1000)").unwrap();
    assert_eq!(crash.deks_under(1), 0);
    assert!(c.query_one("SELECT shred.retire_root_key(1)", &[]).unwrap().get::<_, bool>(0));
    let mut t = Tally::default();
    let fig = verify_ledger(&mut c, &ledger, &mut t);
    assert_eq!(t.discrepancies(), 0, "after the rotation finished: {:?}", t.notes);
    println!(
        "crash recovery: {} kills, {} values, {} rows, {} DEKs (all under version 2), {} erasure records verified: {} ({:.0} s)",
        crash.kills,
        fig.values,
        fig.rows,
        fig.deks,
        fig.erasure_records,
        t.counts(),
        started.elapsed().as_secs_f64()
    );
    assert!(crash.kills >= 5);
}
