//! Conversion between the database encoding and UTF-8.
//!
//! Text plaintexts and subjects are sealed as UTF-8 whatever the database encoding, so an
//! envelope opens to the same characters after a restore into a database of another encoding.
//! In a UTF-8 database both directions are free (no copy).

use std::borrow::Cow;
use std::ffi::CStr;

use pgrx::pg_sys;

use crate::error::ShredError;

fn database_is_utf8() -> bool {
    // SAFETY: plain read of the backend's database encoding.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}

/// Text in the database encoding → UTF-8 bytes. PostgreSQL text never holds a zero byte, and
/// the conversion raises its own ERROR for a character UTF-8 lacks (none, in practice).
pub fn server_to_utf8(text: &[u8]) -> Cow<'_, [u8]> {
    if database_is_utf8() || text.is_ascii() {
        return Cow::Borrowed(text);
    }
    // SAFETY: `text` is valid server-encoded text of the given length; the result is either
    // `text` itself or a NUL-terminated palloc'd string.
    unsafe {
        let out = pg_sys::pg_server_to_any(text.as_ptr().cast(), text.len() as i32, pg_sys::pg_enc::PG_UTF8 as i32);
        if out.cast_const().cast::<u8>() == text.as_ptr() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(CStr::from_ptr(out).to_bytes().to_vec())
        }
    }
}

/// UTF-8 plaintext bytes → text in the database encoding. Errors with [`ShredError::NotText`]
/// for bytes that are not UTF-8 or contain a zero byte (a value sealed from bytea).
pub fn utf8_to_server(utf8: &[u8]) -> Result<Cow<'_, [u8]>, ShredError> {
    if std::str::from_utf8(utf8).is_err() || utf8.contains(&0) {
        return Err(ShredError::NotText);
    }
    if database_is_utf8() || utf8.is_ascii() {
        return Ok(Cow::Borrowed(utf8));
    }
    // SAFETY: valid UTF-8 without zero bytes; pg_any_to_server raises an ERROR for characters
    // the database encoding cannot represent.
    unsafe {
        let out = pg_sys::pg_any_to_server(utf8.as_ptr().cast(), utf8.len() as i32, pg_sys::pg_enc::PG_UTF8 as i32);
        if out.cast_const().cast::<u8>() == utf8.as_ptr() {
            Ok(Cow::Borrowed(utf8))
        } else {
            Ok(Cow::Owned(CStr::from_ptr(out).to_bytes().to_vec()))
        }
    }
}
