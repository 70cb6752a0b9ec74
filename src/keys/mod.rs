//! Key management inside PostgreSQL: the root key (loaded from outside the database), the
//! key store over SPI, and the SPI layer they share.

pub mod cache;
pub mod root;
pub mod scan;
pub mod spi;
pub mod store;
