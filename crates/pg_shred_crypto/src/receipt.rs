//! Erasure receipts: a signed statement of what was erased and when it became final in every
//! copy, verifiable offline with the database's public key and any Ed25519 library.
//!
//! ```text
//! receipt key   (random, stored like a DEK under the reserved subject 'pg_shred:receipt')
//! signing seed  = HKDF-SHA256(no salt, receipt key, info = "pg_shred v1 receipt signing")   (RFC 5869)
//! signing key   = the Ed25519 key of that 32-byte seed (RFC 8032 5.1.5)
//! signed bytes  = the receipt, a JSON object, without its top-level "signature" member,
//!                 serialised in the JSON Canonicalization Scheme (RFC 8785, UTF-8)
//! "signature"   = standard base64 (RFC 4648 4, padded) of the 64-byte Ed25519 signature
//! public key    = standard base64 of the 32-byte Ed25519 public key
//! subject digest = SHA-256(salt || subject UTF-8), salt random (16 bytes) per receipt; both in
//!                 the receipt in standard base64, so the data subject (or whoever knows the
//!                 subject) can check that the receipt is about them, and nobody else can
//!                 learn the subject from it short of guessing it.
//! ```
//!
//! The receipt key is random and kept in the key store, rewrapped by root-key rotation and
//! restored with a dump: receipts issued before a rotation or a dump and restore keep
//! verifying under the same public key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::keys::DataKey;

/// HKDF `info` label of the signing seed.
pub const LABEL_RECEIPT: &[u8] = b"pg_shred v1 receipt signing";
/// The top-level member holding the signature, left out of the signed bytes.
pub const SIGNATURE_MEMBER: &str = "signature";
/// Length of the salt of a receipt's subject digest, in bytes.
pub const SALT_LEN: usize = 16;

/// Why a receipt cannot be signed. Never carries receipt content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptError {
    /// The receipt is not a JSON object.
    NotAnObject,
    /// The receipt cannot be serialised in the JSON Canonicalization Scheme (a number that
    /// is not an IEEE 754 double, for example).
    NotCanonical,
}

impl std::fmt::Display for ReceiptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceiptError::NotAnObject => f.write_str("a receipt is a JSON object"),
            ReceiptError::NotCanonical => f.write_str("the receipt cannot be serialised in the JSON Canonicalization Scheme (RFC 8785)"),
        }
    }
}

impl std::error::Error for ReceiptError {}

/// The Ed25519 signing key of receipts (zeroized when dropped).
pub struct ReceiptKey(SigningKey);

impl ReceiptKey {
    /// The signing key derived from the receipt key (HKDF, above).
    pub fn new(receipt_key: &DataKey) -> Self {
        Self::from_seed(&receipt_key.derive(LABEL_RECEIPT))
    }

    /// The signing key of a 32-byte Ed25519 seed (RFC 8032's secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        ReceiptKey(SigningKey::from_bytes(seed))
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Sign `receipt` (a JSON object): any `signature` member is replaced by the signature of
    /// the rest (see the module documentation).
    pub fn sign(&self, receipt: &mut Value) -> Result<(), ReceiptError> {
        let object = receipt.as_object_mut().ok_or(ReceiptError::NotAnObject)?;
        object.remove(SIGNATURE_MEMBER);
        let bytes = canonical(object)?;
        let signature = self.0.sign(&bytes);
        object.insert(SIGNATURE_MEMBER.into(), Value::String(STANDARD.encode(signature.to_bytes())));
        Ok(())
    }

    /// Complete and sign a receipt given as JSON text (an object): adds `system_identifier`
    /// (a decimal string: it exceeds 2^53), `subject` (`salt` and `digest`, see
    /// [`subject_digest`], base64), `public_key` (base64), then `signature`. Returns the
    /// signed receipt as JSON text.
    pub fn issue(&self, receipt_json: &[u8], subject: &[u8], salt: &[u8; SALT_LEN], system_identifier: u64) -> Result<Vec<u8>, ReceiptError> {
        let mut receipt: Value = serde_json::from_slice(receipt_json).map_err(|_| ReceiptError::NotAnObject)?;
        let object = receipt.as_object_mut().ok_or(ReceiptError::NotAnObject)?;
        object.insert("system_identifier".into(), Value::String(system_identifier.to_string()));
        let digest = subject_digest(salt, subject);
        object.insert(
            "subject".into(),
            serde_json::json!({"salt": STANDARD.encode(salt), "digest": STANDARD.encode(digest), "digest_algorithm": "SHA-256(salt || subject UTF-8)"}),
        );
        object.insert("public_key".into(), Value::String(STANDARD.encode(self.public_key())));
        self.sign(&mut receipt)?;
        serde_json::to_vec(&receipt).map_err(|_| ReceiptError::NotCanonical)
    }
}

/// The bytes a receipt's signature covers: the object without its top-level `signature`
/// member, in the JSON Canonicalization Scheme (RFC 8785).
pub fn signed_bytes(receipt: &Value) -> Result<Vec<u8>, ReceiptError> {
    let mut object = receipt.as_object().ok_or(ReceiptError::NotAnObject)?.clone();
    object.remove(SIGNATURE_MEMBER);
    canonical(&object)
}

fn canonical(object: &Map<String, Value>) -> Result<Vec<u8>, ReceiptError> {
    serde_jcs::to_vec(object).map_err(|_| ReceiptError::NotCanonical)
}

/// Whether `receipt` carries a valid signature under `public_key`: its `signature` member is
/// the base64 of an Ed25519 signature (RFC 8032, verified strictly: no small-order or
/// non-canonical points) of [`signed_bytes`]. False for anything else (not an object, no
/// signature, bad base64, a public key that is not a point).
pub fn verify(public_key: &[u8; 32], receipt: &Value) -> bool {
    let Some(Value::String(text)) = receipt.get(SIGNATURE_MEMBER) else { return false };
    let Ok(signature) = STANDARD.decode(text) else { return false };
    let Ok(signature) = <[u8; 64]>::try_from(signature.as_slice()) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(public_key) else { return false };
    let Ok(bytes) = signed_bytes(receipt) else { return false };
    key.verify_strict(&bytes, &Signature::from_bytes(&signature)).is_ok()
}

/// [`verify`] of a receipt given as JSON text (false when it does not parse).
pub fn verify_json(public_key: &[u8; 32], text: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(text) {
        Ok(receipt) => verify(public_key, &receipt),
        Err(_) => false,
    }
}

/// A public key from its base64 text (standard alphabet, padded), if it is 32 bytes.
pub fn parse_public_key(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text.trim()).ok()?.try_into().ok()
}

/// The salted digest of a subject in a receipt: SHA-256(salt || subject UTF-8).
pub fn subject_digest(salt: &[u8], subject: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(subject);
    h.finalize().into()
}
