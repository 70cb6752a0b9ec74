//! A type's input function called on text that may be secret (an opened plaintext, a data
//! subject). PostgreSQL's input functions quote the input in their error messages
//! (`invalid input syntax for type numeric: "…"`), and such messages reach the client and the
//! server log; here any error of the input function is caught and replaced by the caller's,
//! which never contains the text.
//!
//! The caught error is discarded and the caller raises its own at once or treats the text as
//! matching nothing: an input function of a built-in type (numeric, jsonb, integer, uuid...)
//! takes no lock and leaves nothing to clean up when it raises.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::pg_sys::PgTryBuilder;

/// The datum of type `typ` whose text form is `text` (database encoding), or `None` when the
/// type's input function refuses it (the refusal and its message are dropped).
pub fn parse(typ: pg_sys::Oid, text: &[u8]) -> Option<pg_sys::Datum> {
    let text = CString::new(text).ok()?;
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the type's input function on a valid C string, in the current memory context.
        Some(unsafe {
            let (mut func, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
            pg_sys::getTypeInputInfo(typ, &mut func, &mut ioparam);
            pg_sys::OidInputFunctionCall(func, text.as_ptr().cast_mut(), ioparam, -1)
        })
    }))
    .catch_others(|_| None)
    .execute()
}

/// The text output of a datum of type `typ` (its output function: what `::text` gives for the
/// built-in types pg_shred accepts), in the database encoding.
///
/// # Safety
/// `datum` must be a non-NULL value of type `typ`.
pub unsafe fn output(typ: pg_sys::Oid, datum: pg_sys::Datum) -> Vec<u8> {
    unsafe {
        let (mut func, mut varlena) = (pg_sys::InvalidOid, false);
        pg_sys::getTypeOutputInfo(typ, &mut func, &mut varlena);
        let out = pg_sys::OidOutputFunctionCall(func, datum);
        CStr::from_ptr(out).to_bytes().to_vec()
    }
}
