//! A small layer over SPI for the key store's writes (and set-based checks): saved plans
//! (prepared once per backend, kept across transactions), bound parameters only, and an explicit
//! choice of snapshot. Single-row reads go through [`super::scan`] instead.
//!
//! `Mode::ReadLatest` runs read-only under the *latest* snapshot, not the transaction's: an
//! erasure committed by another session must take effect at once, even inside an older
//! REPEATABLE READ transaction. Writes run like any SPI write (new command id and snapshot).

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::datum::{FromDatum, IntoDatum};
use pgrx::pg_sys;
use pgrx::spi::Spi;

use crate::error::ShredError;
use crate::pg::citus::PinnedRemoteSettings;

/// Plans are generic from the first execution: each statement is a simple index lookup or
/// write whose best plan does not depend on its parameters, and a custom plan would be planned
/// again on every call (PostgreSQL keeps choosing one whenever its estimate for a known array
/// or value beats the generic estimate, e.g. for `= ANY ($1)`).
const GENERIC_PLAN: i32 = pg_sys::CURSOR_OPT_GENERIC_PLAN as i32;

/// The cursor options of every statement pg_shred prepares: [`GENERIC_PLAN`], but in a
/// database with Citus, which cannot plan a statement over its tables with parameters it does
/// not know (0A000 "could not create distributed plan"): there the choice is left to
/// PostgreSQL (custom plans, for which Citus makes its generic plans look too costly).
fn plan_options() -> i32 {
    if crate::pg::citus::installed() { 0 } else { GENERIC_PLAN }
}

/// A statement prepared on first use and kept for the life of the backend.
pub struct Plan {
    sql: &'static CStr,
    argtypes: &'static [pg_sys::Oid],
    ptr: Cell<pg_sys::SPIPlanPtr>,
}

// A backend runs one thread; pgrx calls into PostgreSQL only from it.
unsafe impl Sync for Plan {}

impl Plan {
    pub const fn new(sql: &'static CStr, argtypes: &'static [pg_sys::Oid]) -> Self {
        Plan { sql, argtypes, ptr: Cell::new(std::ptr::null_mut()) }
    }

    /// The saved plan; must be called while connected to SPI.
    fn get(&self) -> Result<pg_sys::SPIPlanPtr, ShredError> {
        let p = self.ptr.get();
        if !p.is_null() {
            return Ok(p);
        }
        let mut argtypes = self.argtypes.to_vec();
        // SAFETY: connected to SPI; the query text and argument types outlive the call.
        let plan = unsafe {
            pg_sys::SPI_prepare_cursor(self.sql.as_ptr(), argtypes.len() as i32, argtypes.as_mut_ptr(), plan_options())
        };
        if plan.is_null() {
            return Err(ShredError::KeyStore("could not prepare a key store statement".into()));
        }
        // SAFETY: a plan just returned by SPI_prepare.
        if unsafe { pg_sys::SPI_keepplan(plan) } != 0 {
            return Err(ShredError::KeyStore("could not keep a key store statement".into()));
        }
        self.ptr.set(plan);
        Ok(plan)
    }
}

/// How a statement sees the key store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read-only, under a snapshot taken now (sees every committed erasure).
    ReadLatest,
    /// A write (INSERT/UPDATE/DELETE/nextval/LOCK), or a read that locks rows.
    Write,
}

/// One parameter value.
pub enum Arg<'a> {
    Int8(i64),
    Int4(i32),
    Int4Array(&'a [i32]),
    Int8Array(&'a [i64]),
    ByteaArray(&'a [Vec<u8>]),
    /// A `text[]` of values in the database encoding.
    TextArray(&'a [Vec<u8>]),
    Bytes(&'a [u8]),
    /// A datum passed through unchanged (e.g. a function's own `text[]` argument).
    Datum(pg_sys::Datum),
    Bool(bool),
    /// SQL NULL (of the parameter's declared type).
    Null,
}

/// A `text[]` datum (in the current memory context) of `values`.
fn text_array(values: &[Vec<u8>]) -> pg_sys::Datum {
    // SAFETY: each element is a palloc'd text made from a Rust slice; construct_array copies
    // them into one array (text: varlena, 4-byte alignment).
    unsafe {
        let mut elems: Vec<pg_sys::Datum> = values
            .iter()
            .map(|v| pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(v.as_ptr().cast(), v.len() as i32)))
            .collect();
        pg_sys::Datum::from(pg_sys::construct_array(
            elems.as_mut_ptr(),
            elems.len() as i32,
            pg_sys::TEXTOID,
            -1,
            false,
            pg_sys::TYPALIGN_INT as std::ffi::c_char,
        ))
    }
}

/// A row of the result, readable while the SPI connection is open.
pub struct Row {
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
}

impl Row {
    fn datum(&self, col: i32) -> (pg_sys::Datum, bool) {
        let mut isnull = false;
        // SAFETY: tuple and descriptor come from SPI_tuptable of the open connection.
        let d = unsafe { pg_sys::SPI_getbinval(self.tuple, self.tupdesc, col, &mut isnull) };
        (d, isnull)
    }

    pub fn int8(&self, col: i32) -> Option<i64> {
        let (d, isnull) = self.datum(col);
        unsafe { i64::from_datum(d, isnull) }
    }

    pub fn int4(&self, col: i32) -> Option<i32> {
        let (d, isnull) = self.datum(col);
        unsafe { i32::from_datum(d, isnull) }
    }

    pub fn bool(&self, col: i32) -> Option<bool> {
        let (d, isnull) = self.datum(col);
        unsafe { bool::from_datum(d, isnull) }
    }

    pub fn float8(&self, col: i32) -> Option<f64> {
        let (d, isnull) = self.datum(col);
        unsafe { f64::from_datum(d, isnull) }
    }

    /// A text or bytea column's bytes, copied into Rust memory.
    pub fn bytes(&self, col: i32) -> Option<Vec<u8>> {
        let (d, isnull) = self.datum(col);
        unsafe { Vec::<u8>::from_datum(d, isnull) }
    }

}

/// The key store's owner (the owner of `shred.subject_key`, i.e. of the extension's objects).
fn key_store_owner() -> Result<pg_sys::Oid, ShredError> {
    let relid = super::scan::relation(c"subject_key")?;
    // SAFETY: open/close of an existing relation under AccessShareLock to read its owner.
    unsafe {
        let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let owner = (*(*rel).rd_rel).relowner;
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        Ok(owner)
    }
}

/// While alive, statements run with the key store owner's rights, as a SECURITY DEFINER
/// function would, and in a security-restricted operation. Dropped (also while an ERROR
/// unwinds) it restores the caller's identity; PostgreSQL's (sub)transaction abort restores it
/// too.
struct AsOwner {
    user: pg_sys::Oid,
    context: i32,
}

impl AsOwner {
    fn switch() -> Result<Self, ShredError> {
        Ok(Self::switch_to(key_store_owner()?))
    }

    /// Run as `owner` (any role) in a security-restricted operation, as PostgreSQL's own
    /// maintenance does when it runs code on behalf of a table's owner.
    fn switch_to(owner: pg_sys::Oid) -> Self {
        let (mut user, mut context) = (pg_sys::InvalidOid, 0);
        // SAFETY: plain getters/setters of the backend's current user.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            pg_sys::SetUserIdAndSecContext(
                owner,
                context | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32,
            );
        }
        AsOwner { user, context }
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        // SAFETY: restores the values read in switch().
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Run `plan` with `args`, reading at most `limit` rows (0: all) with `read`, which must copy
/// out what it keeps: SPI memory is gone when this returns. The statement runs with the key
/// store owner's rights (EXECUTE on pg_shred's functions is the only privilege a role needs,
/// and no role needs, or should get, privileges on the key tables themselves), in a
/// security-restricted operation with `search_path = pg_catalog, pg_temp`: an operator or
/// function a caller put earlier on its own search_path is never what the statement runs.
///
/// On Citus, the statements it sends to other nodes run there under the same pinned
/// `search_path` ([`PinnedRemoteSettings`]).
///
/// A write is refused ([`ShredError::CitusWorker`], 0A000) on a Citus worker, and in a
/// connection Citus opened to run part of a distributed statement: key store writes start on
/// the coordinator, whose own tables (legal holds, consents, blind-index terms) every erasure
/// and first seal also reads and writes.
pub fn run<R>(
    plan: &Plan,
    args: &[Arg<'_>],
    mode: Mode,
    limit: i64,
    read: impl FnOnce(&[Row]) -> Result<R, ShredError>,
) -> Result<R, ShredError> {
    if mode == Mode::Write && (crate::pg::citus::internal_connection() || crate::pg::citus::on_worker()?) {
        return Err(ShredError::CitusWorker);
    }
    // Before the local settings: it sets the caller's values back after they are closed.
    // Key store statements reach other nodes only once the key store is distributed.
    let _remote = PinnedRemoteSettings::pin(super::scan::distributed()?)?;
    let _settings = LocalSettings::enter(&[(c"search_path", c"pg_catalog, pg_temp")]);
    let _owner = AsOwner::switch()?;
    Spi::connect(|_client| {
        let ptr = plan.get()?;
        let mut datums: Vec<pg_sys::Datum> = Vec::with_capacity(args.len());
        for a in args {
            let d = match a {
                Arg::Int8(v) => v.into_datum(),
                Arg::Int4(v) => v.into_datum(),
                Arg::Int4Array(v) => v.to_vec().into_datum(),
                Arg::Int8Array(v) => v.to_vec().into_datum(),
                Arg::ByteaArray(v) => v.to_vec().into_datum(),
                Arg::TextArray(v) => Some(text_array(v)),
                Arg::Bytes(b) => b.into_datum(),
                Arg::Datum(d) => Some(*d),
                Arg::Bool(v) => v.into_datum(),
                Arg::Null => None,
            };
            datums.push(d.unwrap_or(pg_sys::Datum::from(0usize)));
        }
        let nulls: Vec<std::ffi::c_char> =
            args.iter().map(|a| if matches!(a, Arg::Null) { b'n' } else { b' ' } as std::ffi::c_char).collect();
        // SAFETY: connected to SPI; datums match the plan's argument types; a pushed snapshot
        // is popped below, or by transaction abort cleanup if the statement raises an ERROR.
        let status = unsafe {
            match mode {
                Mode::ReadLatest => {
                    pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot());
                    let s = pg_sys::SPI_execute_plan(ptr, datums.as_mut_ptr(), nulls.as_ptr(), true, limit);
                    pg_sys::PopActiveSnapshot();
                    s
                }
                Mode::Write => {
                    pg_sys::SPI_execute_plan(ptr, datums.as_mut_ptr(), nulls.as_ptr(), false, limit)
                }
            }
        };
        if status < 0 {
            return Err(ShredError::KeyStore(format!("statement failed with SPI status {status}")));
        }
        // SAFETY: SPI_tuptable belongs to the statement just run on this connection.
        let rows: Vec<Row> = unsafe {
            let tt = pg_sys::SPI_tuptable;
            if tt.is_null() {
                Vec::new()
            } else {
                let n = pg_sys::SPI_processed as usize;
                (0..n)
                    .map(|i| Row { tuple: *(*tt).vals.add(i), tupdesc: (*tt).tupdesc })
                    .collect()
            }
        };
        read(&rows)
    })
}

/// Run a one-off statement `sql` (built by the caller from catalog names, every identifier
/// quoted, no parameter) as `role` in a security-restricted operation with `search_path`
/// pinned to `pg_catalog, pg_temp`: what PostgreSQL does for VACUUM, ANALYZE, CREATE INDEX and
/// REFRESH MATERIALIZED VIEW. Used for DDL on a protected table, as its owner, so that the
/// owner's code it may run (index expressions, constraints) never runs with more rights than
/// the owner has. Returns the number of rows processed.
pub fn run_as(role: pg_sys::Oid, sql: &CStr) -> Result<u64, ShredError> {
    let _remote = PinnedRemoteSettings::pin(true)?;
    let _settings = LocalSettings::enter(&[(c"search_path", c"pg_catalog, pg_temp")]);
    let _role = AsOwner::switch_to(role);
    Spi::connect(|_client| {
        // SAFETY: connected to SPI; a statement without parameters.
        let status = unsafe { pg_sys::SPI_execute(sql.as_ptr(), false, 0) };
        if status < 0 {
            return Err(ShredError::KeyStore(format!("statement failed with SPI status {status}")));
        }
        // SAFETY: set by the statement just run on this connection.
        Ok(unsafe { pg_sys::SPI_processed })
    })
}

/// Run `f` as `role` in a security-restricted operation with `search_path` pinned to
/// `pg_catalog, pg_temp` (as [`run_as`]), e.g. several statements over a table as its owner.
pub fn with_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let _remote = PinnedRemoteSettings::pin(true).unwrap_or_else(|e| e.report());
    let _settings = LocalSettings::enter(&[(c"search_path", c"pg_catalog, pg_temp")]);
    let _role = AsOwner::switch_to(role);
    f()
}

/// Run `f` with `search_path` pinned to `pg_catalog, pg_temp`, as the current role: a saved
/// plan is parsed again under the search_path in force when PostgreSQL replans it, so a plan
/// prepared under the pinned path keeps resolving every name it does not qualify there.
pub fn with_search_path<R>(f: impl FnOnce() -> R) -> R {
    let _settings = LocalSettings::enter(&[(c"search_path", c"pg_catalog, pg_temp")]);
    f()
}

/// A statement of one protected table, prepared once per backend under a pinned
/// `search_path` and run with the **caller's** rights (the view's trigger writes the table as
/// the role that wrote the view, as PostgreSQL's own view updates do). Freed on drop.
pub struct TablePlan(pg_sys::SPIPlanPtr);

impl TablePlan {
    /// Prepare `sql` with parameters of `argtypes`; names are resolved under
    /// `search_path = <search_path>` now and whenever PostgreSQL replans it.
    pub fn prepare(sql: &CStr, argtypes: &[pg_sys::Oid], search_path: &CStr) -> Result<Self, ShredError> {
        let _settings = LocalSettings::enter(&[(c"search_path", search_path)]);
        Spi::connect(|_client| {
            let mut types = argtypes.to_vec();
            // SAFETY: connected to SPI; text and types outlive the call.
            let plan = unsafe { pg_sys::SPI_prepare_cursor(sql.as_ptr(), types.len() as i32, types.as_mut_ptr(), plan_options()) };
            // SAFETY: a plan just returned by SPI_prepare (or NULL, checked first).
            if plan.is_null() || unsafe { pg_sys::SPI_keepplan(plan) } != 0 {
                return Err(ShredError::KeyStore("could not prepare a protected table's statement".into()));
            }
            Ok(TablePlan(plan))
        })
    }

    /// Run the plan with `values` (`nulls[i]` true for NULL) and return how many rows it
    /// processed.
    pub fn execute(&self, values: &mut [pg_sys::Datum], nulls: &[bool]) -> Result<u64, ShredError> {
        self.run(values, nulls, |_, processed| Ok(processed))
    }

    /// Run the plan and give its rows to `read`, which copies out what it keeps.
    pub fn query<R>(
        &self,
        values: &mut [pg_sys::Datum],
        nulls: &[bool],
        read: impl FnOnce(&[Row]) -> Result<R, ShredError>,
    ) -> Result<R, ShredError> {
        self.run(values, nulls, |rows, _| read(rows))
    }

    /// Run the plan (a query) through a cursor and give its rows to `read`, `batch` rows (at
    /// least 1) at a time: memory holds one batch, whatever the table's size. Each batch is
    /// freed once `read` returns, so `read` copies out what it keeps; it may run other
    /// statements. The cursor reads under the snapshot taken when it opens (a new one in READ
    /// COMMITTED): rows that `read` writes are not met again.
    pub fn scan(
        &self,
        values: &mut [pg_sys::Datum],
        nulls: &[bool],
        batch: i64,
        mut read: impl FnMut(&[Row]) -> Result<(), ShredError>,
    ) -> Result<(), ShredError> {
        let flags: Vec<std::ffi::c_char> = nulls.iter().map(|n| if *n { b'n' } else { b' ' } as std::ffi::c_char).collect();
        Spi::connect(|_client| {
            // SAFETY: connected to SPI; values match the plan's parameter types.
            let portal = unsafe { pg_sys::SPI_cursor_open(std::ptr::null(), self.0, values.as_mut_ptr(), flags.as_ptr(), false) };
            if portal.is_null() {
                return Err(ShredError::KeyStore("could not open a cursor over a protected table".into()));
            }
            let result = loop {
                // SAFETY: a portal opened above on this connection; the batch's tuple table is
                // kept aside before `read` runs statements of its own, and freed after.
                let (table, n) = unsafe {
                    pg_sys::SPI_cursor_fetch(portal, true, batch.max(1) as std::ffi::c_long);
                    (pg_sys::SPI_tuptable, pg_sys::SPI_processed as usize)
                };
                if table.is_null() || n == 0 {
                    break Ok(());
                }
                // SAFETY: the rows of the tuple table just fetched.
                let rows: Vec<Row> = (0..n).map(|i| unsafe { Row { tuple: *(*table).vals.add(i), tupdesc: (*table).tupdesc } }).collect();
                let done = read(&rows);
                drop(rows);
                // SAFETY: the tuple table of this connection's fetch, no longer referenced.
                unsafe { pg_sys::SPI_freetuptable(table) };
                if done.is_err() {
                    break done;
                }
            };
            // SAFETY: the portal opened above (an ERROR's abort closes it otherwise).
            unsafe { pg_sys::SPI_cursor_close(portal) };
            result
        })
    }

    /// Run the plan; `read` gets its rows (none without RETURNING) and how many it processed.
    fn run<R>(
        &self,
        values: &mut [pg_sys::Datum],
        nulls: &[bool],
        read: impl FnOnce(&[Row], u64) -> Result<R, ShredError>,
    ) -> Result<R, ShredError> {
        let flags: Vec<std::ffi::c_char> = nulls.iter().map(|n| if *n { b'n' } else { b' ' } as std::ffi::c_char).collect();
        Spi::connect(|_client| {
            // SAFETY: connected to SPI; values match the plan's parameter types.
            let status = unsafe { pg_sys::SPI_execute_plan(self.0, values.as_mut_ptr(), flags.as_ptr(), false, 0) };
            if status < 0 {
                return Err(ShredError::KeyStore(format!("a protected table's statement failed with SPI status {status}")));
            }
            // SAFETY: SPI_tuptable and SPI_processed belong to the statement just run on this
            // connection.
            let (rows, processed): (Vec<Row>, u64) = unsafe {
                let tt = pg_sys::SPI_tuptable;
                let n = pg_sys::SPI_processed;
                let rows = if tt.is_null() {
                    Vec::new()
                } else {
                    (0..n as usize).map(|i| Row { tuple: *(*tt).vals.add(i), tupdesc: (*tt).tupdesc }).collect()
                };
                (rows, n)
            };
            read(&rows, processed)
        })
    }
}

impl Drop for TablePlan {
    fn drop(&mut self) {
        // SAFETY: a kept plan owned by this value alone.
        unsafe { pg_sys::SPI_freeplan(self.0) };
    }
}

/// Settings changed for the duration of one statement in a new GUC nest level, as PostgreSQL
/// does around maintenance it runs for a table's owner: dropped, it restores every setting
/// changed at that level, including any a trigger or policy changed (after an ERROR, the
/// transaction's abort does).
struct LocalSettings {
    level: i32,
}

impl LocalSettings {
    fn enter(settings: &[(&CStr, &CStr)]) -> Self {
        // SAFETY: a new nest level, closed in drop; set_config_option with PGC_SUSET applies
        // these settings whatever the current role may set (as PostgreSQL's own code does).
        unsafe {
            let level = pg_sys::NewGUCNestLevel();
            for (name, value) in settings {
                pg_sys::set_config_option(
                    name.as_ptr(),
                    value.as_ptr(),
                    pg_sys::GucContext::PGC_SUSET,
                    pg_sys::GucSource::PGC_S_SESSION,
                    pg_sys::GucAction::GUC_ACTION_SAVE,
                    true,
                    0,
                    false,
                );
            }
            LocalSettings { level }
        }
    }
}

impl Drop for LocalSettings {
    fn drop(&mut self) {
        // While an ERROR unwinds, the transaction's abort closes the level instead.
        if !std::thread::panicking() {
            // SAFETY: closes the level opened in enter(), restoring the previous values.
            unsafe { pg_sys::AtEOXact_GUC(false, self.level) };
        }
    }
}
