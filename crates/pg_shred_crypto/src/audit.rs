//! Erasure records: a keyed digest of the erased data subject, so that a DBA can prove when a
//! subject was erased without the subject being stored in clear.
//!
//! ```text
//! audit key (random, stored like a DEK under the reserved subject 'pg_shred:audit')
//! digest key     = HKDF-SHA256(no salt, audit key, info = "pg_shred v1 audit")   (RFC 5869)
//! subject digest = HMAC-SHA256(digest key, subject UTF-8)                        (RFC 2104, 32 bytes)
//! ```
//!
//! The audit key is random and kept in the key store, rewrapped by rotation, so digests stay
//! comparable across root-key rotations. Like a blind index, a digest lets whoever can have the
//! server compute digests confirm a guessed subject; it reveals nothing else.

use super::keys::{hmac_sha256, DataKey};

/// HKDF `info` label of the digest key.
pub const LABEL_AUDIT: &[u8] = b"pg_shred v1 audit";
/// Length of a subject digest, in bytes.
pub const DIGEST_LEN: usize = 32;

/// The digest key of `audit_key` (HKDF, above), zeroized when dropped: derive it once for many
/// digests.
pub struct DigestKey(zeroize::Zeroizing<[u8; 32]>);

impl DigestKey {
    pub fn new(audit_key: &DataKey) -> Self {
        DigestKey(audit_key.derive(LABEL_AUDIT))
    }

    /// The keyed digest of `subject` (its UTF-8 bytes). Cannot fail.
    pub fn digest(&self, subject: &[u8]) -> [u8; DIGEST_LEN] {
        hmac_sha256(&self.0, subject)
    }
}

/// The keyed digest of `subject` (its UTF-8 bytes) under `audit_key`. Cannot fail.
pub fn subject_digest(audit_key: &DataKey, subject: &[u8]) -> [u8; DIGEST_LEN] {
    DigestKey::new(audit_key).digest(subject)
}
