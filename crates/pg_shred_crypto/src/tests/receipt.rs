//! Erasure receipts: known answers computed independently (Python's `cryptography`, with the
//! canonical form written by `json.dumps(sort_keys=True, separators=(',', ':'),
//! ensure_ascii=False)`, which is RFC 8785 for receipts of strings, integers, booleans and
//! null), and tamper tests.

use crate::keys::DataKey;
use crate::receipt::{self, ReceiptKey};
use serde_json::{json, Value};

/// RFC 8032 7.1, TEST 1: its secret key.
const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const SEED_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn seed() -> [u8; 32] {
    hex::decode(SEED).unwrap().try_into().unwrap()
}

fn sample() -> Value {
    json!({
        "format": "pg_shred erasure receipt v1",
        "system_identifier": "7312345678901234567",
        "erasures": [
            {"key_id": 4503599627370497_i64, "erased_at": "2026-12-01T10:00:00.000000Z", "purpose": null},
            {"key_id": 4503599627370498_i64, "erased_at": "2026-12-01T10:00:01.000000Z", "purpose": "newsletter é"}
        ],
        "final_in_every_copy": false,
        "signature": "replaced"
    })
}

const CANONICAL: &str = r#"{"erasures":[{"erased_at":"2026-12-01T10:00:00.000000Z","key_id":4503599627370497,"purpose":null},{"erased_at":"2026-12-01T10:00:01.000000Z","key_id":4503599627370498,"purpose":"newsletter é"}],"final_in_every_copy":false,"format":"pg_shred erasure receipt v1","system_identifier":"7312345678901234567"}"#;
const SIGNATURE: &str = "dVxILHxWiXP3UrHX1VSVUug2nSmmsn9/05reP6aDgKN8+bA0YnAK4xchaEX9LnvzoDRN2dm6VYcMzR+v5rtlCQ==";

#[test]
fn public_key_of_the_rfc_8032_seed() {
    assert_eq!(hex::encode(ReceiptKey::from_seed(&seed()).public_key()), SEED_PUBLIC);
}

#[test]
fn signed_bytes_are_jcs_without_the_signature() {
    assert_eq!(receipt::signed_bytes(&sample()).unwrap(), CANONICAL.as_bytes());
}

#[test]
fn known_signature() {
    let key = ReceiptKey::from_seed(&seed());
    let mut r = sample();
    key.sign(&mut r).unwrap();
    assert_eq!(r["signature"], SIGNATURE);
    assert!(receipt::verify(&key.public_key(), &r));
    // The member order and whitespace of the JSON text do not matter.
    let pretty = serde_json::to_string_pretty(&r).unwrap();
    assert!(receipt::verify_json(&key.public_key(), pretty.as_bytes()));
}

#[test]
fn signing_key_derived_from_the_receipt_key() {
    let dek = DataKey::from_bytes(&std::array::from_fn(|i| i as u8));
    assert_eq!(
        receipt::parse_public_key("5yen5FNwKM0IxQfCIShIn9tQ8DU/q7E2IkGiwrSsElc=").unwrap(),
        ReceiptKey::new(&dek).public_key()
    );
}

#[test]
fn subject_digest_known_answer() {
    let salt: Vec<u8> = (0..16).collect();
    assert_eq!(
        hex::encode(receipt::subject_digest(&salt, b"alice@example.com")),
        "a665c52829b935765f945e38e973753a5c696f59f488d8ca90a67ed7da798d80"
    );
}

/// Every byte of the signed receipt's JSON text changed (to each of a few other bytes):
/// the result either does not parse or does not verify.
#[test]
fn any_changed_byte_fails() {
    let key = ReceiptKey::from_seed(&seed());
    let mut r = sample();
    key.sign(&mut r).unwrap();
    let text = serde_json::to_vec(&r).unwrap();
    assert!(receipt::verify_json(&key.public_key(), &text));
    for i in 0..text.len() {
        for with in [b'0', b'1', b'A', b'a', b'+', b'"', b' ', b'}', b'\\'] {
            if text[i] == with {
                continue;
            }
            let mut t = text.clone();
            t[i] = with;
            let ok = receipt::verify_json(&key.public_key(), &t);
            assert!(!ok, "byte {i} changed to {:?} still verifies", with as char);
        }
    }
}

#[test]
fn other_key_or_no_signature_fails() {
    let key = ReceiptKey::from_seed(&seed());
    let other = ReceiptKey::from_seed(&[7; 32]);
    let mut r = sample();
    key.sign(&mut r).unwrap();
    assert!(!receipt::verify(&other.public_key(), &r));
    let mut unsigned = r.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert!(!receipt::verify(&key.public_key(), &unsigned));
    // A member added beside the signature is covered.
    let mut added = r.clone();
    added["extra"] = json!(1);
    assert!(!receipt::verify(&key.public_key(), &added));
    assert!(!receipt::verify(&key.public_key(), &json!([1, 2])));
    assert!(!receipt::verify_json(&key.public_key(), b"not json"));
    assert!(receipt::parse_public_key("AAAA").is_none());
}
