//! Known-answer tests: NIST AES-GCM, RFC 5869 HKDF-SHA256, and pg_shred's own golden v1 and
//! v2 envelopes and wrapped DEKs. The golden vectors are fixed forever: every future version of
//! pg_shred must keep opening them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::envelope;
use crate::keys::{DataKey, RootKey};
use crate::typed::{PlainType, TypedValue};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector hex")
}

/// AES-256-GCM vectors of "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega,
/// test cases 13-16 (the AES-256 cases with a 96-bit IV), as used by NIST's GCM validation.
#[test]
fn nist_aes_256_gcm() {
    let cases = [
        // (key, iv, plaintext, aad, ciphertext, tag)
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000",
            "",
            "",
            "",
            "530f8afbc74536b9a963b4f1c4cb738b",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000",
            "00000000000000000000000000000000",
            "",
            "cea7403d4d606b6e074ec5d3baf39d18",
            "d0d1c8a799996bf0265b98b5d48ab919",
        ),
        (
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            "",
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            "b094dac5d93471bdec1a502270e3cc6c",
        ),
        (
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b",
        ),
    ];
    for (i, (k, iv, p, a, c, t)) in cases.iter().enumerate() {
        let cipher = Aes256Gcm::new(h(k).as_slice().into());
        let nonce = h(iv);
        let out = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &h(p), aad: &h(a) })
            .expect("encrypt");
        let mut expect = h(c);
        expect.extend(h(t));
        assert_eq!(hex::encode(&out), hex::encode(&expect), "GCM test case {}", 13 + i);
        let back = cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &out, aad: &h(a) })
            .expect("decrypt");
        assert_eq!(back, h(p));
    }
}

/// RFC 5869 appendix A, test cases 1-3 (SHA-256).
#[test]
fn rfc5869_hkdf_sha256() {
    let cases = [
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "000102030405060708090a0b0c",
            "f0f1f2f3f4f5f6f7f8f9",
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "",
            "",
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ];
    for (i, (ikm, salt, info, prk, okm)) in cases.iter().enumerate() {
        let (p, hk) = Hkdf::<Sha256>::extract(Some(&h(salt)), &h(ikm));
        assert_eq!(hex::encode(p), *prk, "HKDF test case {} PRK", i + 1);
        let mut out = vec![0u8; okm.len() / 2];
        hk.expand(&h(info), &mut out).expect("expand");
        assert_eq!(hex::encode(out), *okm, "HKDF test case {} OKM", i + 1);
    }
}

/// pg_shred's own derivation: a fixed root key and salt give fixed KEK and key-check values.
#[test]
fn golden_key_hierarchy() {
    let root = RootKey::parse(&[0x01; 32]).expect("root");
    let salt = [0x02u8; 32];
    assert_eq!(hex::encode(root.key_check_value(&salt)), GOLDEN_KEY_CHECK);
    let dek = DataKey::from_bytes(&[0x03; 32]);
    let wrapped = root.kek(&salt).wrap_with_nonce(&dek, 1, b"customer:1", &[0x04; 12]).expect("wrap");
    assert_eq!(hex::encode(&wrapped), GOLDEN_WRAPPED_DEK);
    let back = root.kek(&salt).unwrap(&h(GOLDEN_WRAPPED_DEK), 1, b"customer:1").expect("unwrap");
    let e = envelope::seal_with_nonce(&back, 1, b"", b"x", &[0; 12]).expect("seal");
    let env = envelope::parse(&e).expect("parse");
    assert_eq!(envelope::open(&dek, &env, b"").expect("same DEK"), b"x");
}

const GOLDEN_KEY_CHECK: &str = "186081bc5fb43b406b89aba51dd4d22b971d15df51e02603b8e2744b974ef327";
const GOLDEN_WRAPPED_DEK: &str = "010404040404040404040404040bdb83890c3890c26eec98582391e82aef3ac1d9f7b2ed143f89fb7f81810308bbc42b707e4721112448980d4b81db27";

/// Golden v1 envelopes: (DEK byte, key id, context, plaintext, nonce byte, text form).
/// Sealed once with fixed keys and nonces; they must open to the same plaintext forever.
const GOLDEN_ENVELOPES: &[(u8, u64, &str, &str, u8, &str)] = &[
    (0x11, 1, "", "", 0x21, 
     "shred1:AQAAAAAAAAABISEhISEhISEhISEh7GtKN3cPcTcmT8U335TC2Q=="),
    (0x11, 1, "customers.email", "leonie.koehler@example.org", 0x22, 
     "shred1:AQAAAAAAAAABIiIiIiIiIiIiIiIie5JoJ6mqsTSKWrZQLdSpsGfyoJIG5IIkICgjyp0ZRQvRsGkFeXrHNbNp"),
    (0x12, 4242, "customers.name", "São José 🎉", 0x23, 
     "shred1:AQAAAAAAABCSIyMjIyMjIyMjIyMjI205tg3smtZXI1lqgGRvYRS0lzDg7FcTYGl2ElbEqw=="),
    (0x13, 9_223_372_036_854_775_807, "", "x", 0x24, 
     "shred1:AX//////////JCQkJCQkJCQkJCQk8B34/nKrvHSzuBaaVmxZMNA="),
];

#[test]
fn golden_v1_envelopes_open_forever() {
    for (dek_byte, key_id, ctx, pt, nonce_byte, text) in GOLDEN_ENVELOPES {
        let dek = DataKey::from_bytes(&[*dek_byte; 32]);
        let sealed =
            envelope::seal_with_nonce(&dek, *key_id, ctx.as_bytes(), pt.as_bytes(), &[*nonce_byte; 12])
                .expect("seal");
        assert_eq!(envelope::to_text(&sealed), *text, "sealing is deterministic for fixed inputs");
        let bytes = envelope::from_text(text).expect("golden envelope parses");
        let env = envelope::parse(&bytes).expect("parse");
        assert_eq!(env.key_id(), *key_id);
        assert_eq!(envelope::open(&dek, &env, ctx.as_bytes()).expect("golden envelope opens"), pt.as_bytes());
    }
}

/// Golden v2 envelopes: (DEK byte, key id, context, value, nonce byte, text form).
///
/// Computed independently of this crate with Python's `cryptography` package:
/// `AESGCM(dek).encrypt(nonce, encoding, b"pg_shred" + header + context)`, the header being
/// `0x02 | key id (">Q") | type byte`, the encodings from `struct.pack(">i"/">q")` and
/// `datetime` arithmetic. They must open to the same value forever.
fn golden_v2_envelopes() -> Vec<(u8, u64, &'static str, TypedValue, u8, &'static str)> {
    vec![
        (0x11, 1, "", TypedValue::Text(String::new()), 0x31,
         "shred2:AgAAAAAAAAABATExMTExMTExMTExMXF3pIXogSB6fV6uvtF0kRw="),
        (0x11, 1, "customers.email", TypedValue::Text("leonie.koehler@example.org".into()), 0x32,
         "shred2:AgAAAAAAAAABATIyMjIyMjIyMjIyMqRiBd6f+WvpsySmJILfDCCrj1lteUbS2cn8ngGozd7fMxKAzmGsb8tZPQ=="),
        (0x12, 4242, "customers.photo", TypedValue::Bytea(vec![0x00, 0xff, 0x00]), 0x33,
         "shred2:AgAAAAAAABCSAjMzMzMzMzMzMzMzM4C/DPl6E7qZStsVhdVejiZRqao="),
        (0x12, 4242, "customers.age", TypedValue::Int4(42), 0x34,
         "shred2:AgAAAAAAABCSAzQ0NDQ0NDQ0NDQ0NNO/bX332RQEitKDoVBECQGS4Wek"),
        (0x13, 9_223_372_036_854_775_807, "", TypedValue::Int8(-2), 0x35,
         "shred2:An//////////BDU1NTU1NTU1NTU1NZBcsKdbcZeTIOeBtGlfSHzg6S1k1ktpGA=="),
        (0x13, 7, "orders.total", TypedValue::Numeric("12345.6789".into()), 0x36,
         "shred2:AgAAAAAAAAAHBTY2NjY2NjY2NjY2NqFh7khCrzZxIdasUSH3xDSg0uqq+pxj7x98"),
        // 1990-05-17
        (0x14, 7, "customers.birth_date", TypedValue::Date(-3516), 0x37,
         "shred2:AgAAAAAAAAAHBjc3Nzc3Nzc3Nzc3N7Uev8OG55m+20ooY7Wo4jnyvLBM"),
        // 2024-02-29 12:34:56.789012+00
        (0x14, 7, "logins.at", TypedValue::Timestamptz(762_525_296_789_012), 0x38,
         "shred2:AgAAAAAAAAAHBzg4ODg4ODg4ODg4OEH49+dxUaIIuxYpzW+beXCfFZcfsBqmaw=="),
        (0x15, 99, "customers.profile", TypedValue::Jsonb("{\"vip\": true, \"city\": \"São Paulo\"}".into()), 0x39,
         "shred2:AgAAAAAAAABjCDk5OTk5OTk5OTk5OWpV+KU5Zx3tNTLiHFE5puWG5BvIWYXGzWOVI3HqMENH3oMCsX02BrPkk5yuhqqCvtAUnA=="),
    ]
}

#[test]
fn golden_v2_envelopes_open_forever() {
    for (dek_byte, key_id, ctx, value, nonce_byte, text) in golden_v2_envelopes() {
        let dek = DataKey::from_bytes(&[dek_byte; 32]);
        let t = value.plain_type();
        let sealed = envelope::seal_v2_with_nonce(&dek, key_id, ctx.as_bytes(), t, &value.encode(), &[nonce_byte; 12])
            .expect("seal");
        assert_eq!(envelope::to_text(&sealed), text, "sealing is deterministic for fixed inputs ({t})");
        let bytes = envelope::from_text_any(text).expect("golden envelope parses");
        let env = envelope::parse_any(&bytes).expect("parse");
        assert_eq!((env.key_id(), env.plain_type()), (key_id, Some(t)));
        assert_eq!(
            envelope::open_typed(&dek, &env, ctx.as_bytes()).expect("golden envelope opens"),
            envelope::Opened::Typed(value)
        );
    }
}

/// The v2 layout and AAD, restated with the aes-gcm crate's plain `Aead` API.
#[test]
fn v2_layout_matches_plain_aead() {
    let dek = DataKey::from_bytes(&[0x12; 32]);
    let sealed = envelope::seal_v2_with_nonce(&dek, 4242, b"customers.age", PlainType::Int4, &42i32.to_be_bytes(), &[0x34; 12])
        .expect("seal");
    let header = h("02000000000000109203");
    let mut aad = b"pg_shred".to_vec();
    aad.extend(&header);
    aad.extend(b"customers.age");
    let ct = Aes256Gcm::new(&[0x12; 32].into())
        .encrypt(Nonce::from_slice(&[0x34; 12]), Payload { msg: &h("0000002a"), aad: &aad })
        .expect("encrypt");
    assert_eq!(sealed, [header, vec![0x34; 12], ct].concat());
}
