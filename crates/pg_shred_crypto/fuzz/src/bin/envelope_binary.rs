//! AFL++ target `envelope_binary`: runs `pg_shred_crypto_fuzz::envelope_binary::check` on each input; what it asserts is
//! in src/envelope_binary.rs.

pg_shred_crypto_fuzz::target!(pg_shred_crypto_fuzz::envelope_binary::check);
