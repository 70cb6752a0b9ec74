//! Unit and known-answer tests of `crypto::blind`.
//!
//! The expected indexes were computed independently of this crate: HKDF-SHA256 written out
//! from RFC 5869 over Python's `hmac`/`hashlib` (checked against RFC 5869 test case 1), then
//! `hmac.new(key, value, sha256)`.
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::blind::*;
use crate::keys::{DataKey, LABEL_KEK, LABEL_KEY_CHECK};

/// The context key of the known answers.
fn key() -> DataKey {
    DataKey::from_bytes(&[0x01; 32])
}

fn index(context: &str, value: &str) -> String {
    hex::encode(BlindIndexKey::derive(&key(), context.as_bytes()).compute(value.as_bytes()))
}

#[test]
fn known_answers() {
    assert_eq!(
        index("customers.email", "alice@example.com"),
        "5431e5a0da9b9640c9ec673e2e28a7ac2e1b2f24a8c1ec671005e25ff2c8fb4b"
    );
    assert_eq!(
        index("customers.phone", "alice@example.com"),
        "182f7a6a6aeef521c1bf16603f7c7c4494c28dcdf16d54b39d30fdb554224d4a"
    );
    assert_eq!(index("", ""), "188206af0797973000564b1440b35182de13b8d1e0d5e4cbbc421ef3183f7d59");
    let other_key = BlindIndexKey::derive(&DataKey::from_bytes(&[0x03; 32]), b"customers.email");
    assert_eq!(
        hex::encode(other_key.compute(b"alice@example.com")),
        "7eeb04af9d4a7576719ce2bdcf0208a2a47de5eaf7d56f8b5801e55397bfbd5d"
    );
}

#[test]
fn normalised_email_has_the_index_of_its_canonical_form() {
    let typed = normalize("\u{a0}ÉLODIE@Exemple.FR\u{3000}", Normalization::Email);
    assert_eq!(typed, "élodie@exemple.fr");
    let want = "e7215151e782f56c9242dfe880d8bb845dcd116e70371eb80b99c8bd1c1b802e";
    assert_eq!(index("customers.email", &typed), want);
    assert_eq!(index("customers.email", "élodie@exemple.fr"), want);
    let key = BlindIndexKey::derive(&key(), b"customers.email");
    let a = key.compute(normalize(" Alice@Example.COM ", Normalization::Email).as_bytes());
    let b = key.compute(normalize("alice@EXAMPLE.com", Normalization::Email).as_bytes());
    assert_eq!(a, b);
    assert_eq!(hex::encode(a), index("customers.email", "alice@example.com"));
}

#[test]
fn contexts_keys_and_values_separate_indexes() {
    let r = key();
    let value = b"alice@example.com";
    let outputs = [
        BlindIndexKey::derive(&r, b"customers.email").compute(value),
        BlindIndexKey::derive(&r, b"customers.emai").compute(value),
        BlindIndexKey::derive(&r, b"customers.email ").compute(value),
        BlindIndexKey::derive(&r, b"").compute(value),
        BlindIndexKey::derive(&DataKey::from_bytes(&[0x03; 32]), b"customers.email").compute(value),
        BlindIndexKey::derive(&r, b"customers.email").compute(b"alice@example.co"),
        BlindIndexKey::derive(&r, b"customers.email").compute(b""),
    ];
    for (i, a) in outputs.iter().enumerate() {
        for b in &outputs[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // deterministic: the same key and value give the same index
    let key = BlindIndexKey::derive(&r, b"customers.email");
    assert_eq!(key.compute(value), outputs[0]);
    assert_eq!(key.compute(value).len(), BLIND_INDEX_LEN);
}

#[test]
fn label_is_versioned_and_never_another_label() {
    assert_eq!(LABEL_BLIND_INDEX_PREFIX, b"pg_shred v1 blind-index ");
    for other in [LABEL_KEK, LABEL_KEY_CHECK, crate::pseudonym::LABEL_PSEUDONYM, LABEL_ROW_TOKEN] {
        // no context turns the blind-index label into another purpose's label
        assert!(!other.starts_with(LABEL_BLIND_INDEX_PREFIX));
        assert!(!LABEL_BLIND_INDEX_PREFIX.starts_with(other));
    }
    // the key is the context key's HKDF output under the full label, used as an HMAC key
    let r = key();
    let mut full = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, r.as_bytes()).expand(b"pg_shred v1 blind-index ctx", &mut full).expect("32 bytes");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&full).expect("any key length");
    mac.update(b"v");
    let want: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(BlindIndexKey::derive(&r, b"ctx").compute(b"v"), want);
}

#[test]
fn debug_hides_the_key() {
    let key = BlindIndexKey::derive(&key(), b"customers.email");
    assert_eq!(format!("{key:?}"), "BlindIndexKey(..)");
}

#[test]
fn exact_changes_nothing() {
    for v in [" Alice@Example.COM ", "", "\u{a0}x\u{3000}", "ΟΔΥΣΣΕΥΣ"] {
        assert_eq!(normalize(v, Normalization::Exact), v);
    }
}

#[test]
fn email_trims_white_space_and_lower_cases_only() {
    let cases = [
        (" Alice@Example.COM ", "alice@example.com"),
        ("\t\r\nBOB@x.org\n", "bob@x.org"),
        // Unicode white space at both ends: NO-BREAK SPACE, IDEOGRAPHIC SPACE, LINE SEPARATOR
        ("\u{a0}ÉLODIE@Exemple.FR\u{3000}", "élodie@exemple.fr"),
        ("\u{2028}Zoë@Ünïcode.de\u{85}", "zoë@ünïcode.de"),
        // full Unicode lower-casing, final-sigma rule included
        ("ΟΔΥΣΣΕΥΣ@X.GR", "οδυσσευς@x.gr"),
        ("ДМИТРИЙ@Пример.РФ", "дмитрий@пример.рф"),
        // U+0130 lower-cases to i + U+0307 COMBINING DOT ABOVE (no Turkish locale rule)
        ("İnci@x.tr", "i\u{307}nci@x.tr"),
        // no case folding: ß stays ß
        ("Straße@X.de", "straße@x.de"),
        ("STRASSE@x.de", "strasse@x.de"),
        // no dot or +tag removal, not even for Gmail
        ("First.Last+News@Gmail.com", "first.last+news@gmail.com"),
        // white space inside is kept, zero-width space is not white space
        (" a b@x ", "a b@x"),
        ("\u{200b}A@x", "\u{200b}a@x"),
        // no Unicode normalisation form: precomposed and decomposed é stay distinct
        ("E\u{301}@x", "e\u{301}@x"),
        // not checked to be an address at all
        ("  NOT AN ADDRESS  ", "not an address"),
        ("   ", ""),
    ];
    for (input, want) in cases {
        assert_eq!(normalize(input, Normalization::Email), want, "input {input:?}");
    }
    assert_ne!(normalize("é@x", Normalization::Email), normalize("e\u{301}@x", Normalization::Email));
}

/// Row tokens, computed independently with the `hkdf` and `hmac` crates: HMAC-SHA256 under
/// HKDF-SHA256(DEK, no salt, info = "pg_shred v1 row-token") of the blind index.
#[test]
fn row_token_is_hmac_under_a_key_derived_from_the_dek() {
    let dek = DataKey::from_bytes(&[0x11; 32]);
    let index = BlindIndexKey::derive(&key(), b"customers.email").compute(b"alice@example.com");
    let hk = hkdf::Hkdf::<Sha256>::new(None, &[0x11; 32]);
    let mut okm = [0u8; 32];
    hk.expand(b"pg_shred v1 row-token", &mut okm).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&okm).unwrap();
    mac.update(&index);
    let want: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(row_token(&dek, &index), want);
    // Known answer, fixed forever: row tokens stored in tables must stay valid.
    assert_eq!(
        hex::encode(row_token(&dek, &[0x22; 32])),
        "94a358a52f7145bc8fe48b6a31c2b95c41841522db8175fca2ff5ef5f0b6194c",
    );
}

/// Another subject's DEK gives an unrelated token for the same value; another value, too.
#[test]
fn row_tokens_separate_subjects_and_values() {
    let index = [0x22; 32];
    let a = row_token(&DataKey::from_bytes(&[0x11; 32]), &index);
    let b = row_token(&DataKey::from_bytes(&[0x12; 32]), &index);
    let c = row_token(&DataKey::from_bytes(&[0x11; 32]), &[0x23; 32]);
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, index);
}
