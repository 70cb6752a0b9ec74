//! What pg_shred needs to know about Citus, the distributed PostgreSQL engine: nothing of
//! Citus is linked or called, only what a backend can see of its connection.
//!
//! pg_shred's key store is the coordinator's (see docs/citus.md): a DEK written on a worker
//! would be unknown to the coordinator, and the coordinator's erasures would not reach it.

use std::ffi::CStr;

use pgrx::pg_sys;

/// Whether this backend serves a connection Citus opened to run part of a distributed
/// statement on this node (Citus names those connections `citus_internal gpid=…`).
pub fn internal_connection() -> bool {
    // SAFETY: plain read of the backend's application_name setting (NULL or a C string).
    unsafe {
        let name = pg_sys::application_name;
        !name.is_null() && CStr::from_ptr(name).to_bytes().starts_with(b"citus_internal")
    }
}
