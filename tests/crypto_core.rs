//! The pure core's unit and known-answer tests, built without pgrx or PostgreSQL:
//! `cargo test --test crypto_core`. (The same tests also run inside `cargo pgrx test`.)

#[allow(dead_code)]
#[path = "../src/crypto/mod.rs"]
mod crypto;
