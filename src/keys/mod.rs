//! Key management inside PostgreSQL: the root key (loaded from outside the database), the
//! key store (reads by index scan in `scan`, writes over SPI in `spi`), and the backend's DEK
//! cache.

pub mod cache;
pub mod command;
pub mod deferred;
pub mod root;
pub mod scan;
pub mod spi;
pub mod store;
pub mod subject;
pub mod terms;
