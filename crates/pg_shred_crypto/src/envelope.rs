//! Envelope formats: the bytes stored in a `shred.sealed` column.
//!
//! Format v1 (untyped: the plaintext is text or bytea, the caller knows which):
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
//! Format v2 (typed: the envelope records the [`PlainType`] it was sealed from, and the type
//! byte is authenticated, so a value sealed as text cannot be opened as an integer):
//! ```text
//! offset  size  field
//! 0       1     format version (0x02)
//! 1       8     key id of the data subject's DEK (u64, big endian, 1 ..= 2^63-1)
//! 9       1     plaintext type (PlainType byte, 1 ..= 8)
//! 10      12    nonce (OS CSPRNG, fresh per seal)
//! 22      n     ciphertext of the type's canonical encoding (see super::typed)
//! 22+n    16    authentication tag
//! AAD = "pg_shred" | 0x02 | key id (8 bytes, big endian) | plaintext type | context
//! ```
//! In both formats the AAD is `"pg_shred"`, the envelope's header (every byte before the
//! nonce), then the context. The version byte is part of it, so an envelope cannot be
//! rewritten from one format into the other.
//!
//! Text form (type output, `COPY`, `pg_dump`): `shred1:` (v1) or `shred2:` (v2) followed by
//! standard base64 (RFC 4648, padded) of the bytes. [`from_text`] (v1 only) and
//! [`from_text_any`] (v1 and v2) accept exactly what [`to_text`] produces.
//!
//! [`parse`], [`from_text`], [`seal`] and [`seal_into`] are the v1 functions the SQL layer
//! uses today, and keep their v1-only behaviour. Typed values are sealed with [`seal_v2`] or
//! [`seal_typed`]; [`parse_any`] and [`from_text_any`] accept both formats, [`open`] and
//! [`open_into`] open either, and [`open_typed`] also decodes a v2 plaintext.
//!
//! One seal, one open: every seal function draws its nonce (or, with the feature
//! `test-vectors`, takes the caller's) and ends in one private function that writes the
//! header, encrypts and appends the tag; [`open`] and [`open_typed`] end in [`open_into`].
//! Which to call:
//!
//! | to                                     | call                                           |
//! |----------------------------------------|------------------------------------------------|
//! | seal text or bytea (v1)                | [`seal`], or [`seal_into`] into your buffer    |
//! | seal a typed value (v2)                | [`seal_typed`]                                 |
//! | seal an already encoded typed value    | [`seal_v2`], or [`seal_v2_into`]               |
//! | open either format                     | [`parse_any`], then [`open_typed`]             |
//! | open to raw plaintext bytes            | [`open`], or [`open_into`] into your buffer    |
//!
//! A random 96-bit nonce per seal keeps the chance of a nonce collision under one DEK below
//! 2^-32 for up to 2^32 values per data subject (NIST SP 800-38D, section 8.3).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::Nonce;
use base64::Engine;

use super::keys::{DataKey, NONCE_LEN, TAG_LEN};
use super::typed::{self, PlainType, TypedValue};
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
/// Prefix of the text form of a v1 envelope.
pub const TEXT_PREFIX: &str = "shred1:";

/// Format version byte of envelope v2 (typed plaintext).
pub const FORMAT_V2: u8 = 2;
/// Version byte, key id and plaintext type of envelope v2.
pub const HEADER_LEN_V2: usize = HEADER_LEN + 1;
/// Shortest well-formed v2 envelope (empty plaintext): 38 bytes.
pub const MIN_LEN_V2: usize = HEADER_LEN_V2 + NONCE_LEN + TAG_LEN;
/// Longest well-formed v2 envelope.
pub const MAX_LEN_V2: usize = MIN_LEN_V2 + MAX_PLAINTEXT_LEN;
/// Prefix of the text form of a v2 envelope.
pub const TEXT_PREFIX_V2: &str = "shred2:";

/// A validated, borrowed envelope (v1 or v2).
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    bytes: &'a [u8],
    key_id: u64,
    /// `None` for v1, the recorded type for v2.
    plain_type: Option<PlainType>,
}

/// Validate v1 envelope bytes: format version, length bounds and key id range, in that order,
/// before any cryptography. A v2 envelope is refused with
/// [`CryptoError::UnsupportedVersion`]`(2)`: use [`parse_any`] where v2 is expected.
pub fn parse(bytes: &[u8]) -> Result<Envelope<'_>, CryptoError> {
    match bytes.first() {
        None => Err(CryptoError::MalformedEnvelope("it is empty")),
        Some(&FORMAT_V1) => parse_version(bytes, FORMAT_V1),
        Some(&version) => Err(CryptoError::UnsupportedVersion(version)),
    }
}

/// Validate v1 or v2 envelope bytes: format version, length bounds, key id range and (v2)
/// plaintext type, in that order, before any cryptography.
///
/// Errors: [`CryptoError::UnsupportedVersion`] for any other version byte,
/// [`CryptoError::MalformedEnvelope`] naming the failed check. The type byte is
/// authenticated only when the envelope is opened.
pub fn parse_any(bytes: &[u8]) -> Result<Envelope<'_>, CryptoError> {
    match bytes.first() {
        None => Err(CryptoError::MalformedEnvelope("it is empty")),
        Some(&version @ (FORMAT_V1 | FORMAT_V2)) => parse_version(bytes, version),
        Some(&version) => Err(CryptoError::UnsupportedVersion(version)),
    }
}

/// The checks after the version byte; `version` is `FORMAT_V1` or `FORMAT_V2`.
fn parse_version(bytes: &[u8], version: u8) -> Result<Envelope<'_>, CryptoError> {
    let (min_len, too_short) = if version == FORMAT_V2 {
        (MIN_LEN_V2, "it is shorter than header, nonce and tag (38 bytes)")
    } else {
        (MIN_LEN, "it is shorter than header, nonce and tag (37 bytes)")
    };
    if bytes.len() < min_len {
        return Err(CryptoError::MalformedEnvelope(too_short));
    }
    if bytes.len() > min_len + MAX_PLAINTEXT_LEN {
        return Err(CryptoError::MalformedEnvelope("it is longer than the largest envelope"));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[1..HEADER_LEN]);
    let key_id = u64::from_be_bytes(id);
    if key_id == 0 || key_id > i64::MAX as u64 {
        return Err(CryptoError::MalformedEnvelope("its key id is out of range"));
    }
    let plain_type = if version == FORMAT_V2 {
        let t = PlainType::from_u8(bytes[HEADER_LEN])
            .ok_or(CryptoError::MalformedEnvelope("its plaintext type is unknown"))?;
        Some(t)
    } else {
        None
    };
    Ok(Envelope { bytes, key_id, plain_type })
}

impl<'a> Envelope<'a> {
    /// The key id of the DEK that sealed this envelope (1 ..= 2^63-1).
    pub fn key_id(&self) -> u64 {
        self.key_id
    }

    /// Length of the plaintext inside, in bytes.
    pub fn plaintext_len(&self) -> usize {
        self.bytes.len() - self.header().len() - NONCE_LEN - TAG_LEN
    }

    /// The format version: [`FORMAT_V1`] or [`FORMAT_V2`].
    pub fn format_version(&self) -> u8 {
        self.bytes[0]
    }

    /// The plaintext type recorded in a v2 envelope; `None` for v1 (text or bytea, as the
    /// caller says). Authenticated only by opening: a caller may refuse a mismatch before
    /// opening, but must not trust a match until [`open`] succeeds.
    pub fn plain_type(&self) -> Option<PlainType> {
        self.plain_type
    }

    /// Every byte before the nonce: version and key id, and the type in v2.
    fn header(&self) -> &'a [u8] {
        let len = if self.plain_type.is_some() { HEADER_LEN_V2 } else { HEADER_LEN };
        &self.bytes[..len]
    }
}

/// Run `f` with the AAD `"pg_shred" | header | context` (`header`: every envelope byte before
/// the nonce), built on the stack when it fits.
fn with_aad<R>(header: &[u8], context: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let fixed = AAD_PREFIX.len() + header.len();
    let mut stack = [0u8; 256];
    let mut heap;
    let len = fixed + context.len();
    let aad: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap = vec![0u8; len];
        &mut heap
    };
    aad[..AAD_PREFIX.len()].copy_from_slice(AAD_PREFIX);
    aad[AAD_PREFIX.len()..fixed].copy_from_slice(header);
    aad[fixed..].copy_from_slice(context);
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

/// A fresh nonce from [`fill_nonce`].
fn fresh_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_nonce(&mut nonce)?;
    Ok(nonce)
}

/// Seal `plaintext` under `dek` (whose key id is `key_id`) with a fresh random nonce.
///
/// Returns the envelope bytes (`plaintext.len() + 37`). Errors:
/// [`CryptoError::PlaintextTooLarge`] above [`MAX_PLAINTEXT_LEN`], [`CryptoError::Random`].
pub fn seal(dek: &DataKey, key_id: u64, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    check_seal_args(key_id, plaintext.len())?;
    seal_format(dek, key_id, None, context, plaintext, &fresh_nonce()?)
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
    seal_format_into(dek, key_id, None, context, plaintext, &fresh_nonce()?, out)
}

/// Seal with a caller-chosen nonce. Only for known-answer tests: a nonce must never repeat
/// under one DEK.
#[cfg(any(test, feature = "test-vectors"))]
pub fn seal_with_nonce(
    dek: &DataKey,
    key_id: u64,
    context: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, CryptoError> {
    seal_format(dek, key_id, None, context, plaintext, nonce)
}

/// Seal as v1 (`plain_type` `None`) or v2 into a new vector of the exact length: the
/// arguments (and, for v2, the plaintext's encoding) are checked before anything is allocated.
fn seal_format(
    dek: &DataKey,
    key_id: u64,
    plain_type: Option<PlainType>,
    context: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, CryptoError> {
    check_seal_args(key_id, plaintext.len())?;
    let len = match plain_type {
        None => sealed_len(plaintext.len()),
        Some(t) => {
            typed::check(t, plaintext)?;
            sealed_len_v2(plaintext.len())
        }
    };
    let mut out = vec![0u8; len];
    seal_format_into(dek, key_id, plain_type, context, plaintext, nonce, &mut out)?;
    Ok(out)
}

/// Seal as v1 (`plain_type` `None`) or v2 into `out`, which must have the exact length: the
/// one function every seal ends in.
fn seal_format_into(
    dek: &DataKey,
    key_id: u64,
    plain_type: Option<PlainType>,
    context: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    check_seal_args(key_id, plaintext.len())?;
    let header_len = if plain_type.is_some() { HEADER_LEN_V2 } else { HEADER_LEN };
    if out.len() != header_len + NONCE_LEN + plaintext.len() + TAG_LEN {
        return Err(CryptoError::MalformedEnvelope("the output buffer has the wrong length"));
    }
    let (header, rest) = out.split_at_mut(header_len);
    header[1..HEADER_LEN].copy_from_slice(&key_id.to_be_bytes());
    match plain_type {
        None => header[0] = FORMAT_V1,
        Some(t) => {
            header[0] = FORMAT_V2;
            header[HEADER_LEN] = t.as_u8();
        }
    }
    let tag_at = NONCE_LEN + plaintext.len();
    rest[..NONCE_LEN].copy_from_slice(nonce);
    rest[NONCE_LEN..tag_at].copy_from_slice(plaintext);
    let tag = with_aad(header, context, |aad| {
        dek.cipher().encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut rest[NONCE_LEN..tag_at])
    })
    .map_err(|_| CryptoError::PlaintextTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT_LEN })?;
    rest[tag_at..].copy_from_slice(&tag);
    Ok(())
}

/// Open `envelope` (v1 or v2) with `dek` and `context`, returning the plaintext bytes (for
/// v2, the canonical encoding of its [`Envelope::plain_type`]).
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
    let header = envelope.header();
    let body = header.len() + NONCE_LEN;
    let nonce = Nonce::from_slice(&b[header.len()..body]);
    let tag_at = b.len() - TAG_LEN;
    let tag = aes_gcm::Tag::from_slice(&b[tag_at..]);
    out.copy_from_slice(&b[body..tag_at]);
    with_aad(header, context, |aad| dek.cipher().decrypt_in_place_detached(nonce, aad, out, tag))
        .map_err(|_| CryptoError::AuthenticationFailed)
}

/// Length of the v2 envelope of an encoded plaintext of `plaintext_len` bytes.
pub fn sealed_len_v2(plaintext_len: usize) -> usize {
    MIN_LEN_V2 + plaintext_len
}

/// Seal the canonical encoding `plaintext` of a value of type `plain_type` (see
/// [`super::typed`]) under `dek` (whose key id is `key_id`) as a v2 envelope, with a fresh
/// random nonce.
///
/// Returns the envelope bytes (`plaintext.len() + 38`). Errors:
/// [`CryptoError::MalformedPlaintext`] when `plaintext` is not a valid encoding of
/// `plain_type`, [`CryptoError::PlaintextTooLarge`] above [`MAX_PLAINTEXT_LEN`],
/// [`CryptoError::Random`].
pub fn seal_v2(
    dek: &DataKey,
    key_id: u64,
    context: &[u8],
    plain_type: PlainType,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    seal_format(dek, key_id, Some(plain_type), context, plaintext, &fresh_nonce()?)
}

/// [`seal_v2`] into `out`, which must be exactly [`sealed_len_v2`]`(plaintext.len())` bytes.
pub fn seal_v2_into(
    dek: &DataKey,
    key_id: u64,
    context: &[u8],
    plain_type: PlainType,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    typed::check(plain_type, plaintext)?;
    seal_format_into(dek, key_id, Some(plain_type), context, plaintext, &fresh_nonce()?, out)
}

/// [`seal_v2`] with a caller-chosen nonce. Only for known-answer tests: a nonce must never
/// repeat under one DEK.
#[cfg(any(test, feature = "test-vectors"))]
pub fn seal_v2_with_nonce(
    dek: &DataKey,
    key_id: u64,
    context: &[u8],
    plain_type: PlainType,
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, CryptoError> {
    seal_format(dek, key_id, Some(plain_type), context, plaintext, nonce)
}

/// Seal a typed value as a v2 envelope: [`seal_v2`] of its type and
/// [`TypedValue::encode`]. Errors as for [`seal_v2`].
pub fn seal_typed(dek: &DataKey, key_id: u64, context: &[u8], value: &TypedValue) -> Result<Vec<u8>, CryptoError> {
    seal_v2(dek, key_id, context, value.plain_type(), &value.encode())
}

/// What an envelope opens to with [`open_typed`].
#[derive(Clone, PartialEq, Eq)]
pub enum Opened {
    /// A v1 envelope: bytes whose type only the caller knows (text or bytea).
    Untyped(Vec<u8>),
    /// A v2 envelope: the value, with the type it was sealed from.
    Typed(TypedValue),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Untyped(_) => f.write_str("Opened::Untyped(..)"),
            Opened::Typed(v) => write!(f, "Opened::Typed({v:?})"),
        }
    }
}

/// Open `envelope` (v1 or v2) and, for v2, decode the plaintext as its recorded type. The
/// caller compares [`TypedValue::plain_type`] with the type it was asked for and refuses a
/// mismatch, naming both with [`PlainType::name`].
///
/// Errors: as for [`open`]; [`CryptoError::MalformedPlaintext`] when an authenticated v2
/// plaintext is not a valid encoding of its type (it was not sealed by pg_shred).
pub fn open_typed(dek: &DataKey, envelope: &Envelope<'_>, context: &[u8]) -> Result<Opened, CryptoError> {
    let plaintext = open(dek, envelope, context)?;
    match envelope.plain_type() {
        None => Ok(Opened::Untyped(plaintext)),
        Some(t) => TypedValue::decode(t, &plaintext).map(Opened::Typed),
    }
}

/// The text form of envelope bytes: `shred2:` when the first byte is [`FORMAT_V2`], else
/// `shred1:`, then standard padded base64.
pub fn to_text(bytes: &[u8]) -> String {
    let prefix = if bytes.first() == Some(&FORMAT_V2) { TEXT_PREFIX_V2 } else { TEXT_PREFIX };
    let mut s = String::with_capacity(prefix.len() + bytes.len().div_ceil(3) * 4);
    s.push_str(prefix);
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut s);
    s
}

/// Decode the base64 body of a text form, its length bounded by `max_len` envelope bytes
/// before decoding.
fn decode_text_body(b64: &str, max_len: usize) -> Result<Vec<u8>, CryptoError> {
    if b64.len() > max_len.div_ceil(3) * 4 {
        return Err(CryptoError::MalformedEnvelope("it is longer than the largest envelope"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| CryptoError::MalformedEnvelope("its body is not canonical base64"))
}

/// Parse the text form of a v1 envelope back into validated envelope bytes. Accepts exactly
/// the output of [`to_text`]: the prefix, canonical padded base64 without whitespace, then the
/// checks of [`parse`]. The length is bounded before decoding.
pub fn from_text(text: &str) -> Result<Vec<u8>, CryptoError> {
    let Some(b64) = text.strip_prefix(TEXT_PREFIX) else {
        return Err(CryptoError::MalformedEnvelope("it does not start with \"shred1:\""));
    };
    let bytes = decode_text_body(b64, MAX_LEN)?;
    parse(&bytes)?;
    Ok(bytes)
}

/// Parse the text form of a v1 or v2 envelope back into validated envelope bytes. Accepts
/// exactly the output of [`to_text`]: `shred1:` followed by a v1 envelope or `shred2:`
/// followed by a v2 envelope, in canonical padded base64 without whitespace, then the checks
/// of [`parse_any`]. The length is bounded before decoding; a prefix that names another
/// version than the bytes carry is refused.
pub fn from_text_any(text: &str) -> Result<Vec<u8>, CryptoError> {
    let (version, bytes) = if let Some(b64) = text.strip_prefix(TEXT_PREFIX) {
        (FORMAT_V1, decode_text_body(b64, MAX_LEN)?)
    } else if let Some(b64) = text.strip_prefix(TEXT_PREFIX_V2) {
        (FORMAT_V2, decode_text_body(b64, MAX_LEN_V2)?)
    } else {
        return Err(CryptoError::MalformedEnvelope("it does not start with \"shred1:\" or \"shred2:\""));
    };
    parse_any(&bytes)?;
    if bytes[0] != version {
        return Err(CryptoError::MalformedEnvelope("its prefix names another format version than its bytes"));
    }
    Ok(bytes)
}
