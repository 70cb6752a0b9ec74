//! Key hierarchy: root key, HKDF-derived KEK and key-check value, random DEKs and their
//! wrapping.
//!
//! ```text
//! root key v_n (32 bytes, outside PostgreSQL)
//!   ├─ HKDF-SHA256(salt_n, root, info = "pg_shred v1 kek")       → KEK_n (AES-256-GCM key)
//!   └─ HKDF-SHA256(salt_n, root, info = "pg_shred v1 key-check") → key-check value of v_n
//! DEK (32 random bytes per data subject)
//!   wrapped = 0x01 | nonce (12) | AES-256-GCM(KEK_n, nonce, DEK, AAD) (32 + 16 tag) = 61 bytes
//!   AAD     = "pg_shred wrap" | 0x01 | key_id (u64 big endian) | subject (UTF-8 bytes)
//! ```
//!
//! HKDF is RFC 5869 (extract-then-expand) over SHA-256. `salt_n` is 32 random bytes stored
//! with root-key version `n` in the database, so one root key used by two deployments yields
//! unrelated KEKs. Every `info` label is distinct and carries a version, so no two purposes
//! ever share a key. Nothing that must die with a data subject is derived from the root key:
//! only random DEKs are erasable.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::secret::Secret;
use super::{fill_nonce, fill_random, CryptoError};

/// Length of a root key, a DEK and every derived key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the per-version HKDF salt, in bytes.
pub const SALT_LEN: usize = 32;
/// Length of a key-check value, in bytes.
pub const KEY_CHECK_LEN: usize = 32;
/// Length of an AES-GCM nonce, in bytes (the 96-bit nonce of NIST SP 800-38D).
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM authentication tag, in bytes.
pub const TAG_LEN: usize = 16;
/// Format version of a wrapped DEK.
pub const WRAP_VERSION: u8 = 1;
/// Length of a wrapped DEK: version byte, nonce, encrypted DEK, tag.
pub const WRAPPED_KEY_LEN: usize = 1 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// HKDF `info` label of the key-encryption key.
pub const LABEL_KEK: &[u8] = b"pg_shred v1 kek";
/// HKDF `info` label of the key-check value.
pub const LABEL_KEY_CHECK: &[u8] = b"pg_shred v1 key-check";
/// Prefix of the AAD of a wrapped DEK (distinct from the envelope AAD prefix).
pub const WRAP_AAD_PREFIX: &[u8] = b"pg_shred wrap";

/// AES-256-GCM (NIST SP 800-38D) with a 96-bit nonce and a 128-bit tag, over an AES-256 key
/// schedule for encryption only: GCM runs the block cipher forwards in both directions, so
/// the inverse round keys a full AES key schedule also computes are never used. Same
/// algorithm and output as `aes_gcm::Aes256Gcm`, with half the key expansion work.
pub(crate) type Aes256GcmEnc = AesGcm<aes::Aes256Enc, U12>;

/// A root key: 32 bytes supplied from outside the database. Held in [`Secret`] memory (not in
/// core dumps, zeroized on drop); its `Debug` output never shows the bytes.
pub struct RootKey(Secret<[u8; KEY_LEN]>);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl RootKey {
    /// Parse root key material as read from a key file or printed by a key command.
    ///
    /// Accepted forms: exactly 32 raw bytes, or standard base64 (RFC 4648, with padding) that
    /// decodes to exactly 32 bytes, optionally surrounded by ASCII whitespace (a trailing
    /// newline). An all-zero key is refused as an obvious placeholder.
    ///
    /// Errors: [`CryptoError::InvalidRootKey`] with the reason; the bytes are never echoed.
    pub fn parse(material: &[u8]) -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if material.len() == KEY_LEN {
            key.copy_from_slice(material);
        } else {
            let text = material.trim_ascii();
            if text.is_empty() {
                return Err(CryptoError::InvalidRootKey("it is empty"));
            }
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| {
                        CryptoError::InvalidRootKey(
                            "it is neither 32 raw bytes nor base64 of 32 bytes",
                        )
                    })?,
            );
            if decoded.len() != KEY_LEN {
                return Err(CryptoError::InvalidRootKey("it does not decode to exactly 32 bytes"));
            }
            key.copy_from_slice(&decoded);
        }
        if key.iter().all(|&b| b == 0) {
            return Err(CryptoError::InvalidRootKey("it is all zero bytes"));
        }
        Ok(RootKey(Secret::new(*key)))
    }

    /// HKDF-SHA256 (RFC 5869): extract with `salt`, expand to 32 bytes with `info`.
    pub fn derive(&self, salt: &[u8], info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = Hkdf::<Sha256>::new(Some(salt), self.0.as_slice());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32 bytes: this cannot fail.
        let _ = hk.expand(info, out.as_mut_slice());
        out
    }

    /// The key-check value of this root key under `salt`: stored in the database with the
    /// root-key version so that a wrong root key is detected before it wraps or unwraps
    /// anything. It is an HKDF output under its own label, so it reveals nothing about the KEK.
    pub fn key_check_value(&self, salt: &[u8]) -> [u8; KEY_CHECK_LEN] {
        *self.derive(salt, LABEL_KEY_CHECK)
    }

    /// The KEK of this root key under `salt`.
    pub fn kek(&self, salt: &[u8]) -> Kek {
        let key = self.derive(salt, LABEL_KEK);
        Kek(Secret::new(Aes256GcmEnc::new(key.as_slice().into())))
    }
}

/// Highest root-key version number a keyring may use.
pub const MAX_VERSION: i32 = 1_000_000;

/// A keyring: the numbered root-key versions supplied from outside the database (a key file
/// or the output of a key command), in ascending version order, without duplicates.
///
/// Formats ([`Keyring::parse`]):
/// - a single key, as accepted by [`RootKey::parse`] (32 raw bytes, or base64 of 32 bytes):
///   root-key version 1;
/// - one `version:base64-key` line per version (version a decimal number from 1 to
///   [`MAX_VERSION`], the key standard base64 of 32 bytes), in any order. Blank lines and lines
///   starting with `#` are ignored; spaces around fields are allowed. Example:
///
/// ```text
/// # pg_shred keyring
/// 1:hT3w...base64...=
/// 2:q9Xc...base64...=
/// ```
///
/// The newest (highest) version wraps new DEKs; older ones unwrap the DEKs still wrapped under
/// them until a rotation rewraps those.
pub struct Keyring {
    versions: Vec<(i32, RootKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(versions {:?})", self.versions().collect::<Vec<_>>())
    }
}

impl Keyring {
    /// Parse keyring material. Errors: [`CryptoError::InvalidRootKey`] for a single key that
    /// does not parse, [`CryptoError::InvalidKeyring`] with the 1-based line number and the
    /// reason for a line that does not (never the line's content).
    pub fn parse(material: &[u8]) -> Result<Self, CryptoError> {
        // The versioned form is text with at least one `digits:` line (base64 never contains
        // ':'); anything else, 32 raw bytes in particular, is a single key.
        let versioned = material.len() != KEY_LEN
            && std::str::from_utf8(material)
                .map(|text| {
                    text.lines().any(|line| {
                        let line = line.trim();
                        !line.starts_with('#')
                            && line.split_once(':').is_some_and(|(v, _)| {
                                let v = v.trim();
                                !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
                            })
                    })
                })
                .unwrap_or(false);
        if !versioned {
            return Ok(Keyring { versions: vec![(1, RootKey::parse(material)?)] });
        }
        let mut versions: Vec<(i32, RootKey)> = Vec::new();
        for (i, line) in material.split(|&b| b == b'\n').enumerate() {
            let line_no = i + 1;
            let bad = |why| CryptoError::InvalidKeyring { line: line_no, why };
            let line = line.trim_ascii();
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            let colon = line.iter().position(|&b| b == b':').ok_or(bad("expected version:base64-key"))?;
            let version = std::str::from_utf8(line[..colon].trim_ascii())
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<i32>().ok())
                .filter(|v| (1..=MAX_VERSION).contains(v))
                .ok_or(bad("the version is not a number from 1 to 1000000"))?;
            let key = line[colon + 1..].trim_ascii();
            // A raw key cannot appear in a line: only base64.
            if key.len() == KEY_LEN || key.is_empty() {
                return Err(bad("the key is not base64 of 32 bytes"));
            }
            let key = RootKey::parse(key).map_err(|e| match e {
                CryptoError::InvalidRootKey(why) => bad(why),
                other => other,
            })?;
            if versions.iter().any(|(v, _)| *v == version) {
                return Err(bad("the version appears twice"));
            }
            versions.push((version, key));
        }
        if versions.is_empty() {
            return Err(CryptoError::InvalidRootKey("it holds no key"));
        }
        versions.sort_by_key(|(v, _)| *v);
        Ok(Keyring { versions })
    }

    /// The newest version and its key (the one new DEKs are wrapped under).
    /// `None` never happens for a keyring from [`Keyring::parse`], which refuses empty ones.
    pub fn newest(&self) -> Option<(i32, &RootKey)> {
        self.versions.last().map(|(v, k)| (*v, k))
    }

    /// The key of `version`, if the keyring holds it.
    pub fn get(&self, version: i32) -> Option<&RootKey> {
        self.versions.iter().find(|(v, _)| *v == version).map(|(_, k)| k)
    }

    /// The version numbers, ascending.
    pub fn versions(&self) -> impl Iterator<Item = i32> + '_ {
        self.versions.iter().map(|(v, _)| *v)
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` under a 32-byte `key`: 32 bytes. Cannot fail: the key
/// is zero-padded to SHA-256's 64-byte block, exactly as RFC 2104 pads a short key. (The `hmac`
/// crate does not zeroize its internal state; the padded key is zeroized here.)
pub fn hmac_sha256(key: &[u8; KEY_LEN], message: &[u8]) -> [u8; 32] {
    use hmac::{Mac, SimpleHmac};
    let mut block = Zeroizing::new([0u8; 64]);
    block[..KEY_LEN].copy_from_slice(key);
    let mut mac = <SimpleHmac<Sha256> as KeyInit>::new(&(*block).into());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key-encryption key: AES-256-GCM cipher, its key schedule in [`Secret`] memory.
pub struct Kek(Secret<Aes256GcmEnc>);

/// The AAD binding a wrapped DEK to its key id and data subject.
fn wrap_aad(key_id: u64, subject: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_PREFIX.len() + 1 + 8 + subject.len());
    aad.extend_from_slice(WRAP_AAD_PREFIX);
    aad.push(WRAP_VERSION);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(subject);
    aad
}

impl Kek {
    /// Wrap `dek` for `key_id` and `subject` with a fresh random nonce.
    /// Returns the [`WRAPPED_KEY_LEN`]-byte wrapped DEK.
    pub fn wrap(&self, dek: &DataKey, key_id: u64, subject: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_nonce(&mut nonce)?;
        self.wrap_nonce(dek, key_id, subject, &nonce)
    }

    /// Wrap with a caller-chosen nonce. Only for known-answer tests: a nonce must never repeat
    /// under one KEK.
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn wrap_with_nonce(
        &self,
        dek: &DataKey,
        key_id: u64,
        subject: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        self.wrap_nonce(dek, key_id, subject, nonce)
    }

    /// Wrap with `nonce`: version, nonce, encrypted DEK, tag.
    fn wrap_nonce(
        &self,
        dek: &DataKey,
        key_id: u64,
        subject: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
        out.push(WRAP_VERSION);
        out.extend_from_slice(nonce);
        out.extend_from_slice(dek.as_bytes());
        let aad = wrap_aad(key_id, subject);
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), &aad, &mut out[1 + NONCE_LEN..])
            .map_err(|_| CryptoError::UnwrapFailed)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Unwrap a wrapped DEK for `key_id` and `subject`.
    ///
    /// Errors: [`CryptoError::MalformedWrappedKey`] for a wrong length or version,
    /// [`CryptoError::UnwrapFailed`] when authentication fails (wrong root key, or the row was
    /// altered or moved to another key id or subject).
    pub fn unwrap(&self, wrapped: &[u8], key_id: u64, subject: &[u8]) -> Result<DataKey, CryptoError> {
        if wrapped.len() != WRAPPED_KEY_LEN || wrapped[0] != WRAP_VERSION {
            return Err(CryptoError::MalformedWrappedKey);
        }
        let nonce = Nonce::from_slice(&wrapped[1..1 + NONCE_LEN]);
        let tag = aes_gcm::Tag::from_slice(&wrapped[1 + NONCE_LEN + KEY_LEN..]);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&wrapped[1 + NONCE_LEN..1 + NONCE_LEN + KEY_LEN]);
        let aad = wrap_aad(key_id, subject);
        self.0
            .decrypt_in_place_detached(nonce, &aad, key.as_mut_slice(), tag)
            .map_err(|_| CryptoError::UnwrapFailed)?;
        Ok(DataKey::from_bytes(&key))
    }
}

/// A data-encryption key (DEK) of one data subject, ready to use: the raw bytes (needed to
/// re-wrap and, later, to derive the subject's pseudonym key) and the AES-256-GCM cipher with
/// its key schedule, together in [`Secret`] memory (not in core dumps, zeroized on drop);
/// `Debug` never shows them. About 1 KiB (the key schedule is sized for both the AES-NI and the
/// software AES); [`DekBytes`] keeps a DEK in 32 bytes until it is needed.
pub struct DataKey(Secret<DataKeyParts>);

struct DataKeyParts {
    bytes: [u8; KEY_LEN],
    cipher: Aes256GcmEnc,
}

/// A DEK at rest in a cache: its 32 bytes alone, in [`Secret`] memory (a 32-byte slot, not in
/// core dumps, zeroized on drop). [`DekBytes::expand`] builds the [`DataKey`] (AES key
/// expansion and GHASH key, about 0.1 µs) when the DEK is used.
pub struct DekBytes(Secret<[u8; KEY_LEN]>);

impl std::fmt::Debug for DekBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DekBytes(..)")
    }
}

impl DekBytes {
    /// The usable DEK.
    pub fn expand(&self) -> DataKey {
        DataKey::from_bytes(&self.0)
    }

    /// Address and length in bytes of the key's memory (tests check it is zeroed once dropped).
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn memory(&self) -> (usize, usize) {
        (self.0.addr(), self.0.slot_len())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh DEK of 32 bytes from the OS CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(bytes.as_mut_slice())?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A DEK from known bytes (unwrapping, and known-answer tests).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        DataKey(Secret::new(DataKeyParts { bytes: *bytes, cipher: Aes256GcmEnc::new(bytes.into()) }))
    }

    /// This DEK's bytes alone, to keep it compactly ([`DekBytes`]).
    pub fn compact(&self) -> DekBytes {
        DekBytes(Secret::new(self.0.bytes))
    }

    /// The raw key bytes (for re-wrapping; never to be logged or returned to SQL).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0.bytes
    }

    /// HKDF-SHA256 (RFC 5869) of this DEK without salt, expanded to 32 bytes with `info`: the
    /// keys that must die with the DEK (pseudonyms) or that are stored as DEKs of reserved
    /// subjects (blind-index and audit keys) derive their working key this way.
    pub fn derive(&self, info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = Hkdf::<Sha256>::new(None, self.as_bytes());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32 bytes: this cannot fail.
        let _ = hk.expand(info, out.as_mut_slice());
        out
    }

    pub(crate) fn cipher(&self) -> &Aes256GcmEnc {
        &self.0.cipher
    }

    /// Address of the key's memory (tests check it is excluded from core dumps).
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn addr(&self) -> usize {
        self.0.addr()
    }

    /// Address and length in bytes of the key's memory (tests check it is zeroed once dropped).
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn memory(&self) -> (usize, usize) {
        (self.0.addr(), self.0.slot_len())
    }
}
