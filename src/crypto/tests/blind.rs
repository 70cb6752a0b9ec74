//! Unit and known-answer tests of `crypto::blind`.
//!
//! The expected indexes were computed independently of this crate: HKDF-SHA256 written out
//! from RFC 5869 over Python's `hmac`/`hashlib` (checked against RFC 5869 test case 1), then
//! `hmac.new(key, value, sha256)`.
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::blind::*;
use crate::crypto::keys::{RootKey, LABEL_KEK, LABEL_KEY_CHECK};

fn root() -> RootKey {
    RootKey::parse(&[0x01; 32]).expect("root")
}

const SALT: [u8; 32] = [0x02; 32];

fn index(context: &str, value: &str) -> String {
    hex::encode(BlindIndexKey::derive(&root(), &SALT, context.as_bytes()).compute(value.as_bytes()))
}

#[test]
fn known_answers() {
    assert_eq!(
        index("customers.email", "alice@example.com"),
        "46a1e456c46fb5dac25c798bb71839a4d2c8124244e6d0a0e1335b8761cce9cc"
    );
    assert_eq!(
        index("customers.phone", "alice@example.com"),
        "874255f91c6ceccc6d9ec8f21db1af4341340e18bac500e52178fdf8a8c49cef"
    );
    assert_eq!(index("", ""), "088b3c18dfc6b8339dccede947bb86b1d7b9a2d855daf8eee4de177a959e9578");
    let other_salt = BlindIndexKey::derive(&root(), &[0x03; 32], b"customers.email");
    assert_eq!(
        hex::encode(other_salt.compute(b"alice@example.com")),
        "37671560fce134192241d801a9e12459b912256df9c02242be1eb79331533fa3"
    );
}

#[test]
fn normalised_email_has_the_index_of_its_canonical_form() {
    let typed = normalize("\u{a0}ÉLODIE@Exemple.FR\u{3000}", Normalization::Email);
    assert_eq!(typed, "élodie@exemple.fr");
    let want = "a7542623df4d02fa2b22906bf53a1bbf85da85dfabf72f2239308ee23531badc";
    assert_eq!(index("customers.email", &typed), want);
    assert_eq!(index("customers.email", "élodie@exemple.fr"), want);
    let key = BlindIndexKey::derive(&root(), &SALT, b"customers.email");
    let a = key.compute(normalize(" Alice@Example.COM ", Normalization::Email).as_bytes());
    let b = key.compute(normalize("alice@EXAMPLE.com", Normalization::Email).as_bytes());
    assert_eq!(a, b);
    assert_eq!(hex::encode(a), index("customers.email", "alice@example.com"));
}

#[test]
fn contexts_salts_root_keys_and_values_separate_indexes() {
    let r = root();
    let value = b"alice@example.com";
    let outputs = [
        BlindIndexKey::derive(&r, &SALT, b"customers.email").compute(value),
        BlindIndexKey::derive(&r, &SALT, b"customers.emai").compute(value),
        BlindIndexKey::derive(&r, &SALT, b"customers.email ").compute(value),
        BlindIndexKey::derive(&r, &SALT, b"").compute(value),
        BlindIndexKey::derive(&r, &[0x03; 32], b"customers.email").compute(value),
        BlindIndexKey::derive(&RootKey::parse(&[0x09; 32]).expect("root"), &SALT, b"customers.email").compute(value),
        BlindIndexKey::derive(&r, &SALT, b"customers.email").compute(b"alice@example.co"),
        BlindIndexKey::derive(&r, &SALT, b"customers.email").compute(b""),
    ];
    for (i, a) in outputs.iter().enumerate() {
        for b in &outputs[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // deterministic: the same key and value give the same index
    let key = BlindIndexKey::derive(&r, &SALT, b"customers.email");
    assert_eq!(key.compute(value), outputs[0]);
    assert_eq!(key.compute(value).len(), BLIND_INDEX_LEN);
}

#[test]
fn label_is_versioned_and_never_another_label() {
    assert_eq!(LABEL_BLIND_INDEX_PREFIX, b"pg_shred v1 blind-index ");
    for other in [LABEL_KEK, LABEL_KEY_CHECK, crate::crypto::pseudonym::LABEL_PSEUDONYM] {
        // no context turns the blind-index label into another purpose's label
        assert!(!other.starts_with(LABEL_BLIND_INDEX_PREFIX));
        assert!(!LABEL_BLIND_INDEX_PREFIX.starts_with(other));
    }
    // the key is the root key's HKDF output under the full label, used as an HMAC key
    let r = root();
    let full = r.derive(&SALT, b"pg_shred v1 blind-index ctx");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(full.as_slice()).expect("any key length");
    mac.update(b"v");
    let want: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(BlindIndexKey::derive(&r, &SALT, b"ctx").compute(b"v"), want);
}

#[test]
fn debug_hides_the_key() {
    let key = BlindIndexKey::derive(&root(), &SALT, b"customers.email");
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
