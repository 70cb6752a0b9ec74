//! Target `envelope_text`: the text form of envelopes (type input, `COPY`, `pg_dump`), decoded
//! by `envelope::from_text_any` (v1 and v2) and `envelope::from_text` (v1 only). Input: the
//! text (an input that is not UTF-8 is no text and is passed over).
//!
//! Asserts:
//! - `from_text_any` accepts exactly the documented form: `shred1:` or `shred2:`, then canonical
//!   padded standard base64 of bytes that `parse_any` accepts and whose version byte is the one
//!   the prefix names; it returns those bytes. Its errors are `MalformedEnvelope` or
//!   `UnsupportedVersion` only.
//! - what it decodes re-encodes to the same text: `to_text(from_text_any(s)) == s`.
//! - `from_text` accepts exactly what `from_text_any` accepts with the `shred1:` prefix, and
//!   returns the same bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pg_shred_crypto::envelope::{self, FORMAT_V1, FORMAT_V2, TEXT_PREFIX, TEXT_PREFIX_V2};
use pg_shred_crypto::CryptoError;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let any = envelope::from_text_any(text);
    if let Err(e) = &any {
        assert!(
            matches!(e, CryptoError::MalformedEnvelope(_) | CryptoError::UnsupportedVersion(_)),
            "from_text_any failed with {e:?}"
        );
    }
    let any = any.ok();
    assert_eq!(any, documented(text), "from_text_any differs from the documented text form");
    if let Some(bytes) = &any {
        assert_eq!(envelope::to_text(bytes), text, "a decoded text form does not re-encode to itself");
    }
    let v1 = envelope::from_text(text).ok();
    assert_eq!(v1, any.filter(|b| b[0] == FORMAT_V1), "from_text differs from from_text_any on v1");
}

/// The envelope bytes `text` stands for by the documentation of the text form, if any.
fn documented(text: &str) -> Option<Vec<u8>> {
    let (version, body) = [(FORMAT_V1, TEXT_PREFIX), (FORMAT_V2, TEXT_PREFIX_V2)]
        .into_iter()
        .find_map(|(version, prefix)| text.strip_prefix(prefix).map(|body| (version, body)))?;
    let bytes = STANDARD.decode(body).ok()?;
    let canonical = STANDARD.encode(&bytes) == body;
    (canonical && bytes.first() == Some(&version) && envelope::parse_any(&bytes).is_ok()).then_some(bytes)
}
