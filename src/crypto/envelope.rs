//! Envelope format v1: the bytes stored in a `shred.sealed` column.
//!
//! ```text
//! offset  size  field
//! 0       1     format version (0x01)
//! 1       8     key id of the data subject's DEK (u64, big endian, 1 ..= 2^63-1)
//! 9       12    nonce (OS CSPRNG, fresh per seal)
//! 21      n     ciphertext (AES-256-GCM under the DEK, n = plaintext length)
//! 21+n    16    authentication tag
//! AAD = "pg_shred" | 0x01 | key id (8 bytes, big endian) | context (caller's bytes, may be empty)
//! ```
//!
//! The key id and context sit at fixed places (the context is last), so the AAD is
//! unambiguous. No OID, table or column name is part of it unless the caller puts one in the
//! context, so values survive dump/restore and renames.
//!
//! Text form (type output, `COPY`, `pg_dump`): `shred1:` followed by standard base64
//! (RFC 4648, padded) of the bytes. [`from_text`] accepts exactly what [`to_text`] produces.
//!
//! A random 96-bit nonce per seal keeps the chance of a nonce collision under one DEK below
//! 2^-32 for up to 2^32 values per data subject (NIST SP 800-38D, section 8.3).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::Nonce;
use base64::Engine;

use super::keys::{DataKey, NONCE_LEN, TAG_LEN};
use super::{fill_nonce, CryptoError};

/// Format version byte of envelope v1.
pub const FORMAT_V1: u8 = 1;
/// Prefix of every envelope AAD.
pub const AAD_PREFIX: &[u8] = b"pg_shred";
/// Version byte plus key id.
pub const HEADER_LEN: usize = 1 + 8;
/// Shortest well-formed envelope (empty plaintext): 37 bytes.
pub const MIN_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Largest plaintext pg_shred seals: 64 MiB.
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024 * 1024;
/// Longest well-formed envelope.
pub const MAX_LEN: usize = MIN_LEN + MAX_PLAINTEXT_LEN;
/// Prefix of the text form.
pub const TEXT_PREFIX: &str = "shred1:";

/// A validated, borrowed envelope.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    bytes: &'a [u8],
    key_id: u64,
}

/// Validate envelope bytes: length bounds, format version and key id range, in that order,
/// before any cryptography.
pub fn parse(bytes: &[u8]) -> Result<Envelope<'_>, CryptoError> {
    let Some(&version) = bytes.first() else {
        return Err(CryptoError::MalformedEnvelope("it is empty"));
    };
    if version != FORMAT_V1 {
        return Err(CryptoError::UnsupportedVersion(version));
    }
    if bytes.len() < MIN_LEN {
        return Err(CryptoError::MalformedEnvelope(
            "it is shorter than header, nonce and tag (37 bytes)",
        ));
    }
    if bytes.len() > MAX_LEN {
        return Err(CryptoError::MalformedEnvelope("it is longer than the largest envelope"));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[1..HEADER_LEN]);
    let key_id = u64::from_be_bytes(id);
    if key_id == 0 || key_id > i64::MAX as u64 {
        return Err(CryptoError::MalformedEnvelope("its key id is out of range"));
    }
    Ok(Envelope { bytes, key_id })
}

impl<'a> Envelope<'a> {
    /// The key id of the DEK that sealed this envelope (1 ..= 2^63-1).
    pub fn key_id(&self) -> u64 {
        self.key_id
    }

    /// Length of the plaintext inside, in bytes.
    pub fn plaintext_len(&self) -> usize {
        self.bytes.len() - MIN_LEN
    }
}

/// Run `f` with the AAD of `key_id` and `context`, built on the stack when it fits.
fn with_aad<R>(key_id: u64, context: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const FIXED: usize = 8 + 1 + 8; // "pg_shred", version, key id
    let mut stack = [0u8; 256];
    let mut heap;
    let len = FIXED + context.len();
    let aad: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap = vec![0u8; len];
        &mut heap
    };
    aad[..8].copy_from_slice(AAD_PREFIX);
    aad[8] = FORMAT_V1;
    aad[9..FIXED].copy_from_slice(&key_id.to_be_bytes());
    aad[FIXED..].copy_from_slice(context);
    f(aad)
}

fn check_seal_args(key_id: u64, plaintext_len: usize) -> Result<(), CryptoError> {
    if plaintext_len > MAX_PLAINTEXT_LEN {
        return Err(CryptoError::PlaintextTooLarge { len: plaintext_len, max: MAX_PLAINTEXT_LEN });
    }
    if key_id == 0 || key_id > i64::MAX as u64 {
        return Err(CryptoError::MalformedEnvelope("its key id is out of range"));
    }
    Ok(())
}

/// Length of the envelope of a plaintext of `plaintext_len` bytes.
pub fn sealed_len(plaintext_len: usize) -> usize {
    MIN_LEN + plaintext_len
}

/// Seal `plaintext` under `dek` (whose key id is `key_id`) with a fresh random nonce.
///
/// Returns the envelope bytes (`plaintext.len() + 37`). Errors:
/// [`CryptoError::PlaintextTooLarge`] above [`MAX_PLAINTEXT_LEN`], [`CryptoError::Random`].
pub fn seal(dek: &DataKey, key_id: u64, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    check_seal_args(key_id, plaintext.len())?;
    let mut out = vec![0u8; sealed_len(plaintext.len())];
    seal_into(dek, key_id, context, plaintext, &mut out)?;
    Ok(out)
}

/// Seal into `out`, which must be exactly [`sealed_len`]`(plaintext.len())` bytes (for
/// callers that allocate the result themselves, e.g. in a PostgreSQL memory context).
pub fn seal_into(
    dek: &DataKey,
    key_id: u64,
    context: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_nonce(&mut nonce)?;
    seal_into_with_nonce(dek, key_id, context, plaintext, &nonce, out)
}

/// Seal with a caller-chosen nonce. Only for known-answer tests: a nonce must never repeat
/// under one DEK.
pub fn seal_with_nonce(
    dek: &DataKey,
    key_id: u64,
    context: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, CryptoError> {
    check_seal_args(key_id, plaintext.len())?;
    let mut out = vec![0u8; sealed_len(plaintext.len())];
    seal_into_with_nonce(dek, key_id, context, plaintext, nonce, &mut out)?;
    Ok(out)
}

fn seal_into_with_nonce(
    dek: &DataKey,
    key_id: u64,
    context: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    check_seal_args(key_id, plaintext.len())?;
    if out.len() != sealed_len(plaintext.len()) {
        return Err(CryptoError::MalformedEnvelope("the output buffer has the wrong length"));
    }
    let body = HEADER_LEN + NONCE_LEN;
    let tag_at = body + plaintext.len();
    out[0] = FORMAT_V1;
    out[1..HEADER_LEN].copy_from_slice(&key_id.to_be_bytes());
    out[HEADER_LEN..body].copy_from_slice(nonce);
    out[body..tag_at].copy_from_slice(plaintext);
    let tag = with_aad(key_id, context, |aad| {
        dek.cipher().encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut out[body..tag_at])
    })
    .map_err(|_| CryptoError::PlaintextTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT_LEN })?;
    out[tag_at..].copy_from_slice(&tag);
    Ok(())
}

/// Open `envelope` with `dek` and `context`.
///
/// Errors: [`CryptoError::AuthenticationFailed`] when the envelope was altered, the context
/// differs from the one used to seal, or `dek` is not the envelope's DEK.
pub fn open(dek: &DataKey, envelope: &Envelope<'_>, context: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut plaintext = vec![0u8; envelope.plaintext_len()];
    open_into(dek, envelope, context, &mut plaintext)?;
    Ok(plaintext)
}

/// Open into `out`, which must be exactly [`Envelope::plaintext_len`] bytes. The tag is
/// verified before anything is decrypted: on error `out` holds no plaintext.
pub fn open_into(dek: &DataKey, envelope: &Envelope<'_>, context: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
    let b = envelope.bytes;
    if out.len() != envelope.plaintext_len() {
        return Err(CryptoError::MalformedEnvelope("the output buffer has the wrong length"));
    }
    let nonce = Nonce::from_slice(&b[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
    let tag_at = b.len() - TAG_LEN;
    let tag = aes_gcm::Tag::from_slice(&b[tag_at..]);
    out.copy_from_slice(&b[HEADER_LEN + NONCE_LEN..tag_at]);
    with_aad(envelope.key_id, context, |aad| dek.cipher().decrypt_in_place_detached(nonce, aad, out, tag))
        .map_err(|_| CryptoError::AuthenticationFailed)
}

/// The text form of envelope bytes: `shred1:` + standard padded base64.
pub fn to_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(TEXT_PREFIX.len() + bytes.len().div_ceil(3) * 4);
    s.push_str(TEXT_PREFIX);
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut s);
    s
}

/// Parse the text form back into validated envelope bytes. Accepts exactly the output of
/// [`to_text`]: the prefix, canonical padded base64 without whitespace, then the checks of
/// [`parse`]. The length is bounded before decoding.
pub fn from_text(text: &str) -> Result<Vec<u8>, CryptoError> {
    let Some(b64) = text.strip_prefix(TEXT_PREFIX) else {
        return Err(CryptoError::MalformedEnvelope("it does not start with \"shred1:\""));
    };
    if b64.len() > MAX_LEN.div_ceil(3) * 4 {
        return Err(CryptoError::MalformedEnvelope("it is longer than the largest envelope"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| CryptoError::MalformedEnvelope("its body is not canonical base64"))?;
    parse(&bytes)?;
    Ok(bytes)
}
