//! Writes through a plaintext view under `session_replication_role = replica`.
//!
//! PostgreSQL fires no INSTEAD OF trigger in replica mode, and a view's trigger cannot be
//! `ENABLE ALWAYS`: an INSERT or UPDATE through the view would report success and store
//! nothing. An executor-start hook refuses such a statement instead (55000). Outside replica
//! mode it costs one comparison per statement.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::prelude::*;

use crate::error::ShredError;

thread_local! {
    static PREVIOUS: Cell<pg_sys::ExecutorStart_hook_type> = const { Cell::new(None) };
}

/// Install the hook; called once from `_PG_init`.
pub fn install() {
    // SAFETY: chains the previous hook, at library load, in the one backend thread.
    unsafe {
        PREVIOUS.with(|p| p.set(pg_sys::ExecutorStart_hook));
        pg_sys::ExecutorStart_hook = Some(executor_start);
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
        if pg_sys::SessionReplicationRole == pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32
            && matches!((*desc).operation, pg_sys::CmdType::CMD_INSERT | pg_sys::CmdType::CMD_UPDATE)
        {
            let stmt = (*desc).plannedstmt;
            let rtable = (*stmt).rtable;
            let results = (*stmt).resultRelations;
            if !rtable.is_null() && !results.is_null() {
                for i in 0..(*results).length as usize {
                    let index = (*(*results).elements.add(i)).int_value as usize;
                    if index == 0 || index > (*rtable).length as usize {
                        continue;
                    }
                    let rte = (*(*rtable).elements.add(index - 1)).ptr_value.cast::<pg_sys::RangeTblEntry>();
                    if (*rte).relkind == pg_sys::RELKIND_VIEW as std::ffi::c_char && has_pg_shred_trigger((*rte).relid) {
                        ShredError::NotReady(
                            "writes through a protected table's plaintext view are not possible under session_replication_role = replica (PostgreSQL fires no INSTEAD OF trigger then)"
                                .into(),
                        )
                        .report();
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
