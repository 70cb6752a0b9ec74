//! Typed plaintexts: `shred.seal` of `integer`, `bigint`, `numeric`, `date`, `timestamptz` and
//! `jsonb` values writes envelope format v2, which records the plaintext type (see
//! [`crate::crypto::typed`]); `shred.open_<type>` opens them as that type and nothing else.
//!
//! `numeric` and `jsonb` are sealed as their canonical text output (`numeric_out`,
//! `jsonb_out`) by SQL wrappers declared next to these functions; dates and timestamps as
//! PostgreSQL's internal day and microsecond counts, so neither `DateStyle` nor `TimeZone`
//! changes what is sealed.

use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;

use super::encoding::{server_to_utf8, utf8_to_server};
use super::varlena::Varlena;
use super::{required, sealing_key, subject_arg};
use crate::crypto::envelope::{self, Envelope};
use crate::crypto::typed::{PlainType, TypedValue};
use crate::error::{OrReport, ShredError};
use crate::keys::{root, store};

/// Raise an error unless `env` may be opened as `wanted`: an untyped (v1) envelope holds text
/// or bytes; a typed one opens only as the type it records.
pub(super) fn check_type(env: &Envelope<'_>, wanted: PlainType) {
    ShredError::check_type(env.plain_type(), wanted).or_report();
}

/// Seal `value` for `subject` in envelope format v2.
fn seal_value(subject: Option<&[u8]>, value: Option<TypedValue>, context: Option<&[u8]>) -> Option<Varlena> {
    let subject = subject_arg(subject);
    let context = server_to_utf8(required(context, "context"), "context").or_report();
    let value = value?;
    let plaintext = value.encode();
    let (key_id, dek) = sealing_key(subject, plaintext.len());
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

/// The text of a numeric or jsonb value, converted from UTF-8 to the database encoding.
fn utf8_text(value: Option<&[u8]>) -> Option<TypedText> {
    value.map(|v| TypedText(server_to_utf8(v, "plaintext").or_report().into_owned()))
}

struct TypedText(Vec<u8>);

impl TypedText {
    fn into_string(self) -> String {
        // server_to_utf8 returned valid UTF-8
        String::from_utf8(self.0).unwrap_or_else(|_| ShredError::NotUtf8("plaintext").report())
    }
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_int4(subject: Option<&[u8]>, plaintext: Option<i32>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(TypedValue::Int4), context)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_int8(subject: Option<&[u8]>, plaintext: Option<i64>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(TypedValue::Int8), context)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_date(subject: Option<&[u8]>, plaintext: Option<Date>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, plaintext.map(|d| TypedValue::Date(d.into_inner())), context)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_timestamptz(
    subject: Option<&[u8]>,
    plaintext: Option<TimestampWithTimeZone>,
    context: Option<&[u8]>,
) -> Option<Varlena> {
    seal_value(subject, plaintext.map(|t| TypedValue::Timestamptz(t.into_inner())), context)
}

/// `numeric` given as its canonical text (`plaintext::text` in the SQL wrapper).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_numeric_text(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, utf8_text(plaintext).map(|t| TypedValue::Numeric(t.into_string())), context)
}

/// `jsonb` given as its canonical text (`plaintext::text` in the SQL wrapper).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_jsonb_text(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_value(subject, utf8_text(plaintext).map(|t| TypedValue::Jsonb(t.into_string())), context)
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

/// UTF-8 text as a `text` value in the database encoding.
fn text_result(text: &str) -> Varlena {
    let converted = utf8_to_server(text.as_bytes()).or_report();
    let mut out = Varlena::alloc(converted.len());
    out.data_mut().copy_from_slice(&converted);
    out
}

/// The canonical text of a sealed `numeric` (cast back by the SQL wrapper).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_numeric_text(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    match open_value(value, context, PlainType::Numeric)? {
        TypedValue::Numeric(text) => Some(text_result(&text)),
        _ => ShredError::Internal("a value opened as numeric is not a numeric").report(),
    }
}

/// The canonical text of a sealed `jsonb` (cast back by the SQL wrapper).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_jsonb_text(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    match open_value(value, context, PlainType::Jsonb)? {
        TypedValue::Jsonb(text) => Some(text_result(&text)),
        _ => ShredError::Internal("a value opened as jsonb is not a jsonb").report(),
    }
}
