//! Erasure receipts and the residue check (declared in `sql/receipts.sql`): thin wrappers over
//! [`crate::erasure::receipts`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::subject_arg;
use super::varlena::RawDatum;
use crate::erasure::receipts;
use crate::error::{OrReport, ShredError};
use crate::keys::root;
use crate::pg::encoding::{server_to_utf8, utf8_to_server};

/// `shred.receipt_public_key() -> text`: base64 of the 32-byte Ed25519 public key.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn receipt_public_key() -> String {
    root::require_root_key().or_report();
    STANDARD.encode(receipts::public_key().or_report())
}

/// `shred.verify_receipt(receipt jsonb) -> boolean` (strict).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn verify_receipt(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: one jsonb argument, never NULL (the function is STRICT).
    let text = unsafe { crate::pg::io::output(pg_sys::JSONBOID, pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0)) };
    let utf8 = server_to_utf8(&text, "receipt").or_report();
    root::require_root_key().or_report();
    receipts::verify(&utf8).or_report()
}

/// `shred._sign_receipt(receipt text, subject text) -> jsonb` (internal, never granted: run by
/// `shred.erasure_receipt`).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _sign_receipt(receipt: &[u8], subject: &[u8]) -> RawDatum {
    let subject = subject_arg(Some(subject));
    let receipt = server_to_utf8(receipt, "receipt").or_report();
    root::require_root_key().or_report();
    let signed = receipts::sign(&receipt, &subject).or_report();
    let server = utf8_to_server(&signed).or_report();
    RawDatum(crate::pg::io::parse(pg_sys::JSONBOID, &server).unwrap_or_else(|| ShredError::Internal("a signed receipt is not valid jsonb").report()))
}

/// `shred._erasure_committed(key_id bigint) -> boolean` (internal, never granted).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _erasure_committed(key_id: i64) -> bool {
    receipts::erasure_committed(key_id).or_report()
}

/// `shred._heap_copies(key_ids bigint[]) -> TABLE (key_id bigint, root_key_version integer)`
/// (internal, never granted: run by `shred.erasure_residue`).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _heap_copies(
    key_ids: pgrx::Array<'_, i64>,
) -> TableIterator<'static, (name!(key_id, i64), name!(root_key_version, i32))> {
    let ids: Vec<i64> = key_ids.iter().flatten().collect();
    TableIterator::new(receipts::heap_copies(&ids).or_report())
}
