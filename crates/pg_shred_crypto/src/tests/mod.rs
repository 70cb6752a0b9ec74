//! Tests of the pure core (`cargo test -p pg_shred_crypto`): unit tests per module and
//! known-answer vectors.

mod audit;
mod blind;
mod consent;
mod envelope;
mod kat;
mod keys;
mod pseudonym;
mod receipt;
mod typed;
