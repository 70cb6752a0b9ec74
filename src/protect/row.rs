//! Values in rows of protected tables: sealed, opened and checked bound to the row's data
//! subject, and blind-index lookups.
//!
//! A value in a protected column is sealed with the AAD context
//! `<characters of subject>:<subject>:<context>` (the subject's length in characters, then the
//! subject `subject_prefix || subject_column`, then the column's context `'<table>.<column>'`),
//! exactly as 0.2.0 computed it in SQL, so every envelope written since keeps opening. Opening
//! it in a row further requires that its DEK *is* the DEK of that row's subject: a value sealed
//! under another subject's DEK with this row's AAD (which a writer could forge) is refused like
//! a tampered value, and `shred.check()` lists it.


use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::crypto::blind::{row_token, Normalization};
use crate::crypto::envelope::{self, Opened};
use crate::crypto::keys::DataKey;
use crate::crypto::typed::{PlainType, TypedValue};
use crate::crypto::CryptoError;
use crate::error::ShredError;
use crate::keys::{root, store, terms};
use crate::pg::encoding::{server_to_utf8, utf8_to_server};

/// How a column of SQL type `typ` is sealed; `None` for a type protect() does not support.
pub fn plain_type(typ: pg_sys::Oid) -> Option<PlainType> {
    Some(match typ {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => PlainType::Text,
        pg_sys::BYTEAOID => PlainType::Bytea,
        pg_sys::INT2OID | pg_sys::INT4OID => PlainType::Int4,
        pg_sys::INT8OID => PlainType::Int8,
        pg_sys::NUMERICOID => PlainType::Numeric,
        pg_sys::DATEOID => PlainType::Date,
        pg_sys::TIMESTAMPTZOID => PlainType::Timestamptz,
        pg_sys::JSONBOID => PlainType::Jsonb,
        _ => return None,
    })
}

/// The AAD context (UTF-8) of a value of column `context` in a row of `subject` (both in the
/// database encoding).
pub fn row_aad(context: &[u8], subject: &[u8]) -> Result<Vec<u8>, ShredError> {
    // SAFETY: counts the characters of a byte string in the database encoding.
    let chars = unsafe { pg_sys::pg_mbstrlen_with_len(subject.as_ptr().cast(), subject.len() as i32) };
    let mut aad = Vec::with_capacity(subject.len() + context.len() + 12);
    aad.extend_from_slice(chars.to_string().as_bytes());
    aad.push(b':');
    aad.extend_from_slice(subject);
    aad.push(b':');
    aad.extend_from_slice(context);
    Ok(server_to_utf8(&aad, "context")?.into_owned())
}

/// The bytes of a varlena datum (detoasted).
///
/// # Safety
/// `datum` must be a non-NULL varlena (text, bytea, shred.sealed) alive for `'a`.
pub unsafe fn varlena_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    unsafe { <&[u8]>::from_datum(datum, false) }.unwrap_or(&[])
}

/// A text-like datum of `bytes` (a fresh varlena in the current memory context).
pub fn varlena_datum(bytes: &[u8]) -> pg_sys::Datum {
    // SAFETY: copies the bytes into a new varlena.
    pg_sys::Datum::from(unsafe { pg_sys::cstring_to_text_with_len(bytes.as_ptr().cast(), bytes.len() as i32) })
}

pub use crate::pg::io::output;


/// A datum of type `typ` from its text form (database encoding), or `None` when it is not one
/// (the input function's message, which quotes the text, is dropped: see [`crate::pg::io`]).
pub fn input(typ: pg_sys::Oid, text: &[u8]) -> Option<pg_sys::Datum> {
    crate::pg::io::parse(typ, text)
}

/// Open `value` (envelope bytes) of a row of `subject` in column `context` as SQL type `typ`:
/// `None` when its DEK no longer exists. Errors: wrong type (42804), another subject's DEK,
/// altered value or wrong context (22000, one message), malformed envelope.
pub fn open(value: &[u8], subject: &[u8], context: &[u8], typ: pg_sys::Oid) -> Result<Option<pg_sys::Datum>, ShredError> {
    let wanted = plain_type(typ).ok_or(ShredError::InvalidParameter("protected columns open as text, bytea, integer, bigint, numeric, date, timestamptz or jsonb"))?;
    root::require_root_key()?;
    let env = envelope::parse_any(value)?;
    ShredError::check_type(env.plain_type(), wanted)?;
    let aad = row_aad(context, subject)?;
    let Some(dek) = store::dek_for_row(env.key_id() as i64, subject)? else { return Ok(None) };
    let datum = match envelope::open_typed(&dek, &env, &aad)? {
        Opened::Untyped(bytes) if wanted == PlainType::Bytea => varlena_datum(&bytes),
        Opened::Untyped(bytes) => varlena_datum(&utf8_to_server(&bytes)?),
        Opened::Typed(TypedValue::Int4(v)) => pg_sys::Datum::from(v),
        Opened::Typed(TypedValue::Int8(v)) => pg_sys::Datum::from(v),
        Opened::Typed(TypedValue::Date(days)) => pg_sys::Datum::from(days),
        Opened::Typed(TypedValue::Timestamptz(us)) => {
            TimestampWithTimeZone::try_from(us).map_err(|_| CryptoError::MalformedPlaintext("timestamp out of range"))?;
            pg_sys::Datum::from(us)
        }
        Opened::Typed(TypedValue::Numeric(text)) => {
            input(typ, &utf8_to_server(text.as_bytes())?).ok_or(ShredError::BadTypedText("numeric"))?
        }
        Opened::Typed(TypedValue::Jsonb(text)) => {
            input(typ, &utf8_to_server(text.as_bytes())?).ok_or(ShredError::BadTypedText("jsonb"))?
        }
        Opened::Typed(_) => return Err(ShredError::Internal("a typed value of an unexpected type")),
    };
    Ok(Some(datum))
}

/// What `shred.check()` finds in one value.
pub enum Status {
    Opens,
    /// Its DEK was erased in this key store (the rule of [`store::erased_here`]).
    Erased,
    /// No DEK with its key id exists and none was erased here: deleted behind pg_shred's back,
    /// lost, or a value from another key store.
    Unknown,
    /// Malformed, altered, moved, of another type, or sealed under another subject's DEK.
    DoesNotOpen,
}

/// Check one value as [`open`] would open it, without raising for a value that does not open.
pub fn check(value: &[u8], subject: Option<&[u8]>, context: &[u8], typ: pg_sys::Oid) -> Result<Status, ShredError> {
    let Some(subject) = subject else { return Ok(Status::DoesNotOpen) };
    Ok(match try_open(value, subject, context, typ)? {
        Ok(Some(_)) => Status::Opens,
        Ok(None) => Status::Erased,
        Err(status) => status,
    })
}

/// [`open`], with a value that does not open, or whose DEK this key store never held, given as
/// its [`Status`] instead of an ERROR; other errors (no root key) are errors.
pub fn try_open(value: &[u8], subject: &[u8], context: &[u8], typ: pg_sys::Oid) -> Result<Result<Option<pg_sys::Datum>, Status>, ShredError> {
    match open(value, subject, context, typ) {
        Ok(opened) => Ok(Ok(opened)),
        Err(
            ShredError::Crypto(
                CryptoError::AuthenticationFailed
                | CryptoError::MalformedEnvelope(_)
                | CryptoError::UnsupportedVersion(_)
                | CryptoError::MalformedPlaintext(_),
            )
            | ShredError::WrongType { .. }
            | ShredError::NotText
            | ShredError::NotRepresentable
            | ShredError::BadTypedText(_),
        ) => Ok(Err(Status::DoesNotOpen)),
        Err(ShredError::UnknownKey) => Ok(Err(Status::Unknown)),
        Err(e) => Err(e),
    }
}

/// Seal the non-NULL `datum` of SQL type `typ` for a row of `subject` in column `context`,
/// under `dek` (`key_id`): what the view's trigger stores. Text is sealed as in `shred.seal`
/// (format v1, UTF-8; `character(n)` without its padding, as `::text` gives it), other types
/// as typed values (format v2; smallint as integer, numeric and jsonb as their canonical text).
///
/// # Safety
/// `datum` must be a non-NULL value of type `typ`.
pub unsafe fn seal(
    dek: &DataKey,
    key_id: i64,
    subject: &[u8],
    context: &[u8],
    datum: pg_sys::Datum,
    typ: pg_sys::Oid,
) -> Result<Vec<u8>, ShredError> {
    let aad = row_aad(context, subject)?;
    let key_id = key_id as u64;
    let typed = |value: TypedValue| envelope::seal_typed(dek, key_id, &aad, &value);
    let canonical = |datum| -> Result<String, ShredError> {
        // SAFETY: as the caller promised.
        let text = unsafe { output(typ, datum) };
        String::from_utf8(server_to_utf8(&text, "plaintext")?.into_owned()).map_err(|_| ShredError::NotUtf8("plaintext"))
    };
    Ok(match typ {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => {
            // SAFETY: a text-like varlena.
            let mut text = unsafe { varlena_bytes(datum) };
            if typ == pg_sys::BPCHAROID {
                while let [rest @ .., b' '] = text {
                    text = rest;
                }
            }
            envelope::seal(dek, key_id, &aad, &server_to_utf8(text, "plaintext")?)?
        }
        // SAFETY: a bytea varlena.
        pg_sys::BYTEAOID => envelope::seal(dek, key_id, &aad, unsafe { varlena_bytes(datum) })?,
        pg_sys::INT2OID => typed(TypedValue::Int4(i32::from(datum.value() as i16)))?,
        pg_sys::INT4OID => typed(TypedValue::Int4(datum.value() as i32))?,
        pg_sys::INT8OID => typed(TypedValue::Int8(datum.value() as i64))?,
        pg_sys::DATEOID => typed(TypedValue::Date(datum.value() as i32))?,
        pg_sys::TIMESTAMPTZOID => typed(TypedValue::Timestamptz(datum.value() as i64))?,
        pg_sys::NUMERICOID => typed(TypedValue::Numeric(canonical(datum)?))?,
        pg_sys::JSONBOID => typed(TypedValue::Jsonb(canonical(datum)?))?,
        _ => return Err(ShredError::InvalidParameter("this column type cannot be protected")),
    })
}

/// The row token that a row of the data subject with `dek` (`key_id`) stores for `value`
/// (database encoding) in a searchable column of `context`, recording the blind-index term in
/// the key store. Creates the context's key on first use (writers only).
pub fn index_value(dek: &DataKey, key_id: i64, context: &[u8], value: &[u8], rule: Normalization) -> Result<[u8; 32], ShredError> {
    Ok(index_and_token(dek, key_id, context, value, rule)?.1)
}

/// [`index_value`], with the blind index the term was recorded for: (blind index, row token).
pub fn index_and_token(dek: &DataKey, key_id: i64, context: &[u8], value: &[u8], rule: Normalization) -> Result<([u8; 32], [u8; 32]), ShredError> {
    let key = terms::context_key(context, true)?.ok_or(ShredError::Internal("a context key was not created"))?;
    let index = key.compute_value(value, rule)?;
    terms::record(&index, key_id)?;
    Ok((index, row_token(dek, &index)))
}

/// The row tokens that rows holding `value` (database encoding) in a searchable column of
/// `context` store: one per data subject that holds it, none for an erased one. Never creates
/// a key: a context without one matches nothing and is an error (42704).
pub fn match_value(context: &[u8], value: &[u8], rule: Normalization) -> Result<Vec<Vec<u8>>, ShredError> {
    root::require_root_key()?;
    let key = terms::context_key(context, false)?.ok_or(ShredError::NoBlindIndexKey)?;
    let index = key.compute_value(value, rule)?;
    let mut tokens = Vec::new();
    for key_id in terms::key_ids(&index)? {
        if let Some(dek) = store::live_dek(key_id)? {
            tokens.push(row_token(&dek, &index).to_vec());
        }
    }
    Ok(tokens)
}
