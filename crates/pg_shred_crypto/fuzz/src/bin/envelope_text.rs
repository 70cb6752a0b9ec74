//! AFL++ target `envelope_text`: runs `pg_shred_crypto_fuzz::envelope_text::check` on each input; what it asserts is
//! in src/envelope_text.rs.

pg_shred_crypto_fuzz::target!(pg_shred_crypto_fuzz::envelope_text::check);
