//! Retention and legal holds (declared in `sql/retention.sql`): thin wrappers over
//! [`crate::retention`] and [`crate::erasure::holds`].

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{required, subject_arg};
use crate::erasure::holds;
use crate::error::{OrReport, ShredError};
use crate::keys::root;
use crate::pg::encoding::server_to_utf8;
use crate::retention::{self, RunBy};

/// `shred.expire_subject(subject text, at timestamptz) -> boolean`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn expire_subject(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: arguments (text, timestamptz) as declared in SQL, each checked for NULL first.
    let (subject, at) = unsafe {
        let subject = if pgrx::fcinfo::pg_arg_is_null(fcinfo, 0) {
            None
        } else {
            <&[u8]>::from_datum(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0), false)
        };
        let at = (!pgrx::fcinfo::pg_arg_is_null(fcinfo, 1)).then(|| pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 1));
        (subject, at)
    };
    let subject = subject_arg(subject);
    retention::expire(&subject, at).or_report()
}

/// `shred.hold(subject text, reason text) -> bigint`: the hold id.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn hold(subject: Option<&[u8]>, reason: Option<&[u8]>) -> i64 {
    let subject = subject_arg(subject);
    let reason = server_to_utf8(required(reason, "reason"), "reason").or_report();
    // SAFETY: the name of the role calling, looked up before any switch of role.
    let placed_by = unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        std::ffi::CStr::from_ptr(name).to_bytes().to_vec()
    };
    root::require_root_key().or_report();
    holds::place(&subject, &reason, &placed_by).or_report()
}

/// `shred.release_hold(subject text) -> boolean`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn release_hold(subject: Option<&[u8]>) -> bool {
    let subject = subject_arg(subject);
    holds::release(&subject).or_report()
}

/// `shred._retention_batch(batch_size int, first_batch boolean) -> bigint` (strict; for
/// `shred.run_retention`).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _retention_batch(batch_size: i32, first_batch: bool) -> i64 {
    if !(1..=100_000).contains(&batch_size) {
        ShredError::InvalidParameter("batch_size must be between 1 and 100000").report();
    }
    retention::run_batch(i64::from(batch_size), RunBy::Call, first_batch).or_report()
}

/// `shred._retention_due(held boolean) -> bigint` (strict; for `shred.retention_status`).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _retention_due(held: bool) -> i64 {
    retention::due(held).or_report()
}

/// `shred._retention_naptime() -> integer`: seconds between the worker's runs; NULL when no
/// worker runs (pg_shred not preloaded).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn _retention_naptime() -> Option<i32> {
    crate::gucs::preloaded().then(|| crate::gucs::retention_naptime_secs() as i32)
}
