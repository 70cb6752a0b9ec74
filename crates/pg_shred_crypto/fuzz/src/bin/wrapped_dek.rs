//! AFL++ target `wrapped_dek`: runs `pg_shred_crypto_fuzz::wrapped_dek::check` on each input; what it asserts is
//! in src/wrapped_dek.rs.

pg_shred_crypto_fuzz::target!(pg_shred_crypto_fuzz::wrapped_dek::check);
