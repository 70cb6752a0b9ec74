//! Target `envelope_binary`: the binary envelope (the bytes of a `shred.sealed` value), decoded
//! by `envelope::parse_any` (v1 and v2) and `envelope::parse` (v1 only). Input: the bytes.
//!
//! Asserts:
//! - `parse_any` accepts exactly the layouts of the format table in src/envelope.rs (restated
//!   here, independently of the parser): version 1 or 2, at least header + nonce + tag (37 or 38
//!   bytes) and at most that plus 64 MiB, a key id in 1 ..= 2^63-1, and for v2 a plaintext type
//!   byte in 1 ..= 8; it refuses the rest with `UnsupportedVersion(first byte)` for another
//!   version and `MalformedEnvelope` otherwise, and with no other error.
//! - what it decodes re-encodes to the same bytes: version, key id (big endian) and type byte
//!   written back give the envelope's header, and the plaintext length is what lies between
//!   nonce and tag.
//! - `parse` is `parse_any` but for a first byte 2, which it refuses with
//!   `UnsupportedVersion(2)` (v2 is not its format).
//! - bytes to text and back: `from_text_any(to_text(b))` gives back `b` exactly when `parse_any`
//!   accepts `b`, and `from_text` does when `parse` does.

use pg_shred_crypto::envelope::{self, Envelope, FORMAT_V1, FORMAT_V2, MAX_PLAINTEXT_LEN};
use pg_shred_crypto::keys::{NONCE_LEN, TAG_LEN};
use pg_shred_crypto::typed::PlainType;
use pg_shred_crypto::CryptoError;

/// What the format table says of some bytes.
#[derive(Debug, PartialEq)]
enum Reading {
    /// Version, key id, plaintext type (v2), header length.
    Envelope(u8, u64, Option<PlainType>, usize),
    Malformed,
    Version(u8),
}

pub fn check(data: &[u8]) {
    let documented = documented(data);
    let any = envelope::parse_any(data);
    assert_eq!(reading(&any), documented, "parse_any differs from the format table");
    if let (Ok(env), Reading::Envelope(version, key_id, plain_type, header_len)) = (&any, &documented) {
        let mut header = vec![*version];
        header.extend_from_slice(&key_id.to_be_bytes());
        header.extend(plain_type.map(PlainType::as_u8));
        assert_eq!(header, data[..*header_len], "the fields do not re-encode to the header");
        assert_eq!(env.plaintext_len(), data.len() - header_len - NONCE_LEN - TAG_LEN);
    }
    let v1_only = if data.first() == Some(&FORMAT_V2) { Reading::Version(FORMAT_V2) } else { documented };
    assert_eq!(reading(&envelope::parse(data)), v1_only, "parse differs from the format table");

    let text = envelope::to_text(data);
    let back = envelope::from_text_any(&text).ok();
    assert_eq!(back.as_deref(), any.is_ok().then_some(data), "bytes to text and back");
    let back = envelope::from_text(&text).ok();
    assert_eq!(back.as_deref(), envelope::parse(data).is_ok().then_some(data), "v1 bytes to text and back");
}

/// The parser's answer as a [`Reading`]; any error but the two of a refused envelope panics.
fn reading(parsed: &Result<Envelope<'_>, CryptoError>) -> Reading {
    match parsed {
        Ok(env) => {
            let header_len = if env.plain_type().is_some() { 10 } else { 9 };
            Reading::Envelope(env.format_version(), env.key_id(), env.plain_type(), header_len)
        }
        Err(CryptoError::MalformedEnvelope(_)) => Reading::Malformed,
        Err(CryptoError::UnsupportedVersion(v)) => Reading::Version(*v),
        Err(e) => panic!("parsing failed with {e:?}"),
    }
}

/// The format table of src/envelope.rs applied to `b`.
fn documented(b: &[u8]) -> Reading {
    let version = match b.first() {
        None => return Reading::Malformed,
        Some(&v @ (FORMAT_V1 | FORMAT_V2)) => v,
        Some(&v) => return Reading::Version(v),
    };
    let header_len = if version == FORMAT_V2 { 10 } else { 9 };
    let min = header_len + NONCE_LEN + TAG_LEN;
    if b.len() < min || b.len() > min + MAX_PLAINTEXT_LEN {
        return Reading::Malformed;
    }
    let key_id = b[1..9].iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x));
    if key_id == 0 || key_id >= 1 << 63 {
        return Reading::Malformed;
    }
    let plain_type = if version == FORMAT_V2 {
        match b[9] {
            t @ 1..=8 => Some(PlainType::ALL[usize::from(t) - 1]),
            _ => return Reading::Malformed,
        }
    } else {
        None
    };
    Reading::Envelope(version, key_id, plain_type, header_len)
}
