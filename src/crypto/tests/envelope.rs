//! Unit tests of `crypto::envelope`.
use crate::crypto::envelope::*;
use crate::crypto::keys::{DataKey, NONCE_LEN};
use crate::crypto::CryptoError;

fn dek() -> DataKey {
    DataKey::from_bytes(&[0x42; 32])
}

#[test]
fn round_trips() {
    let d = dek();
    let big = vec![0xA5u8; 1 << 20];
    let cases: [&[u8]; 5] = [b"", "São José Köhler 🎉".as_bytes(), b"\x00\xff\x00", b"x", &big];
    for pt in cases {
        let e = seal(&d, 7, b"customers.email", pt).expect("seal");
        assert_eq!(e.len(), pt.len() + MIN_LEN);
        let env = parse(&e).expect("parse");
        assert_eq!(env.key_id(), 7);
        assert_eq!(env.plaintext_len(), pt.len());
        assert_eq!(open(&d, &env, b"customers.email").expect("open"), pt);
        assert_eq!(from_text(&to_text(&e)).expect("text"), e);
    }
}

#[test]
fn sealing_never_returns_its_input_and_nonces_differ() {
    let d = dek();
    let a = seal(&d, 1, b"", b"same plaintext").expect("seal");
    let b = seal(&d, 1, b"", b"same plaintext").expect("seal");
    assert_ne!(a, b);
    assert_ne!(a[HEADER_LEN..HEADER_LEN + NONCE_LEN], b[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
    assert!(!a.windows(14).any(|w| w == b"same plaintext"));
    let mut nonces = std::collections::HashSet::new();
    for _ in 0..1000 {
        let e = seal(&d, 1, b"", b"").expect("seal");
        assert!(nonces.insert(e[HEADER_LEN..HEADER_LEN + NONCE_LEN].to_vec()));
    }
}

#[test]
fn every_flipped_bit_fails() {
    let d = dek();
    let e = seal(&d, 9, b"ctx", b"personal data").expect("seal");
    for i in 0..e.len() {
        for bit in 0..8 {
            let mut t = e.clone();
            t[i] ^= 1 << bit;
            let res = parse(&t).and_then(|env| open(&d, &env, b"ctx"));
            assert!(res.is_err(), "byte {i} bit {bit} still opened");
        }
    }
}

#[test]
fn wrong_context_or_key_fails_uniformly() {
    let d = dek();
    let e = seal(&d, 9, b"customers.email", b"a@b.c").expect("seal");
    let env = parse(&e).expect("parse");
    assert_eq!(open(&d, &env, b"customers.phone").unwrap_err(), CryptoError::AuthenticationFailed);
    assert_eq!(open(&d, &env, b"").unwrap_err(), CryptoError::AuthenticationFailed);
    let other = DataKey::from_bytes(&[0x43; 32]);
    assert_eq!(open(&other, &env, b"customers.email").unwrap_err(), CryptoError::AuthenticationFailed);
    // moved to another key id: header rewritten, AAD no longer matches
    let mut moved = e.clone();
    moved[1..9].copy_from_slice(&10u64.to_be_bytes());
    let env = parse(&moved).expect("parse");
    assert_eq!(open(&d, &env, b"customers.email").unwrap_err(), CryptoError::AuthenticationFailed);
}

#[test]
fn malformed_envelopes_are_rejected() {
    assert_eq!(parse(b"").unwrap_err(), CryptoError::MalformedEnvelope("it is empty"));
    assert_eq!(parse(&[1]).unwrap_err(), CryptoError::MalformedEnvelope("it is shorter than header, nonce and tag (37 bytes)"));
    assert_eq!(parse(&[2; 40]).unwrap_err(), CryptoError::UnsupportedVersion(2));
    assert_eq!(parse(&[0; 40]).unwrap_err(), CryptoError::UnsupportedVersion(0));
    let mut short = vec![1u8; MIN_LEN - 1];
    assert!(matches!(parse(&short), Err(CryptoError::MalformedEnvelope(_))));
    short.push(1);
    assert!(parse(&short).is_ok());
    let mut zero_id = vec![0u8; MIN_LEN];
    zero_id[0] = 1;
    assert_eq!(parse(&zero_id).unwrap_err(), CryptoError::MalformedEnvelope("its key id is out of range"));
    let mut big_id = vec![0xffu8; MIN_LEN];
    big_id[0] = 1;
    assert_eq!(parse(&big_id).unwrap_err(), CryptoError::MalformedEnvelope("its key id is out of range"));
    let huge = vec![1u8; MAX_LEN + 1];
    assert!(matches!(parse(&huge), Err(CryptoError::MalformedEnvelope(_))));
    assert!(matches!(
        seal(&dek(), 1, b"", &vec![0u8; MAX_PLAINTEXT_LEN + 1]),
        Err(CryptoError::PlaintextTooLarge { .. })
    ));
}

#[test]
fn text_form_is_strict() {
    let e = seal(&dek(), 3, b"", b"x").expect("seal");
    let t = to_text(&e);
    assert!(t.starts_with("shred1:AQAAAAAAAAAD"));
    for bad in [
        String::new(),
        "shred1:".to_string(),
        "shred2:".to_string() + &t[7..],
        t[7..].to_string(),
        format!(" {t}"),
        format!("{t} "),
        format!("{t}\n"),
        t.replace('=', ""),
        t.to_uppercase(),
        format!("{}*{}", &t[..20], &t[21..]),
        "shred1:AQ==".to_string(),
    ] {
        assert!(from_text(&bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn long_contexts_use_the_heap_path_and_still_bind() {
    let d = dek();
    let long = vec![b'c'; 1000];
    let e = seal(&d, 5, &long, b"x").expect("seal");
    let env = parse(&e).expect("parse");
    assert_eq!(open(&d, &env, &long).expect("open"), b"x");
    let mut other = long.clone();
    other[999] = b'd';
    assert_eq!(open(&d, &env, &other).unwrap_err(), CryptoError::AuthenticationFailed);
}

#[test]
fn into_buffers_must_have_the_exact_length() {
    let d = dek();
    let mut small = vec![0u8; sealed_len(3) - 1];
    assert!(seal_into(&d, 1, b"", b"abc", &mut small).is_err());
    let e = seal(&d, 1, b"", b"abc").expect("seal");
    let env = parse(&e).expect("parse");
    let mut out = [0u8; 2];
    assert!(open_into(&d, &env, b"", &mut out).is_err());
    let mut out = [0u8; 3];
    open_into(&d, &env, b"", &mut out).expect("open");
    assert_eq!(&out, b"abc");
}

/// A forked child reseeds its nonce generator: parent and child draw different nonces.
#[test]
fn forked_processes_do_not_share_nonces() {
    use crate::crypto::fill_nonce;
    let mut first = [0u8; 12];
    fill_nonce(&mut first).expect("seeded before the fork");
    let mut fds = [0i32; 2];
    // SAFETY: plain pipe/fork; the child only draws a nonce, writes it and exits.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            let mut n = [0u8; 12];
            let ok = fill_nonce(&mut n).is_ok();
            if ok {
                libc::write(fds[1], n.as_ptr().cast(), 12);
            }
            libc::_exit(if ok { 0 } else { 1 });
        }
        let mut parent = [0u8; 12];
        fill_nonce(&mut parent).expect("parent");
        let mut child = [0u8; 12];
        assert_eq!(libc::read(fds[0], child.as_mut_ptr().cast(), 12), 12);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::close(fds[0]);
        libc::close(fds[1]);
        assert_ne!(parent, child, "the child reused the parent's nonce stream");
    }
}

/// A small xorshift generator for reproducible random inputs (test data only).
struct TestRng(u64);

impl TestRng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = (self.next() as usize) % (max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Random inputs to the decoders (G2): parse and from_text return Ok or a clean error for
/// anything, never panic; whatever parses has the documented shape.
#[test]
fn decoders_accept_only_well_formed_input_and_never_panic() {
    let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
    let d = dek();
    for i in 0..20_000 {
        let mut b = rng.bytes(120);
        if i % 2 == 0 && !b.is_empty() {
            b[0] = FORMAT_V1; // get past the version check half of the time
        }
        if let Ok(env) = parse(&b) {
            assert!(b.len() >= MIN_LEN && b[0] == FORMAT_V1 && env.key_id() >= 1);
            assert_eq!(env.plaintext_len(), b.len() - MIN_LEN);
            // random bytes never authenticate
            assert_eq!(open(&d, &env, b"").unwrap_err(), CryptoError::AuthenticationFailed);
        }
        let text = format!("shred1:{}", String::from_utf8_lossy(&b));
        if let Ok(bytes) = from_text(&text) {
            assert_eq!(to_text(&bytes), text, "text input accepted only in its canonical form");
        }
        let b64 = to_text(&b);
        match from_text(&b64) {
            Ok(bytes) => assert_eq!(bytes, b),
            Err(_) => assert!(parse(&b).is_err()),
        }
    }
}

/// Random mutations of a valid envelope (bit flips, truncation, extension, splices) never
/// open to anything but the original plaintext, and never panic.
#[test]
fn mutated_envelopes_never_open_to_something_else() {
    let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
    let d = dek();
    let good = seal(&d, 77, b"ctx", b"the original plaintext").expect("seal");
    for _ in 0..20_000 {
        let mut m = good.clone();
        match rng.next() % 4 {
            0 => {
                let i = (rng.next() as usize) % m.len();
                m[i] ^= 1 << (rng.next() % 8);
            }
            1 => m.truncate((rng.next() as usize) % m.len()),
            2 => m.extend(rng.bytes(8)),
            _ => {
                let i = (rng.next() as usize) % m.len();
                let junk = rng.bytes(6);
                m.splice(i..i, junk);
            }
        }
        if m == good {
            continue;
        }
        if let Ok(env) = parse(&m) {
            assert!(open(&d, &env, b"ctx").is_err(), "a mutated envelope opened");
        }
    }
}
