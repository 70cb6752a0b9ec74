//! What differs between the PostgreSQL majors pg_shred builds for (15, 16, 17 and 18, one per
//! build, chosen by the cargo feature `pg15` … `pg18`), in one place: every `cfg` on a major is
//! here, and the rest of the crate calls these functions.

use pgrx::pg_sys;

/// This backend's current local transaction id (the `lxid` of its virtual transaction id;
/// PostgreSQL 17 moved it into `PGPROC.vxid`).
#[inline]
pub fn local_transaction_id() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is set for every backend that runs SQL; a plain read of its own PGPROC.
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    unsafe {
        (*pg_sys::MyProc).lxid
    }
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    unsafe {
        (*pg_sys::MyProc).vxid.lxid
    }
}

/// The type of attribute number `i` (0-based) of `desc`. PostgreSQL 18 no longer exposes the
/// `attrs` array of `TupleDescData` (its `TupleDescAttr` is a function there).
///
/// # Safety
/// `desc` must be a valid tuple descriptor and `i < desc.natts`.
#[inline]
pub unsafe fn attribute_type(desc: pg_sys::TupleDesc, i: usize) -> pg_sys::Oid {
    #[cfg(not(feature = "pg18"))]
    unsafe {
        (*(*desc).attrs.as_ptr().add(i)).atttypid
    }
    #[cfg(feature = "pg18")]
    unsafe {
        (*pg_sys::TupleDescAttr(desc, i as std::ffi::c_int)).atttypid
    }
}

/// Whether `role` holds `mode` (an `ACL_*` bit) on schema `namespace`. PostgreSQL 16 replaced
/// `pg_namespace_aclcheck` by the generic `object_aclcheck`.
///
/// # Safety
/// Must run inside a transaction (it reads the catalog).
#[inline]
pub unsafe fn namespace_allows(namespace: pg_sys::Oid, role: pg_sys::Oid, mode: pg_sys::AclMode) -> bool {
    #[cfg(feature = "pg15")]
    let result = unsafe { pg_sys::pg_namespace_aclcheck(namespace, role, mode) };
    #[cfg(not(feature = "pg15"))]
    let result = unsafe { pg_sys::object_aclcheck(pg_sys::NamespaceRelationId, namespace, role, mode) };
    result == pg_sys::AclResult::ACLCHECK_OK
}

/// Whether `role` holds `mode` (an `ACL_*` bit) on function `proc_`. PostgreSQL 16 replaced
/// `pg_proc_aclcheck` by the generic `object_aclcheck`.
///
/// # Safety
/// Must run inside a transaction (it reads the catalog).
#[inline]
pub unsafe fn function_allows(proc_: pg_sys::Oid, role: pg_sys::Oid, mode: pg_sys::AclMode) -> bool {
    #[cfg(feature = "pg15")]
    let result = unsafe { pg_sys::pg_proc_aclcheck(proc_, role, mode) };
    #[cfg(not(feature = "pg15"))]
    let result = unsafe { pg_sys::object_aclcheck(pg_sys::ProcedureRelationId, proc_, role, mode) };
    result == pg_sys::AclResult::ACLCHECK_OK
}

/// `index_beginscan` without instrumentation: PostgreSQL 18 added an `IndexScanInstrumentation`
/// argument (NULL: none).
///
/// # Safety
/// As `index_beginscan`: both relations open and locked, `snapshot` registered or active.
#[inline]
pub unsafe fn index_beginscan(heap: pg_sys::Relation, index: pg_sys::Relation, snapshot: pg_sys::Snapshot, nkeys: i32, norderbys: i32) -> pg_sys::IndexScanDesc {
    #[cfg(not(feature = "pg18"))]
    unsafe {
        pg_sys::index_beginscan(heap, index, snapshot, nkeys, norderbys)
    }
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::index_beginscan(heap, index, snapshot, std::ptr::null_mut(), nkeys, norderbys)
    }
}

/// Make SIGTERM end this background worker the way it ends a backend (`die`: at the next
/// `CHECK_FOR_INTERRUPTS`, with the transaction in progress rolled back), instead of the
/// background worker default (an immediate FATAL from the signal handler). PostgreSQL 18 calls
/// the backend's `pqsignal` `pqsignal_be`.
pub fn terminate_at_interrupts() {
    // PostgreSQL's own handler, by its C symbol (pgrx's `pg_sys::die` is a guarded Rust wrapper,
    // not a signal handler).
    extern "C-unwind" {
        fn die(postgres_signal_arg: std::ffi::c_int);
    }
    // SAFETY: installs PostgreSQL's own handler for SIGTERM in this process.
    #[cfg(not(feature = "pg18"))]
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(die));
    }
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(die));
    }
}
