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
//! New terms and the deletion of erased key ids' terms are queued and written set-based before
//! the transaction commits, and before this backend reads terms ([`super::deferred`]).
//!
//! Reads and writes run with the key store owner's rights ([`super::spi`]); no role has
//! privileges on the table itself.

use pgrx::pg_sys;

use super::deferred;
use super::spi::{run, Arg, Mode, Plan};
use super::store;
use crate::crypto::blind::{normalize, BlindIndexKey, Normalization, BLIND_INDEX_LEN};
use crate::error::ShredError;
use super::subject::Subject;
use crate::pg::encoding::server_to_utf8;

static KEY_IDS: Plan = Plan::new(
    c"SELECT key_id FROM shred.blind_term WHERE blind_index OPERATOR(pg_catalog.=) $1",
    &[pg_sys::BYTEAOID],
);

/// Record that the data subject of `key_id` holds a value whose blind index is `blind_index`
/// (queued: see [`super::deferred`]).
pub fn record(blind_index: &[u8], key_id: i64) -> Result<(), ShredError> {
    deferred::term(blind_index, key_id)
}

/// Terms deleted by [`forget`] with one statement at the most.
const FORGET_CHUNK: usize = 10_000;

static FORGET: Plan = Plan::new(
    c"DELETE FROM shred.blind_term t
       USING ROWS FROM (pg_catalog.unnest($1::pg_catalog.bytea[]), pg_catalog.unnest($2::pg_catalog.int8[])) f (blind_index, key_id)
       WHERE t.blind_index OPERATOR(pg_catalog.=) f.blind_index AND t.key_id OPERATOR(pg_catalog.=) f.key_id",
    &[pg_sys::BYTEAARRAYOID, pg_sys::INT8ARRAYOID],
);

/// Delete the terms (blind index, key id) of `terms`, in the caller's transaction, after this
/// backend's queued terms are written (so a queued one is deleted too): for values sealed
/// again under another DEK (`shred.set_purpose`), whose old DEK must no longer be linked to
/// them. The caller makes sure no other value still needs such a term.
pub fn forget(terms: &[(Vec<u8>, i64)]) -> Result<(), ShredError> {
    if terms.is_empty() {
        return Ok(());
    }
    deferred::flush()?;
    for chunk in terms.chunks(FORGET_CHUNK) {
        let indexes: Vec<Vec<u8>> = chunk.iter().map(|(i, _)| i.clone()).collect();
        let ids: Vec<i64> = chunk.iter().map(|(_, k)| *k).collect();
        run(&FORGET, &[Arg::ByteaArray(&indexes), Arg::Int8Array(&ids)], Mode::Write, 0, |_| Ok(()))?;
    }
    Ok(())
}

/// Key ids of the data subjects holding a value with this blind index (latest snapshot, like
/// every key lookup: a committed erasure is seen at once).
///
/// The terms are the Citus coordinator's own: on a worker (or in a worker's part of a
/// distributed statement) there are none to find, so the lookup is refused there
/// ([`ShredError::CitusLookup`]) rather than answered "no row".
pub fn key_ids(blind_index: &[u8]) -> Result<Vec<i64>, ShredError> {
    if crate::pg::citus::internal_connection() || crate::pg::citus::on_worker()? {
        return Err(ShredError::CitusLookup);
    }
    deferred::flush()?;
    run(&KEY_IDS, &[Arg::Bytes(blind_index)], Mode::ReadLatest, 0, |rows| {
        Ok(rows.iter().filter_map(|r| r.int8(1)).collect())
    })
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
    let subject = Subject::reserved(&subject)?;
    let dek = if create { Some(store::get_or_create(&subject, 0)?.1) } else { store::existing_dek(&subject, 0)? };
    let context_utf8 = server_to_utf8(context, "context")?;
    Ok(dek.map(|k| ContextKey(BlindIndexKey::derive(&k, &context_utf8))))
}
