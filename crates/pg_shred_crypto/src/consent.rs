//! Consent confirmation tokens: the single-use secret of a double opt-in, sent to the data
//! subject (e.g. in a confirmation link) and presented back to confirm the consent.
//!
//! ```text
//! token        = base64url-nopad(32 bytes from the OS CSPRNG)          (43 characters)
//! token digest = SHA-256(the 32 token bytes)                           (32 bytes; FIPS 180-4)
//! ```
//!
//! Only the digest is stored: a copy of the consent records (a dump, a replica, a DBA) cannot
//! confirm anything. The token carries 256 random bits, so its digest needs no key and no salt:
//! guessing a live token takes about 2^255 attempts whatever the number of stored digests
//! (2^32 pending tokens leave 2^223), and no precomputation helps. The text form is the URL-
//! and filename-safe base64 alphabet of RFC 4648 section 5 (`A-Z a-z 0-9 - _`), without `=`
//! padding, so it goes into a URL as is.
//!
//! [`digest_of`] refuses anything but exactly 43 characters of that alphabet that decode to 32
//! bytes (`None`); callers answer such input as they answer an unknown token.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::CryptoError;

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;
/// Length of a token's text form in characters.
pub const TOKEN_LEN: usize = 43;
/// Length of a token digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// A new token: its text form (to hand to the data subject) and its digest (to store).
pub fn generate() -> Result<(String, [u8; DIGEST_LEN]), CryptoError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; TOKEN_BYTES]);
    super::fill_random(bytes.as_mut_slice())?;
    Ok((encode(&bytes), digest(&bytes)))
}

/// The text form of token bytes.
pub fn encode(bytes: &[u8; TOKEN_BYTES]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The digest of token bytes.
pub fn digest(bytes: &[u8; TOKEN_BYTES]) -> [u8; DIGEST_LEN] {
    Sha256::digest(bytes).into()
}

/// The digest of a token in its text form, or `None` when `text` is not a token's text form.
pub fn digest_of(text: &[u8]) -> Option<[u8; DIGEST_LEN]> {
    if text.len() != TOKEN_LEN {
        return None;
    }
    let decoded = zeroize::Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?);
    let bytes: &[u8; TOKEN_BYTES] = decoded.as_slice().try_into().ok()?;
    Some(digest(bytes))
}
