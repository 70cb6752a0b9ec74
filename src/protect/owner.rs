//! Who may change a protected table's protection, and running DDL as the table's owner.
//!
//! The public functions (`shred.protect`, `unprotect`, `set_tombstone`, `set_purpose`,
//! `refresh_view`) run with the caller's rights and first call `shred._authorize(tbl)`, which
//! checks that the caller has the privileges of the table's owner (what ALTER TABLE itself
//! demands) and leaves a one-shot authorisation for that table in this backend. Their
//! implementations (`shred._protect` and the like, SECURITY DEFINER, owned by the extension's
//! owner, so that they may write the catalog) begin with `shred._authorized(tbl)`, which
//! consumes it. A role that calls an implementation directly can thus only ever act on a table
//! whose owner's privileges it has, and the implementation validates every argument as when
//! called through the public function.

use std::cell::Cell;
use std::ffi::CString;

use pgrx::prelude::*;

use crate::error::{OrReport, ShredError};
use crate::keys::spi;

thread_local! {
    /// The table the last `shred._authorize` call authorised, and in which transaction, until
    /// consumed.
    static AUTHORIZED: Cell<(pg_sys::Oid, pg_sys::LocalTransactionId)> = const { Cell::new((pg_sys::InvalidOid, 0)) };
}

/// This backend's current local transaction id.
fn transaction() -> pg_sys::LocalTransactionId {
    crate::pg::compat::local_transaction_id()
}

/// The owner of relation `rel`, or an error when it does not exist.
pub fn owner_of(rel: pg_sys::Oid) -> Result<pg_sys::Oid, ShredError> {
    // SAFETY: a syscache lookup of pg_class; the tuple is released before returning.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, pg_sys::Datum::from(rel));
        if tuple.is_null() {
            return Err(ShredError::NoSuchRelation);
        }
        let form = pg_sys::GETSTRUCT(tuple).cast::<pg_sys::FormData_pg_class>();
        let owner = (*form).relowner;
        pg_sys::ReleaseSysCache(tuple);
        Ok(owner)
    }
}

/// Whether the current role has the privileges of `role` (is it, or inherits from it).
pub fn acts_as(role: pg_sys::Oid) -> bool {
    // SAFETY: plain catalog check of the current user's role membership.
    unsafe { pg_sys::has_privs_of_role(pg_sys::GetUserId(), role) }
}

/// `shred._authorize(tbl regclass) -> regclass`: refuse (42501) unless the current role has
/// the privileges of `tbl`'s owner; otherwise authorise one implementation call for `tbl`.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _authorize(tbl: pg_sys::Oid) -> pg_sys::Oid {
    let owner = owner_of(tbl).or_report();
    if !acts_as(owner) {
        ShredError::NotOwner("must be owner of the table (or have its owner's privileges) to change its protection".into())
            .report();
    }
    AUTHORIZED.with(|a| a.set((tbl, transaction())));
    tbl
}

/// `shred._authorized(tbl regclass)`: consume the authorisation left by `shred._authorize`
/// for `tbl` in this transaction; refuse (42501) when there is none.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _authorized(tbl: pg_sys::Oid) {
    if AUTHORIZED.with(|a| a.replace((pg_sys::InvalidOid, 0))) != (tbl, transaction()) {
        ShredError::NotOwner("call shred.protect, shred.unprotect, shred.set_tombstone, shred.set_purpose or shred.refresh_view".into())
            .report();
    }
}

/// `shred._as_table_owner(tbl regclass, statement text)`: run one statement as `tbl`'s owner,
/// security-restricted, with `search_path = pg_catalog, pg_temp`. Executable only by the
/// extension's owner (the implementations above), never granted.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _as_table_owner(tbl: pg_sys::Oid, statement: &str) {
    let owner = owner_of(tbl).or_report();
    let sql = CString::new(statement).unwrap_or_else(|_| ShredError::Internal("a statement with a zero byte").report());
    spi::run_as(owner, &sql).or_report();
}
