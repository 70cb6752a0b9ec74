//! pg_shred: pseudonymise personal data with per-subject keys and erase a data subject by
//! destroying their key (crypto-shredding).
//!
//! - [`crypto`]: the pure core (envelope format, AES-256-GCM, HKDF key hierarchy); no pgrx.
//! - `keys`: the root key, the key store (index-scan reads, SPI writes) and the backend's DEK
//!   cache with its commit-time invalidation.
//! - `sql`: the SQL functions and the `shred.sealed` type, declared in `sql/bootstrap.sql`.

use pgrx::prelude::*;

pub mod crypto;
mod error;
mod gucs;
mod keys;
mod sql;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    keys::cache::register_callbacks();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
