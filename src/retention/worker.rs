//! The retention worker: a launcher, registered when pg_shred is loaded through
//! `shared_preload_libraries`, that every `shred.retention_naptime` seconds visits each
//! database (of `shred.retention_databases`, or every one that accepts connections) with a
//! short-lived worker connected to it, one database at a time.
//!
//! Invariants:
//! - A database's worker runs [`super::run_batch`] in one transaction per batch of
//!   `shred.retention_batch_size` DEKs until nothing is due: no transaction stays open between
//!   batches, and an interruption loses only the batch in progress.
//! - SIGTERM (shutdown, `pg_terminate_backend`) ends a database's worker at its next interrupt
//!   check, its batch rolled back; the launcher exits with status 1 on SIGTERM (terminating the
//!   database's worker it waits for), so the postmaster starts it again after
//!   [`RESTART_SECS`] unless the server is shutting down.
//! - An ERROR in a database ends only that database's worker (PostgreSQL logs it); the
//!   launcher goes on with the next database, and visits the failed one again next time.
//! - Only counts and database names reach the server log: never a subject (pg_shred's errors
//!   carry none).
//! - A database without pg_shred 0.6.0 or later is left at once, untouched: the worker first
//!   checks that `shred.key_use` belongs to the extension pg_shred, so that a schema `shred`
//!   made by a database's owner in a database without the extension is never taken for the key
//!   store (nor its owner for the key store's).

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::RunBy;
use crate::gucs;

/// Seconds before the postmaster starts a launcher that exited with an error again.
const RESTART_SECS: u64 = 5;

const LIBRARY: &str = "pg_shred";

/// Register the launcher (from `_PG_init`, while `shared_preload_libraries` is processed).
pub fn register() {
    BackgroundWorkerBuilder::new("pg_shred retention launcher")
        .set_type("pg_shred retention launcher")
        .set_library(LIBRARY)
        .set_function("pg_shred_retention_launcher")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(RESTART_SECS)))
        .load();
}

/// The launcher's main function.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_shred_retention_launcher(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // Shared catalogs only (pg_database): the launcher itself reads no database.
    BackgroundWorker::connect_worker_to_spi(None, None);
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloads the configuration files in this process, as a backend does.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let naptime = gucs::retention_naptime_secs();
        if naptime > 0 {
            for (oid, name) in databases() {
                if !visit(oid, &name) {
                    break;
                }
            }
        }
        // Idle (naptime 0) until a reload or SIGTERM.
        let wait = if naptime > 0 { Some(Duration::from_secs(naptime)) } else { None };
        if !BackgroundWorker::wait_latch(wait) {
            // SIGTERM or the postmaster's death: exit with status 1, so that a terminated
            // launcher is started again (the postmaster restarts none at shutdown).
            // SAFETY: plain exit of this process.
            unsafe { pg_sys::proc_exit(1) };
        }
    }
}

thread_local! {
    /// The names of `shred.retention_databases` last reported missing (reported once).
    static MISSING: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The databases to visit: (oid, name) of those that accept connections and are not
/// templates, limited to `shred.retention_databases` when it is set (a name there of no such
/// database gets one WARNING, until the setting or the databases change).
fn databases() -> Vec<(pg_sys::Oid, String)> {
    let wanted = gucs::retention_databases();
    let found = list_databases(wanted.as_deref());
    let missing: Vec<String> =
        wanted.unwrap_or_default().into_iter().filter(|w| !found.iter().any(|(_, n)| n == w)).collect();
    let changed = MISSING.with(|m| {
        let mut m = m.borrow_mut();
        let changed = *m != missing;
        *m = missing.clone();
        changed
    });
    if changed && !missing.is_empty() {
        pgrx::warning!(
            "pg_shred retention: shred.retention_databases names {} that no database accepting connections has: {}",
            if missing.len() == 1 { "a database" } else { "databases" },
            missing.join(", ")
        );
    }
    found
}

fn list_databases(wanted: Option<&[String]>) -> Vec<(pg_sys::Oid, String)> {
    BackgroundWorker::transaction(|| {
        let mut found = Vec::new();
        // SAFETY: a catalog scan of pg_database (a shared catalog) inside a transaction; each
        // tuple's fixed part is a FormData_pg_database.
        unsafe {
            let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as i32);
            let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
            loop {
                let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tuple.is_null() {
                    break;
                }
                let data = (*tuple).t_data;
                let form = data.cast::<u8>().add((*data).t_hoff as usize).cast::<pg_sys::FormData_pg_database>();
                // datconnlimit -2: a database whose DROP was interrupted (invalid).
                if !(*form).datallowconn || (*form).datistemplate || (*form).datconnlimit == -2 {
                    continue;
                }
                let name = std::ffi::CStr::from_ptr((*form).datname.data.as_ptr()).to_string_lossy().into_owned();
                if wanted.is_none_or(|w| w.contains(&name)) {
                    found.push(((*form).oid, name));
                }
            }
            pg_sys::table_endscan(scan);
            pg_sys::table_close(rel, pg_sys::AccessShareLock as i32);
        }
        found
    })
}

/// Run one database's worker and wait for it to end. False when no worker could be started
/// (no free `max_worker_processes` slot): the rest of this round is skipped.
fn visit(oid: pg_sys::Oid, name: &str) -> bool {
    // SAFETY: plain read of this process's pid.
    let me = unsafe { pg_sys::MyProcPid };
    let started = BackgroundWorkerBuilder::new(&format!("pg_shred retention {name}"))
        .set_type("pg_shred retention worker")
        .set_library(LIBRARY)
        .set_function("pg_shred_retention_worker")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(u32::from(oid))))
        .set_notify_pid(me)
        .load_dynamic();
    match started {
        Ok(worker) => {
            // Polled rather than waited for, so that a SIGTERM of the launcher (shutdown,
            // pg_terminate_backend) ends the database's worker and the launcher at once.
            loop {
                if let Err(pgrx::bgworkers::BackgroundWorkerStatus::Stopped | pgrx::bgworkers::BackgroundWorkerStatus::PostmasterDied) =
                    worker.pid()
                {
                    return true;
                }
                if !BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
                    let _ = worker.terminate();
                    // SAFETY: plain exit of this process (status 1: started again, see above).
                    unsafe { pg_sys::proc_exit(1) };
                    // (proc_exit does not return; not every major's bindings say so.)
                    #[allow(unreachable_code)]
                    return false;
                }
            }
        }
        Err(_) => {
            pgrx::warning!("pg_shred retention: no background worker slot is free (max_worker_processes); retention waits for the next run");
            false
        }
    }
}

/// A database's worker: erase what is due there, batch by batch, then exit.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_shred_retention_worker(arg: pg_sys::Datum) {
    crate::pg::compat::terminate_at_interrupts();
    // SAFETY: unblocks the signals the postmaster blocked before starting this process.
    unsafe { pg_sys::BackgroundWorkerUnblockSignals() };
    let oid = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(oid), None);
    let ready = BackgroundWorker::transaction(|| super::installed_by_extension());
    if !ready {
        return;
    }
    let batch_size = gucs::retention_batch_size();
    let (mut total, mut batches, mut first) = (0i64, 0i64, true);
    loop {
        // Between transactions: SIGTERM ends the worker here.
        pgrx::check_for_interrupts!();
        let erased = BackgroundWorker::transaction(|| {
            use crate::error::OrReport;
            super::run_batch(batch_size, RunBy::Worker, first).or_report()
        });
        first = false;
        if erased == 0 {
            break;
        }
        total += erased;
        batches += 1;
    }
    if total > 0 {
        // SAFETY: reads the current database's name in a transaction.
        let name = BackgroundWorker::transaction(|| unsafe {
            let p = pg_sys::get_database_name(pg_sys::MyDatabaseId);
            if p.is_null() { String::new() } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() }
        });
        pgrx::log!("pg_shred retention: database \"{name}\": DEKs erased: {total}, batches: {batches}");
    }
}
