//! Known-answer tests of `crypto::audit`. The expected digests were computed independently:
//! HKDF-SHA256 written out from RFC 5869 over Python's `hmac`/`hashlib`, then HMAC-SHA256.
use crate::audit::*;
use crate::keys::DataKey;

#[test]
fn known_answers() {
    let key = DataKey::from_bytes(&[0x01; 32]);
    assert_eq!(
        hex::encode(subject_digest(&key, b"customer:42")),
        "a549aec45874caafb61c47793ae52af7fd71e6d0c710f7c5429e90aacb54c5d6"
    );
    assert_eq!(
        hex::encode(subject_digest(&key, "São José".as_bytes())),
        "6bddd4bad3184a5e8e7c939a4888c8b4cfe4b2a831270bffb371a08f45bc4813"
    );
}

#[test]
fn digests_separate_subjects_and_keys() {
    let a = DataKey::from_bytes(&[0x01; 32]);
    let b = DataKey::from_bytes(&[0x02; 32]);
    assert_ne!(subject_digest(&a, b"customer:42"), subject_digest(&a, b"customer:43"));
    assert_ne!(subject_digest(&a, b"customer:42"), subject_digest(&b, b"customer:42"));
    assert!(LABEL_AUDIT.starts_with(b"pg_shred v1 "));
    assert_ne!(LABEL_AUDIT, crate::pseudonym::LABEL_PSEUDONYM);
}
