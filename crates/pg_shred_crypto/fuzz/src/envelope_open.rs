//! Target `envelope_open`: opening envelopes with fixed DEKs (`envelope::open_into`,
//! `envelope::open_typed`). Input: a selector byte, then envelope bytes; the selector picks one
//! of the fixed DEKs and one of the contexts, in any combination ([`crate::key_and_context`]).
//!
//! Asserts:
//! - nothing forged opens: when the bytes parse (`parse_any`) and open under the chosen DEK and
//!   context, they are one of the genuine envelopes ([`crate::genuine_envelopes`], the core's
//!   golden v1 and v2 envelopes) sealed with exactly that DEK and context, and `open_typed`
//!   gives back its known value. Any other envelope that opens is a forgery: an altered byte
//!   (type byte, key id, version, nonce, ciphertext, tag), a truncation or another DEK or context
//!   went unnoticed.
//! - a genuine envelope opens under its own DEK and context; an envelope that does not open
//!   fails with `AuthenticationFailed` only, and leaves no plaintext in the output buffer (it
//!   holds the stored ciphertext, or zeros).
//! - seal then open gives back the value: the input after the selector, sealed as v1 under the
//!   chosen DEK and context with a fresh nonce and a key id taken from the input, parses with
//!   that key id and length and opens to the same bytes; it does not open under the next
//!   context, nor under the next DEK, nor with one bit flipped where the input chooses.

use pg_shred_crypto::envelope::{self, Opened, HEADER_LEN, HEADER_LEN_V2};
use pg_shred_crypto::keys::{NONCE_LEN, TAG_LEN};
use pg_shred_crypto::CryptoError;

use crate::{dek, flip_at, genuine_envelopes, key_and_context, key_id_from, CONTEXTS, DEK_BYTES};

pub fn check(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let (d, c) = key_and_context(selector);
    let context = CONTEXTS[c].as_bytes();
    if let Ok(env) = envelope::parse_any(bytes) {
        let genuine = genuine_envelopes().iter().find(|g| g.dek == d && g.context == c && g.bytes == bytes);
        let mut out = vec![0u8; env.plaintext_len()];
        match envelope::open_into(dek(d), &env, context, &mut out) {
            Ok(()) => {
                let Some(g) = genuine else {
                    panic!("forgery: an envelope that was never sealed opened ({} bytes)", bytes.len())
                };
                let opened = envelope::open_typed(dek(d), &env, context).expect("a genuine envelope opens typed");
                assert!(opened == g.opened, "a genuine envelope opened to another value");
                let raw = match &opened {
                    Opened::Untyped(p) => p.clone(),
                    Opened::Typed(v) => v.encode(),
                };
                assert_eq!(out, raw, "open_into and open_typed disagree");
            }
            Err(e) => {
                assert_eq!(e, CryptoError::AuthenticationFailed, "opening a parsed envelope failed otherwise");
                assert!(genuine.is_none(), "a genuine envelope does not open under its own DEK and context");
                let header_len = if env.plain_type().is_some() { HEADER_LEN_V2 } else { HEADER_LEN };
                let stored = &bytes[header_len + NONCE_LEN..bytes.len() - TAG_LEN];
                assert!(
                    out == stored || out.iter().all(|b| *b == 0),
                    "a failed open left other bytes than the ciphertext in the buffer"
                );
            }
        }
    }

    let key_id = key_id_from(bytes);
    let sealed = envelope::seal(dek(d), key_id, context, bytes).expect("seal");
    let env = envelope::parse(&sealed).expect("a fresh envelope parses as v1");
    assert_eq!((env.key_id(), env.plaintext_len(), env.plain_type()), (key_id, bytes.len(), None));
    assert_eq!(envelope::open(dek(d), &env, context).expect("a fresh envelope opens"), bytes);
    let other_context = CONTEXTS[(c + 1) % CONTEXTS.len()].as_bytes();
    assert_eq!(envelope::open(dek(d), &env, other_context), Err(CryptoError::AuthenticationFailed));
    let other_dek = dek((d + 1) % DEK_BYTES.len());
    assert_eq!(envelope::open(other_dek, &env, context), Err(CryptoError::AuthenticationFailed));
    let mut altered = sealed.clone();
    let (at, bit) = flip_at(data, altered.len());
    altered[at] ^= bit;
    if let Ok(env) = envelope::parse_any(&altered) {
        assert_eq!(envelope::open(dek(d), &env, context), Err(CryptoError::AuthenticationFailed), "bit flipped at {at}");
    }
}
