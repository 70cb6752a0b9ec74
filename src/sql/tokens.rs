//! Blind indexes and pseudonyms: deterministic tokens for lookups and joins without
//! decrypting.
//!
//! - `shred.blind_index(value, context, normalization)`: HMAC-SHA256 of the normalised value
//!   under the context's blind-index key ([`crate::crypto::blind`]). The context's random key
//!   is kept in the key store under the reserved subject `pg_shred:blind-index:<context>`,
//!   created on first use, wrapped under the KEK and rewrapped by rotation like any DEK; it
//!   belongs to no data subject and survives erasures.
//! - `shred.pseudonym(subject, domain)`: a token keyed by the subject's own DEK
//!   ([`crate::crypto::pseudonym`]): stable while the subject exists, NULL once it is erased,
//!   and unlinkable across domains.
//!
//! Subjects starting with `pg_shred:` are reserved for such keys: `seal`, `erase` and
//! `pseudonym` refuse them.

use pgrx::prelude::*;

use crate::pg::encoding::server_to_utf8;
use super::{required, subject_arg};
use crate::crypto::blind::Normalization;
use crate::crypto::pseudonym;
use crate::error::{OrReport, ShredError};
use crate::keys::{root, terms};

/// Longest blind-index context, in bytes.
const MAX_CONTEXT_LEN: usize = 256;

pub(crate) fn normalization(name: &[u8]) -> Normalization {
    Normalization::from_name(name)
        .unwrap_or_else(|| ShredError::InvalidParameter("normalization must be 'exact' or 'email'").report())
}

/// A blind-index context argument: not NULL, 1 to 256 bytes.
pub(crate) fn context_arg(context: Option<&[u8]>) -> &[u8] {
    let context = required(context, "context");
    if context.is_empty() || context.len() > MAX_CONTEXT_LEN {
        ShredError::InvalidParameter("context must be 1 to 256 bytes long").report();
    }
    context
}

/// `shred.blind_index(value text, context text, normalization text DEFAULT 'exact') -> bytea`:
/// never creates the context's key (so it is STABLE and any reader may call it); a context
/// without a key is an error, not an index that matches nothing.
#[pg_extern(stable, parallel_unsafe, sql = false)]
fn blind_index(value: Option<&[u8]>, context: Option<&[u8]>, rule: Option<&[u8]>) -> Option<Vec<u8>> {
    let context = context_arg(context);
    let rule = normalization(required(rule, "normalization"));
    let value = value?;
    root::require_root_key().or_report();
    // Under the 0.2.0 schema (the library installed, ALTER EXTENSION ... UPDATE not yet run),
    // its shred.protect() relies on this function creating the key, as it did then.
    let create = crate::keys::scan::relation(c"blind_term").is_err();
    let key = terms::context_key(context, create).or_report().unwrap_or_else(|| ShredError::NoBlindIndexKey.report());
    Some(key.compute_value(value, rule).or_report().to_vec())
}

/// `shred.pseudonym(subject text, domain text) -> text`: NULL when the subject has no DEK
/// (erased, or never sealed for).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn pseudonym(subject: &[u8], domain: &[u8]) -> Option<String> {
    pseudonym_for(Some(subject), Some(domain), None)
}

/// `shred.pseudonym(subject text, domain text, purpose text DEFAULT NULL) -> text` (0.6.0 on):
/// keyed by the subject's DEK for `purpose` (NULL: its default DEK), so it dies with that
/// purpose's erasure; NULL when that DEK does not exist, or the subject or domain is NULL.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn pseudonym_for(subject: Option<&[u8]>, domain: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<String> {
    let purpose = super::purpose_arg(purpose);
    let subject = subject_arg(Some(subject?));
    let domain = server_to_utf8(domain?, "domain").or_report();
    root::require_root_key().or_report();
    let dek = crate::purposes::existing_dek(&subject, purpose.as_ref()).or_report()?;
    Some(pseudonym::pseudonym(&dek, &domain))
}
