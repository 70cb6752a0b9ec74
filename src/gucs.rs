//! pg_shred's settings (`shred.*`), all in one place.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `shred.root_key_file`: path of the file holding the root key (32 bytes, raw or base64).
/// Superuser-only (`SUSET`, hidden from non-superusers); reloadable.
pub static ROOT_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `shred.key_cache_size`: how many unwrapped DEKs each backend keeps (0 disables the cache).
pub static KEY_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(16384);

/// `shred.allow_drop_with_keys`: confirm a DROP EXTENSION pg_shred (or DROP SCHEMA shred) that
/// destroys the key store while DEKs exist, i.e. erases every data subject. Superuser-only.
pub static ALLOW_DROP_WITH_KEYS: GucSetting<bool> = GucSetting::<bool>::new(false);

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
        c"Each entry takes about 1.2 KiB. Entries are zeroized when evicted, and all are dropped when any erasure commits.",
        &KEY_CACHE_SIZE,
        0,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: the assign hook only increments a counter; it cannot raise an error.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"shred.root_key_file",
            c"Path of the file holding pg_shred's root key.",
            c"The file must have mode 0600 (no access for group or others) and hold exactly 32 bytes, raw or base64. The key is read lazily by each backend and never stored in the database.",
            &ROOT_KEY_FILE,
            GucContext::Suset,
            GucFlags::SUPERUSER_ONLY,
            None,
            Some(root_key_file_assigned),
            None,
        );
    }
    // Typos such as shred.root_keyfile become errors instead of silent placeholders.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"shred".as_ptr()) };
}

thread_local! {
    static ROOT_KEY_FILE_CHANGES: Cell<u64> = const { Cell::new(0) };
}

unsafe extern "C-unwind" fn root_key_file_assigned(_new: *const c_char, _extra: *mut c_void) {
    ROOT_KEY_FILE_CHANGES.with(|c| c.set(c.get().wrapping_add(1)));
}

/// Counts assignments of `shred.root_key_file` (SET, RESET, reload, rollback of a SET): the
/// loaded root key is valid only while this is unchanged.
pub fn root_key_file_changes() -> u64 {
    ROOT_KEY_FILE_CHANGES.with(|c| c.get())
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
