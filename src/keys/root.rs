//! Loading the root key from `shred.root_key_file`, and the backend's cache of verified KEKs.
//!
//! The root key is read lazily into zeroizing memory, once per backend, again after every
//! change of `shred.root_key_file` (SET, reload), and again when the file was removed or
//! replaced (checked once per transaction). It is never
//! copied into a SQL value, an error message or a log line. A KEK is used only after the root
//! key's key-check value matched the one stored for its root-key version ("fail closed").

use std::cell::RefCell;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use pgrx::pg_sys;

use zeroize::Zeroizing;

use super::cache;
use crate::crypto::keys::{constant_time_eq, Kek, RootKey, SALT_LEN};
use crate::error::ShredError;
use crate::gucs;

/// The root-key version new DEKs are wrapped under. A keyring of several versions (rotation)
/// builds on the same tables.
pub const CURRENT_VERSION: i32 = 1;

/// A key file larger than this cannot hold a 32-byte key in any accepted form.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// What identifies the key file's content without reading it: device, inode, size, mode and
/// modification time.
type FileIdentity = (u64, u64, u64, u32, i64, i64);

fn identity(meta: &std::fs::Metadata) -> FileIdentity {
    (meta.dev(), meta.ino(), meta.size(), meta.mode(), meta.mtime(), meta.mtime_nsec())
}

struct Loaded {
    /// `gucs::root_key_file_changes()` when this key was read.
    setting_version: u64,
    /// The file's identity when it was read.
    file: FileIdentity,
    /// The transaction (local id) in which the file was last found unchanged.
    checked_in: pg_sys::LocalTransactionId,
    root: RootKey,
    /// KEKs whose key-check value matched: (version, salt, KEK).
    verified: Vec<(i32, [u8; SALT_LEN], Kek)>,
}

thread_local! {
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

fn read_key_file(path: &str) -> Result<(RootKey, FileIdentity), ShredError> {
    // stat first: never open a FIFO or device (opening a FIFO blocks until a writer appears)
    let meta = std::fs::metadata(path)
        .map_err(|e| ShredError::RootKeyFile(format!("cannot open it: {}", e.kind())))?;
    if !meta.is_file() {
        return Err(ShredError::RootKeyFile("it is not a regular file".into()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ShredError::RootKeyFile(format!("cannot open it: {}", e.kind())))?;
    let meta = file
        .metadata()
        .map_err(|e| ShredError::RootKeyFile(format!("cannot stat it: {}", e.kind())))?;
    if !meta.is_file() {
        return Err(ShredError::RootKeyFile("it is not a regular file".into()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ShredError::RootKeyFile(format!(
            "it has mode {:04o}; it must not be accessible by group or others (chmod 0600)",
            meta.permissions().mode() & 0o7777
        )));
    }
    if meta.size() > MAX_KEY_FILE_LEN {
        return Err(ShredError::RootKeyFile("it is too large to hold a 32-byte key".into()));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(64));
    file.take(MAX_KEY_FILE_LEN)
        .read_to_end(&mut buf)
        .map_err(|e| ShredError::RootKeyFile(format!("cannot read it: {}", e.kind())))?;
    Ok((RootKey::parse(&buf)?, identity(&meta)))
}

/// The backend's current local transaction id.
fn current_transaction() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is set for every backend that runs SQL.
    unsafe { (*pg_sys::MyProc).lxid }
}

/// Whether the loaded key is still the one the setting names: same setting, and (checked once
/// per transaction) the file still there with the same identity. A key file that was removed
/// or replaced takes effect at the next transaction of every session, without a reload.
fn still_valid(l: &mut Loaded, setting_version: u64) -> bool {
    if l.setting_version != setting_version {
        return false;
    }
    let xact = current_transaction();
    if l.checked_in == xact {
        return true;
    }
    let same = gucs::root_key_file()
        .and_then(|path| std::fs::metadata(path).ok())
        .map(|m| identity(&m) == l.file)
        .unwrap_or(false);
    if same {
        l.checked_in = xact;
    }
    same
}

/// Make sure the root key named by the setting is loaded (re-reading it when the setting
/// changed), then run `f` with it and the verified-KEK list.
fn with_loaded<R>(
    f: impl FnOnce(&RootKey, &mut Vec<(i32, [u8; SALT_LEN], Kek)>) -> Result<R, ShredError>,
) -> Result<R, ShredError> {
    let setting_version = gucs::root_key_file_changes();
    LOADED.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !slot.as_mut().map(|l| still_valid(l, setting_version)).unwrap_or(false) {
            // Drop (and so zeroize) the old key, and every DEK unwrapped while it was in
            // force, before reading the new one: a changed key is verified afresh.
            *slot = None;
            cache::flush();
            let path = gucs::root_key_file().ok_or(ShredError::NoRootKey)?;
            let (root, file) = read_key_file(&path)?;
            *slot = Some(Loaded { setting_version, file, checked_in: current_transaction(), root, verified: Vec::new() });
        }
        let loaded = slot.as_mut().ok_or(ShredError::NoRootKey)?;
        f(&loaded.root, &mut loaded.verified)
    })
}

/// Check that a root key is configured and readable, without touching the database.
pub fn require_root_key() -> Result<(), ShredError> {
    with_loaded(|_, _| Ok(()))
}

/// The key-check value and salt a new root-key version is registered with.
pub fn new_version_material() -> Result<([u8; SALT_LEN], [u8; 32]), ShredError> {
    let mut salt = [0u8; SALT_LEN];
    crate::crypto::fill_random(&mut salt)?;
    with_loaded(|root, _| Ok((salt, root.key_check_value(&salt))))
}

/// Run `f` with the KEK of root-key `version`, after checking the configured root key against
/// that version's stored `salt` and `key_check` (once per backend).
pub fn with_kek<R>(
    version: i32,
    salt: &[u8],
    key_check: &[u8],
    f: impl FnOnce(&Kek) -> Result<R, ShredError>,
) -> Result<R, ShredError> {
    let salt: [u8; SALT_LEN] = salt
        .try_into()
        .map_err(|_| ShredError::KeyStore("a root-key version has a salt of the wrong length".into()))?;
    with_loaded(|root, verified| {
        if let Some((_, _, kek)) = verified.iter().find(|(v, s, _)| *v == version && *s == salt) {
            return f(kek);
        }
        if !constant_time_eq(&root.key_check_value(&salt), key_check) {
            return Err(ShredError::RootKeyMismatch(version));
        }
        verified.push((version, salt, root.kek(&salt)));
        let (_, _, kek) = verified.last().ok_or(ShredError::NoRootKey)?;
        f(kek)
    })
}
