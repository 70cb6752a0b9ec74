//! A verifying soak, run by `scripts/soak [seconds] [clients]` against a server of its own:
//! PG_SHRED_SOAK_CLIENTS clients (default 4) at once, for PG_SHRED_SOAK_SECONDS (default 60),
//! seal values (text, bigint, jsonb), open them (also inside REPEATABLE READ transactions),
//! erase subjects (one or several, some in REPEATABLE READ, some rolled back; of half of the
//! subjects, so the other half's values stay readable to the end) and seal for them again
//! under a new DEK, write a protected table through its `_plain` view (INSERT, UPDATE, DELETE,
//! some rolled back) and look its rows up through the blind index. Meanwhile, every 20 s, the
//! root key file becomes a keyring with one version more (replaced atomically: sessions read
//! it at their next transaction) and, after a grace period longer than any client
//! transaction, a rotation rewraps every DEK under the new version. Every other client keeps
//! only 32 DEKs cached, so its opens miss the cache and evict; the others' caches are dropped
//! by every committed erasure.
//!
//! Invariant: every value is tracked with its plaintext and its subject's erasure generation
//! (the committed erasures of the subject when it was sealed). A value sealed before its
//! subject's last committed erasure opens as erased (NULL, `is_erased`, gone from lookups); one
//! sealed after opens to its plaintext; nothing rolled back is there. Checked for every read
//! during the load (a read that overlaps an erasure of its subject may show either; those are
//! counted apart) and, at the end, for every value and row ever written, with the erasure log,
//! `erased_at`, the DEKs of each generation, `shred.check()` and the root-key status
//! (`common::verify_ledger`). Writes of a subject and its erasures are ordered by the driver (a
//! lock per subject), so each value's generation is known; reads take no lock. (A seal racing
//! an uncommitted erasure of its subject is tests/isolation's seal_vs_erase.)
//!
//! PG_SHRED_SOAK_SUBJECTS (default 48 a client) sets how many subjects they share: fewer make
//! erasures meet reads and writes of their subject more often.
//!
//! It fails on any discrepancy and on any error but serialization failures and deadlocks
//! (40001, 40P01), which are retried and counted. It prints a summary: operations by kind,
//! operations per second, values verified, and the discrepancies by kind.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use postgres::{Client, IsolationLevel};

const DB: &str = "soak";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number"))).unwrap_or(default)
}

/// What one client did.
#[derive(Default)]
struct Stats {
    ops: BTreeMap<&'static str, u64>,
    retries: BTreeMap<String, u64>,
    tally: Tally,
}

struct Soak {
    ledger: Ledger,
    stop: AtomicBool,
    done: AtomicU64,
}

/// Run `f` (a whole transaction) until it does not fail with a serialization failure or a
/// deadlock, counting those; any other error ends the soak.
fn retrying<T>(c: &mut Client, st: &mut Stats, op: &str, mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>) -> Result<T, String> {
    for _ in 0..100 {
        match f(c) {
            Ok(v) => return Ok(v),
            Err(e) if matches!(code_of(&e), "40001" | "40P01") => {
                *st.retries.entry(format!("{op} {}", code_of(&e))).or_default() += 1;
            }
            Err(e) => return Err(format!("{op}: {}", describe(&e))),
        }
    }
    Err(format!("{op}: still failing after 100 retries"))
}

/// Seal 1 to 4 values for `subject` in one transaction (one in 10 rolled back).
fn seal(c: &mut Client, s: &Soak, rng: &mut Rng, st: &mut Stats, subject: usize, op: &'static str) -> Result<(), String> {
    let l = &s.ledger;
    let _w = l.subjects[subject].writes.read().unwrap();
    let name = l.name(subject);
    let values: Vec<Value> = (0..1 + rng.below(4))
        .map(|_| {
            let id = l.next_id();
            let kind = ['t', 't', 'b', 'j'][rng.below(4)];
            Value { id, subject, kind, plain: plaintext(kind, id, rng), gen: 0 }
        })
        .collect();
    let rollback = rng.one_in(10);
    let key_ids = retrying(c, st, op, |c| {
        let mut t = c.transaction()?;
        let mut key_ids = Vec::new();
        for v in &values {
            let kind = v.kind.to_string();
            key_ids.push(t.query_one(seal_sql(v.kind), &[&v.id, &name, &kind, &v.plain])?.get::<_, i64>(0));
        }
        if rollback { t.rollback()? } else { t.commit()? }
        Ok(key_ids)
    })?;
    if rollback {
        lock(&l.absent_values).extend(values.iter().map(|v| v.id));
        *st.ops.entry("seal (rolled back)").or_default() += 1;
        return Ok(());
    }
    for (mut v, k) in values.into_iter().zip(key_ids) {
        match l.sealed(subject, Some(k)) {
            Ok(gen) => v.gen = gen,
            Err(p) => st.tally.problem(p),
        }
        l.add_value(v);
    }
    *st.ops.entry(op).or_default() += 1;
    Ok(())
}

/// Open 1 to 8 tracked values, in one statement or, once in 4, in two statements of one
/// REPEATABLE READ transaction (the values chosen before it began).
fn open(c: &mut Client, s: &Soak, rng: &mut Rng, st: &mut Stats) -> Result<(), String> {
    let l = &s.ledger;
    let picks: Vec<Value> = {
        let values = lock(&l.values);
        if values.is_empty() {
            return Ok(());
        }
        (0..1 + rng.below(8)).map(|_| values[rng.below(values.len())].clone()).collect()
    };
    let repeatable = rng.one_in(4);
    let halves: Vec<&[Value]> = if repeatable { vec![&picks[..picks.len() / 2], &picks[picks.len() / 2..]] } else { vec![&picks] };
    let sql = format!("SELECT {OPEN_TRACKED} FROM tracked_value WHERE id = ANY($1)");
    // (generation before, begun after, rows) of each statement
    type Read = (Vec<u32>, Vec<u32>, Vec<postgres::Row>);
    let reads: Vec<Read> = retrying(c, st, "open", |c| {
        let mut t = c.build_transaction().isolation_level(if repeatable { IsolationLevel::RepeatableRead } else { IsolationLevel::ReadCommitted }).start()?;
        let mut reads = Vec::new();
        for half in &halves {
            let ids: Vec<i64> = half.iter().map(|v| v.id).collect();
            let before = half.iter().map(|v| l.subjects[v.subject].gen()).collect();
            let rows = t.query(&sql, &[&ids])?;
            let after = half.iter().map(|v| l.subjects[v.subject].begun()).collect();
            reads.push((before, after, rows));
        }
        t.commit()?;
        Ok(reads)
    })?;
    for (half, (before, after, rows)) in halves.iter().zip(reads) {
        let got: HashMap<i64, (Option<String>, bool)> = rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
        for (i, v) in half.iter().enumerate() {
            let what = format!("value {} of {} (generation {})", v.id, l.name(v.subject), v.gen);
            match got.get(&v.id) {
                None => st.tally.missing(format!("{what}: committed, not found")),
                Some((opened, erased)) => {
                    let e = expect(v.gen, before[i], after[i]);
                    st.tally.judge(&what, &v.plain, e, opened.as_deref());
                    st.tally.judge_erased(&what, e, opened.is_none(), *erased);
                }
            }
        }
    }
    *st.ops.entry(if repeatable { "open (repeatable read)" } else { "open" }).or_default() += 1;
    Ok(())
}

/// Erase one subject (once in 4 in REPEATABLE READ, where a rotation's concurrent rewrap of
/// its DEK is a serialization failure) or, once in 5, two or three with one call (one erasure
/// in 8 rolled back); erase must report exactly the DEKs the subjects had. Then seal for the
/// first again: a new DEK.
fn erase(c: &mut Client, s: &Soak, rng: &mut Rng, st: &mut Stats) -> Result<(), String> {
    let l = &s.ledger;
    // of the first half of the subjects: the other half's values stay readable to the end
    let mut subjects: Vec<usize> = (0..if rng.one_in(5) { 2 + rng.below(2) } else { 1 }).map(|_| rng.below(l.subjects.len() / 2)).collect();
    subjects.sort_unstable();
    subjects.dedup();
    let commit = !rng.one_in(8);
    // once in 4, a committed erasure of one subject runs in REPEATABLE READ
    let repeatable = commit && subjects.len() == 1 && rng.one_in(4);
    {
        // in index order: no two erasures wait for each other
        let _w: Vec<_> = subjects.iter().map(|&i| l.subjects[i].writes.write().unwrap()).collect();
        let had: Vec<bool> = subjects.iter().map(|&i| lock(&l.subjects[i].state).has_dek).collect();
        let names: Vec<String> = subjects.iter().map(|&i| l.name(i)).collect();
        if commit {
            subjects.iter().for_each(|&i| l.erasure_begins(i));
        }
        let result = retrying(c, st, "erase", |c| {
            let level = if repeatable { IsolationLevel::RepeatableRead } else { IsolationLevel::ReadCommitted };
            let mut t = c.build_transaction().isolation_level(level).start()?;
            let n = if names.len() == 1 {
                t.query_one("SELECT shred.erase($1)", &[&names[0]])?.get::<_, bool>(0) as i64
            } else {
                t.query_one("SELECT shred.erase($1::text[])", &[&names])?.get::<_, i64>(0)
            };
            if commit { t.commit()? } else { t.rollback()? }
            Ok(n)
        });
        let erased = match result {
            Ok(n) => n,
            Err(e) => {
                if commit {
                    subjects.iter().for_each(|&i| l.erasure_abandoned(i));
                }
                return Err(e);
            }
        };
        let expected = had.iter().filter(|h| **h).count() as i64;
        if erased != expected {
            st.tally.problem(format!("erase of {names:?} destroyed {erased} DEKs; they had {expected}"));
        }
        if commit {
            for (&i, &h) in subjects.iter().zip(&had) {
                l.erasure_committed(i, h);
            }
        }
    }
    *st.ops.entry(match (commit, subjects.len(), repeatable) {
        (false, _, _) => "erase (rolled back)",
        (true, 1, false) => "erase",
        (true, 1, true) => "erase (repeatable read)",
        (true, _, _) => "erase (several subjects)",
    })
    .or_default() += 1;
    seal(c, s, rng, st, subjects[0], "seal after erase")
}

/// A new e-mail address for row `id`.
fn email(id: i64, rng: &mut Rng) -> String {
    format!("Customer{id}.{:x}@Soak.Example", rng.next() % 0xffff_ffff)
}

/// INSERT a row through the view (one in 10 rolled back).
fn insert(c: &mut Client, s: &Soak, rng: &mut Rng, st: &mut Stats) -> Result<(), String> {
    let l = &s.ledger;
    let owner = rng.below(l.subjects.len());
    let _w = l.subjects[owner].writes.read().unwrap();
    let id = l.next_id();
    let mut r = Row {
        id,
        owner,
        name: (format!("Ñame {id} {:x}", rng.next()), 0),
        email: (email(id, rng), 0),
        country: ["UK", "FR", "DE"][rng.below(3)].into(),
        exists: true,
        old_emails: Vec::new(),
    };
    let rollback = rng.one_in(10);
    let n = retrying(c, st, "insert", |c| {
        let mut t = c.transaction()?;
        let n = t.execute(INSERT_TRACKED_ROW, &[&id, &(owner as i32), &r.name.0, &r.email.0, &r.country])?;
        if rollback { t.rollback()? } else { t.commit()? }
        Ok(n)
    })?;
    if n != 1 {
        st.tally.problem(format!("INSERT of row {id} through the view inserted {n} rows"));
    }
    if rollback {
        lock(&l.absent_rows).push(id);
        *st.ops.entry("view insert (rolled back)").or_default() += 1;
        return Ok(());
    }
    match l.sealed(owner, None) {
        Ok(gen) => (r.name.1, r.email.1) = (gen, gen),
        Err(p) => st.tally.problem(p),
    }
    l.add_row(r);
    *st.ops.entry("view insert").or_default() += 1;
    Ok(())
}

/// A random tracked row, if any.
fn pick_row(s: &Soak, rng: &mut Rng) -> Option<Arc<std::sync::Mutex<Row>>> {
    let rows = lock(&s.ledger.rows);
    (!rows.is_empty()).then(|| rows[rng.below(rows.len())].clone())
}

/// Every `every` until `until`: a new root-key version in the key file, then a rotation to it.
fn rotator(s: &Soak, until: Instant, every: Duration) -> (Stats, Option<String>) {
    let mut st = Stats::default();
    let path = dir().join("root.key");
    let first = std::fs::read_to_string(&path).expect("the cluster's root key");
    let mut ring = vec![first.trim().to_string()];
    let mut c = connect(DB);
    let mut next = Instant::now() + every;
    loop {
        while Instant::now() < next {
            if Instant::now() + every / 2 >= until || s.stop.load(Ordering::Relaxed) {
                return (st, None);
            }
            thread::sleep(Duration::from_millis(100));
        }
        ring.push(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, random_key()));
        let text: String = ring.iter().enumerate().map(|(i, k)| format!("{}:{k}\n", i + 1)).collect();
        std::fs::rename(key_file("root-next", text.as_bytes(), 0o600), &path).expect("replace the key file");
        // every client transaction begun before the replacement has ended
        thread::sleep(Duration::from_secs(5));
        if let Err(e) = retrying(&mut c, &mut st, "rotate", |c| c.batch_execute("CALL shred.rotate_root_key(50)")) {
            s.stop.store(true, Ordering::Relaxed);
            return (st, Some(e));
        }
        *st.ops.entry("rotate root key").or_default() += 1;
        s.done.fetch_add(1, Ordering::Relaxed);
        next = Instant::now() + every;
    }
}

/// UPDATE a row's e-mail address (and, once in 2, its name) or, once in 4, DELETE it, through
/// the view (one in 10 rolled back). A deleted row is updated or deleted again: 0 rows.
fn change(c: &mut Client, s: &Soak, rng: &mut Rng, st: &mut Stats) -> Result<(), String> {
    let l = &s.ledger;
    let Some(row) = pick_row(s, rng) else { return Ok(()) };
    let owner = lock(&row).owner;
    let _w = l.subjects[owner].writes.read().unwrap();
    let mut r = lock(&row);
    let delete = rng.one_in(4);
    let new_email = email(r.id, rng);
    let new_name = rng.one_in(2).then(|| format!("Ñame {} {:x}", r.id, rng.next()));
    let rollback = rng.one_in(10);
    let id = r.id;
    let n = retrying(c, st, if delete { "delete" } else { "update" }, |c| {
        let mut t = c.transaction()?;
        let n = match (delete, &new_name) {
            (true, _) => t.execute("DELETE FROM tracked_customer_plain WHERE id = $1", &[&id])?,
            (false, None) => t.execute("UPDATE tracked_customer_plain SET email = $2 WHERE id = $1", &[&id, &new_email])?,
            (false, Some(name)) => t.execute("UPDATE tracked_customer_plain SET email = $2, name = $3 WHERE id = $1", &[&id, &new_email, name])?,
        };
        if rollback { t.rollback()? } else { t.commit()? }
        Ok(n)
    })?;
    let op = if delete { "view delete" } else { "view update" };
    if n != r.exists as u64 {
        st.tally.problem(format!("{op} of row {id} (exists: {}) touched {n} rows", r.exists));
    }
    if rollback {
        *st.ops.entry(if delete { "view delete (rolled back)" } else { "view update (rolled back)" }).or_default() += 1;
        return Ok(());
    }
    if r.exists {
        if delete {
            r.exists = false;
        } else {
            let gen = l.sealed(owner, None).unwrap_or_else(|p| {
                st.tally.problem(p);
                0
            });
            let old = std::mem::replace(&mut r.email, (new_email, gen));
            r.old_emails.push(old.0);
            if let Some(name) = new_name {
                r.name = (name, gen);
            }
        }
    }
    *st.ops.entry(op).or_default() += 1;
    Ok(())
}

/// Look a row up by its e-mail address through the blind index (in another case, with
/// spaces), and by an address it held before (finds nothing); read it through the view.
fn lookup(c: &mut Client, s: &Soak, rng: &mut Rng, st: &mut Stats) -> Result<(), String> {
    let l = &s.ledger;
    let Some(row) = pick_row(s, rng) else { return Ok(()) };
    let r = lock(&row);
    let subject = &l.subjects[r.owner];
    let old = (!r.old_emails.is_empty()).then(|| r.old_emails[rng.below(r.old_emails.len())].clone());
    let before = subject.gen();
    let (found, found_old, plain) = retrying(c, st, "lookup", |c| {
        let by = |c: &mut Client, email: &str| -> Result<Vec<i64>, postgres::Error> {
            c.query_one(
                "SELECT ARRAY(SELECT id FROM tracked_customer
                               WHERE email_bidx IN (SELECT shred.blind_match($1, 'tracked_customer.email', 'email')))",
                &[&email],
            )
            .map(|r| r.get(0))
        };
        let found = by(c, &lookup_form(&r.email.0))?;
        let found_old = match &old {
            Some(e) => by(c, &lookup_form(e))?,
            None => vec![],
        };
        let plain = c.query_opt("SELECT name, email, country FROM tracked_customer_plain WHERE id = $1", &[&r.id])?;
        Ok((found, found_old, plain))
    })?;
    let after = subject.begun();
    let what = format!("row {} of {}", r.id, l.name(r.owner));
    let e = expect(r.email.1, before, after);
    let finds = found == vec![r.id];
    let right = match (r.exists, e) {
        (true, Expect::Plain) => finds,
        (true, Expect::Either) => finds || found.is_empty(),
        _ => found.is_empty(),
    };
    if !right {
        st.tally.problem(format!("lookup of {what}: found {found:?} (exists {}, {e:?})", r.exists));
    }
    if !found_old.is_empty() {
        st.tally.problem(format!("lookup of {what} by an address it no longer holds: found {found_old:?}"));
    }
    match (r.exists, plain) {
        (false, None) => {}
        (false, Some(_)) => st.tally.phantom(format!("{what}: read through the view after its DELETE committed")),
        (true, None) => st.tally.missing(format!("{what}: not in the view")),
        (true, Some(p)) => {
            st.tally.judge(&format!("{what}, name"), &r.name.0, expect(r.name.1, before, after), p.get::<_, Option<&str>>(0));
            st.tally.judge(&format!("{what}, email"), &r.email.0, e, p.get::<_, Option<&str>>(1));
            if p.get::<_, Option<&str>>(2) != Some(r.country.as_str()) {
                st.tally.problem(format!("{what}: country changed"));
            }
        }
    }
    *st.ops.entry("lookup").or_default() += 1;
    Ok(())
}

/// A client; every other one keeps only 32 DEKs cached (most opens then miss and evict).
fn client(s: &Soak, n: u64, seed: u64, until: Instant) -> (Stats, Option<String>) {
    let mut st = Stats::default();
    let mut rng = Rng::new(seed);
    let mut c = connect(DB);
    if n % 2 == 1 {
        c.batch_execute("SET shred.key_cache_size = 32").unwrap();
    }
    while Instant::now() < until && !s.stop.load(Ordering::Relaxed) {
        let r = match rng.below(100) {
            0..=24 => open(&mut c, s, &mut rng, &mut st),
            25..=41 => {
                let subject = rng.below(s.ledger.subjects.len());
                seal(&mut c, s, &mut rng, &mut st, subject, "seal")
            }
            42..=47 => erase(&mut c, s, &mut rng, &mut st),
            48..=61 => insert(&mut c, s, &mut rng, &mut st),
            62..=75 => change(&mut c, s, &mut rng, &mut st),
            _ => lookup(&mut c, s, &mut rng, &mut st),
        };
        if let Err(e) = r {
            s.stop.store(true, Ordering::Relaxed);
            return (st, Some(e));
        }
        s.done.fetch_add(1, Ordering::Relaxed);
    }
    (st, None)
}

#[test]
fn soak() {
    let seconds = setting("PG_SHRED_SOAK_SECONDS", 60);
    let clients = setting("PG_SHRED_SOAK_CLIENTS", 4).max(1);
    let seed = std::env::var("PG_SHRED_SOAK_SEED").ok().map(|v| v.parse().expect("PG_SHRED_SOAK_SEED")).unwrap_or_else(Rng::seed);
    let mut admin = fresh_db(DB);
    let server: String = admin.query_one("SHOW server_version", &[]).unwrap().get(0);
    println!("pg_shred soak: {seconds} s, {clients} clients, PostgreSQL {server}, seed {seed} (PG_SHRED_SOAK_SEED)");
    // 48 subjects a client by default: erasures and writes of one subject meet often enough
    let subjects = setting("PG_SHRED_SOAK_SUBJECTS", 48 * clients).max(2) as usize;
    let s = Arc::new(Soak { ledger: Ledger::new("soak:", subjects), stop: AtomicBool::new(false), done: AtomicU64::new(0) });
    s.ledger.create_tables(&mut admin);

    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut handles: Vec<_> = (0..clients)
        .map(|i| {
            let s = s.clone();
            thread::spawn(move || client(&s, i, seed ^ (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15), until))
        })
        .collect();
    let r = s.clone();
    handles.push(thread::spawn(move || rotator(&r, until, Duration::from_secs(20))));
    let mut report = 10;
    while handles.iter().any(|h| !h.is_finished()) {
        thread::sleep(Duration::from_millis(250));
        if start.elapsed().as_secs() >= report {
            println!("  {report:>5} s: {} operations", s.done.load(Ordering::Relaxed));
            report += 10;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Stats::default();
    let mut errors = Vec::new();
    for h in handles {
        let (st, err) = h.join().expect("a client panicked");
        for (k, n) in st.ops {
            *all.ops.entry(k).or_default() += n;
        }
        for (k, n) in st.retries {
            *all.retries.entry(k).or_default() += n;
        }
        all.tally.add(&st.tally);
        errors.extend(err);
    }
    let during = all.tally.clone();

    // The end: every value and row ever written, with nothing else running, on a new session.
    let mut end = Tally::default();
    let fig = if errors.is_empty() { Some(verify_ledger(&mut connect(DB), &s.ledger, &mut end)) } else { None };

    let total: u64 = all.ops.values().sum();
    println!("pg_shred soak summary");
    println!("  operations:                 {total} in {elapsed:.0} s ({:.1}/s), {clients} clients, {subjects} subjects", total as f64 / elapsed);
    for (k, n) in &all.ops {
        println!("    {k:<26}{n:>9}");
    }
    let retried: u64 = all.retries.values().sum();
    println!("  retried:                    {retried} {:?}", all.retries);
    println!(
        "  reads checked during load:  {} ({} overlapped an erasure of their subject: either accepted; {} split by its commit)",
        during.checked, during.either, during.split
    );
    println!("  discrepancies during load:  {}", during.counts());
    if let Some(f) = &fig {
        let erasures: u32 = s.ledger.subjects.iter().map(|x| lock(&x.state).gen).sum();
        println!(
            "  verified at the end:        {} sealed values, {} protected rows ({} values), {} lookups; {} of them erased",
            f.values,
            f.rows,
            2 * f.rows,
            f.lookups,
            f.erased_values
        );
        println!(
            "  key store:                  {} DEKs, {} erasure records ({erasures} committed erasures), {} rolled-back values and {} rows absent",
            f.deks,
            f.erasure_records,
            lock(&s.ledger.absent_values).len(),
            lock(&s.ledger.absent_rows).len()
        );
        // versions wrapping DEKs one by one, the others counted by state
        let (mut versions, mut others) = (Vec::new(), BTreeMap::<String, u32>::new());
        for r in connect(DB).query("SELECT version, state, dek_count FROM shred.root_key_status ORDER BY version", &[]).unwrap() {
            let (v, state, n): (i32, String, i64) = (r.get(0), r.get(1), r.get(2));
            if n > 0 {
                versions.push(format!("version {v} {state}: {n} DEKs"));
            } else {
                *others.entry(state).or_default() += 1;
            }
        }
        versions.extend(others.iter().map(|(state, n)| format!("{n} {state}")));
        println!("  root-key versions:          {}", versions.join("; "));
        println!("  discrepancies at the end:   {}", end.counts());
        println!("  shred.check():              {}", if end.other == 0 { "clean (only the erased values expected)" } else { "see above" });
    }
    for n in during.notes.iter().chain(&end.notes) {
        println!("  ! {n}");
    }
    for e in &errors {
        println!("  error: {e}");
    }
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    assert_eq!(during.discrepancies() + end.discrepancies(), 0, "discrepancies");
    assert!(fig.map(|f| f.values > 0 && f.rows > 0).unwrap_or(false), "nothing was verified");
    println!("pg_shred soak: 0 wrong, 0 lost, 0 un-erased");
}
