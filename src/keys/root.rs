//! Loading the keyring (the root-key versions) from `shred.root_key_file` or
//! `shred.root_key_command`, and the backend's cache of verified KEKs.
//!
//! The keyring is read lazily into memory excluded from core dumps and zeroized on drop, once
//! per backend, and again:
//! - after every change of either setting (SET, RESET, reload);
//! - when the key file was removed or replaced (checked once per transaction);
//! - when a root-key version the keyring lacks is needed (at most once per transaction), so a
//!   version added to the keyring is picked up without a reload.
//!
//! Keys are never copied into a SQL value, an error message or a log line. A KEK is used only
//! after its root key's key-check value matched the one stored for its version ("fail closed").

use std::cell::RefCell;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use pgrx::pg_sys;

use zeroize::Zeroizing;

use super::{cache, command};
use crate::crypto::keys::{constant_time_eq, Kek, Keyring, SALT_LEN};
use crate::error::ShredError;
use crate::gucs;

/// A key file larger than this is refused (a keyring of thousands of versions fits).
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// What identifies the key file's content without reading it: device, inode, size, mode and
/// modification time.
type FileIdentity = (u64, u64, u64, u32, i64, i64);

fn identity(meta: &std::fs::Metadata) -> FileIdentity {
    (meta.dev(), meta.ino(), meta.size(), meta.mode(), meta.mtime(), meta.mtime_nsec())
}

/// Where the loaded keyring came from.
enum Source {
    File(FileIdentity),
    Command,
}

struct Loaded {
    /// `gucs::key_source_changes()` when this keyring was read.
    setting_version: u64,
    source: Source,
    /// The transaction (local id) in which the key file was last found unchanged.
    checked_in: pg_sys::LocalTransactionId,
    /// The transaction in which the keyring was last re-read for a missing version.
    refreshed_in: pg_sys::LocalTransactionId,
    keyring: Keyring,
    /// KEKs whose key-check value matched: (version, salt, KEK).
    verified: Vec<(i32, [u8; SALT_LEN], Kek)>,
}

thread_local! {
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
    /// The last failure to load: (settings version, transaction, error). Not retried within
    /// the same transaction, so a failing or hanging key command costs one attempt per
    /// transaction, not one per row.
    static FAILED: RefCell<Option<(u64, pg_sys::LocalTransactionId, ShredError)>> = const { RefCell::new(None) };
}

fn read_key_file(path: &str) -> Result<(Keyring, FileIdentity), ShredError> {
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
        return Err(ShredError::RootKeyFile("it is too large for a keyring".into()));
    }
    // Capacity reserved up front: the buffer never reallocates and leaves no copy behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN as usize + 1));
    file.take(MAX_KEY_FILE_LEN)
        .read_to_end(&mut buf)
        .map_err(|e| ShredError::RootKeyFile(format!("cannot read it: {}", e.kind())))?;
    let keyring = Keyring::parse(&buf).map_err(|e| ShredError::RootKeyFile(e.to_string()))?;
    Ok((keyring, identity(&meta)))
}

/// Read the keyring from whichever source is configured.
fn load(setting_version: u64) -> Result<Loaded, ShredError> {
    let (keyring, source) = match (gucs::root_key_file(), gucs::root_key_command()) {
        (Some(_), Some(_)) => return Err(ShredError::RootKeySourceConflict),
        (None, None) => return Err(ShredError::NoRootKey),
        (Some(path), None) => {
            let (keyring, file) = read_key_file(&path)?;
            (keyring, Source::File(file))
        }
        (None, Some(cmd)) => {
            let out = command::run(&cmd, gucs::root_key_command_timeout())?;
            let keyring = Keyring::parse(&out).map_err(|e| ShredError::RootKeyCommand(format!("its output is unusable: {e}")))?;
            (keyring, Source::Command)
        }
    };
    let xact = current_transaction();
    Ok(Loaded { setting_version, source, checked_in: xact, refreshed_in: 0, keyring, verified: Vec::new() })
}

/// The backend's current local transaction id.
fn current_transaction() -> pg_sys::LocalTransactionId {
    crate::pg::compat::local_transaction_id()
}

/// Whether the loaded keyring is still the one the settings name: same settings, and (checked
/// once per transaction) the key file still there with the same identity. A key file that was
/// removed or replaced takes effect at the next transaction of every session, without a reload.
fn still_valid(l: &mut Loaded, setting_version: u64) -> bool {
    if l.setting_version != setting_version {
        return false;
    }
    let Source::File(file) = l.source else { return true };
    let xact = current_transaction();
    if l.checked_in == xact {
        return true;
    }
    let same = gucs::root_key_file()
        .and_then(|path| std::fs::metadata(path).ok())
        .map(|m| identity(&m) == file)
        .unwrap_or(false);
    if same {
        l.checked_in = xact;
    }
    same
}

/// Make sure the keyring the settings name is loaded (re-reading it when they changed), then
/// run `f` with it. With `need = Some(v)`, a keyring that lacks version `v` is re-read once per
/// transaction first.
fn with_loaded<R>(need: Option<i32>, f: impl FnOnce(&mut Loaded) -> Result<R, ShredError>) -> Result<R, ShredError> {
    if !gucs::preloaded() {
        return Err(ShredError::NotPreloaded);
    }
    let setting_version = gucs::key_source_changes();
    LOADED.with(|cell| {
        let mut slot = cell.borrow_mut();
        let mut valid = slot.as_mut().map(|l| still_valid(l, setting_version)).unwrap_or(false);
        if valid {
            if let (Some(v), Some(l)) = (need, slot.as_ref()) {
                if l.keyring.get(v).is_none() && l.refreshed_in != current_transaction() {
                    valid = false;
                }
            }
        }
        if !valid {
            // Drop (and so zeroize) the old keyring, and every DEK unwrapped while it was in
            // force, before reading it again: a changed key is verified afresh.
            *slot = None;
            cache::flush();
            let xact = current_transaction();
            let failed = FAILED.with(|f| match &*f.borrow() {
                Some((v, x, e)) if *v == setting_version && *x == xact => Some(e.clone()),
                _ => None,
            });
            if let Some(e) = failed {
                return Err(e);
            }
            let mut loaded = load(setting_version).inspect_err(|e| {
                FAILED.with(|f| *f.borrow_mut() = Some((setting_version, xact, e.clone())));
            })?;
            loaded.refreshed_in = current_transaction();
            *slot = Some(loaded);
        }
        let loaded = slot.as_mut().ok_or(ShredError::NoRootKey)?;
        f(loaded)
    })
}

/// Check that a keyring is configured and readable, without touching the database.
pub fn require_root_key() -> Result<(), ShredError> {
    with_loaded(None, |_| Ok(()))
}

/// The newest root-key version of the keyring: new DEKs are wrapped under it.
pub fn newest_version() -> Result<i32, ShredError> {
    with_loaded(None, |l| l.keyring.newest().map(|(v, _)| v).ok_or(ShredError::NoRootKey))
}

/// The version numbers in the keyring, ascending.
pub fn keyring_versions() -> Result<Vec<i32>, ShredError> {
    with_loaded(None, |l| Ok(l.keyring.versions().collect()))
}

/// The salt and key-check value root-key `version` is registered with: a fresh random salt,
/// and the key-check value of the keyring's key for `version` under it.
pub fn new_version_material(version: i32) -> Result<([u8; SALT_LEN], [u8; 32]), ShredError> {
    let mut salt = [0u8; SALT_LEN];
    crate::crypto::fill_random(&mut salt)?;
    with_loaded(Some(version), |l| {
        let root = l.keyring.get(version).ok_or(ShredError::VersionNotInKeyring(version))?;
        Ok((salt, root.key_check_value(&salt)))
    })
}

/// Whether the keyring's key for `version` matches the stored `salt` and `key_check`; `None`
/// when the keyring lacks `version`.
pub fn key_matches(version: i32, salt: &[u8], key_check: &[u8]) -> Result<Option<bool>, ShredError> {
    with_loaded(None, |l| {
        Ok(l.keyring.get(version).map(|root| constant_time_eq(&root.key_check_value(salt), key_check)))
    })
}

/// Run `f` with the KEK of root-key `version`, after checking the keyring's key for that
/// version against its stored `salt` and `key_check` (once per backend).
///
/// Errors: [`ShredError::VersionNotInKeyring`] when the keyring lacks `version` (also after
/// re-reading it), [`ShredError::RootKeyMismatch`] when its key is another one.
pub fn with_kek<R>(
    version: i32,
    salt: &[u8],
    key_check: &[u8],
    f: impl FnOnce(&Kek) -> Result<R, ShredError>,
) -> Result<R, ShredError> {
    let salt: [u8; SALT_LEN] = salt
        .try_into()
        .map_err(|_| ShredError::KeyStore("a root-key version has a salt of the wrong length".into()))?;
    with_loaded(Some(version), |l| {
        if let Some((_, _, kek)) = l.verified.iter().find(|(v, s, _)| *v == version && *s == salt) {
            return f(kek);
        }
        let root = l.keyring.get(version).ok_or(ShredError::VersionNotInKeyring(version))?;
        if !constant_time_eq(&root.key_check_value(&salt), key_check) {
            return Err(ShredError::RootKeyMismatch(version));
        }
        let kek = root.kek(&salt);
        l.verified.push((version, salt, kek));
        let (_, _, kek) = l.verified.last().ok_or(ShredError::NoRootKey)?;
        f(kek)
    })
}
