//! Blind-index terms: the key store's `shred.blind_term` holds one (blind index, key id) pair
//! per value of a data subject written into a searchable protected column.
//!
//! Invariant: a term exists only while its DEK does. Every deletion of DEKs through pg_shred
//! (`erase`, `erase(text[])`, `replay_erasures`) deletes the terms of the deleted key ids in
//! the same statement sequence of the same transaction, in pg_shred's own table only. Rows of
//! protected tables keep row tokens keyed by the DEK ([`crate::crypto::blind::row_token`]):
//! with the DEK and its terms gone, nothing links a value to them any more, and no user
//! table is read, written or locked by an erasure.
//!
//! Writes are batched: [`record`] keeps new terms in backend memory, tagged with the
//! subtransaction that made them, and one `INSERT` writes them all: before this backend reads
//! or deletes terms ([`key_ids`], [`forget`]), when [`BATCH`] are pending, and before COMMIT or
//! PREPARE TRANSACTION (a pre-commit callback). A rolled-back (sub)transaction drops the terms
//! it made. So every term of a committed row is in the table when its transaction commits, and
//! no statement of this backend sees the table without its own pending terms.
//!
//! Reads and writes run with the key store owner's rights ([`super::spi`]); no role has
//! privileges on the table itself.

use std::cell::RefCell;

use pgrx::pg_sys;

use super::scan;
use super::spi::{run, Arg, Mode, Plan};
use super::store;
use crate::crypto::blind::{normalize, BlindIndexKey, Normalization, BLIND_INDEX_LEN};
use crate::error::ShredError;
use crate::sql::encoding::server_to_utf8;

static RECORD: Plan = Plan::new(
    c"INSERT INTO shred.blind_term (blind_index, key_id)
      SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.bytea[]), pg_catalog.unnest($2::pg_catalog.int8[])) ON CONFLICT DO NOTHING",
    &[pg_sys::BYTEAARRAYOID, pg_sys::INT8ARRAYOID],
);

/// Terms written in one statement at the most.
pub const BATCH: usize = 10_000;

struct Pending {
    subtransaction: pg_sys::SubTransactionId,
    blind_index: Vec<u8>,
    key_id: i64,
}

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

static KEY_IDS: Plan = Plan::new(
    c"SELECT key_id FROM shred.blind_term WHERE blind_index OPERATOR(pg_catalog.=) $1",
    &[pg_sys::BYTEAOID],
);

static FORGET: Plan = Plan::new(
    c"DELETE FROM shred.blind_term WHERE key_id OPERATOR(pg_catalog.=) ANY ($1)",
    &[pg_sys::INT8ARRAYOID],
);

/// Record that the data subject of `key_id` holds a value whose blind index is `blind_index`
/// (written by the next [`flush`]).
pub fn record(blind_index: &[u8], key_id: i64) -> Result<(), ShredError> {
    // SAFETY: plain read of the current subtransaction's id.
    let subtransaction = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let full = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.push(Pending { subtransaction, blind_index: blind_index.to_vec(), key_id });
        p.len() >= BATCH
    });
    if full {
        flush()?;
    }
    Ok(())
}

/// Write every pending term with one statement. Nothing to write when the table is gone (the
/// extension dropped in this transaction).
pub fn flush() -> Result<(), ShredError> {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() || scan::relation(c"blind_term").is_err() {
        return Ok(());
    }
    let indexes: Vec<Vec<u8>> = pending.iter().map(|p| p.blind_index.clone()).collect();
    let key_ids: Vec<i64> = pending.iter().map(|p| p.key_id).collect();
    run(&RECORD, &[Arg::ByteaArray(&indexes), Arg::Int8Array(&key_ids)], Mode::Write, 0, |_| Ok(()))
}

/// Key ids of the data subjects holding a value with this blind index (latest snapshot, like
/// every key lookup: a committed erasure is seen at once).
pub fn key_ids(blind_index: &[u8]) -> Result<Vec<i64>, ShredError> {
    flush()?;
    run(&KEY_IDS, &[Arg::Bytes(blind_index)], Mode::ReadLatest, 0, |rows| {
        Ok(rows.iter().filter_map(|r| r.int8(1)).collect())
    })
}

/// Delete the terms of erased `key_ids`. Nothing to do before the table exists (older schema).
pub fn forget(key_ids: &[i64]) -> Result<(), ShredError> {
    if key_ids.is_empty() || scan::relation(c"blind_term").is_err() {
        return Ok(());
    }
    flush()?;
    run(&FORGET, &[Arg::Int8Array(key_ids)], Mode::Write, 0, |_| Ok(()))
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            if PENDING.with(|p| p.borrow().is_empty()) {
                return;
            }
            // SAFETY: inside the committing transaction; the snapshot is popped again.
            unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
            let result = flush();
            // SAFETY: pops the snapshot pushed above.
            unsafe { pg_sys::PopActiveSnapshot() };
            if let Err(e) = result {
                e.report();
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            PENDING.with(|p| p.borrow_mut().clear());
        }
        _ => {}
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    aborted: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    // Subtransactions started after `aborted` while it ran are its descendants: their terms go
    // with it; those of committed earlier ones stay.
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        PENDING.with(|p| p.borrow_mut().retain(|t| t.subtransaction < aborted));
    }
}

/// Register the transaction callbacks; called once from `_PG_init`.
pub fn register_callbacks() {
    // SAFETY: called once per backend at library load; the callbacks live as long as the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// Reserved subject of a blind-index context key; the context (database encoding) follows.
const BLIND_INDEX_SUBJECT: &[u8] = b"pg_shred:blind-index:";

/// The blind-index key of one context.
pub struct ContextKey(BlindIndexKey);

impl ContextKey {
    /// The blind index of `value` (database encoding) after normalising it by `rule`.
    pub fn compute_value(&self, value: &[u8], rule: Normalization) -> Result<[u8; BLIND_INDEX_LEN], ShredError> {
        let utf8 = server_to_utf8(value, "value")?;
        let text = std::str::from_utf8(&utf8).map_err(|_| ShredError::NotUtf8("value"))?;
        Ok(self.0.compute(normalize(text, rule).as_bytes()))
    }
}

/// The key of blind-index `context` (database encoding), kept in the key store under a reserved
/// subject (random, wrapped like a DEK, rewrapped by rotation). Created on first use only when
/// `create` is set (writers); readers never add key rows.
pub fn context_key(context: &[u8], create: bool) -> Result<Option<ContextKey>, ShredError> {
    let mut subject = BLIND_INDEX_SUBJECT.to_vec();
    subject.extend_from_slice(context);
    let dek = if create { Some(store::get_or_create(&subject)?.1) } else { store::existing_dek(&subject)? };
    let context_utf8 = server_to_utf8(context, "context")?;
    Ok(dek.map(|k| ContextKey(BlindIndexKey::derive(&k, &context_utf8))))
}
