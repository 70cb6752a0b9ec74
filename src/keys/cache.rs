//! The backend's cache of unwrapped DEKs, and its invalidation through PostgreSQL's shared
//! invalidation.
//!
//! - Two tiers. Every cached DEK is kept compactly: its 32 bytes ([`DekBytes`], in memory
//!   excluded from core dumps), its key id and its subject, about 200 bytes in all, at most
//!   `shred.key_cache_size` of them. The [`HOT`] most recently expanded ones are also kept
//!   ready to use ([`DataKey`]: AES key schedule and GHASH key, about 1.1 KiB each), so a
//!   working set of up to [`HOT`] subjects pays no key expansion (about 0.1–0.2 µs) per use.
//!   Both tiers evict first in, first out; the hot tier never holds a DEK the compact tier
//!   does not. Once the hot tier is full, one expansion in [`ADMIT_WHEN_FULL`] replaces its
//!   oldest entry; the others are used and dropped.
//! - A memory bound: the cache counts [`ENTRY_COST`] plus the subject's length for each
//!   compact entry and [`HOT_COST`] for each expanded one, upper bounds of what they take, and
//!   never lets the count exceed `shred.key_cache_memory`: it evicts the oldest entries first,
//!   and an expanded DEK that does not fit is used without being kept. Expanded DEKs take at
//!   most half the budget ([`HOT`] of them within the default), so the compact tier keeps
//!   the other half, and "full" for the hot tier's one-in-[`ADMIT_WHEN_FULL`] rule means that
//!   share.
//! - Scan resistance: a statement that has cached as many DEKs as the cache holds admits only
//!   one more in [`ADMIT_WHEN_FULL`] (a pass over a million subjects does not evict per row);
//!   the next statement starts afresh, so a new working set enters at once.
//! - A subject may hold one DEK per purpose besides its default DEK (purpose 0). An entry is
//!   found by subject only under the purpose it was read or created for; a DEK read by key id
//!   alone (a prefetch) is found by key id only, so it never seals for another purpose.
//! - An evicted or invalidated DEK is zeroized when its last user drops it (`DekBytes` and
//!   `DataKey` zeroize on drop; callers hold `Rc<DataKey>`).
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
use rustc_hash::FxHashMap;

use crate::crypto::keys::{DataKey, DekBytes};
use crate::gucs;

/// Expanded DEKs kept ready to use, at the most (about 1.1 KiB each: 18 MiB when full).
pub const HOT: usize = 16_384;

/// Bytes counted for a compact entry besides its subject's bytes: an upper bound of its
/// 32-byte slot, the subject's allocation header, both maps' entries (with their spare
/// capacity) and its place in the eviction queue. About 170 bytes are used (RssAnon per entry
/// with short subjects, `cached_dek_memory_is_bounded`).
pub const ENTRY_COST: usize = 256;

/// Bytes counted for an expanded DEK: an upper bound of its slot (the DEK, the AES-256 key
/// schedule and the GHASH key, about 1.1 KiB), its reference count and its map entries.
pub const HOT_COST: usize = 1_536;

/// A cached DEK at rest.
struct Entry {
    dek: DekBytes,
    /// The data subject, in the database encoding (shared with `by_subject`).
    subject: Rc<[u8]>,
    /// The purpose of the DEK (0: the subject's default DEK) when it is known, and then the
    /// entry is found by subject too; `None` for a DEK read by key id alone
    /// ([`insert_by_id`]), found by key id only.
    purpose: Option<i32>,
}

#[derive(Default)]
struct Cache {
    by_id: FxHashMap<i64, Entry>,
    /// Key ids by purpose (0: the default DEKs), then by subject. Subjects are chosen by
    /// clients: the default (keyed SipHash) hasher.
    by_subject: FxHashMap<i32, HashMap<Rc<[u8]>, i64>>,
    /// Key ids in insertion order: eviction is first in, first out.
    order: VecDeque<i64>,
    /// The hot tier: expanded DEKs of key ids that `by_id` holds.
    hot: FxHashMap<i64, Rc<DataKey>>,
    /// Key ids in the order they entered the hot tier.
    hot_order: VecDeque<i64>,
    /// Start time of the statement that last cached a DEK, and how many it cached.
    statement: pg_sys::TimestampTz,
    admitted: usize,
    /// DEKs refused to scans (see [`ADMIT_WHEN_FULL`]).
    refused: u64,
    /// Bytes counted for the entries of both tiers ([`ENTRY_COST`], [`HOT_COST`]).
    bytes: usize,
    /// Expansions not kept because the hot tier was full.
    hot_refused: u64,
}

/// Once a statement has cached as many DEKs as the cache holds, one DEK in this many that it
/// reads from the key store replaces the oldest cached one; the others are used and dropped.
const ADMIT_WHEN_FULL: u64 = 8;

impl Cache {
    fn remove(&mut self, key_id: i64) {
        if let Some(e) = self.by_id.remove(&key_id) {
            self.bytes -= ENTRY_COST + e.subject.len();
            if let Some(subjects) = e.purpose.and_then(|p| self.by_subject.get_mut(&p)) {
                if subjects.get(&e.subject) == Some(&key_id) {
                    subjects.remove(&e.subject);
                }
            }
        }
        if self.hot.remove(&key_id).is_some() {
            self.bytes -= HOT_COST;
        }
    }

    /// Evict the oldest entries (first in, first out) until `entries` more fit within `capacity`
    /// and `bytes` more within `budget`.
    fn make_room(&mut self, capacity: usize, budget: usize, entries: usize, bytes: usize) {
        while self.by_id.len() + entries > capacity || self.bytes + bytes > budget {
            let Some(victim) = self.order.pop_front() else { break };
            self.remove(victim);
        }
    }

    fn clear(&mut self) {
        // Fresh maps: a cache that grew for one big scan gives its maps' memory back (the
        // DEKs' slots go back to the `Secret` pool for reuse).
        *self = Cache::default();
    }

    /// The usable DEK with `key_id`: from the hot tier, or expanded from the compact one (and
    /// kept hot, see [`ADMIT_WHEN_FULL`]).
    fn dek(&mut self, key_id: i64) -> Option<Rc<DataKey>> {
        if let Some(dek) = self.hot.get(&key_id) {
            return Some(dek.clone());
        }
        let dek = Rc::new(self.by_id.get(&key_id)?.dek.expand());
        // A full hot tier takes one in ADMIT_WHEN_FULL: a working set larger than it then pays
        // the expansion per use, but not also the eviction (zeroizing a cold expanded key).
        if self.hot.len() < hot_capacity(memory_budget()) || {
            self.hot_refused += 1;
            self.hot_refused % ADMIT_WHEN_FULL == 0
        } {
            self.make_hot(key_id, dek.clone());
        }
        Some(dek)
    }

    fn make_hot(&mut self, key_id: i64, dek: Rc<DataKey>) {
        let budget = memory_budget();
        let capacity = hot_capacity(budget);
        while self.hot.len() >= capacity || self.bytes + HOT_COST > budget {
            let Some(victim) = self.hot_order.pop_front() else { break };
            if self.hot.remove(&victim).is_some() {
                self.bytes -= HOT_COST;
            }
        }
        // Nothing left to give up: the DEK is used without being kept expanded.
        if capacity == 0 || self.bytes + HOT_COST > budget {
            return;
        }
        if self.hot.insert(key_id, dek).is_none() {
            self.hot_order.push_back(key_id);
            self.bytes += HOT_COST;
        }
        // Ids evicted or invalidated meanwhile stay in `hot_order` until they come up (and
        // are skipped then); compacted once it holds far more ids than the tier.
        if self.hot_order.len() > 2 * self.hot.len() + 64 {
            let Cache { hot, hot_order, .. } = self;
            hot_order.retain(|id| hot.contains_key(id));
        }
    }
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
            for &id in key_ids {
                cache.remove(id);
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
            cache.clear();
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
/// Also trims the cache to a `shred.key_cache_size` or `shred.key_cache_memory` lowered since
/// it filled.
fn enabled() -> bool {
    let capacity = capacity();
    if capacity > 0 {
        CACHE.with(|c| {
            if let Ok(mut cache) = c.try_borrow_mut() {
                cache.make_room(capacity, memory_budget(), 0, 0);
            }
        });
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
    CACHE.with(|c| c.borrow_mut().dek(key_id))
}

/// The cached DEK with `key_id`, and whether it is the DEK of `subject` (database encoding).
pub fn get_by_id_for(key_id: i64, subject: &[u8]) -> Option<(Rc<DataKey>, bool)> {
    if !enabled() {
        return None;
    }
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        let same = *cache.by_id.get(&key_id)?.subject == *subject;
        Some((cache.dek(key_id)?, same))
    })
}

/// The cached DEK of `subject` (database encoding) for `purpose` (0: its default DEK).
pub fn get_by_subject(subject: &[u8], purpose: i32) -> Option<(i64, Rc<DataKey>)> {
    if !enabled() {
        return None;
    }
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        let id = *cache.by_subject.get(&purpose)?.get(subject)?;
        Some((id, cache.dek(id)?))
    })
}

/// Number of cached DEKs, after trimming the cache to its current setting (what
/// `shred.key_cache_entries()` reports).
pub fn entries() -> usize {
    enabled();
    len()
}

/// Number of cached DEKs.
pub fn len() -> usize {
    CACHE.with(|c| c.borrow().by_id.len())
}

/// Bytes the cache counts for its entries (at most `shred.key_cache_memory`).
pub fn counted_bytes() -> usize {
    CACHE.with(|c| c.borrow().bytes)
}

/// The relation this node's DEKs are in (the key table, or its Citus placement: the trigger
/// fires there and invalidates it).
fn key_table_oid() -> pg_sys::Oid {
    super::scan::rows_of(c"subject_key").unwrap_or(pg_sys::InvalidOid)
}

/// Cache `dek` for `key_id`, `subject` and `purpose` (0: the subject's default DEK), unless a
/// flush happened since `seen` (the generation read before the key store lookup) or the cache
/// is disabled. Evicts the oldest entry when full.
pub fn insert(key_id: i64, subject: &[u8], purpose: i32, dek: Rc<DataKey>, seen: u64) {
    insert_as(key_id, subject, Some(purpose), dek, seen, false);
}

/// [`insert`] of a DEK created set-wise for use right after (`shred.create_keys`): never
/// refused to a scan, the caller sizes its sets to the cache.
pub fn insert_wanted(key_id: i64, subject: &[u8], purpose: i32, dek: Rc<DataKey>, seen: u64) {
    insert_as(key_id, subject, Some(purpose), dek, seen, true);
}

/// [`insert_wanted`] of a DEK read by key id without its purpose ([`super::store::prefetch`]):
/// found by key id only, never as a subject's DEK for sealing.
pub fn insert_by_id(key_id: i64, subject: &[u8], dek: Rc<DataKey>, seen: u64) {
    insert_as(key_id, subject, None, dek, seen, true);
}

/// Whether the DEK with `key_id` is cached (nothing is expanded or counted).
pub fn contains(key_id: i64) -> bool {
    CACHE.with(|c| c.borrow().by_id.contains_key(&key_id))
}

/// `shred.key_cache_size`: how many DEKs the cache holds at the most.
pub fn capacity() -> usize {
    gucs::key_cache_size()
}

/// `shred.key_cache_memory` in bytes: what the entries of both tiers may count at the most.
fn memory_budget() -> usize {
    gucs::key_cache_memory_bytes()
}

/// Expanded DEKs kept at the most under `budget`: [`HOT`], or what half the budget holds, so
/// the compact tier always keeps at least the other half.
fn hot_capacity(budget: usize) -> usize {
    HOT.min(budget / 2 / HOT_COST)
}

/// How many DEKs the cache holds at the most, by `shred.key_cache_size` and by what
/// `shred.key_cache_memory` leaves the compact tier with short subjects.
pub fn room() -> usize {
    let budget = memory_budget();
    capacity().min((budget - hot_capacity(budget) * HOT_COST) / (ENTRY_COST + 16))
}

fn insert_as(key_id: i64, subject: &[u8], purpose: Option<i32>, dek: Rc<DataKey>, seen: u64, wanted: bool) {
    let (capacity, budget, cost) = (capacity(), memory_budget(), ENTRY_COST + subject.len());
    if capacity == 0 || cost > budget || generation() != seen {
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
        // A statement that has already cached as many DEKs as the cache holds is a scan over
        // more subjects than fit: from then on it admits one DEK in ADMIT_WHEN_FULL, so it
        // does not pay an eviction per row (and leaves part of the cache for a second pass).
        // Any other statement replaces the oldest entries, so a new working set enters at once.
        // "Statement" is what PostgreSQL stamps with a statement start time: one message from
        // the client (a function call with all it runs is one; each FETCH is its own).
        // SAFETY: reading the current statement's start time, set for every statement.
        let statement = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
        if cache.statement != statement {
            cache.statement = statement;
            cache.admitted = 0;
        }
        // Full by count, or by memory with as many entries admitted as the cache holds.
        let full = cache.admitted >= capacity || (cache.bytes + cost > budget && cache.admitted >= cache.by_id.len());
        if full && !wanted {
            cache.refused += 1;
            if cache.refused % ADMIT_WHEN_FULL != 0 {
                return;
            }
        }
        cache.admitted += 1;
        cache.make_room(capacity, budget, 1, cost);
        let subject: Rc<[u8]> = Rc::from(subject);
        cache.bytes += cost;
        cache.order.push_back(key_id);
        if let Some(p) = purpose {
            cache.by_subject.entry(p).or_default().insert(subject.clone(), key_id);
        }
        cache.by_id.insert(key_id, Entry { dek: dek.compact(), subject, purpose });
        cache.make_hot(key_id, dek);
    });
}

unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // While the key table's OID is not known yet (nothing cached), any invalidation might be
    // the key table's: start a new generation so that a lookup in flight does not cache.
    let table = KEY_TABLE.with(|k| k.get());
    if relid == pg_sys::InvalidOid || table == pg_sys::InvalidOid || relid == table {
        flush();
    }
    super::scan::forget(relid);
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
    /// Keyed SipHash (the default hasher): `shred.replay_erasures` records key ids its caller
    /// chooses, so an unkeyed hash could be flooded with colliding ids.
    static ERASED: RefCell<HashSet<i64>> = RefCell::new(HashSet::new());
}

/// Key ids remembered as erased at the most (about 18 MiB when full); once full, no more are
/// added (the ones held stay true forever).
pub const ERASED_IDS: usize = 1 << 20;

/// Erased key ids a transaction looks up in the erasure log before the backend reads all of
/// the log's committed key ids at once ([`erased_probe`]).
const BULK_AFTER: u32 = 1_000;

thread_local! {
    /// (transaction, erased key ids looked up in the erasure log in it, bulk read done in it).
    static PROBES: Cell<(pg_sys::LocalTransactionId, u32, bool)> = const { Cell::new((0, 0, false)) };
}

/// Whether `key_id` is known erased (see [`ERASED`]): answered without reading the key store.
pub fn known_erased(key_id: i64) -> bool {
    ERASED.with(|e| e.borrow().contains(&key_id))
}

/// Remember that a committed transaction recorded the erasure of `key_id`.
pub fn remember_erased(key_id: i64) {
    remember_all_erased(std::iter::once(key_id));
}

/// [`remember_erased`] for many key ids, up to [`ERASED_IDS`] in all.
pub fn remember_all_erased(key_ids: impl IntoIterator<Item = i64>) {
    if watch_metadata() {
        ERASED.with(|e| {
            let mut e = e.borrow_mut();
            for id in key_ids {
                if e.len() >= ERASED_IDS {
                    break;
                }
                e.insert(id);
            }
        });
    }
}

/// Count one lookup of an erased key id in the erasure log; true (once per transaction) when
/// this transaction has made [`BULK_AFTER`] of them: a scan over erased values is under way,
/// and reading the whole log once is cheaper than one index probe per row.
pub fn erased_probe() -> bool {
    let xact = crate::pg::compat::local_transaction_id();
    PROBES.with(|p| {
        let (at, n, done) = p.get();
        let (n, done) = if at == xact { (n + 1, done) } else { (1, false) };
        let due = n >= BULK_AFTER && !done && ERASED.with(|e| e.borrow().len()) < ERASED_IDS;
        p.set((xact, n, done || due));
        due
    })
}

fn flush_metadata() {
    META_RELS.with(|m| m.set((pg_sys::InvalidOid, pg_sys::InvalidOid)));
    // Erased ids forgotten: a bulk read may be due again in this transaction.
    PROBES.with(|p| p.set((0, 0, false)));
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
    // PREPARE TRANSACTION too: the prepared transaction may still be rolled back, so the DEKs
    // it created must not stay cached in this backend.
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_PREPARE
    {
        flush();
        flush_metadata();
        super::scan::forget(pg_sys::InvalidOid);
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
        super::scan::forget(pg_sys::InvalidOid);
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
    // SAFETY: reading the backend's own subtransaction identifier.
    let now = (crate::pg::compat::local_transaction_id(), unsafe { pg_sys::GetCurrentSubTransactionId() });
    if DONE.with(|d| d.get()) == now {
        return;
    }
    // SAFETY: registers an invalidation message in the current transaction.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    DONE.with(|d| d.set(now));
}
