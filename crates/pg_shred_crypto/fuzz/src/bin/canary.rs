//! AFL++ target `canary`: runs `pg_shred_crypto_fuzz::canary::check` on each input; what it asserts is
//! in src/canary.rs.

pg_shred_crypto_fuzz::target!(pg_shred_crypto_fuzz::canary::check);
