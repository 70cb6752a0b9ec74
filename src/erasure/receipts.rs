//! Erasure receipts (the format and the signature are the pure core's: [`crate::crypto::receipt`])
//! and the residue check.
//!
//! `shred.erasure_receipt` (SQL, `sql/receipts.sql`) gathers the erasure records, the erasure
//! horizon and the residue of a data subject; [`sign`] adds what only this layer knows (the
//! database's system identifier, the salted digest of the subject, the public key) and signs.
//! The signing key is derived from a random key stored as a DEK of the reserved subject
//! `pg_shred:receipt`: wrapped under the root key, rewrapped by rotation, kept by a dump.
//!
//! The residue check ([`heap_copies`]) reads every tuple of `shred.subject_key` that is still in
//! its heap pages, whatever its visibility (a sequential scan under `SnapshotAny`): the dead
//! copies of an erased DEK's row (the deleted row, and the older versions a rotation's rewrap
//! left behind) until VACUUM, or a page's opportunistic pruning (which this very scan may
//! trigger), removes them. It cannot see copies outside the table's pages (WAL, replicas,
//! backups, dumps, freed space of a page not yet overwritten): those are what the erasure
//! horizon covers.

use pgrx::datum::FromDatum;
use pgrx::pg_sys;

use crate::crypto::receipt::{self, ReceiptKey, SALT_LEN};
use crate::error::ShredError;
use crate::keys::scan::{self, col};
use crate::keys::store;
use crate::keys::subject::Subject;

/// Reserved subject of the key the receipt signing key is derived from.
const RECEIPT_SUBJECT: &[u8] = b"pg_shred:receipt";

/// The receipt signing key; created on first use only when `create`.
fn signing_key(create: bool) -> Result<Option<ReceiptKey>, ShredError> {
    let subject = Subject::reserved(RECEIPT_SUBJECT)?;
    let key = if create { Some(store::get_or_create(&subject, 0)?.1) } else { store::existing_dek(&subject, 0)? };
    Ok(key.map(|k| ReceiptKey::new(&k)))
}

/// The 32-byte Ed25519 public key of receipts (the signing key is created on first use).
pub fn public_key() -> Result<[u8; 32], ShredError> {
    Ok(signing_key(true)?.ok_or(ShredError::Internal("no receipt key after its creation"))?.public_key())
}

/// Sign `receipt_json` (a JSON object, UTF-8) for `subject`, completed with this cluster's
/// system identifier, a fresh random salt and the salted digest of the subject, and the public
/// key (see [`ReceiptKey::issue`]). Returns the signed receipt as UTF-8 JSON.
pub fn sign(receipt_json: &[u8], subject: &Subject<'_>) -> Result<Vec<u8>, ShredError> {
    let key = signing_key(true)?.ok_or(ShredError::Internal("no receipt key after its creation"))?;
    let mut salt = [0u8; SALT_LEN];
    crate::crypto::fill_nonce(&mut salt)?;
    // SAFETY: reads the control file's copy in shared memory.
    let system_identifier = unsafe { pg_sys::GetSystemIdentifier() };
    key.issue(receipt_json, subject.utf8(), &salt, system_identifier).map_err(|_| ShredError::Internal("a receipt cannot be signed"))
}

/// Whether `receipt_json` (UTF-8) carries a valid signature of this database's receipt key;
/// false while the key does not exist (no receipt was ever issued here).
pub fn verify(receipt_json: &[u8]) -> Result<bool, ShredError> {
    Ok(match signing_key(false)? {
        Some(key) => receipt::verify_json(&key.public_key(), receipt_json),
        None => false,
    })
}

/// Whether the erasure record of `key_id` was written by a committed transaction (not this
/// one, whose erasure a rollback can still undo: a receipt states only committed erasures).
pub fn erasure_committed(key_id: i64) -> Result<bool, ShredError> {
    Ok(scan::committed(scan::Key::Erasure(key_id))? == Some(true))
}

/// Every tuple of `shred.subject_key` with one of `key_ids` still in the table's heap pages,
/// live or dead (see the module documentation): (key id, root-key version that wrapped that
/// copy), in page order. One sequential scan of the key table.
pub fn heap_copies(key_ids: &[i64]) -> Result<Vec<(i64, i32)>, ShredError> {
    let relid = scan::rows_of(c"subject_key")?;
    let mut copies = Vec::new();
    if key_ids.is_empty() {
        return Ok(copies);
    }
    let wanted: std::collections::HashSet<i64> = key_ids.iter().copied().collect();
    // SAFETY: standard heap scan protocol; released below, or by abort cleanup on ERROR.
    // SnapshotAny is a static snapshot that needs no registration.
    unsafe {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(relid, lock);
        let scan = pg_sys::heap_beginscan(
            rel,
            &raw mut pg_sys::SnapshotAnyData,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            pg_sys::ScanOptions::SO_TYPE_SEQSCAN | pg_sys::ScanOptions::SO_ALLOW_PAGEMODE,
        );
        let desc = (*rel).rd_att;
        loop {
            pgrx::check_for_interrupts!();
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let mut isnull = false;
            let id = pg_sys::heap_getattr(tuple, col::KEY_ID as i32, desc, &mut isnull);
            if isnull {
                continue;
            }
            let id = i64::from_datum(id, false).unwrap_or_default();
            if !wanted.contains(&id) {
                continue;
            }
            let version = pg_sys::heap_getattr(tuple, col::ROOT_KEY_VERSION as i32, desc, &mut isnull);
            if !isnull {
                copies.push((id, i32::from_datum(version, false).unwrap_or_default()));
            }
        }
        pg_sys::heap_endscan(scan);
        pg_sys::table_close(rel, lock);
    }
    Ok(copies)
}
