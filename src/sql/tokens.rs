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

use super::encoding::server_to_utf8;
use super::{required, subject_arg};
use crate::crypto::blind::{normalize, BlindIndexKey, Normalization};
use crate::crypto::pseudonym;
use crate::error::{OrReport, ShredError};
use crate::keys::{root, store};

/// Prefix of the subjects the key store reserves for pg_shred's own keys.
pub const RESERVED_SUBJECT_PREFIX: &[u8] = b"pg_shred:";
/// Reserved subject of a blind-index context key; the context follows.
const BLIND_INDEX_SUBJECT: &[u8] = b"pg_shred:blind-index:";
/// Longest blind-index context, in bytes.
const MAX_CONTEXT_LEN: usize = 256;

fn normalization(name: &[u8]) -> Normalization {
    match name {
        b"exact" => Normalization::Exact,
        b"email" => Normalization::Email,
        _ => ShredError::InvalidParameter("normalization must be 'exact' or 'email'").report(),
    }
}

/// `shred.blind_index(value text, context text, normalization text DEFAULT 'exact') -> bytea`.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn blind_index(value: Option<&[u8]>, context: Option<&[u8]>, rule: Option<&[u8]>) -> Option<Vec<u8>> {
    let context = required(context, "context");
    let rule = normalization(required(rule, "normalization"));
    if context.is_empty() || context.len() > MAX_CONTEXT_LEN {
        ShredError::InvalidParameter("context must be 1 to 256 bytes long").report();
    }
    let context_utf8 = server_to_utf8(context, "context").or_report();
    let value = value?;
    let value = server_to_utf8(value, "value").or_report();
    let value = std::str::from_utf8(&value).unwrap_or_else(|_| ShredError::NotUtf8("value").report());
    root::require_root_key().or_report();
    let mut subject = BLIND_INDEX_SUBJECT.to_vec();
    subject.extend_from_slice(context);
    let (_, key) = store::get_or_create(&subject).or_report();
    let index = BlindIndexKey::derive(&key, &context_utf8).compute(normalize(value, rule).as_bytes());
    Some(index.to_vec())
}

/// `shred.pseudonym(subject text, domain text) -> text`: NULL when the subject has no DEK
/// (erased, or never sealed for).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn pseudonym(subject: &[u8], domain: &[u8]) -> Option<String> {
    let subject = subject_arg(Some(subject));
    let domain = server_to_utf8(domain, "domain").or_report();
    root::require_root_key().or_report();
    let dek = store::existing_dek(subject).or_report()?;
    Some(pseudonym::pseudonym(&dek, &domain))
}
