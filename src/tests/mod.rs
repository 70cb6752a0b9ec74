//! In-database tests (`cargo pgrx test`). Each runs inside one transaction of a real backend;
//! commit-time and two-session behaviour is covered by `tests/integration.rs`.

#[pgrx::pg_schema]
mod tests {
use pgrx::prelude::*;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Path of this backend's key file `name`, in the test cluster's data directory (which
/// `scripts/test` wipes before each run).
fn key_path(name: &str) -> String {
    // SAFETY: DataDir is set before any backend runs SQL.
    let data_dir = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) }.to_string_lossy().into_owned();
    format!("{data_dir}/pg_shred_pgtest_{}_{name}.key", std::process::id())
}

/// Write a root key file (as the server's OS user, mode 0600, random bytes, base64) and point
/// `shred.root_key_file` at it for this transaction. No key material appears in test SQL.
fn key_file(name: &str, mode: u32) -> String {
    let path = key_path(name);
    let mut key = [0u8; 32];
    crate::crypto::fill_random(&mut key).expect("rng");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .expect("create key file");
    use base64::Engine;
    writeln!(f, "{}", base64::engine::general_purpose::STANDARD.encode(key)).expect("write");
    // the backend's umask may have narrowed the mode: set it exactly
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

fn use_key(path: &str) {
    Spi::run(&format!("SET LOCAL shred.root_key_file = '{path}'")).expect("set");
}

/// The root key shared by the tests of this backend (created once).
fn setup() {
    let path = key_path("main");
    if std::fs::metadata(&path).is_err() {
        key_file("main", 0o600);
    }
    use_key(&path);
}

fn text(sql: &str) -> Option<String> {
    Spi::get_one::<String>(sql).expect("query")
}

fn boolean(sql: &str) -> Option<bool> {
    Spi::get_one::<bool>(sql).expect("query")
}

#[pg_test]
fn seal_open_round_trip_and_contexts() {
    setup();
    assert_eq!(
        text("SELECT shred.open(shred.seal('t:1', 'São José Köhler 🎉', 'c.name'), 'c.name')").as_deref(),
        Some("São José Köhler 🎉")
    );
    assert_eq!(text("SELECT shred.open(shred.seal('t:1', ''))").as_deref(), Some(""));
    assert_eq!(
        Spi::get_one::<Vec<u8>>("SELECT shred.open_bytea(shred.seal('t:1', '\\x00ff00'::bytea))").expect("q"),
        Some(vec![0, 0xff, 0])
    );
    // one DEK per subject, reused
    assert_eq!(
        boolean("SELECT shred.key_id(shred.seal('t:1', 'a')) = shred.key_id(shred.seal('t:1', 'b'))"),
        Some(true)
    );
    assert_eq!(
        boolean("SELECT shred.key_id(shred.seal('t:1', 'a')) <> shred.key_id(shred.seal('t:2', 'a'))"),
        Some(true)
    );
    // sealing twice gives different envelopes
    assert_eq!(
        boolean("SELECT shred.seal('t:1', 'same')::text <> shred.seal('t:1', 'same')::text"),
        Some(true)
    );
    // 1 MiB
    assert_eq!(
        boolean("SELECT shred.open(shred.seal('t:1', repeat('x', 1048576))) = repeat('x', 1048576)"),
        Some(true)
    );
}

#[pg_test]
fn null_contract() {
    setup();
    assert_eq!(boolean("SELECT shred.seal('t:1', NULL::text) IS NULL"), Some(true));
    assert_eq!(boolean("SELECT shred.seal('t:1', NULL::bytea) IS NULL"), Some(true));
    assert_eq!(boolean("SELECT shred.open(NULL) IS NULL"), Some(true));
    assert_eq!(boolean("SELECT shred.open_bytea(NULL, 'ctx') IS NULL"), Some(true));
    assert_eq!(boolean("SELECT shred.is_erased(NULL) IS NULL"), Some(true));
    assert_eq!(boolean("SELECT shred.key_id(NULL) IS NULL"), Some(true));
}

#[pg_test(error = "pg_shred: subject must not be NULL")]
fn null_subject_is_an_error() {
    setup();
    Spi::run("SELECT shred.seal(NULL, 'x')").expect("raises");
}

#[pg_test(error = "pg_shred: subject must not be NULL")]
fn null_subject_erase_is_an_error() {
    setup();
    Spi::run("SELECT shred.erase(NULL)").expect("raises");
}

#[pg_test(error = "pg_shred: context must not be NULL")]
fn null_context_is_an_error() {
    setup();
    Spi::run("SELECT shred.open(shred.seal('t:1', 'x'), NULL)").expect("raises");
}

#[pg_test(error = "pg_shred: could not open the sealed value")]
fn wrong_context_fails() {
    setup();
    Spi::run("SELECT shred.open(shred.seal('t:1', 'x', 'customers.email'), 'customers.phone')").expect("raises");
}

#[pg_test(error = "pg_shred: the sealed value is not valid text")]
fn bytes_opened_as_text_fail() {
    setup();
    Spi::run("SELECT shred.open(shred.seal('t:1', '\\x41ff'::bytea))").expect("raises");
}

#[pg_test]
fn text_form_round_trip() {
    setup();
    assert_eq!(
        boolean(
            "WITH s AS (SELECT shred.seal('t:3', 'v' || g) AS v FROM generate_series(1, 200) g)
             SELECT bool_and(((v::text)::shred.sealed)::text = v::text
                             AND v::text LIKE 'shred1:%'
                             AND shred.open((v::text)::shred.sealed) = shred.open(v)) FROM s"
        ),
        Some(true)
    );
}

#[pg_test(error = "invalid input for type shred.sealed: malformed envelope: it is shorter than header, nonce and tag (37 bytes)")]
fn truncated_envelope_is_refused() {
    Spi::run("SELECT 'shred1:AQ=='::shred.sealed").expect("raises");
}

#[pg_test(error = "invalid input for type shred.sealed: malformed envelope: it does not start with \"shred1:\" or \"shred2:\"")]
fn empty_envelope_is_refused() {
    Spi::run("SELECT ''::shred.sealed").expect("raises");
}

#[pg_test(error = "invalid input for type shred.sealed: unsupported envelope format version 3")]
fn unknown_version_is_refused() {
    // version byte 0x03 followed by 36 zero bytes
    Spi::run("SELECT ('shred1:' || encode('\\x03'::bytea || decode(repeat('00', 36), 'hex'), 'base64'))::shred.sealed")
        .expect("raises");
}

#[pg_test]
fn erase_and_is_erased_in_one_transaction() {
    setup();
    Spi::run("CREATE TEMP TABLE v AS SELECT shred.seal('t:erase', 'x') AS s").expect("q");
    assert_eq!(boolean("SELECT shred.is_erased(s) FROM v"), Some(false));
    assert_eq!(boolean("SELECT shred.erase('t:erase')"), Some(true));
    assert_eq!(boolean("SELECT shred.erase('t:erase')"), Some(false));
    assert_eq!(boolean("SELECT shred.open(s) IS NULL AND shred.is_erased(s) FROM v"), Some(true));
    // a new seal after erasure gets a new DEK; the old value stays erased
    assert_eq!(
        boolean("SELECT shred.key_id(shred.seal('t:erase', 'y')) <> shred.key_id(s) AND shred.open(s) IS NULL FROM v"),
        Some(true)
    );
}

#[pg_test(error = "pg_shred: no root key is configured")]
fn missing_root_key_fails_closed() {
    Spi::run("SET LOCAL shred.root_key_file = ''").expect("set");
    Spi::run("SELECT shred.seal('t:nokey', 'x')").expect("raises");
}

#[pg_test(error = "pg_shred: the configured root key is not root-key version 1 of this database")]
fn wrong_root_key_fails_closed() {
    setup();
    Spi::run("SELECT shred.seal('t:wrongkey', 'x')").expect("registers version 1");
    use_key(&key_file("wrong", 0o600));
    Spi::run("SELECT shred.seal('t:wrongkey-new', 'x')").expect("raises");
}

#[pg_test(error = "pg_shred: cannot use the file named by shred.root_key_file: it has mode 0640; it must not be accessible by group or others (chmod 0600)")]
fn group_readable_key_file_is_refused() {
    use_key(&key_file("group", 0o640));
    Spi::run("SELECT shred.seal('t:1', 'x')").expect("raises");
}

#[pg_test]
fn sql_labels_and_privileges() {
    // (signature, volatility, strict, parallel, roles granted EXECUTE)
    let expected = [
        ("shred.seal(text,text,text,text)", "v", false, "u", "shred_writer"),
        ("shred.seal(text,bytea,text,text)", "v", false, "u", "shred_writer"),
        ("shred.open(shred.sealed,text)", "v", false, "u", "shred_reader"),
        ("shred.open_bytea(shred.sealed,text)", "v", false, "u", "shred_reader"),
        ("shred.erase(text)", "v", false, "u", "shred_eraser"),
        ("shred.erase(text[])", "v", false, "u", "shred_eraser"),
        ("shred.erase(text,text)", "v", false, "u", "shred_eraser"),
        ("shred.create_keys(text[])", "v", false, "u", "shred_writer"),
        ("shred.is_erased(shred.sealed)", "v", true, "u", "shred_admin,shred_eraser,shred_reader"),
        ("shred.key_id(shred.sealed)", "i", true, "s", "shred_admin,shred_eraser,shred_reader,shred_writer"),
        ("shred.key_cache_entries()", "v", true, "r", "shred_admin,shred_reader,shred_writer"),
        ("shred.keyring()", "v", false, "u", "shred_admin"),
        ("shred.rewrap_batch(integer)", "v", true, "u", "shred_admin"),
        ("shred.retire_root_key(integer)", "v", true, "u", "shred_admin"),
        ("shred.erasure_horizon()", "v", false, "u", "shred_admin"),
        ("shred.rotate_root_key(integer)", "v", false, "u", "shred_admin"),
        ("shred.seal(text,integer,text,text)", "v", false, "u", "shred_writer"),
        ("shred.seal(text,numeric,text,text)", "v", false, "u", "shred_writer"),
        ("shred.seal(text,jsonb,text,text)", "v", false, "u", "shred_writer"),
        ("shred.open_timestamptz(shred.sealed,text)", "v", false, "u", "shred_reader"),
        ("shred.open_jsonb(shred.sealed,text)", "v", false, "u", "shred_reader"),
        ("shred.blind_index(text,text,text)", "s", false, "u", "shred_reader,shred_writer"),
        ("shred.blind_match(text,text,text)", "s", true, "u", "shred_reader"),
        ("shred.blind_token(text,text,text,text,text)", "v", false, "u", "shred_writer"),
        ("shred._open_row(shred.sealed,text,text,anyelement)", "s", false, "u", "shred_reader"),
        ("shred.pseudonym(text,text,text)", "v", false, "u", "shred_reader,shred_writer"),
        ("shred.request_consent(text,text,jsonb)", "v", false, "u", "shred_writer"),
        ("shred.confirm_consent(text)", "v", false, "u", "shred_writer"),
        ("shred.withdraw_consent(text,text)", "v", false, "u", "shred_writer"),
        ("shred.has_consent(text,text)", "v", false, "u", "shred_reader,shred_writer"),
        ("shred.set_purpose(regclass,name,text)", "v", false, "u", "shred_admin"),
        ("shred.receipt_public_key()", "v", false, "u", "shred_admin,shred_eraser,shred_reader,shred_writer"),
        ("shred.verify_receipt(jsonb)", "v", true, "u", "shred_admin,shred_eraser,shred_reader,shred_writer"),
    ];
    for (sig, vol, strict, par, roles) in expected {
        let row = text(&format!(
            "SELECT provolatile::text || proisstrict::text || proparallel::text || prosecdef::text
                    || has_function_privilege('public', oid, 'EXECUTE')::text || ' '
                    || (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles
                         WHERE rolname LIKE 'shred\\_%' AND has_function_privilege(rolname, p.oid, 'EXECUTE'))
               FROM pg_proc p WHERE oid = '{sig}'::regprocedure"
        ));
        assert_eq!(row, Some(format!("{vol}{strict}{par}falsefalse {roles}")), "{sig}");
    }
    // Functions in SQL and PL/pgSQL pin their search_path, except the procedures, which cannot
    // (they commit): every name and operator in them is qualified. Functions in C set none (they qualify every name they use).
    assert_eq!(
        text("SELECT string_agg(p.oid::regprocedure::text, ' ' ORDER BY p.oid::regprocedure::text)
                FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
               WHERE p.pronamespace = 'shred'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
                 AND p.proconfig IS NULL"),
        Some("shred.rotate_root_key(integer) shred.run_retention(integer)".into())
    );
    assert_eq!(
        text("SELECT count(*)::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
               WHERE p.pronamespace = 'shred'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
                 AND p.proconfig <> ARRAY['search_path=pg_catalog, pg_temp']"),
        Some("0".into())
    );
    assert_eq!(
        text("SELECT count(*)::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
               WHERE p.pronamespace = 'shred'::regnamespace AND l.lanname = 'c' AND p.proconfig IS NOT NULL"),
        Some("0".into())
    );
    // SECURITY DEFINER: only the catalog's writers (each consumes the authorisation that
    // shred._authorize gave the caller for one table), the event triggers that follow the
    // catalog's tables, the definition of purposes, and the readers of what their callers may
    // not read (the purposes of protected columns, the consent ledger, the erasure log and the
    // key table's heap for erasure receipts and the residue check); the C functions switch
    // to the key store owner only around their key store statements
    assert_eq!(
        text("SELECT string_agg(proname, ',' ORDER BY proname COLLATE \"C\") FROM pg_proc WHERE pronamespace = 'shred'::regnamespace AND prosecdef"),
        Some("_column_purposes,_follow_alter,_follow_drops,_protect,_refresh_view_authorized,_set_purpose,_set_tombstone,_unprotect,consent_history,define_purpose,erasure_receipt,erasure_residue".into())
    );
    // nothing in the schema is executable by PUBLIC but the type's own I/O functions and the
    // views' trigger (which refuses any call outside a trigger and seals only for roles that
    // may execute shred.seal)
    assert_eq!(
        text("SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc
               WHERE pronamespace = 'shred'::regnamespace AND has_function_privilege('public', oid, 'EXECUTE')"),
        Some("protected_view_write,sealed_in,sealed_out,sealed_recv,sealed_send".into())
    );
    // the four roles exist and cannot log in
    assert_eq!(
        text("SELECT string_agg(rolname || ':' || rolcanlogin::text, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'shred\\_%'"),
        Some("shred_admin:false,shred_eraser:false,shred_reader:false,shred_writer:false".into())
    );
    // the status view is for shred_admin only
    assert_eq!(
        boolean("SELECT has_table_privilege('shred_admin', 'shred.root_key_status', 'SELECT')
                    AND NOT has_table_privilege('public', 'shred.root_key_status', 'SELECT')"),
        Some(true)
    );
    // no cast between shred.sealed and text
    assert_eq!(
        Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_cast WHERE castsource = 'shred.sealed'::regtype OR casttarget = 'shred.sealed'::regtype"
        )
        .expect("q"),
        Some(0)
    );
    // key tables are unreadable by PUBLIC
    assert_eq!(
        boolean("SELECT NOT has_table_privilege('public', 'shred.subject_key', 'SELECT') AND NOT has_table_privilege('public', 'shred.root_key_version', 'SELECT')"),
        Some(true)
    );
}

/// Whether every byte of the `len` bytes at `addr` (a [`crate::crypto::secret::Secret`] slot,
/// which stays mapped for reuse after a drop) is zero.
fn zeroed((addr, len): (usize, usize)) -> bool {
    // SAFETY: the slot belongs to the key pool's mapping, which is never unmapped; volatile
    // reads, so the check reads memory rather than what the compiler knows of it.
    (0..len).all(|i| unsafe { std::ptr::read_volatile((addr + i) as *const u8) } == 0)
}

/// Whether the `len` bytes at `addr` hold `pattern` somewhere.
fn holds((addr, len): (usize, usize), pattern: &[u8]) -> bool {
    // SAFETY: the memory of a key alive in the caller.
    let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    bytes.windows(pattern.len()).any(|w| w == pattern)
}

/// G8: key material that Rust holds when an ERROR interrupts a call is zeroed before control
/// returns to PostgreSQL. pgrx turns the ERROR into a Rust panic that unwinds the Rust frames,
/// so every `Drop` runs on the way out; this checks it rather than assuming it, for both ways an
/// ERROR reaches Rust code: raised by PostgreSQL inside a call Rust made (a division by zero
/// under SPI, a longjmp caught at pgrx's boundary) and raised by pg_shred itself. The key's
/// memory is read after the ERROR was caught: the DEK's pattern was there (in the expanded key
/// and in its compact form), only zeros are left, and the expanded key was dropped.
#[pg_test]
fn key_material_is_zeroed_when_an_error_interrupts_a_call() {
    use crate::crypto::keys::DataKey;
    use crate::pg::subxact::{attempt, sqlstate};
    use std::rc::Rc;
    const PATTERN: [u8; 32] = [0xA5; 32];
    let raisers: [(&str, fn()); 2] = [
        ("22012", || {
            let _ = Spi::run("SELECT 1 / 0");
        }),
        ("42704", || crate::error::ShredError::UnknownKey.report()),
    ];
    for (expected, raise) in raisers {
        let mut seen = None;
        let outcome = attempt(
            || {
                let key = Rc::new(DataKey::from_bytes(&PATTERN));
                let compact = key.compact();
                assert!(holds(key.memory(), &PATTERN) && holds(compact.memory(), &PATTERN), "the DEK is not where the test looks");
                seen = Some((key.memory(), compact.memory(), Rc::downgrade(&key)));
                raise();
                panic!("no ERROR was raised");
            },
            |_| true,
        );
        assert_eq!(outcome.map_err(sqlstate).err().as_deref(), Some(expected));
        let (expanded, compact, weak) = seen.expect("the call ran");
        assert!(weak.upgrade().is_none(), "the expanded DEK was not dropped ({expected})");
        assert!(zeroed(expanded), "the expanded DEK's memory is not zeroed ({expected})");
        assert!(zeroed(compact), "the compact DEK's memory is not zeroed ({expected})");
    }
}

/// Issue finding: the DEK cache stays within `shred.key_cache_memory`, counting its upper
/// bounds per entry, whatever `shred.key_cache_size` allows: sealing for 20,000 new subjects
/// with 2 MB leaves fewer entries than that, and the count within the budget; raising the
/// budget lets them all in; lowering it again trims the cache at its next use.
#[pg_test]
fn key_cache_stays_within_its_memory_budget() {
    use crate::keys::cache;
    setup();
    let seal_many = |from: i64, to: i64| {
        Spi::run(&format!("SELECT count(shred.seal('budget:' || g, 'x')) FROM generate_series({from}, {to}) g")).expect("seal");
    };
    Spi::run("SET LOCAL shred.key_cache_size = 1000000; SET LOCAL shred.key_cache_memory = '2MB'").expect("set");
    seal_many(1, 20_000);
    let budget = 2 * 1024 * 1024;
    assert!(cache::counted_bytes() <= budget, "{} bytes counted", cache::counted_bytes());
    let entries = cache::entries();
    assert!(entries > 1_000 && entries < budget / cache::ENTRY_COST, "{entries} entries in 2 MB");
    // Lowered: trimmed at the next use.
    Spi::run("SET LOCAL shred.key_cache_memory = '1MB'").expect("set");
    let trimmed = cache::entries();
    assert!(trimmed < entries && cache::counted_bytes() <= budget / 2, "{trimmed} entries in 1 MB");
    // Raised: the next 20,000 all fit (and the expanded ones keep to half the budget).
    Spi::run("SET LOCAL shred.key_cache_memory = '64MB'").expect("set");
    seal_many(20_001, 40_000);
    assert!(cache::entries() >= 20_000, "{} entries in 64 MB", cache::entries());
}

/// The cache finds a DEK by subject only under its own purpose: whichever DEK of a subject was
/// read first (by key id, when a value is opened; set-wise, by `shred.check()`'s prefetch; or
/// by subject), a seal for the default DEK or another purpose never takes it.
#[pg_test]
fn purpose_deks_are_cached_apart() {
    use crate::keys::{cache, store};
    setup();
    Spi::run("SELECT shred.define_purpose('cache_a', 'a'), shred.define_purpose('cache_b', 'b')").expect("define");
    let id = |sql: &str| Spi::get_one::<i64>(sql).expect("query").expect("a key id");
    let ids = |subject: &str| -> [i64; 3] {
        [
            id(&format!("SELECT shred.key_id(shred.seal('{subject}', 'x'))")),
            id(&format!("SELECT shred.key_id(shred.seal('{subject}', 'x', '', 'cache_a'))")),
            id(&format!("SELECT shred.key_id(shred.seal('{subject}', 'x', '', 'cache_b'))")),
        ]
    };
    let want = ids("cached:1");
    assert!(want[0] != want[1] && want[1] != want[2] && want[0] != want[2], "{want:?}");
    // each DEK read first by key id (opening a value), in every order, then sealed for by subject
    for first in 0..3 {
        cache::flush();
        let v = match first {
            0 => "shred.seal('cached:1', 'y')",
            1 => "shred.seal('cached:1', 'y', '', 'cache_a')",
            _ => "shred.seal('cached:1', 'y', '', 'cache_b')",
        };
        let sealed = text(&format!("SELECT {v}::text")).expect("sealed");
        cache::flush();
        assert_eq!(text(&format!("SELECT shred.open('{sealed}'::shred.sealed)")).as_deref(), Some("y"));
        assert_eq!(ids("cached:1"), want, "after opening a value of DEK {first} first");
    }
    // read set-wise by key id (no purpose known): found by key id, never sealed for
    cache::flush();
    store::prefetch(&want).expect("prefetch");
    assert!(want.iter().all(|&k| cache::contains(k)));
    assert_eq!(ids("cached:1"), want);
    // erasing one purpose evicts that DEK only
    Spi::run("SELECT shred.erase('cached:1', 'cache_a')").expect("erase");
    let after = ids("cached:1");
    assert_eq!((after[0], after[2]), (want[0], want[2]));
    assert!(after[1] != want[1], "a new DEK for the erased purpose");
}
}
