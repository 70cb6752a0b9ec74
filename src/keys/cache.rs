//! The backend's cache of unwrapped DEKs, and its invalidation through PostgreSQL's shared
//! invalidation.
//!
//! - Bounded by `shred.key_cache_size` entries; an evicted or invalidated DEK is zeroized when
//!   its last user drops it (entries are `Rc<DataKey>`; `DataKey` zeroizes on drop).
//! - Every statement that deletes, updates or truncates `shred.subject_key` fires a trigger
//!   (`ENABLE ALWAYS`, so also under `session_replication_role = replica`) that registers a
//!   relcache invalidation of the key table. PostgreSQL sends it at COMMIT only (never on
//!   ROLLBACK, nor for a rolled-back savepoint), to every backend, and hot standbys replay it
//!   with the commit record. Our relcache callback then flushes the whole cache. A callback for
//!   relid 0 (shared-invalidation queue overflow) flushes too.
//! - Each use first calls `AcceptInvalidationMessages()`, so an erasure committed before the
//!   call is seen even by a statement that has been running since before it.
//! - A lookup records the generation before it reads the key store and caches its result only if
//!   no flush happened meanwhile, so a lookup in flight while an erasure commits cannot put the
//!   dead DEK back.
//! - Any transaction or subtransaction abort flushes the cache, so a DEK created by a
//!   rolled-back first seal never stays cached.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use pgrx::pg_sys;

use crate::crypto::keys::DataKey;
use crate::gucs;

struct Entry {
    dek: Rc<DataKey>,
    subject: Vec<u8>,
}

#[derive(Default)]
struct Cache {
    by_id: HashMap<i64, Entry>,
    by_subject: HashMap<Vec<u8>, i64>,
    /// Key ids in insertion order: eviction is first in, first out.
    order: VecDeque<i64>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// Bumped by every flush.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    /// Set when a flush was requested while the cache was borrowed; honoured at next access.
    static FLUSH_PENDING: Cell<bool> = const { Cell::new(false) };
    /// OID of shred.subject_key, resolved when the first entry is cached.
    static KEY_TABLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

thread_local! {
    /// Set while pg_shred's own erasure deletes DEKs whose key ids it evicts itself.
    static PRECISE: Cell<bool> = const { Cell::new(false) };
}

/// Resets [`PRECISE`] when dropped, also while an ERROR unwinds.
struct Precise;

impl Drop for Precise {
    fn drop(&mut self) {
        PRECISE.with(|p| p.set(false));
    }
}

/// Run `delete`, a deletion of DEKs whose every deleted key id the caller then passes to
/// [`evict`]: the key table's trigger leaves the rest of this backend's cache alone. (Other
/// backends still drop their whole cache at COMMIT.)
pub fn deleting<R>(delete: impl FnOnce() -> R) -> R {
    PRECISE.with(|p| p.set(true));
    let _reset = Precise;
    delete()
}

/// What the key table's trigger does to this backend's cache: drop everything, unless
/// pg_shred's own erasure evicts exactly what it deleted ([`deleting`]).
pub fn flush_for_trigger() {
    if !PRECISE.with(|p| p.get()) {
        flush();
    }
}

/// Drop the cached DEKs with `key_ids` (zeroized once no caller holds them) and start a new
/// generation, so that no lookup in flight caches them again.
pub fn evict(key_ids: &[i64]) {
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    CACHE.with(|c| match c.try_borrow_mut() {
        Ok(mut cache) => {
            for id in key_ids {
                if let Some(e) = cache.by_id.remove(id) {
                    cache.by_subject.remove(&e.subject);
                }
            }
            // `order` keeps the evicted ids until they come up for eviction (skipped then):
            // no scan per erasure. It is compacted once it holds twice as many ids as entries.
            if cache.order.len() > 2 * cache.by_id.len() + 64 {
                let Cache { by_id, order, .. } = &mut *cache;
                order.retain(|id| by_id.contains_key(id));
            }
        }
        Err(_) => FLUSH_PENDING.with(|p| p.set(true)),
    });
}

/// Drop every cached DEK (zeroized once no caller holds it) and start a new generation.
pub fn flush() {
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    KEY_TABLE.with(|k| k.set(pg_sys::InvalidOid));
    CACHE.with(|c| match c.try_borrow_mut() {
        Ok(mut cache) => {
            cache.by_id.clear();
            cache.by_subject.clear();
            cache.order.clear();
            FLUSH_PENDING.with(|p| p.set(false));
        }
        Err(_) => FLUSH_PENDING.with(|p| p.set(true)),
    });
}

/// Absorb invalidations committed by other sessions; flushes the cache when one concerns the key
/// store. Call before every use of the cache.
pub fn accept_invalidations() {
    // SAFETY: plain call, allowed inside a transaction.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    if FLUSH_PENDING.with(|p| p.get()) {
        flush();
    }
}

/// The current generation: compare before and after a key store read.
pub fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

/// False (after dropping every entry) when `shred.key_cache_size` is 0.
fn enabled() -> bool {
    if gucs::key_cache_size() > 0 {
        return true;
    }
    if len() > 0 {
        flush();
    }
    false
}

pub fn get_by_id(key_id: i64) -> Option<Rc<DataKey>> {
    if !enabled() {
        return None;
    }
    CACHE.with(|c| c.borrow().by_id.get(&key_id).map(|e| e.dek.clone()))
}

/// The cached DEK with `key_id`, and whether it is the DEK of `subject` (database encoding).
pub fn get_by_id_for(key_id: i64, subject: &[u8]) -> Option<(Rc<DataKey>, bool)> {
    if !enabled() {
        return None;
    }
    CACHE.with(|c| c.borrow().by_id.get(&key_id).map(|e| (e.dek.clone(), e.subject == subject)))
}

pub fn get_by_subject(subject: &[u8]) -> Option<(i64, Rc<DataKey>)> {
    if !enabled() {
        return None;
    }
    CACHE.with(|c| {
        let cache = c.borrow();
        let id = *cache.by_subject.get(subject)?;
        cache.by_id.get(&id).map(|e| (id, e.dek.clone()))
    })
}

/// Number of cached DEKs.
pub fn len() -> usize {
    CACHE.with(|c| c.borrow().by_id.len())
}

fn key_table_oid() -> pg_sys::Oid {
    // SAFETY: catalog lookups inside a transaction; both return InvalidOid when missing.
    unsafe {
        let ns = pg_sys::get_namespace_oid(c"shred".as_ptr(), true);
        if ns == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        pg_sys::get_relname_relid(c"subject_key".as_ptr(), ns)
    }
}

/// Cache `dek` for `key_id` and `subject`, unless a flush happened since `seen` (the generation
/// read before the key store lookup) or the cache is disabled. Evicts the oldest entry when full.
pub fn insert(key_id: i64, subject: &[u8], dek: Rc<DataKey>, seen: u64) {
    let capacity = gucs::key_cache_size();
    if capacity == 0 || generation() != seen {
        return;
    }
    if KEY_TABLE.with(|k| k.get()) == pg_sys::InvalidOid {
        let oid = key_table_oid();
        if oid == pg_sys::InvalidOid || generation() != seen {
            return;
        }
        KEY_TABLE.with(|k| k.set(oid));
    }
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.by_id.contains_key(&key_id) {
            return;
        }
        while cache.by_id.len() >= capacity {
            let Some(victim) = cache.order.pop_front() else { break };
            if let Some(e) = cache.by_id.remove(&victim) {
                cache.by_subject.remove(&e.subject);
            }
        }
        cache.order.push_back(key_id);
        cache.by_subject.insert(subject.to_vec(), key_id);
        cache.by_id.insert(key_id, Entry { dek, subject: subject.to_vec() });
    });
}

unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // While the key table's OID is not known yet (nothing cached), any invalidation might be
    // the key table's: start a new generation so that a lookup in flight does not cache.
    let table = KEY_TABLE.with(|k| k.get());
    if relid == pg_sys::InvalidOid || table == pg_sys::InvalidOid || relid == table {
        flush();
    }
    let meta = META_RELS.with(|m| m.get());
    if relid == pg_sys::InvalidOid || (meta.0 != pg_sys::InvalidOid && (relid == meta.0 || relid == meta.1)) {
        flush_metadata();
    }
}

// ---------------------------------------------------------------------------------------------
// Key store metadata: the rows of root-key versions and a pool of key ids taken from the
// key id sequence in advance. Dropped when shred.root_key_version or the sequence is
// invalidated (DROP/CREATE EXTENSION), and on any abort (a version row registered by an
// aborted transaction does not exist).
// ---------------------------------------------------------------------------------------------

/// A row of `shred.root_key_version`.
#[derive(Clone)]
pub struct VersionRow {
    /// HKDF salt of this version.
    pub salt: Vec<u8>,
    /// Key-check value of this version's root key under `salt`.
    pub key_check: Vec<u8>,
    /// Whether the version was retired (`shred.retire_root_key`).
    pub retired: bool,
}

thread_local! {
    /// (shred.root_key_version, shred.subject_key_key_id_seq) OIDs, resolved on first use.
    static META_RELS: Cell<(pg_sys::Oid, pg_sys::Oid)> = const { Cell::new((pg_sys::InvalidOid, pg_sys::InvalidOid)) };
    /// root-key version → its stored row.
    static VERSIONS: RefCell<HashMap<i32, VersionRow>> = RefCell::new(HashMap::new());
    /// Key ids whose erasure record a committed transaction wrote. Such a record is final: key
    /// ids are never reused, so no DEK can come back under one. Kept with the metadata (dropped
    /// with it when the extension's relations change), at most [`ERASED_IDS`] of them.
    static ERASED: RefCell<HashSet<i64>> = RefCell::new(HashSet::new());
}

/// Key ids remembered as erased at the most (8 bytes each, plus the set's overhead); the set
/// starts over when full.
const ERASED_IDS: usize = 65_536;

/// Whether `key_id` is known erased (see [`ERASED`]): answered without reading the key store.
pub fn known_erased(key_id: i64) -> bool {
    ERASED.with(|e| e.borrow().contains(&key_id))
}

/// Remember that a committed transaction recorded the erasure of `key_id`.
pub fn remember_erased(key_id: i64) {
    if watch_metadata() {
        ERASED.with(|e| {
            let mut e = e.borrow_mut();
            if e.len() >= ERASED_IDS {
                e.clear();
            }
            e.insert(key_id);
        });
    }
}

fn flush_metadata() {
    META_RELS.with(|m| m.set((pg_sys::InvalidOid, pg_sys::InvalidOid)));
    ERASED.with(|e| {
        if let Ok(mut erased) = e.try_borrow_mut() {
            erased.clear();
        }
    });
    VERSIONS.with(|v| {
        if let Ok(mut versions) = v.try_borrow_mut() {
            versions.clear();
        }
    });
}

/// Resolve the metadata relations' OIDs; false when the extension's objects are missing.
fn watch_metadata() -> bool {
    if META_RELS.with(|m| m.get()).0 != pg_sys::InvalidOid {
        return true;
    }
    // SAFETY: catalog lookups inside a transaction; InvalidOid when missing.
    let oids = unsafe {
        let ns = pg_sys::get_namespace_oid(c"shred".as_ptr(), true);
        if ns == pg_sys::InvalidOid {
            return false;
        }
        (
            pg_sys::get_relname_relid(c"root_key_version".as_ptr(), ns),
            pg_sys::get_relname_relid(c"subject_key_key_id_seq".as_ptr(), ns),
        )
    };
    if oids.0 == pg_sys::InvalidOid || oids.1 == pg_sys::InvalidOid {
        return false;
    }
    META_RELS.with(|m| m.set(oids));
    true
}

/// The cached row of root-key `version`.
pub fn version_row(version: i32) -> Option<VersionRow> {
    VERSIONS.with(|v| v.borrow().get(&version).cloned())
}

pub fn set_version_row(version: i32, row: VersionRow) {
    if watch_metadata() {
        VERSIONS.with(|v| v.borrow_mut().insert(version, row));
    }
}


unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT {
        flush();
        flush_metadata();
    }
}

unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        flush();
        flush_metadata();
    }
}

/// Register the invalidation and abort callbacks; called once from `_PG_init`.
pub fn register_callbacks() {
    // SAFETY: called once per backend at library load; the callbacks live as long as the library.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0usize));
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// Register, for this transaction, an invalidation of `relid` (the key table): sent to every
/// backend at COMMIT. Registered once per (sub)transaction, so erasing many subjects in one
/// transaction does not flood the shared-invalidation queue.
pub fn invalidate_at_commit(relid: pg_sys::Oid) {
    thread_local! {
        static DONE: Cell<(pg_sys::LocalTransactionId, pg_sys::SubTransactionId)> = const { Cell::new((0, 0)) };
    }
    // SAFETY: reading the backend's own transaction identifiers.
    let now = unsafe { ((*pg_sys::MyProc).lxid, pg_sys::GetCurrentSubTransactionId()) };
    if DONE.with(|d| d.get()) == now {
        return;
    }
    // SAFETY: registers an invalidation message in the current transaction.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    DONE.with(|d| d.set(now));
}
