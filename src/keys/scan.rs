//! Reads of the key store without SPI or the planner: one index scan (`systable_beginscan`,
//! as PostgreSQL's own catalog lookups do) under the *latest* snapshot.
//!
//! - A committed erasure takes effect at once, even inside an older REPEATABLE READ
//!   transaction: the scan does not use the transaction's snapshot.
//! - No cached plan can degrade into a sequential scan when the table grew after statistics
//!   were taken (bulk first seals in one transaction), and no executor start-up is paid.
//! - Table privileges are not checked here: EXECUTE on the SQL function is the gate.
//!
//! Must not run in parallel mode (GetLatestSnapshot is not allowed there), which the functions'
//! PARALLEL UNSAFE label guarantees.

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
    pub const VERSION: i16 = 1;
    pub const SALT: i16 = 2;
    pub const KEY_CHECK: i16 = 3;
    /// Added in 0.2.0: absent (read as NULL) until `ALTER EXTENSION pg_shred UPDATE`.
    pub const RETIRED_AT: i16 = 5;
}

/// What to look for.
pub enum Key<'a> {
    /// `shred.subject_key.key_id` (primary key).
    Id(i64),
    /// `shred.subject_key.subject` (unique).
    Subject(&'a [u8]),
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
    let (table, index, attno, proc_, datum) = match key {
        Key::Id(id) => (c"subject_key", c"subject_key_pkey", col::KEY_ID, pg_sys::F_INT8EQ, pg_sys::Datum::from(id)),
        Key::Subject(s) => {
            // SAFETY: a palloc'd text copy of the subject, alive for this call.
            let d = unsafe { pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), s.len() as i32)) };
            (c"subject_key", c"subject_key_subject_key", col::SUBJECT, pg_sys::F_TEXTEQ, d)
        }
        Key::Version(v) => (c"root_key_version", c"root_key_version_pkey", col::VERSION, pg_sys::F_INT4EQ, pg_sys::Datum::from(v)),
        Key::Erasure(id) => (c"erasure_log", c"erasure_log_pkey", col::KEY_ID, pg_sys::F_INT8EQ, pg_sys::Datum::from(id)),
    };
    let relid = relation(table)?;
    let indexid = relation(index)?;
    // SAFETY: standard relation/index scan protocol; every resource acquired here is released
    // below, or by transaction abort cleanup if PostgreSQL raises an ERROR in between.
    unsafe {
        // A text key compares under the index's own collation ("C" from 0.4.0 on, the
        // database's default before), or the search would not follow the index's order.
        let collation = if proc_ == pg_sys::F_TEXTEQ { index_collation(indexid) } else { pg_sys::InvalidOid };
        let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let mut skey: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyEntryInitialize(
            &mut skey,
            0,
            attno,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::InvalidOid,
            collation,
            pg_sys::Oid::from(proc_),
            datum,
        );
        let scan = pg_sys::systable_beginscan(rel, indexid, true, snapshot, 1, &mut skey);
        let tuple = pg_sys::systable_getnext(scan);
        let result = if tuple.is_null() {
            None
        } else {
            let mine = pg_sys::TransactionIdIsCurrentTransactionId((*(*tuple).t_data).t_choice.t_heap.t_xmin);
            let desc = (*rel).rd_att;
            let natts = (*desc).natts as usize;
            let mut values = vec![pg_sys::Datum::from(0usize); natts];
            let mut nulls = vec![false; natts];
            pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            let mut out = Vec::with_capacity(columns.len());
            for &c in columns {
                let i = (c - 1) as usize;
                if i >= natts {
                    out.push(Value::Null);
                    continue;
                }
                let typid = (*(*desc).attrs.as_ptr().add(i)).atttypid;
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
            Some((out, mine))
        };
        pg_sys::systable_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        Ok(result)
    }
}
