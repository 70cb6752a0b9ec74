//! pg_shred's settings (`shred.*`), all in one place.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void, CString};

use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting};

/// `shred.root_key_file`: path of the file holding the root key or keyring.
/// Superuser-only (`SUSET`); reloadable; see [`init`] for how it is hidden.
pub static ROOT_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `shred.root_key_command`: shell command that prints the root key or keyring on stdout.
/// Superuser-only (`SUSET`); reloadable; hidden like `shred.root_key_file`.
pub static ROOT_KEY_COMMAND: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `shred.root_key_command_timeout`: seconds the key command may run before it is killed.
pub static ROOT_KEY_COMMAND_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30);

/// `shred.key_cache_size`: how many unwrapped DEKs each backend keeps (0 disables the cache).
/// Superuser-only (it sizes backend memory: about 200 bytes per DEK, plus up to 18 MiB for the
/// 16,384 kept expanded; see `keys::cache`).
pub static KEY_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(131_072);

/// `shred.key_cache_memory`: kilobytes (set with any memory unit) the DEK cache of each backend
/// may take, counted with upper bounds per entry (see `keys::cache`: 256 bytes plus the subject
/// per cached DEK, 1.5 KiB more per DEK kept expanded). Superuser-only.
pub static KEY_CACHE_MEMORY: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

/// `shred.allow_drop_with_keys`: confirm a DROP EXTENSION pg_shred (or DROP SCHEMA shred) that
/// destroys the key store while DEKs exist, i.e. erases every data subject. Superuser-only.
/// `shred.consent_token_lifetime`: how long a consent confirmation token stays valid, in
/// seconds (7 days by default).
pub static CONSENT_TOKEN_LIFETIME: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);

pub static ALLOW_DROP_WITH_KEYS: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `shred.retention_naptime`: seconds between the retention worker's runs (0 disables it).
/// Reloadable (`SIGHUP`).
pub static RETENTION_NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(60);

/// `shred.retention_databases`: comma-separated names of the databases the retention worker
/// visits; empty (the default): every database that accepts connections.
pub static RETENTION_DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `shred.retention_batch_size`: DEKs the retention worker erases per transaction.
pub static RETENTION_BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);

pub fn init() {
    GucRegistry::define_bool_guc(
        c"shred.allow_drop_with_keys",
        c"Allow DROP EXTENSION pg_shred while DEKs exist (it erases every data subject).",
        c"Off by default: such a DROP is refused. Set it in the session, after pg_dump, to drop on purpose.",
        &ALLOW_DROP_WITH_KEYS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"shred.key_cache_size",
        c"Number of unwrapped DEKs each backend keeps in memory (0 disables the cache).",
        c"Each DEK takes about 200 bytes, and the last 16,384 expanded are also kept expanded (about 1.1 KiB each), within shred.key_cache_memory. Entries are zeroized when evicted, and all are dropped when any erasure commits.",
        &KEY_CACHE_SIZE,
        0,
        10_000_000,
        // Superuser-only: up to 10,000,000 DEKs of about 200 bytes each per backend.
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"shred.key_cache_memory",
        c"Memory each backend's DEK cache may take.",
        c"Counted per entry with upper bounds (256 bytes plus the subject per cached DEK, 1.5 KiB more per DEK kept expanded); the oldest entries are evicted to stay within it.",
        &KEY_CACHE_MEMORY,
        1024,
        64 * 1024 * 1024,
        // Superuser-only, like shred.key_cache_size: it sizes backend memory.
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"shred.root_key_command_timeout",
        c"Seconds shred.root_key_command may run before it is killed.",
        c"A command that does not finish in time is killed and pg_shred fails closed.",
        &ROOT_KEY_COMMAND_TIMEOUT,
        1,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"shred.consent_token_lifetime",
        c"How long a consent confirmation token of shred.request_consent stays valid.",
        c"Set when the consent is requested; shred.confirm_consent answers false for an older token. Superuser-only: it is the company's consent policy, not a session's choice.",
        &CONSENT_TOKEN_LIFETIME,
        60,
        366 * 24 * 3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"shred.retention_naptime",
        c"Seconds between the runs of pg_shred's retention worker (0 disables it).",
        c"Each run visits the databases of shred.retention_databases and erases what retention has made due there, as CALL shred.run_retention() does. Needs pg_shred in shared_preload_libraries; reloadable.",
        &RETENTION_NAPTIME,
        0,
        7 * 24 * 3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"shred.retention_batch_size",
        c"DEKs pg_shred's retention worker erases per transaction.",
        c"Each batch commits on its own; no transaction stays open between batches.",
        &RETENTION_BATCH_SIZE,
        1,
        100_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"shred.retention_databases",
        c"Databases pg_shred's retention worker visits (comma-separated names; empty: all).",
        c"By default every database that accepts connections is visited; one without pg_shred 0.6.0 or later is left at once.",
        &RETENTION_DATABASES,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // Both key sources: superuser-only to SET and to SHOW; left out of pg_settings and SHOW
    // ALL for everyone (its reset_val column would show the value to pg_read_all_settings
    // members); SHOW by a non-superuser member of pg_read_all_settings prints a mask.
    let hidden = GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL;
    // SAFETY: the hooks only increment a counter or format the value; they raise no error.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"shred.root_key_file",
            c"Path of the file holding pg_shred's root key or keyring.",
            c"The file must have mode 0600 (no access for group or others). It holds one 32-byte key, raw or base64 (root-key version 1), or a keyring: one version:base64 line per root-key version. Read lazily by each backend; never stored in the database.",
            &ROOT_KEY_FILE,
            GucContext::Suset,
            hidden,
            None,
            Some(key_source_assigned),
            Some(show_root_key_file),
        );
        GucRegistry::define_string_guc_with_hooks(
            c"shred.root_key_command",
            c"Shell command that prints pg_shred's root key or keyring on standard output.",
            c"Run by /bin/sh in each backend that needs the key, with no input; its output (same formats as shred.root_key_file) and its standard error are never logged. A non-zero exit, a timeout (shred.root_key_command_timeout) or unusable output fails closed.",
            &ROOT_KEY_COMMAND,
            GucContext::Suset,
            hidden,
            None,
            Some(key_source_assigned),
            Some(show_root_key_command),
        );
    }
    // Typos such as shred.root_keyfile become errors instead of silent placeholders.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"shred".as_ptr()) };
}

static PRELOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Record whether the library is being loaded through `shared_preload_libraries`.
pub fn set_preloaded(yes: bool) {
    PRELOADED.store(yes, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the library was loaded through `shared_preload_libraries`. Only then are the key
/// source settings defined, with their protections, before any session can read them: until a
/// library defines a custom setting, PostgreSQL shows its postgresql.conf value to every role.
pub fn preloaded() -> bool {
    PRELOADED.load(std::sync::atomic::Ordering::Relaxed)
}

thread_local! {
    static KEY_SOURCE_CHANGES: Cell<u64> = const { Cell::new(0) };
    /// The text a show hook returned last (PostgreSQL copies it at once).
    static SHOWN: RefCell<CString> = RefCell::new(CString::default());
}

unsafe extern "C-unwind" fn key_source_assigned(_new: *const c_char, _extra: *mut c_void) {
    KEY_SOURCE_CHANGES.with(|c| c.set(c.get().wrapping_add(1)));
}

/// Counts assignments of `shred.root_key_file` and `shred.root_key_command` (SET, RESET,
/// reload, rollback of a SET): the loaded keyring is valid only while this is unchanged.
pub fn key_source_changes() -> u64 {
    KEY_SOURCE_CHANGES.with(|c| c.get())
}

/// What SHOW prints for a key source setting: the value to superusers, a mask to anyone else
/// allowed to read superuser-only settings (members of pg_read_all_settings).
fn show_masked(setting: &GucSetting<Option<CString>>) -> *const c_char {
    // SAFETY: plain checks of the backend's state; superuser() needs a transaction.
    let is_superuser = unsafe { pg_sys::IsTransactionState() && pg_sys::superuser() };
    let value = setting.get().unwrap_or_default();
    let shown = if is_superuser || value.is_empty() { value } else { CString::from(c"********") };
    SHOWN.with(|s| {
        *s.borrow_mut() = shown;
        s.borrow().as_ptr()
    })
}

unsafe extern "C-unwind" fn show_root_key_file() -> *const c_char {
    show_masked(&ROOT_KEY_FILE)
}

unsafe extern "C-unwind" fn show_root_key_command() -> *const c_char {
    show_masked(&ROOT_KEY_COMMAND)
}

/// The configured key command, if set and not empty.
pub fn root_key_command() -> Option<String> {
    ROOT_KEY_COMMAND.get().and_then(|s| s.into_string().ok()).filter(|s| !s.is_empty())
}

/// How long the key command may run.
pub fn root_key_command_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(ROOT_KEY_COMMAND_TIMEOUT.get().max(1) as u64)
}

/// The configured root key file path, if set and not empty.
pub fn root_key_file() -> Option<String> {
    ROOT_KEY_FILE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
}

/// The configured DEK cache size, in entries.
pub fn key_cache_size() -> usize {
    KEY_CACHE_SIZE.get().max(0) as usize
}

/// The configured lifetime of consent confirmation tokens, in seconds.
pub fn consent_token_lifetime_secs() -> i32 {
    CONSENT_TOKEN_LIFETIME.get().max(60)
}

/// Seconds between retention runs; 0: the worker is idle.
pub fn retention_naptime_secs() -> u64 {
    RETENTION_NAPTIME.get().max(0) as u64
}

/// DEKs per retention batch of the worker.
pub fn retention_batch_size() -> i64 {
    i64::from(RETENTION_BATCH_SIZE.get().max(1))
}

/// The databases the retention worker visits, by name; `None`: all.
pub fn retention_databases() -> Option<Vec<String>> {
    let list = RETENTION_DATABASES.get().and_then(|s| s.into_string().ok())?;
    let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
    if names.is_empty() { None } else { Some(names) }
}

/// The configured DEK cache memory, in bytes.
pub fn key_cache_memory_bytes() -> usize {
    KEY_CACHE_MEMORY.get().max(1024) as usize * 1024
}
