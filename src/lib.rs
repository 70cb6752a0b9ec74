//! pg_shred: pseudonymise personal data with per-subject keys and erase a data subject by
//! destroying their key (crypto-shredding).
//!
//! - [`crypto`]: the pure core (envelope format, AES-256-GCM, HKDF key hierarchy), the
//!   `pg_shred_crypto` crate of this workspace (`crates/pg_shred_crypto`); no pgrx.
//! - `keys`: the root key, the key store (index-scan reads, SPI writes) and the backend's DEK
//!   cache with its commit-time invalidation.
//! - `purposes`: purposes (one DEK per subject and purpose) and the consent ledger.
//! - `erasure`: every erasure (legal holds checked, consents ended), and proving one (signed
//!   erasure receipts, the residue check).
//! - `retention`: retention that erases by itself (batches, end dates, the background worker).
//! - `protect`: protected tables.
//! - `sql`: the SQL functions and the `shred.sealed` type, declared in `sql/pg_shred--0.1.0.sql`
//!   and the upgrade scripts after it.

use pgrx::prelude::*;

pub use pg_shred_crypto as crypto;
mod error;
mod gucs;
mod keys;
mod pg;
mod protect;
mod purposes;
mod erasure;
mod retention;
mod sql;

::pgrx::pg_module_magic!(name, version);

// A fresh install runs the 0.1.0 script, then every upgrade script in order: a fresh install
// and an upgraded one end with the same objects. Released scripts are never edited.
pgrx::extension_sql_file!("../sql/pg_shred--0.1.0.sql", name = "v0_1_0", bootstrap);
pgrx::extension_sql_file!("../sql/pg_shred--0.1.0--0.2.0.sql", name = "v0_2_0", requires = ["v0_1_0"]);
// 0.3.0: the protected-table layer rebuilt (see sql/README.md for how the upgrade script is made).
pgrx::extension_sql_file!("../sql/upgrade/0.2.0--0.3.0-before.sql", name = "v0_3_0_before", requires = ["v0_2_0"]);
pgrx::extension_sql_file!("../sql/protect.sql", name = "protect", requires = ["v0_3_0_before"]);
pgrx::extension_sql_file!("../sql/upgrade/0.2.0--0.3.0-after.sql", name = "v0_3_0_after", requires = ["protect"]);
// 0.4.0: the key store (set-based key creation, unknown keys told from erased ones).
pgrx::extension_sql_file!("../sql/key_store.sql", name = "key_store", requires = ["v0_3_0_after"]);
// 0.5.0: PostgreSQL 16, 17 and 18 beside 15.
pgrx::extension_sql_file!("../sql/postgres_majors.sql", name = "postgres_majors", requires = ["key_store"]);
// 0.6.0: purposes (one DEK per subject and purpose), consent with double opt-in, protected
// columns kept for a purpose, and erasure receipts.
pgrx::extension_sql_file!("../sql/purposes.sql", name = "purposes", requires = ["postgres_majors"]);
pgrx::extension_sql_file!("../sql/consent.sql", name = "consent", requires = ["purposes"]);
pgrx::extension_sql_file!("../sql/protect_purposes.sql", name = "protect_purposes", requires = ["consent"]);
// 0.6.0: signed erasure receipts and the residue check; retention and legal holds.
pgrx::extension_sql_file!("../sql/receipts.sql", name = "receipts", requires = ["protect_purposes"]);
pgrx::extension_sql_file!("../sql/retention.sql", name = "retention", requires = ["receipts"]);
// 0.7.0: the key store on a Citus cluster (shred.distribute_key_store).
pgrx::extension_sql_file!("../sql/citus.sql", name = "citus", requires = ["retention"], finalize);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: plain read of a postmaster flag.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    gucs::set_preloaded(preloading);
    gucs::init();
    if preloading {
        retention::worker::register();
    }
    keys::cache::register_callbacks();
    keys::deferred::register_callbacks();
    protect::register_callbacks();
    protect::replica::install();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pg_shred'"]
    }
}
