//! AFL++ target `typed_value`: runs `pg_shred_crypto_fuzz::typed_value::check` on each input; what it asserts is
//! in src/typed_value.rs.

pg_shred_crypto_fuzz::target!(pg_shred_crypto_fuzz::typed_value::check);
