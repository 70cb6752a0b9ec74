//! Typed plaintexts: `shred.seal` of `integer`, `bigint`, `numeric`, `date`, `timestamptz` and
//! `jsonb` values writes envelope format v2, which records the plaintext type (see
//! [`crate::crypto::typed`]); `shred.open_<type>` opens them as that type and nothing else.
//!
//! `numeric` and `jsonb` are sealed as their canonical text output (`numeric_out`,
//! `jsonb_out`, called here on the datum itself) and opened through their input functions,
//! whose errors never show the text; dates and timestamps as
//! PostgreSQL's internal day and microsecond counts, so neither `DateStyle` nor `TimeZone`
//! changes what is sealed.

use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::encoding::{server_to_utf8, utf8_to_server};
use super::varlena::{RawDatum, Varlena};
use super::{purpose_arg, required, sealing_key, subject_arg};
use crate::crypto::envelope::{self, Envelope};
use crate::crypto::typed::{PlainType, TypedValue};
use crate::error::{OrReport, ShredError};
use crate::keys::{root, store};

/// Raise an error unless `env` may be opened as `wanted`: an untyped (v1) envelope holds text
/// or bytes; a typed one opens only as the type it records.
pub(super) fn check_type(env: &Envelope<'_>, wanted: PlainType) {
    ShredError::check_type(env.plain_type(), wanted).or_report();
}

/// Seal `value` for `subject` and `purpose` (`None`: the default DEK) in envelope format v2.
fn seal_value(subject: Option<&[u8]>, value: Option<TypedValue>, context: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Varlena> {
    let subject = subject_arg(subject);
    let context = server_to_utf8(required(context, "context"), "context").or_report();
    let purpose = purpose_arg(purpose);
    let value = value?;
    let plaintext = value.encode();
    let (key_id, dek) = sealing_key(&subject, purpose.as_ref(), plaintext.len());
    let mut out = Varlena::alloc(envelope::sealed_len_v2(plaintext.len()));
    envelope::seal_v2_into(&dek, key_id as u64, &context, value.plain_type(), &plaintext, out.data_mut()).or_report();
    Some(out)
}

/// Open `value` as `wanted`: `None` for NULL or an erased subject.
fn open_value(value: Option<&[u8]>, context: Option<&[u8]>, wanted: PlainType) -> Option<TypedValue> {
    let context = server_to_utf8(required(context, "context"), "context").or_report();
    let value = value?;
    root::require_root_key().or_report();
    let env = envelope::parse_any(value).or_report();
    check_type(&env, wanted);
    let dek = store::dek_by_id(env.key_id() as i64).or_report()?;
    match envelope::open_typed(&dek, &env, &context).or_report() {
        envelope::Opened::Typed(v) => Some(v),
        envelope::Opened::Untyped(_) => ShredError::Internal("a typed envelope opened untyped").report(),
    }
}

/// Argument `n` of a function called with `fcinfo`, as the bytes of a varlena; `None` for NULL.
///
/// # Safety
/// Argument `n` must exist and be of a varlena type.
unsafe fn varlena_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<&'a [u8]> {
    unsafe {
        if pgrx::fcinfo::pg_arg_is_null(fcinfo, n) {
            return None;
        }
        <&[u8]>::from_datum(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n), false)
    }
}

/// `shred.seal(subject, plaintext <typ>, context [, purpose])` for a type sealed as its exact
/// text form (`numeric`, `jsonb`): the output function of the datum itself writes it, so
/// nothing but a value of the type can be sealed as one. Declared with three arguments before
/// 0.6.0, four from it on.
fn seal_by_output(fcinfo: pg_sys::FunctionCallInfo, typ: pg_sys::Oid, wrap: fn(String) -> TypedValue) -> Option<Varlena> {
    // SAFETY: arguments (text, typ, text [, text]) as declared in SQL, the fourth read only
    // when the call has it; the plaintext datum is read only when not NULL.
    let (subject, context, text, purpose) = unsafe {
        let text = if pgrx::fcinfo::pg_arg_is_null(fcinfo, 1) {
            None
        } else {
            Some(crate::pg::io::output(typ, pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 1)))
        };
        let purpose = if (*fcinfo).nargs >= 4 { varlena_arg(fcinfo, 3) } else { None };
        (varlena_arg(fcinfo, 0), varlena_arg(fcinfo, 2), text, purpose)
    };
    let value = text.map(|t| {
        let utf8 = server_to_utf8(&t, "plaintext").or_report().into_owned();
        wrap(String::from_utf8(utf8).unwrap_or_else(|_| ShredError::NotUtf8("plaintext").report()))
    });
    seal_value(subject, value, context, purpose)
}

/// A datum of `typ` from the opened canonical text of a sealed numeric or jsonb; a text that is
/// not one (a value altered before it was sealed) raises an error that does not show it.
fn datum_from_text(typ: pg_sys::Oid, text: &str, what: &'static str) -> RawDatum {
    let server = utf8_to_server(text.as_bytes()).or_report();
    RawDatum(crate::pg::io::parse(typ, &server).unwrap_or_else(|| ShredError::BadTypedText(what).report()))
}

// Each type's seal before 0.6.0 (three arguments) and from it on (`_for`: with the purpose).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_int4(subject: Option<&[u8]>, plaintext: Option<i32>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(TypedValue::Int4), context, None)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_int4_for(subject: Option<&[u8]>, plaintext: Option<i32>, context: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(TypedValue::Int4), context, purpose)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_int8(subject: Option<&[u8]>, plaintext: Option<i64>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(TypedValue::Int8), context, None)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_int8_for(subject: Option<&[u8]>, plaintext: Option<i64>, context: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(TypedValue::Int8), context, purpose)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_date(subject: Option<&[u8]>, plaintext: Option<Date>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(|d| TypedValue::Date(d.into_inner())), context, None)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_date_for(subject: Option<&[u8]>, plaintext: Option<Date>, context: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(|d| TypedValue::Date(d.into_inner())), context, purpose)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_timestamptz(
    subject: Option<&[u8]>,
    plaintext: Option<TimestampWithTimeZone>,
    context: Option<&[u8]>,
) -> Option<Varlena> {
    seal_value(subject, plaintext.map(|t| TypedValue::Timestamptz(t.into_inner())), context, None)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_timestamptz_for(
    subject: Option<&[u8]>,
    plaintext: Option<TimestampWithTimeZone>,
    context: Option<&[u8]>,
    purpose: Option<&[u8]>,
) -> Option<Varlena> {
    seal_value(subject, plaintext.map(|t| TypedValue::Timestamptz(t.into_inner())), context, purpose)
}

/// `shred.seal(subject text, plaintext numeric, context text)`: sealed as `numeric_out`'s exact
/// text (scale, NaN and infinities kept).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_numeric(fcinfo: pg_sys::FunctionCallInfo) -> Option<Varlena> {
    seal_by_output(fcinfo, pg_sys::NUMERICOID, TypedValue::Numeric)
}

/// `shred.seal(subject text, plaintext jsonb, context text)`: sealed as `jsonb_out`'s canonical
/// text.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_jsonb(fcinfo: pg_sys::FunctionCallInfo) -> Option<Varlena> {
    seal_by_output(fcinfo, pg_sys::JSONBOID, TypedValue::Jsonb)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_int4(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<i32> {
    match open_value(value, context, PlainType::Int4)? {
        TypedValue::Int4(v) => Some(v),
        _ => ShredError::Internal("a value opened as integer is not an integer").report(),
    }
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_int8(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<i64> {
    match open_value(value, context, PlainType::Int8)? {
        TypedValue::Int8(v) => Some(v),
        _ => ShredError::Internal("a value opened as bigint is not a bigint").report(),
    }
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_date(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<Date> {
    match open_value(value, context, PlainType::Date)? {
        TypedValue::Date(days) => Some(Date::saturating_from_raw(days)),
        _ => ShredError::Internal("a value opened as date is not a date").report(),
    }
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_timestamptz(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<TimestampWithTimeZone> {
    match open_value(value, context, PlainType::Timestamptz)? {
        TypedValue::Timestamptz(us) => Some(
            TimestampWithTimeZone::try_from(us)
                .unwrap_or_else(|_| ShredError::Crypto(crate::crypto::CryptoError::MalformedPlaintext("timestamp out of range")).report()),
        ),
        _ => ShredError::Internal("a value opened as timestamptz is not a timestamptz").report(),
    }
}

/// `shred.open_numeric(value, context)`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_numeric(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<RawDatum> {
    match open_value(value, context, PlainType::Numeric)? {
        TypedValue::Numeric(text) => Some(datum_from_text(pg_sys::NUMERICOID, &text, "numeric")),
        _ => ShredError::Internal("a value opened as numeric is not a numeric").report(),
    }
}

/// `shred.open_jsonb(value, context)`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_jsonb(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<RawDatum> {
    match open_value(value, context, PlainType::Jsonb)? {
        TypedValue::Jsonb(text) => Some(datum_from_text(pg_sys::JSONBOID, &text, "jsonb")),
        _ => ShredError::Internal("a value opened as jsonb is not a jsonb").report(),
    }
}

// ---------------------------------------------------------------------------------------------
// The text-taking helpers of 0.2.0 and 0.3.0's SQL (`shred.seal_numeric_text` and friends),
// kept for databases not yet updated to 0.4.0 (ALTER EXTENSION pg_shred UPDATE drops them).
// The text must be a value of the type: it is parsed, and sealed as the type's canonical text.
// ---------------------------------------------------------------------------------------------

/// The canonical text of `text` (database encoding) as a value of `typ`; refused without
/// showing it when it is not one.
fn canonical_text(typ: pg_sys::Oid, text: &[u8], what: &'static str) -> String {
    let datum = crate::pg::io::parse(typ, text).unwrap_or_else(|| ShredError::BadTypedText(what).report());
    // SAFETY: a non-NULL datum of `typ` just made by its input function.
    let canonical = unsafe { crate::pg::io::output(typ, datum) };
    let utf8 = server_to_utf8(&canonical, "plaintext").or_report().into_owned();
    String::from_utf8(utf8).unwrap_or_else(|_| ShredError::NotUtf8("plaintext").report())
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_numeric_text(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    let value = plaintext.map(|t| TypedValue::Numeric(canonical_text(pg_sys::NUMERICOID, t, "numeric")));
    seal_value(subject, value, context, None)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_jsonb_text(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    let value = plaintext.map(|t| TypedValue::Jsonb(canonical_text(pg_sys::JSONBOID, t, "jsonb")));
    seal_value(subject, value, context, None)
}

/// The canonical text of a sealed numeric or jsonb, checked to parse as the type (so the old
/// SQL wrapper's cast never fails on it and never shows it).
fn checked_text(value: Option<&[u8]>, context: Option<&[u8]>, wanted: PlainType, typ: pg_sys::Oid, what: &'static str) -> Option<Varlena> {
    let text = match open_value(value, context, wanted)? {
        TypedValue::Numeric(text) | TypedValue::Jsonb(text) => text,
        _ => ShredError::Internal("a typed value of an unexpected type").report(),
    };
    let server = utf8_to_server(text.as_bytes()).or_report();
    crate::pg::io::parse(typ, &server).unwrap_or_else(|| ShredError::BadTypedText(what).report());
    let mut out = Varlena::alloc(server.len());
    out.data_mut().copy_from_slice(&server);
    Some(out)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_numeric_text(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    checked_text(value, context, PlainType::Numeric, pg_sys::NUMERICOID, "numeric")
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_jsonb_text(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    checked_text(value, context, PlainType::Jsonb, pg_sys::JSONBOID, "jsonb")
}
