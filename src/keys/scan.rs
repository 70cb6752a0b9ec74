//! Reads of the key store without SPI or the planner: one index scan (as PostgreSQL's own
//! catalog lookups do) under the *latest* snapshot.
//!
//! - A committed erasure takes effect at once, even inside an older REPEATABLE READ
//!   transaction: the scan does not use the transaction's snapshot.
//! - No cached plan can degrade into a sequential scan when the table grew after statistics
//!   were taken (bulk first seals in one transaction), and no executor start-up is paid.
//! - Table privileges are not checked here: EXECUTE on the SQL function is the gate.
//! - The relations' OIDs and the index's collation are resolved once per backend (forgotten
//!   when either relation is invalidated, and on any abort). The ACCESS SHARE locks are taken
//!   and released per probe: a session that opens a value and then idles in its transaction
//!   holds no lock on the key store (which would hold up a VACUUM truncation, an extension
//!   update, or, on a hot standby, cancel its queries when the primary's truncation replays).
//!
//! - On a Citus cluster whose key store is made of reference tables, each node reads its own
//!   placement of them ([`rows_of`]; one query of Citus's catalog when resolved).
//!
//! Must not run in parallel mode (GetLatestSnapshot is not allowed there), which the functions'
//! PARALLEL UNSAFE label guarantees.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::datum::FromDatum;
use pgrx::pg_sys;

use crate::error::ShredError;

/// Columns of `shred.subject_key`, `shred.root_key_version` and `shred.erasure_log`, by number.
pub mod col {
    pub const KEY_ID: i16 = 1;
    pub const SUBJECT: i16 = 2;
    pub const WRAPPED_DEK: i16 = 3;
    pub const ROOT_KEY_VERSION: i16 = 4;
    /// Added in 0.6.0: absent (read as NULL, the default DEK) until `ALTER EXTENSION pg_shred
    /// UPDATE`.
    pub const PURPOSE_ID: i16 = 6;
    pub const SALT: i16 = 2;
    pub const KEY_CHECK: i16 = 3;
    /// Added in 0.2.0: absent (read as NULL) until `ALTER EXTENSION pg_shred UPDATE`.
    pub const RETIRED_AT: i16 = 5;
}

/// What to look for.
pub enum Key<'a> {
    /// `shred.subject_key.key_id` (primary key).
    Id(i64),
    /// `shred.subject_key (subject, purpose_id)` (unique from 0.6.0 on; before it `subject`
    /// alone is, and only the default DEK, purpose 0, exists).
    Subject(&'a [u8], i32),
    /// `shred.root_key_version.version` (primary key).
    Version(i32),
    /// `shred.erasure_log.key_id` (primary key; 0.2.0 on).
    Erasure(i64),
}

/// One column value copied out of the tuple.
pub enum Value {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

pub fn relation(name: &CStr) -> Result<pg_sys::Oid, ShredError> {
    // SAFETY: syscache lookups inside a transaction; InvalidOid when missing.
    let oid = unsafe {
        let ns = pg_sys::get_namespace_oid(c"shred".as_ptr(), true);
        if ns == pg_sys::InvalidOid {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_relname_relid(name.as_ptr(), ns)
        }
    };
    if oid == pg_sys::InvalidOid {
        return Err(ShredError::KeyStore(format!(
            "relation shred.{} is missing: is the extension installed in this database?",
            name.to_string_lossy()
        )));
    }
    Ok(oid)
}

/// The relation holding this node's rows of `shred.<name>`: the table itself or, where Citus
/// made it a reference table (docs/citus.md), this node's placement of it.
pub fn rows_of(name: &CStr) -> Result<pg_sys::Oid, ShredError> {
    Ok(located(name, None)?.0)
}

/// Whether the key store is a set of Citus reference tables (`shred.distribute_key_store()`):
/// its writes then reach other nodes. One query of Citus's catalog per transaction at most,
/// none without Citus.
pub fn distributed() -> Result<bool, ShredError> {
    thread_local! {
        /// (transaction, its answer).
        static KNOWN: Cell<(pg_sys::LocalTransactionId, bool)> = const { Cell::new((0, false)) };
    }
    if !crate::pg::citus::installed() {
        return Ok(false);
    }
    let xact = crate::pg::compat::local_transaction_id();
    let (at, answer) = KNOWN.with(|k| k.get());
    if at == xact && xact != 0 {
        return Ok(answer);
    }
    let answer = crate::pg::citus::reference_shard(relation(c"subject_key")?, c"subject_key")?.is_some();
    KNOWN.with(|k| k.set((xact, answer)));
    Ok(answer)
}

/// [`rows_of`] for table `table`, and the relation of its index `index` (when given) on the
/// same node: the index itself, or its placement (named, as Citus does, with the shard id
/// appended).
fn located(table: &CStr, index: Option<&CStr>) -> Result<(pg_sys::Oid, pg_sys::Oid), ShredError> {
    let logical = relation(table)?;
    let shard = crate::pg::citus::reference_shard(logical, table)?;
    let place = |name: &CStr| -> Result<pg_sys::Oid, ShredError> {
        let Some(shard) = shard else { return relation(name) };
        let placed = std::ffi::CString::new(format!("{}_{shard}", name.to_string_lossy()))
            .map_err(|_| ShredError::Internal("a relation name with a NUL byte"))?;
        relation(&placed).map_err(|_| ShredError::NoPlacement(table.to_string_lossy().into_owned()))
    };
    let rows = if shard.is_some() { place(table)? } else { logical };
    let index = match index {
        Some(index) => place(index)?,
        None => pg_sys::InvalidOid,
    };
    Ok((rows, index))
}

/// A table and the unique index a [`Key`] is searched by, resolved once.
#[derive(Clone, Copy)]
struct Target {
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    /// Collation of the index's key column (text keys), else InvalidOid.
    collation: pg_sys::Oid,
}

/// Targets of the four kinds of [`Key`], by [`Key::slot`].
const NO_TARGETS: [Option<Target>; 4] = [None; 4];

thread_local! {
    static TARGETS: Cell<[Option<Target>; 4]> = const { Cell::new(NO_TARGETS) };
}

/// Forget the resolved targets when `relid` is one of them (or is InvalidOid: everything may
/// have changed). Called from the key store's relcache callback.
pub fn forget(relid: pg_sys::Oid) {
    let targets = TARGETS.with(|t| t.get());
    let hit = relid == pg_sys::InvalidOid
        || targets.iter().flatten().any(|t| t.table == relid || t.index == relid);
    if hit {
        TARGETS.with(|t| t.set(NO_TARGETS));
    }
}

impl Key<'_> {
    fn slot(&self) -> usize {
        match self {
            Key::Id(_) => 0,
            Key::Subject(..) => 1,
            Key::Version(_) => 2,
            Key::Erasure(_) => 3,
        }
    }
}

/// The table and index of `key`, resolved on first use.
fn target(key: &Key<'_>, table: &CStr, index: &CStr, text: bool) -> Result<Target, ShredError> {
    if let Some(t) = TARGETS.with(|t| t.get())[key.slot()] {
        return Ok(t);
    }
    let (table, index) = located(table, Some(index))?;
    // SAFETY: inside a transaction; `index` is the index of that name.
    let collation = if text { unsafe { index_collation(index) } } else { pg_sys::InvalidOid };
    let t = Target { table, index, collation };
    TARGETS.with(|cell| {
        let mut all = cell.get();
        all[key.slot()] = Some(t);
        cell.set(all);
    });
    Ok(t)
}

/// The collation of the first column of index `indexid`.
///
/// # Safety
/// Inside a transaction; `indexid` is an index.
unsafe fn index_collation(indexid: pg_sys::Oid) -> pg_sys::Oid {
    unsafe {
        let irel = pg_sys::index_open(indexid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let collation = *(*irel).rd_indcollation;
        pg_sys::index_close(irel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        collation
    }
}

/// Fetch the row matching `key` (at most one: every key is unique) and copy out `columns`
/// (1-based column numbers of integer, timestamptz (as microseconds), text or bytea columns;
/// a number beyond the table's columns reads as NULL).
pub fn fetch(key: Key<'_>, columns: &[i16]) -> Result<Option<Vec<Value>>, ShredError> {
    Ok(fetch_row(key, columns)?.map(|(values, _)| values))
}

/// Whether a row matching `key` exists, and if so whether a committed transaction wrote it
/// (`Some(true)`), rather than the current one, whose rows a rollback can still take away.
pub fn committed(key: Key<'_>) -> Result<Option<bool>, ShredError> {
    Ok(fetch_row(key, &[])?.map(|(_, mine)| !mine))
}

/// [`fetch`], and whether the current transaction inserted the row.
fn fetch_row(key: Key<'_>, columns: &[i16]) -> Result<Option<(Vec<Value>, bool)>, ShredError> {
    // Every key is the first column of its index (a subject's purpose, the second).
    let (table, index, proc_, text) = match key {
        Key::Id(_) => (c"subject_key", c"subject_key_pkey", pg_sys::F_INT8EQ, false),
        Key::Subject(..) => (c"subject_key", c"subject_key_subject_key", pg_sys::F_TEXTEQ, true),
        Key::Version(_) => (c"root_key_version", c"root_key_version_pkey", pg_sys::F_INT4EQ, false),
        Key::Erasure(_) => (c"erasure_log", c"erasure_log_pkey", pg_sys::F_INT8EQ, false),
    };
    let target = target(&key, table, index, text)?;
    let (datum, purpose) = match key {
        Key::Id(id) | Key::Erasure(id) => (pg_sys::Datum::from(id), None),
        Key::Version(v) => (pg_sys::Datum::from(v), None),
        // SAFETY: a palloc'd text copy of the subject, alive for this call.
        Key::Subject(s, p) => unsafe {
            (pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), s.len() as i32)), Some(p))
        },
    };
    // SAFETY: standard index scan protocol; every resource acquired here (locks included) is
    // released below, or by transaction abort cleanup if PostgreSQL raises an ERROR in between.
    unsafe {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(target.table, lock);
        let irel = pg_sys::index_open(target.index, lock);
        // Resolved apart, the two OIDs could come from before and after a concurrent
        // DROP/CREATE EXTENSION: never scan one table's index for another table's rows.
        if (*(*irel).rd_index).indrelid != target.table {
            pg_sys::index_close(irel, lock);
            pg_sys::table_close(rel, lock);
            forget(pg_sys::InvalidOid);
            return Err(ShredError::KeyStore("the key store changed during the lookup; retry".into()));
        }
        // A subject's DEKs: the index is (subject, purpose_id) from 0.6.0 on; before it, it is
        // (subject) and the only DEK is the default one (purpose 0).
        let keys = match purpose {
            Some(_) if (*(*irel).rd_index).indnkeyatts >= 2 => 2,
            Some(0) | None => 1,
            Some(_) => {
                pg_sys::index_close(irel, lock);
                pg_sys::table_close(rel, lock);
                return Ok(None);
            }
        };
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let mut skeys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
        // A text key compares under the index's own collation ("C" from 0.4.0 on, the
        // database's default before), or the search would not follow the index's order.
        pg_sys::ScanKeyEntryInitialize(
            &mut skeys[0],
            0,
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::InvalidOid,
            target.collation,
            pg_sys::Oid::from(proc_),
            datum,
        );
        if keys == 2 {
            pg_sys::ScanKeyEntryInitialize(
                &mut skeys[1],
                0,
                2,
                pg_sys::BTEqualStrategyNumber as u16,
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::Oid::from(pg_sys::F_INT4EQ),
                pg_sys::Datum::from(purpose.unwrap_or(0)),
            );
        }
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let scan = crate::pg::compat::index_beginscan(rel, irel, snapshot, keys, 0);
        pg_sys::index_rescan(scan, skeys.as_mut_ptr(), keys, std::ptr::null_mut(), 0);
        let found = pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot);
        let result = if !found {
            None
        } else {
            let mut should_free = false;
            let tuple = pg_sys::ExecFetchSlotHeapTuple(slot, false, &mut should_free);
            let mine = pg_sys::TransactionIdIsCurrentTransactionId((*(*tuple).t_data).t_choice.t_heap.t_xmin);
            let desc = (*rel).rd_att;
            let natts = (*desc).natts as usize;
            pg_sys::slot_getsomeattrs_int(slot, natts as i32);
            let values = std::slice::from_raw_parts((*slot).tts_values, natts);
            let nulls = std::slice::from_raw_parts((*slot).tts_isnull, natts);
            let mut out = Vec::with_capacity(columns.len());
            for &c in columns {
                let i = (c - 1) as usize;
                if i >= natts {
                    out.push(Value::Null);
                    continue;
                }
                let typid = crate::pg::compat::attribute_type(desc, i);
                out.push(if nulls[i] {
                    Value::Null
                } else if typid == pg_sys::INT8OID || typid == pg_sys::TIMESTAMPTZOID {
                    Value::Int(i64::from_datum(values[i], false).unwrap_or_default())
                } else if typid == pg_sys::INT4OID {
                    Value::Int(i32::from_datum(values[i], false).unwrap_or_default() as i64)
                } else {
                    // text or bytea: detoasted and copied into Rust memory
                    Value::Bytes(Vec::<u8>::from_datum(values[i], false).unwrap_or_default())
                });
            }
            if should_free {
                pg_sys::heap_freetuple(tuple);
            }
            Some((out, mine))
        };
        pg_sys::index_endscan(scan);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::index_close(irel, lock);
        pg_sys::table_close(rel, lock);
        Ok(result)
    }
}

/// Whether the key store holds purpose DEKs: `shred.subject_key.purpose_id` exists (0.6.0 on).
/// A syscache lookup, for the paths that create or delete DEKs (never per cached use).
pub fn purposes_installed() -> Result<bool, ShredError> {
    let table = relation(c"subject_key")?;
    // SAFETY: syscache lookup inside a transaction; InvalidAttrNumber when missing.
    Ok(unsafe { pg_sys::get_attnum(table, c"purpose_id".as_ptr()) } != pg_sys::InvalidAttrNumber as i16)
}

/// Key ids of erasure records written by committed transactions (the latest snapshot's view of
/// `shred.erasure_log`, without the current transaction's own records, which a rollback can
/// still take away), at most `limit` of them: one sequential scan.
pub fn committed_erasures(limit: usize) -> Result<Vec<i64>, ShredError> {
    let relid = rows_of(c"erasure_log")?;
    let mut ids = Vec::new();
    // SAFETY: standard heap scan protocol; released below, or by abort cleanup on ERROR.
    unsafe {
        let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let scan = pg_sys::heap_beginscan(rel, snapshot, 0, std::ptr::null_mut(), std::ptr::null_mut(), pg_sys::ScanOptions::SO_TYPE_SEQSCAN | pg_sys::ScanOptions::SO_ALLOW_STRAT | pg_sys::ScanOptions::SO_ALLOW_PAGEMODE);
        let desc = (*rel).rd_att;
        while ids.len() < limit {
            pgrx::check_for_interrupts!();
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            if pg_sys::TransactionIdIsCurrentTransactionId((*(*tuple).t_data).t_choice.t_heap.t_xmin) {
                continue;
            }
            let mut isnull = false;
            let d = pg_sys::heap_getattr(tuple, col::KEY_ID as i32, desc, &mut isnull);
            if !isnull {
                ids.push(i64::from_datum(d, false).unwrap_or_default());
            }
        }
        pg_sys::heap_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    Ok(ids)
}
