//! Target `keyring`: root keyring material (the key file, or a key command's output), decoded by
//! `Keyring::parse`. Input: the material.
//!
//! The documented forms (src/keys.rs), restated here: 32 raw bytes, or standard base64 of 32
//! bytes with ASCII whitespace around it, is version 1; otherwise `version:base64-key` lines (a
//! decimal version from 1 to 1,000,000, the key base64 of 32 bytes, ASCII spaces around
//! fields), blank lines and `#` lines ignored, in any order, each version once. No key is all
//! zero bytes. (Base64 has no ':', so material with a ':' is versioned or refused.)
//!
//! Asserts:
//! - what `Keyring::parse` accepts is documented, and holds the keys the document reads from
//!   it: the same versions, ascending, `newest` the highest, `get` each one (and nothing for 0
//!   or 1,000,001), each version's key the same as `RootKey::parse` of its bytes (compared by
//!   key-check value). Its errors are `InvalidRootKey` or `InvalidKeyring` with a line number of
//!   the material.
//! - what is documented, it accepts, when the material is UTF-8 (a versioned keyring must be
//!   text: a `#` line that is not UTF-8 makes it refuse the whole material).
//! - what decodes re-encodes to the canonical form (`version:base64` lines, ascending), which
//!   decodes to the same keyring and is its own canonical form.
//! - encode then decode gives back the keyring: up to 8 versions and keys made from the input,
//!   written in the versioned form (input order, comments, blank lines, spaces around fields),
//!   and the first key alone as 32 raw bytes and as base64 with a newline, parse to the same
//!   versions and keys.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pg_shred_crypto::keys::{Keyring, RootKey, KEY_LEN, MAX_VERSION};
use pg_shred_crypto::CryptoError;

use crate::SALT;

type Keys = Vec<(i32, [u8; KEY_LEN])>;

pub fn check(data: &[u8]) {
    let expected = documented(data);
    match Keyring::parse(data) {
        Ok(keyring) => {
            let Some(keys) = expected else { panic!("accepted a keyring the documented forms refuse") };
            same_keyring(&keyring, &keys);
            let text = canonical(&keys);
            same_keyring(&Keyring::parse(text.as_bytes()).expect("the canonical form parses"), &keys);
            let reread = documented(text.as_bytes()).expect("the canonical form is documented");
            assert_eq!(canonical(&reread), text, "the canonical form is not its own");
        }
        Err(e) => {
            let lines = data.split(|b| *b == b'\n').count();
            match e {
                CryptoError::InvalidRootKey(_) => {}
                CryptoError::InvalidKeyring { line, .. } => assert!((1..=lines).contains(&line), "line {line} of {lines}"),
                other => panic!("Keyring::parse failed with {other:?}"),
            }
            if std::str::from_utf8(data).is_ok() {
                assert!(expected.is_none(), "refused a keyring the documented forms accept");
            }
        }
    }

    let made = made_from(data);
    if let Some((_, first)) = made.first() {
        let written = written(&made, data);
        same_keyring(&Keyring::parse(written.as_bytes()).expect("a written keyring parses"), &made);
        let one = [(1, *first)];
        same_keyring(&Keyring::parse(first).expect("32 raw bytes parse"), &one);
        let b64 = format!("{}\n", STANDARD.encode(first));
        same_keyring(&Keyring::parse(b64.as_bytes()).expect("a base64 key parses"), &one);
    }
}

/// `keyring` holds exactly `keys` (in any order).
fn same_keyring(keyring: &Keyring, keys: &[(i32, [u8; KEY_LEN])]) {
    let mut expected: Vec<i32> = keys.iter().map(|(v, _)| *v).collect();
    expected.sort_unstable();
    assert_eq!(keyring.versions().collect::<Vec<_>>(), expected, "versions");
    assert_eq!(keyring.newest().map(|(v, _)| v), expected.last().copied(), "newest");
    assert!(keyring.get(0).is_none() && keyring.get(MAX_VERSION + 1).is_none());
    for (version, bytes) in keys {
        let key = keyring.get(*version).expect("each version is there");
        let want = RootKey::parse(bytes).expect("a documented key parses").key_check_value(&SALT);
        assert_eq!(key.key_check_value(&SALT), want, "the key of version {version}");
    }
}

/// The keys the documented forms read from `material`, or `None` where they refuse it.
fn documented(material: &[u8]) -> Option<Keys> {
    let key = |b64: &[u8]| {
        let bytes: [u8; KEY_LEN] = STANDARD.decode(b64).ok()?.try_into().ok()?;
        bytes.iter().any(|b| *b != 0).then_some(bytes)
    };
    if material.len() == KEY_LEN {
        let raw: [u8; KEY_LEN] = material.try_into().ok()?;
        return raw.iter().any(|b| *b != 0).then_some(vec![(1, raw)]);
    }
    if !material.contains(&b':') {
        return Some(vec![(1, key(material.trim_ascii())?)]);
    }
    let mut keys = Keys::new();
    for line in material.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let digits = line[..colon].trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let version = digits.iter().try_fold(0i32, |acc, d| acc.checked_mul(10)?.checked_add(i32::from(d - b'0')))?;
        if !(1..=MAX_VERSION).contains(&version) || keys.iter().any(|(v, _)| *v == version) {
            return None;
        }
        keys.push((version, key(line[colon + 1..].trim_ascii())?));
    }
    (!keys.is_empty()).then_some(keys)
}

/// The canonical form of `keys`: one `version:base64` line each, ascending.
fn canonical(keys: &[(i32, [u8; KEY_LEN])]) -> String {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable_by_key(|(v, _)| *v);
    sorted.iter().map(|(v, k)| format!("{v}:{}\n", STANDARD.encode(k))).collect()
}

/// Versions and keys made from the first (up to) 8 times 35 bytes of `data` (3 for the
/// version, 32 for the key), leaving out all-zero keys and repeated versions. Eight are enough
/// to exercise ordering and duplicates; more would only make long inputs slow (each key costs
/// HKDF runs) and lead AFL++ to keep ever longer ones.
fn made_from(data: &[u8]) -> Keys {
    let mut keys = Keys::new();
    for chunk in data.chunks_exact(3 + KEY_LEN).take(8) {
        let n = u32::from_be_bytes([0, chunk[0], chunk[1], chunk[2]]);
        let version = (n % MAX_VERSION as u32) as i32 + 1;
        let key: [u8; KEY_LEN] = chunk[3..].try_into().expect("32 bytes");
        if key.iter().any(|b| *b != 0) && !keys.iter().any(|(v, _)| *v == version) {
            keys.push((version, key));
        }
    }
    keys
}

/// `keys` in the versioned form, in their order, with the optional parts the input chooses: a
/// comment, blank lines, spaces and tabs around fields, leading zeros, CR LF line ends.
fn written(keys: &[(i32, [u8; KEY_LEN])], data: &[u8]) -> String {
    let style = data.iter().fold(0u8, |acc, b| acc.rotate_left(1) ^ b);
    let mut out = String::new();
    if style & 1 != 0 {
        out.push_str("# pg_shred keyring\n\n");
    }
    let space = if style & 2 != 0 { " \t" } else { "" };
    let zeros = if style & 4 != 0 { "00" } else { "" };
    let end = if style & 8 != 0 { "\r\n" } else { "\n" };
    for (v, k) in keys {
        out.push_str(&format!("{space}{zeros}{v}{space}:{space}{}{space}{end}", STANDARD.encode(k)));
    }
    out
}
