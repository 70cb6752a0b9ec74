//! SQL functions of protected tables (declared in `sql/protect.sql`): thin wrappers over
//! [`crate::protect`].

use pgrx::prelude::*;

use super::tokens::{context_arg, normalization};
use super::{required, subject_arg};
use crate::error::{OrReport, ShredError};
use crate::keys::{root, terms};
use crate::protect::row;
use super::varlena::RawDatum;

/// Arguments 0..3 of `_open_row`: (value shred.sealed, subject text, context
/// text, the type to open as: anyelement). `None` for a NULL value.
///
/// # Safety
/// `fcinfo` of a function declared (shred.sealed, text, text, anyelement).
unsafe fn row_args<'a>(fcinfo: pg_sys::FunctionCallInfo) -> Option<(&'a [u8], Option<&'a [u8]>, &'a [u8], pg_sys::Oid)> {
    unsafe {
        let arg = |i: usize| {
            if pgrx::fcinfo::pg_arg_is_null(fcinfo, i) {
                None
            } else {
                Some(row::varlena_bytes(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i)))
            }
        };
        let typ = pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, 3);
        let context = required(arg(2), "context");
        Some((arg(0)?, arg(1), context, typ))
    }
}

/// `shred._open_row(value shred.sealed, subject text, context text, as anyelement) ->
/// anyelement`: the plaintext of a protected column's value in a row of `subject`, as the type
/// of `as`; NULL when its data subject was erased.
#[pg_extern(stable, parallel_unsafe, sql = false)]
fn _open_row(fcinfo: pg_sys::FunctionCallInfo) -> Option<RawDatum> {
    // SAFETY: called through the SQL declaration of this signature.
    let (value, subject, context, typ) = unsafe { row_args(fcinfo) }?;
    let subject = subject.unwrap_or_else(|| ShredError::NullArgument("subject").report());
    row::open(value, subject, context, typ).or_report().map(RawDatum)
}

/// `shred.protected_view_write()`: the INSTEAD OF INSERT OR UPDATE trigger of plaintext views.
#[pg_extern(sql = false)]
fn protected_view_write(fcinfo: pg_sys::FunctionCallInfo) -> Option<RawDatum> {
    // SAFETY: the trigger manager's call; write_row checks the context.
    unsafe { crate::protect::write::write_row(fcinfo) }.map(RawDatum)
}

/// `shred.blind_match(value text, context text, normalization text DEFAULT 'exact') -> SETOF
/// bytea`: a set, not an array, so that `IN (SELECT shred.blind_match(...))` is never evaluated
/// while planning and a prepared lookup keeps its generic plan.
#[pg_extern(stable, strict, parallel_unsafe, sql = false)]
fn blind_match(value: &[u8], context: &[u8], rule: &[u8]) -> SetOfIterator<'static, Vec<u8>> {
    let context = context_arg(Some(context));
    SetOfIterator::new(row::match_value(context, value, normalization(rule)).or_report())
}

/// `shred.blind_token(subject text, value text, context text, normalization text DEFAULT
/// 'exact') -> bytea` before 0.6.0: [`blind_token_for`] under the subject's default DEK.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn blind_token(subject: Option<&[u8]>, value: Option<&[u8]>, context: Option<&[u8]>, rule: Option<&[u8]>) -> Option<Vec<u8>> {
    blind_token_for(subject, value, context, rule, None)
}

/// `shred.blind_token(subject text, value text, context text, normalization text DEFAULT
/// 'exact', purpose text DEFAULT NULL) -> bytea` (0.6.0 on): the row token (32 bytes) to store
/// with `value` in a row of `subject` written past the view, keyed by the subject's DEK for
/// `purpose` (NULL: its default DEK); records the blind-index term under that DEK's key id
/// (creating the context's key on first use). The DEK is created on first use, for a purpose
/// that requires consent only under a confirmed one (55000). NULL value: NULL, and no key is
/// created. NULL subject, context or normalization: 22004; an undefined purpose: 42704.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn blind_token_for(subject: Option<&[u8]>, value: Option<&[u8]>, context: Option<&[u8]>, rule: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Vec<u8>> {
    let subject = subject_arg(subject);
    let context = context_arg(context);
    let rule = normalization(required(rule, "normalization"));
    let purpose = super::purpose_arg(purpose);
    let value = value?;
    root::require_root_key().or_report();
    let (key_id, dek) = crate::purposes::sealing_key(&subject, purpose.as_ref()).or_report();
    Some(row::index_value(&dek, key_id, context, value, rule).or_report().to_vec())
}

/// `shred._reseal_column(tbl regclass, column_name text) -> bigint` (internal, called by
/// `shred._set_purpose`; never granted): seal the column's values again for the purpose the
/// catalog keeps it for ([`crate::protect::reseal`]); how many were sealed again.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _reseal_column(tbl: pg_sys::Oid, column: &[u8]) -> i64 {
    root::require_root_key().or_report();
    crate::protect::reseal::reseal(tbl, column).or_report()
}

/// `shred._ensure_blind_index_key(context text)`: create the key of a blind-index context
/// (protect() does it, so that lookups never create keys).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _ensure_blind_index_key(context: &[u8]) {
    root::require_root_key().or_report();
    terms::context_key(context_arg(Some(context)), true).or_report();
}

/// `shred._rebuild_row_tokens(tbl regclass) -> bigint`: recompute the row tokens of a protected
/// table's searchable columns (run by the upgrade from 0.2.0; never granted).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _rebuild_row_tokens(tbl: pg_sys::Oid) -> i64 {
    root::require_root_key().or_report();
    crate::protect::tokens::rebuild(tbl).or_report()
}

/// `shred._export_rows(tbl regclass, subject_key text, subject text) -> jsonb`.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _export_rows(tbl: pg_sys::Oid, key: &[u8], subject: &[u8]) -> Option<RawDatum> {
    let subject = subject_arg(Some(subject));
    let json = crate::protect::rights::export(tbl, key, subject.db()).or_report()?;
    Some(RawDatum(row::input(pg_sys::JSONBOID, json.as_bytes()).unwrap_or_else(|| ShredError::Internal("an export is not valid jsonb").report())))
}

/// `shred._footprint_rows(tbl regclass, subject_key text, subject text) -> TABLE (...)`.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _footprint_rows(
    tbl: pg_sys::Oid,
    key: &[u8],
    subject: &[u8],
) -> TableIterator<'static, (name!(column_name, String), name!(row_count, i64), name!(value_count, i64), name!(erased, bool))> {
    let subject = subject_arg(Some(subject));
    TableIterator::new(crate::protect::rights::footprint(tbl, key, subject.db()).or_report())
}

/// `shred._check_rows(tbl regclass) -> TABLE (column_name text, problem text, value_count bigint)`.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn _check_rows(tbl: pg_sys::Oid) -> TableIterator<'static, (name!(column_name, String), name!(problem, String), name!(value_count, i64))> {
    root::require_root_key().or_report();
    let rows = crate::protect::rights::check(tbl).or_report();
    TableIterator::new(rows.into_iter().map(|(c, p, n)| (c, p.to_string(), n)))
}
