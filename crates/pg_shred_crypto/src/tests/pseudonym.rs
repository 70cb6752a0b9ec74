//! Unit and known-answer tests of `crypto::pseudonym`.
//!
//! The expected pseudonyms were computed independently of this crate: HKDF-SHA256 written out
//! from RFC 5869 over Python's `hmac`/`hashlib` (checked against RFC 5869 test case 1), then
//! `hmac.new(key, domain, sha256)`, the first 16 bytes, `base64.urlsafe_b64encode` without `=`.
use crate::keys::{DataKey, LABEL_KEK, LABEL_KEY_CHECK};
use crate::pseudonym::*;

fn dek(byte: u8) -> DataKey {
    DataKey::from_bytes(&[byte; 32])
}

#[test]
fn known_answers() {
    let cases: [(u8, &str, &str); 5] = [
        (0x03, "analytics", "Mwe0XkZWuuOLgAWFdY0pTQ"),
        (0x03, "marketing", "XMheguZi2WkacfOp0NE8fQ"),
        (0x04, "analytics", "HEFrjKnrNfHa32ynSpYkrA"),
        (0x03, "", "-cNWwSro9MWbc6C8nunpzQ"),
        (0x03, "Domäne", "UtOdWCxDwkTvSq5iWxWLmA"),
    ];
    for (byte, domain, want) in cases {
        assert_eq!(pseudonym(&dek(byte), domain.as_bytes()), want, "DEK {byte:#x}, domain {domain:?}");
    }
}

#[test]
fn stable_for_the_same_dek_and_domain() {
    let d = DataKey::generate().expect("rng");
    let again = DataKey::from_bytes(d.as_bytes());
    assert_eq!(pseudonym(&d, b"analytics"), pseudonym(&d, b"analytics"));
    assert_eq!(pseudonym(&d, b"analytics"), pseudonym(&again, b"analytics"));
}

#[test]
fn domains_and_deks_give_unrelated_pseudonyms() {
    let mut seen = std::collections::HashSet::new();
    let deks: Vec<DataKey> = (0..50).map(|_| DataKey::generate().expect("rng")).collect();
    for d in &deks {
        for domain in [&b"analytics"[..], b"analytics ", b"Analytics", b"marketing", b""] {
            assert!(seen.insert(pseudonym(d, domain)), "two (DEK, domain) pairs share a pseudonym");
        }
    }
    assert_eq!(seen.len(), 250);
}

#[test]
fn output_is_url_safe_and_of_the_documented_length() {
    assert_eq!(PSEUDONYM_LEN, 22);
    assert_eq!(PSEUDONYM_BYTES, 16);
    for i in 0..500u32 {
        let d = DataKey::generate().expect("rng");
        let p = pseudonym(&d, &i.to_be_bytes());
        assert_eq!(p.len(), PSEUDONYM_LEN);
        assert!(
            p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "not URL-safe base64 without padding: {p}"
        );
    }
}

#[test]
fn label_is_versioned_and_distinct() {
    assert_eq!(LABEL_PSEUDONYM, b"pg_shred v1 pseudonym");
    assert_ne!(LABEL_PSEUDONYM, LABEL_KEK);
    assert_ne!(LABEL_PSEUDONYM, LABEL_KEY_CHECK);
    assert!(!LABEL_PSEUDONYM.starts_with(crate::blind::LABEL_BLIND_INDEX_PREFIX));
}
