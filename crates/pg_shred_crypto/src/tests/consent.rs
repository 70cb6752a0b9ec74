//! Unit and known-answer tests of `crypto::consent`.
//!
//! The expected texts and digests were computed independently of this crate with Python's
//! `base64.urlsafe_b64encode` (the `=` stripped) and `hashlib.sha256`.
use crate::consent::*;

#[test]
fn known_answers() {
    let mut counting = [0u8; TOKEN_BYTES];
    for (i, b) in counting.iter_mut().enumerate() {
        *b = i as u8;
    }
    let cases: [([u8; TOKEN_BYTES], &str, &str); 3] = [
        ([0u8; 32], "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"),
        (counting, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"),
        ([0xffu8; 32], "__________________________________________8", "af9613760f72635fbdb44a5a0a63c39f12af30f950a6ee5c971be188e89c4051"),
    ];
    for (bytes, text, want) in cases {
        assert_eq!(encode(&bytes), text);
        assert_eq!(hex::encode(digest(&bytes)), want);
        assert_eq!(digest_of(text.as_bytes()).map(hex::encode).as_deref(), Some(want));
    }
}

#[test]
fn generated_tokens_are_url_safe_distinct_and_match_their_digest() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let (text, d) = generate().expect("rng");
        assert_eq!(text.len(), TOKEN_LEN);
        assert!(text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{text}");
        assert_eq!(digest_of(text.as_bytes()), Some(d));
        assert!(seen.insert(text));
    }
}

#[test]
fn anything_but_a_token_has_no_digest() {
    let good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        good[..42].as_bytes().to_vec(),
        format!("{good}A").into_bytes(),
        format!("{good}=").into_bytes(),
        // standard base64 alphabet, padding, spaces, non-ASCII
        good.replace('A', "+").into_bytes(),
        format!("{}=", &good[..42]).into_bytes(),
        format!(" {}", &good[..42]).into_bytes(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHé".as_bytes().to_vec(),
        // 43 characters whose last one carries bits beyond 32 bytes (non-canonical)
        b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9".to_vec(),
    ];
    for b in bad {
        assert_eq!(digest_of(&b), None, "{:?}", String::from_utf8_lossy(&b));
    }
}
