//! AFL++ target `envelope_open`: runs `pg_shred_crypto_fuzz::envelope_open::check` on each input; what it asserts is
//! in src/envelope_open.rs.

pg_shred_crypto_fuzz::target!(pg_shred_crypto_fuzz::envelope_open::check);
