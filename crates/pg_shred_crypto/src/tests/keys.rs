//! Unit tests of `crypto::keys`.
use base64::Engine;

use crate::keys::*;
use crate::CryptoError;

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
    let labels = [LABEL_KEK, LABEL_KEY_CHECK, crate::envelope::AAD_PREFIX, WRAP_AAD_PREFIX];
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

fn b64(k: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(k)
}

#[test]
fn keyring_forms() {
    // A single key (raw or base64) is version 1.
    for single in [vec![0x11u8; 32], format!("{}\n", b64(&[0x11; 32])).into_bytes()] {
        let ring = Keyring::parse(&single).expect("single key");
        assert_eq!(ring.versions().collect::<Vec<_>>(), vec![1]);
        assert_eq!(ring.newest().expect("a version").0, 1);
        assert_eq!(ring.get(1).expect("v1").key_check_value(b"s"), RootKey::parse(&[0x11; 32]).unwrap().key_check_value(b"s"));
    }
    // Versioned lines, any order, comments and blanks, spaces around fields.
    let text = format!("# keyring\n\n 3 : {}\n1:{}\r\n  # old\n2:{}\n", b64(&[3; 32]), b64(&[1; 32]), b64(&[2; 32]));
    let ring = Keyring::parse(text.as_bytes()).expect("keyring");
    assert_eq!(ring.versions().collect::<Vec<_>>(), vec![1, 2, 3]);
    let (v, newest) = ring.newest().expect("a version");
    assert_eq!(v, 3);
    assert_eq!(newest.key_check_value(b"s"), RootKey::parse(&[3; 32]).unwrap().key_check_value(b"s"));
    assert_eq!(ring.get(2).unwrap().key_check_value(b"s"), RootKey::parse(&[2; 32]).unwrap().key_check_value(b"s"));
    assert!(ring.get(4).is_none());
    assert_eq!(format!("{ring:?}"), "Keyring(versions [1, 2, 3])");
}

#[test]
fn keyring_rejects_bad_lines_without_echoing_them() {
    let k = b64(&[5; 32]);
    let cases: Vec<(String, usize)> = vec![
        (format!("1:{k}\n1:{k}\n"), 2),                 // duplicate version
        (format!("0:{k}\n"), 1),                        // version 0
        (format!("1:{k}\n-1:{k}\n"), 2),                // negative
        (format!("1000001:{k}\n"), 1),                  // too large
        (format!("1:{k}\nx:{k}\n"), 2),                 // not a number
        (format!("1:{k}\n:{k}\n"), 2),                  // no version
        (format!("1:{k}\n2:\n"), 2),                    // no key
        (format!("1:{k}\n2:c2hvcnQ=\n"), 2),            // 5 bytes
        (format!("1:{k}\n2:{}\n", b64(&[0; 32])), 2),   // all zero
        (format!("1:{k}\ngarbage line with:colon\n"), 2),
        (format!("1:{k}\n{k}\n"), 2),                   // a line without version
    ];
    for (text, line) in cases {
        match Keyring::parse(text.as_bytes()) {
            Err(e @ CryptoError::InvalidKeyring { line: l, .. }) => {
                assert_eq!(l, line, "{text:?}");
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("invalid keyring: line {line}: ")), "{msg}");
                assert!(!msg.contains(&k) && !msg.contains("garbage"), "message echoes input: {msg}");
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }
    assert!(matches!(Keyring::parse(b"# only a comment: nothing else\n"), Err(CryptoError::InvalidRootKey(_))));
    // Raw bytes that happen to hold a ':' are a single (here: too short) key, not a keyring.
    assert!(matches!(Keyring::parse(b"\x01\x02:\xff not a keyring line"), Err(CryptoError::InvalidRootKey(_))));
    assert!(matches!(Keyring::parse(format!("x:{k}\n").as_bytes()), Err(CryptoError::InvalidRootKey(_))));
    assert!(matches!(Keyring::parse(b"\n\n"), Err(CryptoError::InvalidRootKey(_))));
    assert!(matches!(Keyring::parse(b"1:"), Err(CryptoError::InvalidKeyring { line: 1, .. })));
}

/// The flags of the memory mapping that holds `addr`, from /proc/self/smaps.
fn mapping_flags(addr: usize) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) {
                    inside = lo <= addr && addr < hi;
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_string();
            }
        }
    }
    panic!("no mapping holds {addr:#x}")
}

#[test]
fn key_material_is_excluded_from_core_dumps_and_zeroed() {
    let dek = DataKey::from_bytes(&[0x42; 32]);
    assert!(mapping_flags(dek.addr()).split_whitespace().any(|f| f == "dd"), "DEK memory is dumpable");
    let addr = dek.addr();
    drop(dek);
    // The freed slot is zero (it stays mapped for reuse).
    let slot = unsafe { std::slice::from_raw_parts(addr as *const u8, 64) };
    assert!(slot.iter().all(|&b| b == 0), "freed DEK slot not zeroed");
    // A slot is reused after being freed; many keys fit.
    let keys: Vec<DataKey> = (0..200).map(|i| DataKey::from_bytes(&[i as u8 + 1; 32])).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(k.as_bytes(), &[i as u8 + 1; 32]);
    }
    let secret = crate::secret::Secret::new([9u8; 32]);
    assert!(mapping_flags(secret.addr()).contains("dd"));
    assert_eq!(*secret, [9u8; 32]);
}
