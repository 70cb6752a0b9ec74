//! Purposes and consent: erasure by purpose and the consent ledger's functions (declared in
//! `sql/purposes.sql` and `sql/consent.sql`). Sealing and pseudonyms for a purpose are the
//! `_for` functions beside their default-DEK siblings.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{purpose_arg, required, subject_arg};
use crate::error::{OrReport, ShredError};
use crate::keys::{root, store};
use crate::purposes::{self, consent};

/// A purpose argument that must name a purpose (NULL: 22004).
fn purpose_required(value: Option<&[u8]>) -> purposes::Purpose {
    purpose_arg(Some(required(value, "purpose"))).unwrap_or_else(|| ShredError::Internal("no purpose").report())
}

/// `shred.erase(subject text, purpose text) -> boolean`: erase only the subject's DEK of the
/// purpose, in the caller's transaction.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn erase_purpose(subject: Option<&[u8]>, purpose: Option<&[u8]>) -> bool {
    let subject = subject_arg(subject);
    let purpose = purpose_required(purpose);
    store::verify_root_key().or_report();
    crate::erasure::erase_purpose(&subject, &purpose).or_report()
}

/// `shred.request_consent(subject text, purpose text, evidence jsonb DEFAULT NULL) -> text`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn request_consent(fcinfo: pg_sys::FunctionCallInfo) -> String {
    // SAFETY: arguments (text, text, jsonb) as declared in SQL, each checked for NULL first.
    let (subject, purpose, evidence) = unsafe {
        let text_arg = |n| {
            if pgrx::fcinfo::pg_arg_is_null(fcinfo, n) {
                None
            } else {
                <&[u8]>::from_datum(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n), false)
            }
        };
        let evidence = if pgrx::fcinfo::pg_arg_is_null(fcinfo, 2) {
            None
        } else {
            Some(crate::pg::io::output(pg_sys::JSONBOID, pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 2)))
        };
        (text_arg(0), text_arg(1), evidence)
    };
    let subject = subject_arg(subject);
    let purpose = purpose_required(purpose);
    let evidence = evidence.map(|text| {
        let utf8 = crate::pg::encoding::server_to_utf8(&text, "evidence").or_report().into_owned();
        String::from_utf8(utf8).unwrap_or_else(|_| ShredError::NotUtf8("evidence").report())
    });
    root::require_root_key().or_report();
    consent::request(&subject, &purpose, evidence).or_report()
}

/// `shred.confirm_consent(token text) -> boolean`: never an error for any token (NULL: false).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn confirm_consent(token: Option<&[u8]>) -> bool {
    match token {
        Some(token) => consent::confirm(token).or_report(),
        None => false,
    }
}

/// `shred.withdraw_consent(subject text, purpose text) -> boolean`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn withdraw_consent(subject: Option<&[u8]>, purpose: Option<&[u8]>) -> bool {
    let subject = subject_arg(subject);
    let purpose = purpose_required(purpose);
    store::verify_root_key().or_report();
    crate::erasure::withdraw_consent(&subject, &purpose).or_report()
}

/// `shred.has_consent(subject text, purpose text) -> boolean`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn has_consent(subject: Option<&[u8]>, purpose: Option<&[u8]>) -> bool {
    let subject = subject_arg(subject);
    let purpose = purpose_required(purpose);
    root::require_root_key().or_report();
    consent::has(&subject, &purpose).or_report()
}

/// `shred._subject_digest(subject text) -> bytea` (internal, never granted): the keyed digest
/// that erasure and consent records hold; NULL while no record was ever written. Writes this
/// transaction's queued erasure records first, so that the caller's reads of the erasure log
/// that follow see them.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _subject_digest(subject: &[u8]) -> Option<Vec<u8>> {
    let subject = subject_arg(Some(subject));
    root::require_root_key().or_report();
    crate::keys::deferred::flush().or_report();
    store::existing_subject_digest(&subject).or_report().map(|d| d.to_vec())
}
