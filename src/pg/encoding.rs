//! Conversion between the database encoding and UTF-8.
//!
//! Text plaintexts and subjects are sealed as UTF-8 whatever the database encoding, so an
//! envelope opens to the same characters after a restore into a database of another encoding.
//! In a UTF-8 database both directions are free (no copy).

use std::borrow::Cow;
use std::ffi::CStr;

use pgrx::pg_sys;

use crate::error::ShredError;

fn database_encoding() -> u32 {
    // SAFETY: plain read of the backend's database encoding.
    unsafe { pg_sys::GetDatabaseEncoding() as u32 }
}

/// Text in the database encoding → UTF-8 bytes, for sealing and for AADs. `what` names the
/// argument in an error. Errors (never echoing the bytes): in a SQL_ASCII database, text that
/// is not valid UTF-8.
pub fn server_to_utf8<'a>(text: &'a [u8], what: &'static str) -> Result<Cow<'a, [u8]>, ShredError> {
    if text.is_ascii() {
        return Ok(Cow::Borrowed(text));
    }
    match database_encoding() {
        pg_sys::pg_enc::PG_UTF8 => Ok(Cow::Borrowed(text)),
        pg_sys::pg_enc::PG_SQL_ASCII => match std::str::from_utf8(text) {
            Ok(_) => Ok(Cow::Borrowed(text)),
            Err(_) => Err(ShredError::NotUtf8(what)),
        },
        // Every other server encoding maps into Unicode: the conversion of valid server text
        // cannot fail.
        _ => unsafe {
            // SAFETY: valid server-encoded text of the given length; the result is `text`
            // itself or a NUL-terminated palloc'd string.
            let out = pg_sys::pg_server_to_any(text.as_ptr().cast(), text.len() as i32, pg_sys::pg_enc::PG_UTF8 as i32);
            if out.cast_const().cast::<u8>() == text.as_ptr() {
                Ok(Cow::Borrowed(text))
            } else {
                Ok(Cow::Owned(CStr::from_ptr(out).to_bytes().to_vec()))
            }
        },
    }
}

/// UTF-8 plaintext bytes → text in the database encoding. Errors, never echoing the bytes:
/// [`ShredError::NotText`] for bytes that are not UTF-8 or contain a zero byte (a value sealed
/// from bytea); [`ShredError::NotRepresentable`] for a character the database encoding lacks.
pub fn utf8_to_server(utf8: &[u8]) -> Result<Cow<'_, [u8]>, ShredError> {
    if std::str::from_utf8(utf8).is_err() || utf8.contains(&0) {
        return Err(ShredError::NotText);
    }
    let encoding = database_encoding();
    if utf8.is_ascii() || encoding == pg_sys::pg_enc::PG_UTF8 || encoding == pg_sys::pg_enc::PG_SQL_ASCII {
        return Ok(Cow::Borrowed(utf8));
    }
    // SAFETY: conversion into a buffer of the documented worst-case size, with noError: the
    // return value says how many source bytes were converted.
    unsafe {
        let proc_ = pg_sys::FindDefaultConversionProc(pg_sys::pg_enc::PG_UTF8 as i32, encoding as i32);
        if proc_ == pg_sys::InvalidOid {
            return Err(ShredError::NotRepresentable);
        }
        let cap = utf8.len() * pg_sys::MAX_CONVERSION_GROWTH as usize + 1;
        let dst = pg_sys::palloc(cap).cast::<u8>();
        let done = pg_sys::pg_do_encoding_conversion_buf(
            proc_,
            pg_sys::pg_enc::PG_UTF8 as i32,
            encoding as i32,
            utf8.as_ptr().cast_mut(),
            utf8.len() as i32,
            dst,
            cap as i32,
            true,
        );
        if done as usize != utf8.len() {
            return Err(ShredError::NotRepresentable);
        }
        Ok(Cow::Owned(CStr::from_ptr(dst.cast()).to_bytes().to_vec()))
    }
}
