//! Blind indexes: equality lookups on sealed values without decrypting them.
//!
//! ```text
//! context key     = 32 random bytes per context, stored wrapped like a DEK (see below)
//! blind-index key = HKDF-SHA256(no salt, context key, info = "pg_shred v1 blind-index " || context)
//! blind index     = HMAC-SHA256(blind-index key, normalize(value, rule))     (32 bytes)
//! ```
//!
//! HKDF is RFC 5869 over SHA-256; HMAC is RFC 2104 over SHA-256 (FIPS 180-4). The `context`
//! names what is indexed (e.g. `customers.email`): each context has its own key, so equal
//! values in two columns get unrelated indexes and an index cannot be joined across contexts.
//! The context is the last part of the `info` label, after a fixed prefix, so the label is
//! unambiguous and never equals another pg_shred label.
//!
//! The context key is random and stored in the key store, wrapped under the KEK like a DEK (the
//! SQL layer keeps it under a reserved subject name), instead of being derived from the root
//! key: stored indexes must stay valid across root-key rotation, and a key derived from a root
//! key version would die with that version. It does **not** die with any data subject: an
//! index left behind after an erasure stays a keyed token of the erased value (anyone who can
//! get the server to compute the index of a guess can confirm it).
//!
//! So protected tables never store the blind index itself. A row stores its **row token**,
//! keyed by the row's data subject's DEK, which dies with the subject:
//!
//! ```text
//! row-token key = HKDF-SHA256(no salt, DEK, info = "pg_shred v1 row-token")
//! row token     = HMAC-SHA256(row-token key, blind index)                     (32 bytes)
//! ```
//!
//! and the key store keeps (blind index, key id) pairs, deleted with the DEK, to find the
//! tokens of a value: blind index → key ids → DEKs → row tokens. Once the DEK is destroyed, no
//! one (not even the holder of the root key) can recompute the tokens left in the table.

use zeroize::Zeroizing;

use super::keys::{hmac_sha256, DataKey, KEY_LEN};

/// Prefix of the HKDF `info` label of a blind-index key; the context's bytes follow it.
pub const LABEL_BLIND_INDEX_PREFIX: &[u8] = b"pg_shred v1 blind-index ";
/// Length of a blind index (a full HMAC-SHA256 output), in bytes.
pub const BLIND_INDEX_LEN: usize = 32;
/// HKDF `info` label of the row-token key derived from a data subject's DEK.
pub const LABEL_ROW_TOKEN: &[u8] = b"pg_shred v1 row-token";

/// The row token of a blind index for the data subject whose DEK is `dek`: HMAC-SHA256
/// (RFC 2104) of the blind index under HKDF-SHA256 (RFC 5869, no salt) of the DEK with
/// `info =` [`LABEL_ROW_TOKEN`]. [`BLIND_INDEX_LEN`] bytes; deterministic per (subject, value),
/// unrelated across subjects, and unrecomputable once the DEK is destroyed. Cannot fail.
pub fn row_token(dek: &DataKey, blind_index: &[u8; BLIND_INDEX_LEN]) -> [u8; BLIND_INDEX_LEN] {
    hmac_sha256(&dek.derive(LABEL_ROW_TOKEN), blind_index)
}

/// The blind-index key of one context. Zeroized on drop; its `Debug` output never shows the
/// bytes.
pub struct BlindIndexKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(..)")
    }
}

impl BlindIndexKey {
    /// Derive the blind-index key of `context` (any bytes, typically the UTF-8 name of a
    /// column such as `customers.email`; may be empty) from the context's random key:
    /// HKDF-SHA256 (RFC 5869) without salt, `info = "pg_shred v1 blind-index " || context`,
    /// 32 bytes of output. Cannot fail.
    pub fn derive(context_key: &DataKey, context: &[u8]) -> BlindIndexKey {
        let mut info = Vec::with_capacity(LABEL_BLIND_INDEX_PREFIX.len() + context.len());
        info.extend_from_slice(LABEL_BLIND_INDEX_PREFIX);
        info.extend_from_slice(context);
        BlindIndexKey(context_key.derive(&info))
    }

    /// The blind index of an already normalised value (see [`normalize`]): HMAC-SHA256
    /// (RFC 2104) of its bytes under this key, [`BLIND_INDEX_LEN`] bytes. Deterministic: equal
    /// inputs give equal indexes, which is the point (and the leak: equal values are visible
    /// as equal). Cannot fail.
    pub fn compute(&self, normalized_value: &[u8]) -> [u8; BLIND_INDEX_LEN] {
        hmac_sha256(&self.0, normalized_value)
    }
}

/// How a value is normalised before its blind index is computed. Values that should match
/// must normalise to the same string; the rule is part of the index definition, so changing
/// it means recomputing every index of that context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// No change: the index matches only byte-identical values.
    Exact,
    /// An e-mail address, as typed by people: see [`normalize`].
    Email,
}

impl Normalization {
    /// The rule named `exact` or `email` (as in SQL); `None` for any other name.
    pub fn from_name(name: &[u8]) -> Option<Normalization> {
        match name {
            b"exact" => Some(Normalization::Exact),
            b"email" => Some(Normalization::Email),
            _ => None,
        }
    }
}

/// Normalise `value` by `rule`, returning the string whose UTF-8 bytes are given to
/// [`BlindIndexKey::compute`].
///
/// [`Normalization::Exact`] returns the value unchanged.
///
/// [`Normalization::Email`] does exactly two things:
/// 1. removes leading and trailing white space: every character with the Unicode `White_Space`
///    property (`char::is_whitespace`), so ASCII space, tab, CR and LF, and also U+00A0
///    NO-BREAK SPACE, U+3000 IDEOGRAPHIC SPACE, U+2028 LINE SEPARATOR and the like. Format
///    characters such as U+200B ZERO WIDTH SPACE or U+FEFF are not white space and stay;
/// 2. lower-cases the whole address, local part and domain alike, with Unicode's full
///    lower-case mapping (`str::to_lowercase`: UnicodeData.txt plus SpecialCasing.txt,
///    language-independent, with the final-sigma rule), e.g. `" Alice@Example.COM "` →
///    `"alice@example.com"`, `"ÉLODIE@Exemple.FR"` → `"élodie@exemple.fr"`, `"İ"` (U+0130)
///    → `"i̇"` (i + U+0307).
///
/// It does **not**: remove dots or `+tag` suffixes (Gmail treats `a.b+x@gmail.com` as
/// `ab@gmail.com`; other providers do not, so pg_shred never guesses); touch white space
/// inside the address; case-fold (`"Straße"` stays `"straße"`, unlike `"STRASSE"` →
/// `"strasse"`); apply a Unicode normalisation form (a precomposed `é` and `e` + U+0301 give
/// different indexes: normalise to NFC before sealing if the input mixes them); convert an
/// internationalised domain to punycode (IDNA), or the reverse; apply locale rules (Turkish
/// dotless `ı`); or check that the value is an e-mail address at all. RFC 5321 allows a
/// case-sensitive local part; lower-casing it is the usual, deliberate trade-off.
///
/// Lower-case mappings come from the Unicode tables of the Rust standard library that built
/// pg_shred. Mappings of characters already encoded do not change between Unicode versions
/// in practice; a character first assigned in a later version may gain one.
pub fn normalize(value: &str, rule: Normalization) -> String {
    match rule {
        Normalization::Exact => value.to_owned(),
        Normalization::Email => value.trim().to_lowercase(),
    }
}
