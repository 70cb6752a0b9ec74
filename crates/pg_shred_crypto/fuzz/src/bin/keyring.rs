//! AFL++ target `keyring`: runs `pg_shred_crypto_fuzz::keyring::check` on each input; what it asserts is
//! in src/keyring.rs.

pg_shred_crypto_fuzz::target!(pg_shred_crypto_fuzz::keyring::check);
