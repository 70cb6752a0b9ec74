//! PostgreSQL glue shared by the key store and the features above it: conversions between the
//! database encoding and UTF-8 ([`encoding`]) and calls of a type's input function that never
//! let the input reach an error message ([`io`]). Nothing here reads pg_shred's tables.

pub mod encoding;
pub mod io;
