//! Pseudonyms: a stable token for a data subject within a domain (analytics, joins across
//! exports), keyed by the subject's DEK so that it becomes unlinkable once the subject is
//! erased.
//!
//! ```text
//! pseudonym key = HKDF-SHA256(salt = empty, ikm = DEK, info = "pg_shred v1 pseudonym")  (32 bytes)
//! pseudonym     = base64url-nopad(first 16 bytes of HMAC-SHA256(pseudonym key, domain)) (22 chars)
//! ```
//!
//! HKDF is RFC 5869 over SHA-256; an empty salt is the same as RFC 5869's default of 32 zero
//! bytes (HMAC pads short keys with zeros). The DEK is 32 uniformly random bytes, so no salt
//! is needed for extraction. HMAC is RFC 2104; the encoding is the URL- and filename-safe
//! base64 alphabet of RFC 4648 section 5 (`A-Z a-z 0-9 - _`), without `=` padding.
//!
//! Length: the HMAC output is truncated to its first [`PSEUDONYM_BYTES`] = 16 bytes (128 bits;
//! truncation as in NIST SP 800-107 Rev. 1, section 5.3.4), giving [`PSEUDONYM_LEN`] = 22
//! characters. Different subjects have independent keys, so two pseudonyms in one domain
//! collide like random 128-bit strings: for `n` subjects the chance of any collision is at
//! most `n² / 2^129`, about 2^-65 for 2^32 subjects (birthday bound). That is negligible for
//! a join key, while half the length of the full 43-character output; 128 bits is also far
//! beyond guessing a pseudonym without the DEK.
//!
//! The pseudonym key is derived from the DEK alone (nothing from the root key), so once the
//! DEK is destroyed nobody, the operator included, can recompute or link a subject's
//! pseudonyms.

use base64::Engine;

use super::keys::{hmac_sha256, DataKey};

/// HKDF `info` label of the pseudonym key.
pub const LABEL_PSEUDONYM: &[u8] = b"pg_shred v1 pseudonym";
/// Bytes of the HMAC-SHA256 output kept in a pseudonym.
pub const PSEUDONYM_BYTES: usize = 16;
/// Length of a pseudonym in characters (unpadded base64 of [`PSEUDONYM_BYTES`] bytes).
pub const PSEUDONYM_LEN: usize = 22;

/// The pseudonym of the data subject whose DEK is `dek` in `domain` (any bytes, typically
/// the UTF-8 name of the consumer, e.g. `analytics`; may be empty).
///
/// Returns [`PSEUDONYM_LEN`] (22) characters of URL-safe base64 without padding. Equal
/// `(dek, domain)` give equal pseudonyms; another domain or another DEK gives an unrelated
/// one. Cannot fail.
pub fn pseudonym(dek: &DataKey, domain: &[u8]) -> String {
    let tag = hmac_sha256(&dek.derive(LABEL_PSEUDONYM), domain);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag[..PSEUDONYM_BYTES])
}
