//! Protected tables: columns of an existing table sealed in place for the data subject named by
//! one of its columns, a plaintext view over it, blind-index lookups, and the subject-rights
//! functions (export, footprint, check). The SQL side is `sql/protect.sql`.
//!
//! Whose rights (the invariant every part keeps):
//! - The catalog (`shred.protected_table`, `shred.protected_column`) is written only by the
//!   extension's functions, and only for a table whose owner's privileges the caller has
//!   ([`owner`]); no role has INSERT, UPDATE or DELETE on it.
//! - DDL on a protected table (sealing in place, the view, indexes) runs as the table's owner in
//!   a security-restricted operation with a pinned `search_path` ([`owner`]), as PostgreSQL runs
//!   VACUUM or REFRESH MATERIALIZED VIEW, whoever called `protect()`.
//! - Reads for another role (export, footprint, check) run only built-in code and pg_shred's
//!   own over the table; a table whose reading could run its owner's code (row-level security)
//!   is refused by `protect()` and skipped by those functions.
//! - An erasure touches pg_shred's own tables only (see `crate::keys::terms`).
//! - Writes through the view run as the writing role, as PostgreSQL's own view updates do.
//! - A value opens in a row only under the DEK of that row's data subject ([`row`]).
//! - A column kept for a purpose is sealed, and searched, under each subject's DEK of that
//!   purpose ([`write`], [`reseal`]): erasing the purpose erases the column for the subject.

pub mod owner;
pub mod plans;
pub mod replica;
pub mod reseal;
pub mod rights;
pub mod row;
pub mod tokens;
pub mod write;

use pgrx::{pg_guard, pg_sys};

#[pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    write::invalidate(relid);
    rights::invalidate(relid);
}

/// A text column of a catalog query (a name or SQL fragment pg_shred built), as a `String`.
pub(crate) fn catalog_text(bytes: Option<Vec<u8>>) -> Result<String, crate::error::ShredError> {
    use crate::error::ShredError;
    String::from_utf8(bytes.ok_or(ShredError::Internal("a protected table's catalog row is incomplete"))?)
        .map_err(|_| ShredError::Internal("a catalog name is not UTF-8"))
}

/// Register the invalidation callback of the statement caches; called once from `_PG_init`.
pub fn register_callbacks() {
    // SAFETY: called once per backend at library load; the callback lives as long as the library.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0usize)) };
}
