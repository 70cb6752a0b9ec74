//! Unit tests of `crypto::keys`.
use base64::Engine;

use crate::crypto::keys::*;
use crate::crypto::CryptoError;

fn root() -> RootKey {
    RootKey::parse(&[7u8; 32]).expect("valid test key")
}

#[test]
fn root_key_forms() {
    let raw = [0x11u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let a = RootKey::parse(&raw).expect("raw");
    let b = RootKey::parse(format!("  {b64}\n").as_bytes()).expect("base64");
    assert_eq!(a.key_check_value(b"s"), b.key_check_value(b"s"));
    assert_eq!(format!("{a:?}"), "RootKey(..)");
}

#[test]
fn root_key_rejects_bad_material() {
    for bad in [
        &b""[..],
        b"\n",
        &[1u8; 31],
        &[1u8; 33],
        &[0u8; 32],
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  // base64 of 32 zero bytes
        b"c2hvcnQ=",                                      // base64 of 5 bytes
        b"not base64 at all!!",
    ] {
        assert!(
            matches!(RootKey::parse(bad), Err(CryptoError::InvalidRootKey(_))),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn labels_are_distinct_and_versioned() {
    let labels = [LABEL_KEK, LABEL_KEY_CHECK, crate::crypto::envelope::AAD_PREFIX, WRAP_AAD_PREFIX];
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert!(LABEL_KEK.starts_with(b"pg_shred v1 "));
    assert!(LABEL_KEY_CHECK.starts_with(b"pg_shred v1 "));
    let r = root();
    assert_ne!(*r.derive(b"salt", LABEL_KEK), *r.derive(b"salt", LABEL_KEY_CHECK));
    assert_ne!(*r.derive(b"salt", LABEL_KEK), *r.derive(b"other salt", LABEL_KEK));
}

#[test]
fn key_check_detects_another_root_key() {
    let other = RootKey::parse(&[8u8; 32]).expect("valid");
    assert_ne!(root().key_check_value(b"s"), other.key_check_value(b"s"));
    assert!(constant_time_eq(&root().key_check_value(b"s"), &root().key_check_value(b"s")));
    assert!(!constant_time_eq(b"ab", b"abc"));
}

#[test]
fn wrap_unwrap_round_trip_and_binding() {
    let kek = root().kek(b"salt");
    let dek = DataKey::generate().expect("rng");
    let w = kek.wrap(&dek, 42, b"customer:1").expect("wrap");
    assert_eq!(w.len(), WRAPPED_KEY_LEN);
    let back = kek.unwrap(&w, 42, b"customer:1").expect("unwrap");
    assert_eq!(back.as_bytes(), dek.as_bytes());
    // bound to key id, subject and KEK
    assert_eq!(kek.unwrap(&w, 43, b"customer:1").unwrap_err(), CryptoError::UnwrapFailed);
    assert_eq!(kek.unwrap(&w, 42, b"customer:2").unwrap_err(), CryptoError::UnwrapFailed);
    let other = RootKey::parse(&[9u8; 32]).expect("valid").kek(b"salt");
    assert_eq!(other.unwrap(&w, 42, b"customer:1").unwrap_err(), CryptoError::UnwrapFailed);
    // every flipped bit fails
    for i in 0..w.len() {
        let mut t = w.clone();
        t[i] ^= 0x01;
        assert!(kek.unwrap(&t, 42, b"customer:1").is_err(), "byte {i}");
    }
    // wrong lengths: 0, 31-byte DEK, 33-byte DEK
    for len in [0, WRAPPED_KEY_LEN - 1, WRAPPED_KEY_LEN + 1] {
        let t = vec![WRAP_VERSION; len];
        assert_eq!(kek.unwrap(&t, 42, b"customer:1").unwrap_err(), CryptoError::MalformedWrappedKey);
    }
}

#[test]
fn fresh_deks_differ() {
    let a = DataKey::generate().expect("rng");
    let b = DataKey::generate().expect("rng");
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_eq!(format!("{a:?}"), "DataKey(..)");
}
