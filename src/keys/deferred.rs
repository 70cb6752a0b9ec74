//! Writes to pg_shred's own tables that belong to the current transaction but need not run
//! statement by statement: blind-index terms of written values, the erasure record and
//! term deletion that follow each erased DEK, and the retention clocks of purpose DEKs sealed
//! under (`shred.key_use`).
//!
//! Invariant: when a transaction commits (or is prepared), every write queued in it and not
//! rolled back is in the tables, and no statement of this backend reads those tables without
//! the queue written first. The DEK itself is always deleted at once, in the erasing
//! statement: only its bookkeeping waits.
//!
//! - [`flush`] writes the queue in set-based statements, in this order: new terms, retention
//!   clocks, erasure records, deletion of the erased key ids' terms and clocks (so a term or
//!   clock written and erased in one transaction is gone). It runs before this backend reads terms or erasure records,
//!   when [`BATCH`] writes are queued, and before COMMIT / PREPARE TRANSACTION (a pre-commit
//!   callback, whose ERROR aborts the transaction: nothing commits half-recorded). In a
//!   database with Citus, also at the end of every erasing call (`erasure::erasing`): other
//!   nodes read the erasure records within the same distributed transaction.
//! - Each entry carries the subtransaction that queued it: a rolled-back subtransaction drops
//!   its entries (and its descendants'), like the rows and DEK deletions they follow; an
//!   aborted transaction drops all.
//! - A flush inside a subtransaction writes the entries of enclosing ones too, and a rollback
//!   of that subtransaction undoes those writes: entries written there are kept aside
//!   ([`WRITTEN`]) until no rollback short of the whole transaction's can undo them, and a
//!   rollback puts the enclosing subtransactions' entries back in the queue.
//! - A table that does not exist (an older schema, or the extension dropped in this
//!   transaction) takes no write.
//! - Retention clocks ([`sealed`]): a stored `sealed_before` is never earlier than a seal under
//!   its DEK made by a read-write transaction that committed. The backend remembers, per DEK,
//!   the time its last queued clock will cover ([`COVERED`]), and queues another only once that
//!   time has passed. A clock outlives the rollback of the subtransaction that queued it (the
//!   sealed value may leave the subtransaction: a savepoint rolled back, a PL/pgSQL exception
//!   block, and be stored after it), so it is written if the transaction commits; an abort of
//!   the transaction, or its PREPARE (it may be rolled back), forgets everything remembered, so
//!   the next seal queues again. Nothing is queued in a read-only transaction, which cannot
//!   write at COMMIT: a value it sealed and a later transaction stores counts from that later
//!   transaction's own seals (see the README, "Retention and legal hold").

use std::cell::RefCell;

use pgrx::pg_sys;

use super::scan;
use super::spi::{run, Arg, Mode, Plan};
use crate::error::ShredError;

/// Entries written in one flush at the most before the queue is flushed early.
pub const BATCH: usize = 10_000;

enum Write {
    /// A blind-index term: the data subject of `key_id` holds a value with this blind index.
    Term { blind_index: Vec<u8>, key_id: i64 },
    /// `key_id` was erased: record it (with the subject's keyed digest, when the erasure log
    /// exists, and the purpose when only that purpose was erased) and delete its terms.
    Erased { key_id: i64, digest: Option<Vec<u8>>, purpose: Option<i32> },
    /// A value was sealed under `key_id`, a DEK of `purpose`: its retention clock is set to
    /// the time of the write plus `granule_ms` (see [`sealed`]).
    Sealed { key_id: i64, purpose: i32, granule_ms: i64 },
}

struct Entry {
    subtransaction: pg_sys::SubTransactionId,
    write: Write,
}

impl Entry {
    /// Whether the write stays queued when the subtransaction that queued it rolls back (a
    /// retention clock: the sealed value may outlive the subtransaction).
    fn outlives_rollback(&self) -> bool {
        matches!(self.write, Write::Sealed { .. })
    }
}

thread_local! {
    static QUEUE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// Entries written by a flush inside a subtransaction that is still open, each with the
    /// subtransaction whose rollback would undo the write.
    static WRITTEN: RefCell<Vec<(pg_sys::SubTransactionId, Entry)>> = const { RefCell::new(Vec::new()) };
    /// Per purpose DEK sealed under by this backend: until when (microseconds since the
    /// PostgreSQL epoch) the retention clock it queued covers its seals.
    static COVERED: RefCell<rustc_hash::FxHashMap<i64, i64>> = RefCell::new(rustc_hash::FxHashMap::default());
}

/// DEKs [`COVERED`] remembers at the most; past it, it starts again (which only costs writes).
const COVERED_MAX: usize = 100_000;

/// PostgreSQL's id of the top-level transaction's (sub)transaction level.
const TOP_SUBTRANSACTION: pg_sys::SubTransactionId = 1;

/// Terms are written only for DEKs that still exist, and those DEKs are locked (KEY SHARE)
/// until this transaction ends: an erasure committed first leaves no term behind, and one that
/// comes later waits, then deletes the terms written here (a term exists only while its DEK
/// does).
static INSERT_TERMS: Plan = Plan::new(
    c"WITH live AS (SELECT k.key_id FROM shred.subject_key k
                     WHERE k.key_id OPERATOR(pg_catalog.=) ANY ($2) FOR KEY SHARE)
      INSERT INTO shred.blind_term (blind_index, key_id)
      SELECT t.blind_index, t.key_id
        FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.bytea[]), pg_catalog.unnest($2::pg_catalog.int8[])) t (blind_index, key_id)
       WHERE t.key_id OPERATOR(pg_catalog.=) ANY (SELECT key_id FROM live)
      ON CONFLICT DO NOTHING",
    &[pg_sys::BYTEAARRAYOID, pg_sys::INT8ARRAYOID],
);

/// A key id is recorded once: its DEK existed until this transaction deleted it, and no DEK is
/// ever created under a recorded key id. A record that exists anyway (written into the erasure
/// log by hand) makes the COMMIT fail (23505) rather than go unnoticed.
static LOG_ERASURES: Plan = Plan::new(
    c"INSERT INTO shred.erasure_log (key_id, subject_digest)
      SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.bytea[]))",
    &[pg_sys::INT8ARRAYOID, pg_sys::BYTEAARRAYOID],
);

/// [`LOG_ERASURES`] with the purpose of each record (0.6.0 on; 0 for an erasure of the whole
/// subject, recorded as NULL).
static LOG_ERASURES_PURPOSES: Plan = Plan::new(
    c"INSERT INTO shred.erasure_log (key_id, subject_digest, purpose_id)
      SELECT l.key_id, l.subject_digest,
             CASE WHEN l.purpose_id OPERATOR(pg_catalog.=) 0 THEN NULL ELSE l.purpose_id END
        FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.bytea[]),
                        pg_catalog.unnest($3::pg_catalog.int4[])) l (key_id, subject_digest, purpose_id)",
    &[pg_sys::INT8ARRAYOID, pg_sys::BYTEAARRAYOID, pg_sys::INT4ARRAYOID],
);

/// Retention clocks: the time of the write plus each DEK's granule, never moved back. One row
/// per DEK (the queue is deduplicated first: ON CONFLICT may touch a row once per statement).
static WRITE_CLOCKS: Plan = Plan::new(
    c"INSERT INTO shred.key_use AS u (key_id, purpose_id, sealed_before)
      SELECT c.key_id, c.purpose_id,
             pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)
                 (c.granule_ms::pg_catalog.float8 OPERATOR(pg_catalog.*) '1 millisecond'::pg_catalog.interval)
        FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.int4[]),
                        pg_catalog.unnest($3::pg_catalog.int8[])) c (key_id, purpose_id, granule_ms)
      ON CONFLICT (key_id) DO UPDATE SET sealed_before = excluded.sealed_before
       WHERE u.sealed_before OPERATOR(pg_catalog.<) excluded.sealed_before",
    &[pg_sys::INT8ARRAYOID, pg_sys::INT4ARRAYOID, pg_sys::INT8ARRAYOID],
);

static FORGET_CLOCKS: Plan = Plan::new(
    c"DELETE FROM shred.key_use WHERE key_id OPERATOR(pg_catalog.=) ANY ($1)",
    &[pg_sys::INT8ARRAYOID],
);

static FORGET_TERMS: Plan = Plan::new(
    c"DELETE FROM shred.blind_term WHERE key_id OPERATOR(pg_catalog.=) ANY ($1)",
    &[pg_sys::INT8ARRAYOID],
);

fn queue(write: Write) -> Result<(), ShredError> {
    // SAFETY: plain read of the current subtransaction's id.
    let subtransaction = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let full = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.push(Entry { subtransaction, write });
        q.len() >= BATCH
    });
    if full {
        flush()?;
    }
    Ok(())
}

/// Queue a blind-index term.
pub fn term(blind_index: &[u8], key_id: i64) -> Result<(), ShredError> {
    queue(Write::Term { blind_index: blind_index.to_vec(), key_id })
}

/// Queue the bookkeeping of an erased DEK: its erasure record (`digest`: the subject's keyed
/// digest, `None` before the erasure log exists; `purpose`: the purpose erased alone, `None`
/// for an erasure of the whole subject) and the deletion of its terms.
pub fn erased(key_id: i64, digest: Option<Vec<u8>>, purpose: Option<i32>) -> Result<(), ShredError> {
    queue(Write::Erased { key_id, digest, purpose })
}

/// A value was just sealed under `key_id`, the DEK of `purpose` (not 0): queue its retention
/// clock, unless the clock this backend queued last for it still covers now. `granule_ms`:
/// how far past the write the clock is set (so the clock covers the seals of that long that
/// queue nothing), a day at the most (see `crate::purposes::Purpose`).
pub fn sealed(key_id: i64, purpose: i32, granule_ms: i64) -> Result<(), ShredError> {
    // SAFETY: plain reads of the transaction's and the server's state.
    if unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() } {
        return Ok(());
    }
    // SAFETY: plain call.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let due = COVERED.with(|c| {
        let mut c = c.borrow_mut();
        if c.get(&key_id).is_some_and(|&until| until > now) {
            return false;
        }
        if c.len() >= COVERED_MAX {
            c.clear();
        }
        // The clock is written later, from a later time: it covers at least until this.
        c.insert(key_id, now.saturating_add(granule_ms.saturating_mul(1000)));
        true
    });
    if due {
        queue(Write::Sealed { key_id, purpose, granule_ms })?;
    }
    Ok(())
}

/// Delete the retention clocks of `key_ids` now (clocks of DEKs that no longer exist).
pub fn forget_clocks(key_ids: &[i64]) -> Result<(), ShredError> {
    run(&FORGET_CLOCKS, &[Arg::Int8Array(key_ids)], Mode::Write, 0, |_| Ok(()))
}

/// Whether this transaction queued the erasure of `key_id` (not yet written).
pub fn erasure_queued(key_id: i64) -> bool {
    QUEUE.with(|q| q.borrow().iter().any(|e| matches!(e.write, Write::Erased { key_id: k, .. } if k == key_id)))
}

/// Write every queued entry (see the module documentation). The queue is emptied only once
/// the writes succeeded.
pub fn flush() -> Result<(), ShredError> {
    let (mut indexes, mut term_ids, mut logged, mut digests, mut erased) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut purposes: Vec<i32> = Vec::new();
    let mut clocks: rustc_hash::FxHashMap<i64, (i32, i64)> = rustc_hash::FxHashMap::default();
    let queued = QUEUE.with(|q| {
        let q = q.borrow();
        for e in q.iter() {
            match &e.write {
                Write::Term { blind_index, key_id } => {
                    indexes.push(blind_index.clone());
                    term_ids.push(*key_id);
                }
                Write::Erased { key_id, digest, purpose } => {
                    if let Some(d) = digest {
                        logged.push(*key_id);
                        digests.push(d.clone());
                        purposes.push(purpose.unwrap_or(0));
                    }
                    erased.push(*key_id);
                }
                Write::Sealed { key_id, purpose, granule_ms } => {
                    let e = clocks.entry(*key_id).or_insert((*purpose, *granule_ms));
                    e.1 = e.1.max(*granule_ms);
                }
            }
        }
        q.len()
    });
    if queued == 0 {
        return Ok(());
    }
    // Its statements pinned as one on a Citus cluster (see `PinnedRemoteSettings`).
    let _pinned = crate::pg::citus::PinnedRemoteSettings::pin(scan::distributed()?)?;
    let terms_table = scan::relation(c"blind_term").is_ok();
    if terms_table && !indexes.is_empty() {
        run(&INSERT_TERMS, &[Arg::ByteaArray(&indexes), Arg::Int8Array(&term_ids)], Mode::Write, 0, |_| Ok(()))?;
    }
    let clocks_table = scan::relation(c"key_use").is_ok();
    if clocks_table && !clocks.is_empty() {
        let (mut ids, mut ps, mut gs) = (Vec::with_capacity(clocks.len()), Vec::with_capacity(clocks.len()), Vec::with_capacity(clocks.len()));
        for (id, (p, g)) in &clocks {
            ids.push(*id);
            ps.push(*p);
            gs.push(*g);
        }
        run(&WRITE_CLOCKS, &[Arg::Int8Array(&ids), Arg::Int4Array(&ps), Arg::Int8Array(&gs)], Mode::Write, 0, |_| Ok(()))?;
    }
    if !logged.is_empty() && scan::relation(c"erasure_log").is_ok() {
        // Only a key store with purposes (0.6.0 on) erases a purpose alone.
        if purposes.iter().any(|&p| p != 0) {
            let args = [Arg::Int8Array(&logged), Arg::ByteaArray(&digests), Arg::Int4Array(&purposes)];
            run(&LOG_ERASURES_PURPOSES, &args, Mode::Write, 0, |_| Ok(()))?;
        } else {
            run(&LOG_ERASURES, &[Arg::Int8Array(&logged), Arg::ByteaArray(&digests)], Mode::Write, 0, |_| Ok(()))?;
        }
    }
    if terms_table && !erased.is_empty() {
        run(&FORGET_TERMS, &[Arg::Int8Array(&erased)], Mode::Write, 0, |_| Ok(()))?;
    }
    if clocks_table && !erased.is_empty() {
        forget_clocks(&erased)?;
    }
    let entries = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
    // SAFETY: plain reads of the transaction state.
    let (nested, current) = unsafe { (pg_sys::GetCurrentTransactionNestLevel() > 1, pg_sys::GetCurrentSubTransactionId()) };
    // Only entries of enclosing subtransactions are kept: a rollback of this one re-queues
    // those, and drops its own and its descendants' entries anyway (an erasure of a million
    // subjects inside a savepoint keeps nothing here).
    if nested {
        WRITTEN.with(|w| {
            w.borrow_mut()
                .extend(entries.into_iter().filter(|e| e.subtransaction < current || e.outlives_rollback()).map(|e| (current, e)))
        });
    }
    Ok(())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            if QUEUE.with(|q| q.borrow().is_empty()) {
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
            QUEUE.with(|q| q.borrow_mut().clear());
            WRITTEN.with(|w| w.borrow_mut().clear());
            COVERED.with(|c| c.borrow_mut().clear());
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT => {
            WRITTEN.with(|w| w.borrow_mut().clear());
        }
        pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            WRITTEN.with(|w| w.borrow_mut().clear());
            // ROLLBACK PREPARED would undo its clocks.
            COVERED.with(|c| c.borrow_mut().clear());
        }
        _ => {}
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    // Subtransactions started after `sub` while it ran are its descendants.
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            // Its own and its descendants' entries go with it, but retention clocks, which
            // pass to its parent; those of earlier, committed ones stay. Writes made inside it
            // are undone: the entries of enclosing subtransactions among them, and clocks, are
            // queued again.
            let keep = |mut e: Entry| {
                if e.subtransaction < sub {
                    Some(e)
                } else if e.outlives_rollback() {
                    e.subtransaction = parent;
                    Some(e)
                } else {
                    None
                }
            };
            QUEUE.with(|q| {
                let mut q = q.borrow_mut();
                let entries = std::mem::take(&mut *q);
                q.extend(entries.into_iter().filter_map(keep));
            });
            let undone: Vec<Entry> = WRITTEN.with(|w| {
                let mut w = w.borrow_mut();
                let (undone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *w).into_iter().partition(|(at, _)| *at >= sub);
                *w = kept;
                undone.into_iter().map(|(_, e)| e).filter_map(keep).collect()
            });
            QUEUE.with(|q| q.borrow_mut().extend(undone));
        }
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
            // Writes made inside it now belong to its parent; under the top level only the
            // whole transaction's rollback can undo them, and that drops everything anyway.
            WRITTEN.with(|w| {
                let mut w = w.borrow_mut();
                if parent == TOP_SUBTRANSACTION {
                    w.retain(|(at, _)| *at < sub);
                } else {
                    for (at, _) in w.iter_mut().filter(|(at, _)| *at >= sub) {
                        *at = parent;
                    }
                    // What the parent's rollback would not re-queue (its own entries and its
                    // descendants', but clocks) need not be kept.
                    w.retain(|(at, e)| e.subtransaction < *at || e.outlives_rollback());
                }
            });
        }
        _ => {}
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
