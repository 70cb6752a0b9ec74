//! Target `wrapped_dek`: unwrapping DEKs (`Kek::unwrap`, a `shred.subject_key` row) under a
//! fixed KEK (the root key and salt of the known-answer tests). Input: a selector byte, then the
//! wrapped DEK; the selector picks the key id and subject of one of the genuine wrapped DEKs
//! ([`crate::genuine_wrapped`]).
//!
//! Asserts:
//! - nothing forged unwraps: a wrapped DEK that unwraps for the chosen key id and subject is the
//!   genuine one wrapped for exactly them (the core's golden wrapped DEK among them), it gives
//!   back its known DEK, and wrapping that DEK again with the same nonce gives the same bytes.
//!   Anything else that unwraps is a forgery: an altered byte, another key id or subject went
//!   unnoticed.
//! - the genuine wrapped DEK always unwraps; the errors are `MalformedWrappedKey` exactly when
//!   the length is not 61 bytes or the version byte not 1, and `UnwrapFailed` otherwise.
//! - wrap then unwrap gives back the DEK: a DEK, key id and subject made from the input, wrapped
//!   with a fresh nonce, make 61 bytes of version 1 that unwrap to the same DEK; they do not
//!   unwrap for the next key id, for the subject with a byte appended, under a KEK of another
//!   salt, nor with one bit flipped where the input chooses.

use pg_shred_crypto::keys::{DataKey, KEY_LEN, NONCE_LEN, WRAPPED_KEY_LEN, WRAP_VERSION};
use pg_shred_crypto::CryptoError;

use crate::{flip_at, genuine_wrapped, kek, key_id_from, other_kek};

pub fn check(data: &[u8]) {
    let Some((&selector, wrapped)) = data.split_first() else { return };
    let genuine = &genuine_wrapped()[usize::from(selector) % genuine_wrapped().len()];
    let malformed = wrapped.len() != WRAPPED_KEY_LEN || wrapped[0] != WRAP_VERSION;
    match kek().unwrap(wrapped, genuine.key_id, genuine.subject) {
        Ok(dek) => {
            assert!(wrapped == genuine.bytes, "forgery: a wrapped DEK that was never wrapped unwrapped");
            assert_eq!(dek.as_bytes(), &genuine.dek, "a genuine wrapped DEK gave another DEK");
            let nonce: [u8; NONCE_LEN] = wrapped[1..1 + NONCE_LEN].try_into().expect("nonce");
            let again = kek().wrap_with_nonce(&dek, genuine.key_id, genuine.subject, &nonce).expect("wrap");
            assert_eq!(again, wrapped, "an unwrapped DEK does not wrap again to the same bytes");
        }
        Err(e) => {
            let want = if malformed { CryptoError::MalformedWrappedKey } else { CryptoError::UnwrapFailed };
            assert_eq!(e, want, "unwrap failed with another error");
            assert!(wrapped != genuine.bytes, "a genuine wrapped DEK does not unwrap");
        }
    }

    let mut dek = [0u8; KEY_LEN];
    for (i, b) in wrapped.iter().enumerate() {
        dek[i % KEY_LEN] ^= *b;
    }
    let key_id = key_id_from(wrapped);
    let subject = wrapped;
    let mine = kek().wrap(&DataKey::from_bytes(&dek), key_id, subject).expect("wrap");
    assert_eq!((mine.len(), mine[0]), (WRAPPED_KEY_LEN, WRAP_VERSION));
    let back = kek().unwrap(&mine, key_id, subject).expect("a fresh wrapped DEK unwraps");
    assert_eq!(back.as_bytes(), &dek, "wrap then unwrap gives another DEK");
    let failed = CryptoError::UnwrapFailed;
    assert_eq!(kek().unwrap(&mine, key_id.wrapping_add(1), subject).err(), Some(failed.clone()), "another key id");
    let longer = [subject, b"x"].concat();
    assert_eq!(kek().unwrap(&mine, key_id, &longer).err(), Some(failed.clone()), "another subject");
    assert_eq!(other_kek().unwrap(&mine, key_id, subject).err(), Some(failed.clone()), "another KEK");
    let mut altered = mine.clone();
    let (at, bit) = flip_at(data, altered.len());
    altered[at] ^= bit;
    let want = if at == 0 { CryptoError::MalformedWrappedKey } else { failed };
    assert_eq!(kek().unwrap(&altered, key_id, subject).err(), Some(want), "bit {bit} of byte {at} flipped");
}

