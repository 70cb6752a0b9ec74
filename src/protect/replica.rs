//! Writes through a plaintext view under `session_replication_role = replica`.
//!
//! PostgreSQL fires no INSTEAD OF trigger in replica mode, and a view's trigger cannot be
//! `ENABLE ALWAYS`: an INSERT or UPDATE through the view (also inside a WITH query, a function,
//! or by `COPY ... FROM`) would report success and store nothing. An executor-start hook (every
//! planned statement: its result relations) and a utility hook (`COPY FROM`) refuse such a
//! statement instead (55000). Outside replica mode each costs one comparison per statement.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::prelude::*;

use crate::error::ShredError;

thread_local! {
    static PREVIOUS: Cell<pg_sys::ExecutorStart_hook_type> = const { Cell::new(None) };
    static PREVIOUS_UTILITY: Cell<pg_sys::ProcessUtility_hook_type> = const { Cell::new(None) };
}

/// Install the hooks; called once from `_PG_init`.
pub fn install() {
    // SAFETY: chains the previous hooks, at library load, in the one backend thread.
    unsafe {
        PREVIOUS.with(|p| p.set(pg_sys::ExecutorStart_hook));
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREVIOUS_UTILITY.with(|p| p.set(pg_sys::ProcessUtility_hook));
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

fn in_replica_mode() -> bool {
    // SAFETY: plain read of a backend global.
    unsafe { pg_sys::SessionReplicationRole == pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32 }
}

/// Refuse a write through `view` (a relation OID) when it is a plaintext view of pg_shred.
///
/// # Safety
/// Inside a transaction.
unsafe fn refuse_if_protected_view(rel: pg_sys::Oid) {
    // SAFETY: catalog lookups inside a transaction.
    unsafe {
        if pg_sys::get_rel_relkind(rel) == pg_sys::RELKIND_VIEW as std::ffi::c_char && has_pg_shred_trigger(rel) {
            ShredError::NotReady(
                "writes through a protected table's plaintext view are not possible under session_replication_role = replica (PostgreSQL fires no INSTEAD OF trigger then)"
                    .into(),
            )
            .report();
        }
    }
}

/// Whether `view` has pg_shred's INSTEAD OF trigger.
///
/// # Safety
/// Inside a transaction; `view` is a relation OID.
unsafe fn has_pg_shred_trigger(view: pg_sys::Oid) -> bool {
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(view);
        if rel.is_null() {
            return false;
        }
        let desc = (*rel).trigdesc;
        let mut found = false;
        if !desc.is_null() {
            for i in 0..(*desc).numtriggers as usize {
                let func = (*(*desc).triggers.add(i)).tgfoid;
                let name = pg_sys::get_func_name(func);
                let ns = pg_sys::get_namespace_name(pg_sys::get_func_namespace(func));
                if !name.is_null()
                    && !ns.is_null()
                    && CStr::from_ptr(name).to_bytes() == b"protected_view_write"
                    && CStr::from_ptr(ns).to_bytes() == b"shred"
                {
                    found = true;
                }
            }
        }
        pg_sys::RelationClose(rel);
        found
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(desc: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: the executor's own QueryDesc; the range table is read only.
    unsafe {
        // every result relation of the statement, its WITH queries included
        let stmt = (*desc).plannedstmt;
        if in_replica_mode() && !stmt.is_null() {
            let rtable = (*stmt).rtable;
            let results = (*stmt).resultRelations;
            if !rtable.is_null() && !results.is_null() {
                for i in 0..(*results).length as usize {
                    let index = (*(*results).elements.add(i)).int_value as usize;
                    if index == 0 || index > (*rtable).length as usize {
                        continue;
                    }
                    let rte = (*(*rtable).elements.add(index - 1)).ptr_value.cast::<pg_sys::RangeTblEntry>();
                    if (*rte).relkind == pg_sys::RELKIND_VIEW as std::ffi::c_char {
                        refuse_if_protected_view((*rte).relid);
                    }
                }
            }
        }
        match PREVIOUS.with(|p| p.get()) {
            Some(previous) => previous(desc, eflags),
            None => pg_sys::standard_ExecutorStart(desc, eflags),
        }
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: the utility statement PostgreSQL passes; only read.
    unsafe {
        if in_replica_mode() && !pstmt.is_null() {
            let node = (*pstmt).utilityStmt;
            if !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_CopyStmt {
                let copy = node.cast::<pg_sys::CopyStmt>();
                if (*copy).is_from && !(*copy).relation.is_null() {
                    let rel = pg_sys::RangeVarGetRelidExtended((*copy).relation, pg_sys::NoLock as pg_sys::LOCKMODE, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut());
                    if rel != pg_sys::InvalidOid {
                        refuse_if_protected_view(rel);
                    }
                }
            }
        }
        match PREVIOUS_UTILITY.with(|p| p.get()) {
            Some(previous) => previous(pstmt, query, read_only_tree, context, params, env, dest, qc),
            None => pg_sys::standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc),
        }
    }
}
