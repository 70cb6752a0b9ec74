//! PostgreSQL glue shared by the key store and the features above it: conversions between the
//! database encoding and UTF-8 ([`encoding`]) and calls of a type's input function that never
//! let the input reach an error message ([`io`]), and steps run in a subtransaction that may
//! fail without failing the statement ([`subxact`]), what differs between PostgreSQL majors
//! ([`compat`]), and what a backend can tell of Citus ([`citus`]). Nothing here reads
//! pg_shred's tables.

pub mod citus;
pub mod compat;
pub mod encoding;
pub mod io;
pub mod subxact;
