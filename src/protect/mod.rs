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

pub mod owner;
pub mod replica;
pub mod row;
pub mod tokens;
pub mod write;
