//! Unit tests of `crypto::envelope`.
use crate::envelope::*;
use crate::keys::{DataKey, NONCE_LEN};
use crate::CryptoError;

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
    assert_every_flipped_bit_fails(parse, &d, &e, b"ctx");
}

/// No single-bit change of `e` (sealed under `d` with context `ctx`) parses and opens.
fn assert_every_flipped_bit_fails(
    parse: fn(&[u8]) -> Result<Envelope<'_>, CryptoError>,
    d: &DataKey,
    e: &[u8],
    ctx: &[u8],
) {
    for i in 0..e.len() {
        for bit in 0..8 {
            let mut t = e.to_vec();
            t[i] ^= 1 << bit;
            let res = parse(&t).and_then(|env| open(d, &env, ctx));
            assert!(res.is_err(), "byte {i} bit {bit} still opened");
        }
    }
}

#[test]
fn wrong_context_or_key_fails_uniformly() {
    let d = dek();
    let e = seal(&d, 9, b"customers.email", b"a@b.c").expect("seal");
    assert_bound(parse, &d, &e, b"customers.email");
}

/// `e` (sealed under `d` with context `ctx`, key id 9) opens only with that context, that DEK
/// and that key id: each mismatch fails with the same error.
fn assert_bound(parse: fn(&[u8]) -> Result<Envelope<'_>, CryptoError>, d: &DataKey, e: &[u8], ctx: &[u8]) {
    let env = parse(e).expect("parse");
    assert!(open(d, &env, ctx).is_ok());
    assert_eq!(open(d, &env, b"customers.phone").unwrap_err(), CryptoError::AuthenticationFailed);
    assert_eq!(open(d, &env, b"").unwrap_err(), CryptoError::AuthenticationFailed);
    let other = DataKey::from_bytes(&[0x43; 32]);
    assert_eq!(open(&other, &env, ctx).unwrap_err(), CryptoError::AuthenticationFailed);
    // moved to another key id: header rewritten, AAD no longer matches
    let mut moved = e.to_vec();
    moved[1..9].copy_from_slice(&10u64.to_be_bytes());
    let env = parse(&moved).expect("parse");
    assert_eq!(open(d, &env, ctx).unwrap_err(), CryptoError::AuthenticationFailed);
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
    let specific = [String::new(), "shred1:".to_string(), "shred2:".to_string() + &t[7..], "shred1:AQ==".to_string()];
    for bad in specific.into_iter().chain(non_canonical_forms(&t)) {
        assert!(from_text(&bad).is_err(), "accepted {bad:?}");
    }
}

/// Near misses of the valid text form `t` (which ends in `=` padding): no prefix, white
/// space around or inside, padding dropped, wrong case, a character outside base64.
fn non_canonical_forms(t: &str) -> Vec<String> {
    vec![
        t[7..].to_string(),
        format!(" {t}"),
        format!("{t} "),
        format!("{t}\n"),
        format!("{}\n{}", &t[..20], &t[20..]),
        t.replace('=', ""),
        t.to_uppercase(),
        format!("{}*{}", &t[..20], &t[21..]),
    ]
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
    use crate::fill_nonce;
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
        assert_text_form_is_canonical(&b, &[TEXT_PREFIX], from_text, parse);
    }
}

/// The text decoder `from_text` accepts text only in the canonical form [`to_text`] writes,
/// and accepts the text form of `b` exactly when the byte decoder `parse` accepts `b`.
fn assert_text_form_is_canonical(
    b: &[u8],
    prefixes: &[&str],
    from_text: fn(&str) -> Result<Vec<u8>, CryptoError>,
    parse: fn(&[u8]) -> Result<Envelope<'_>, CryptoError>,
) {
    for prefix in prefixes {
        let text = format!("{prefix}{}", String::from_utf8_lossy(b));
        if let Ok(bytes) = from_text(&text) {
            assert_eq!(to_text(&bytes), text, "text input accepted only in its canonical form");
        }
    }
    match from_text(&to_text(b)) {
        Ok(bytes) => assert_eq!(bytes, b),
        Err(_) => assert!(parse(b).is_err()),
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

// ---- format v2 (typed plaintext) ----

use crate::typed::{PlainType, TypedValue};

fn typed_values() -> Vec<TypedValue> {
    vec![
        TypedValue::Text("São José Köhler 🎉".into()),
        TypedValue::Text(String::new()),
        TypedValue::Bytea(vec![0, 0xff, 0]),
        TypedValue::Int4(-2),
        TypedValue::Int8(i64::MAX),
        TypedValue::Numeric("-0.000123".into()),
        TypedValue::Date(-3516),
        TypedValue::Timestamptz(762_525_296_789_012),
        TypedValue::Jsonb("{\"vip\": true}".into()),
    ]
}

#[test]
fn v2_round_trips_every_type() {
    let d = dek();
    for value in typed_values() {
        let e = seal_typed(&d, 7, b"customers.x", &value).expect("seal");
        let encoded = value.encode();
        assert_eq!(e.len(), sealed_len_v2(encoded.len()));
        assert_eq!(e.len(), encoded.len() + MIN_LEN_V2);
        assert_eq!((e[0], e[HEADER_LEN]), (FORMAT_V2, value.plain_type().as_u8()));
        let env = parse_any(&e).expect("parse");
        assert_eq!(env.key_id(), 7);
        assert_eq!(env.format_version(), FORMAT_V2);
        assert_eq!(env.plain_type(), Some(value.plain_type()));
        assert_eq!(env.plaintext_len(), encoded.len());
        assert_eq!(open(&d, &env, b"customers.x").expect("open"), encoded);
        assert_eq!(open_typed(&d, &env, b"customers.x").expect("open"), Opened::Typed(value.clone()));
        let text = to_text(&e);
        assert!(text.starts_with(TEXT_PREFIX_V2));
        assert_eq!(from_text_any(&text).expect("text"), e);
    }
}

#[test]
fn v1_opens_untyped_through_the_v2_entry_points() {
    let d = dek();
    let e = seal(&d, 7, b"ctx", b"old value").expect("seal");
    let env = parse_any(&e).expect("parse_any takes v1");
    assert_eq!((env.format_version(), env.plain_type()), (FORMAT_V1, None));
    assert_eq!(env.plaintext_len(), 9);
    assert_eq!(open_typed(&d, &env, b"ctx").expect("open"), Opened::Untyped(b"old value".to_vec()));
    assert_eq!(from_text_any(&to_text(&e)).expect("text"), e);
    assert_eq!(parse(&e).expect("v1").format_version(), FORMAT_V1);
}

#[test]
fn v1_entry_points_refuse_v2() {
    let e = seal_typed(&dek(), 7, b"", &TypedValue::Int4(1)).expect("seal");
    assert_eq!(parse(&e).unwrap_err(), CryptoError::UnsupportedVersion(2));
    assert!(from_text(&to_text(&e)).is_err());
    assert_eq!(parse_any(&[3; 60]).unwrap_err(), CryptoError::UnsupportedVersion(3));
    assert_eq!(parse_any(&[0; 60]).unwrap_err(), CryptoError::UnsupportedVersion(0));
    assert_eq!(parse_any(b"").unwrap_err(), CryptoError::MalformedEnvelope("it is empty"));
}

#[test]
fn v2_type_byte_is_authenticated() {
    let d = dek();
    let e = seal_typed(&d, 9, b"ctx", &TypedValue::Text("1234".into())).expect("seal");
    for t in PlainType::ALL {
        let mut m = e.clone();
        m[HEADER_LEN] = t.as_u8();
        let env = parse_any(&m).expect("a known type parses");
        assert_eq!(env.plain_type(), Some(t));
        if t == PlainType::Text {
            assert!(open(&d, &env, b"ctx").is_ok());
        } else {
            // e.g. the 4 bytes of "1234" relabelled as an integer
            assert_eq!(open(&d, &env, b"ctx").unwrap_err(), CryptoError::AuthenticationFailed, "{t}");
            assert_eq!(open_typed(&d, &env, b"ctx").unwrap_err(), CryptoError::AuthenticationFailed);
        }
    }
    for unknown in [0u8, 9, 0xff] {
        let mut m = e.clone();
        m[HEADER_LEN] = unknown;
        assert_eq!(parse_any(&m).unwrap_err(), CryptoError::MalformedEnvelope("its plaintext type is unknown"));
    }
}

#[test]
fn v2_every_flipped_bit_fails_and_context_key_and_key_id_bind() {
    let d = dek();
    let e = seal_typed(&d, 9, b"ctx", &TypedValue::Date(-3516)).expect("seal");
    assert_every_flipped_bit_fails(parse_any, &d, &e, b"ctx");
    assert_bound(parse_any, &d, &e, b"ctx");
}

/// The version byte is in the AAD: an envelope rewritten into the other format fails.
#[test]
fn v1_and_v2_cannot_be_rewritten_into_each_other() {
    let d = dek();
    let v1 = seal(&d, 5, b"ctx", b"abcd").expect("seal");
    let mut up = v1.clone();
    up[0] = FORMAT_V2;
    up.insert(HEADER_LEN, PlainType::Bytea.as_u8());
    let env = parse_any(&up).expect("well-formed v2");
    assert_eq!(open(&d, &env, b"ctx").unwrap_err(), CryptoError::AuthenticationFailed);

    let v2 = seal_v2(&d, 5, b"ctx", PlainType::Bytea, b"abcd").expect("seal");
    let mut down = v2.clone();
    down[0] = FORMAT_V1;
    down.remove(HEADER_LEN);
    let env = parse_any(&down).expect("well-formed v1");
    assert_eq!(open(&d, &env, b"ctx").unwrap_err(), CryptoError::AuthenticationFailed);
}

#[test]
fn v2_sealing_refuses_bad_encodings_and_arguments() {
    let d = dek();
    assert_eq!(
        seal_v2(&d, 1, b"", PlainType::Int4, b"abc").unwrap_err(),
        CryptoError::MalformedPlaintext("an integer plaintext is not 4 bytes long")
    );
    assert_eq!(
        seal_v2(&d, 1, b"", PlainType::Text, b"\xff").unwrap_err(),
        CryptoError::MalformedPlaintext("a text plaintext is not valid UTF-8")
    );
    assert_eq!(
        seal_v2(&d, 0, b"", PlainType::Bytea, b"x").unwrap_err(),
        CryptoError::MalformedEnvelope("its key id is out of range")
    );
    assert!(matches!(
        seal_v2(&d, 1, b"", PlainType::Bytea, &vec![0u8; MAX_PLAINTEXT_LEN + 1]),
        Err(CryptoError::PlaintextTooLarge { .. })
    ));
    let mut out = vec![0u8; sealed_len_v2(4)];
    assert!(seal_v2_into(&d, 1, b"", PlainType::Int4, b"abc", &mut out[1..]).is_err());
    assert!(seal_v2_into(&d, 1, b"", PlainType::Int4, b"abcd", &mut out[1..]).is_err());
    seal_v2_into(&d, 1, b"", PlainType::Int4, b"abcd", &mut out).expect("exact length");
    let env = parse_any(&out).expect("parse");
    assert_eq!(open_typed(&d, &env, b"").expect("open"), Opened::Typed(TypedValue::Int4(0x6162_6364)));
    // fresh nonce per seal
    let again = seal_v2(&d, 1, b"", PlainType::Int4, b"abcd").expect("seal");
    assert_ne!(out[HEADER_LEN_V2..HEADER_LEN_V2 + NONCE_LEN], again[HEADER_LEN_V2..HEADER_LEN_V2 + NONCE_LEN]);
}

#[test]
fn malformed_v2_envelopes_are_rejected() {
    let mut short = vec![FORMAT_V2; MIN_LEN_V2 - 1];
    short[HEADER_LEN] = 1;
    assert_eq!(
        parse_any(&short).unwrap_err(),
        CryptoError::MalformedEnvelope("it is shorter than header, nonce and tag (38 bytes)")
    );
    short.push(0);
    assert!(parse_any(&short).is_ok());
    let mut zero_id = vec![0u8; MIN_LEN_V2];
    zero_id[0] = FORMAT_V2;
    zero_id[HEADER_LEN] = 1;
    assert_eq!(parse_any(&zero_id).unwrap_err(), CryptoError::MalformedEnvelope("its key id is out of range"));
    let mut big_id = vec![0xffu8; MIN_LEN_V2];
    big_id[0] = FORMAT_V2;
    big_id[HEADER_LEN] = 1;
    assert_eq!(parse_any(&big_id).unwrap_err(), CryptoError::MalformedEnvelope("its key id is out of range"));
    let mut huge = vec![1u8; MAX_LEN_V2 + 1];
    huge[0] = FORMAT_V2;
    assert_eq!(
        parse_any(&huge).unwrap_err(),
        CryptoError::MalformedEnvelope("it is longer than the largest envelope")
    );
    huge.pop();
    assert!(parse_any(&huge).is_ok());
}

#[test]
fn v2_text_form_is_strict() {
    let v2 = to_text(&seal_v2(&dek(), 3, b"", PlainType::Bytea, b"xy").expect("seal"));
    let v1 = to_text(&seal(&dek(), 3, b"", b"x").expect("seal"));
    assert!(v2.starts_with("shred2:AgAAAAAAAAAD") && v2.ends_with('='), "{v2}");
    assert_eq!(from_text_any(&v2).expect("v2")[..HEADER_LEN_V2], [2, 0, 0, 0, 0, 0, 0, 0, 3, 2]);
    assert!(from_text_any(&v1).is_ok());
    let specific = [
        String::new(),
        "shred2:".to_string(),
        "shred3:".to_string() + &v2[7..],
        "shred1:".to_string() + &v2[7..],
        "shred2:".to_string() + &v1[7..],
        "SHRED2:".to_string() + &v2[7..],
        "shred2:Ag==".to_string(),
        format!("shred2:{}", "A".repeat(MAX_LEN_V2.div_ceil(3) * 4 + 4)),
    ];
    for bad in specific.into_iter().chain(non_canonical_forms(&v2)) {
        assert!(from_text_any(&bad).is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        from_text_any(&("shred2:".to_string() + &v1[7..])).unwrap_err(),
        CryptoError::MalformedEnvelope("its prefix names another format version than its bytes")
    );
}

/// Random inputs to the v1+v2 decoders: parse_any and from_text_any return Ok or a clean
/// error for anything, never panic; whatever parses has the documented shape.
#[test]
fn v2_decoders_accept_only_well_formed_input_and_never_panic() {
    let mut rng = TestRng(0x6a09_e667_f3bc_c908);
    let d = dek();
    for i in 0..20_000 {
        let mut b = rng.bytes(120);
        if b.len() > HEADER_LEN {
            match i % 4 {
                0 => b[0] = FORMAT_V1,
                1 | 2 => {
                    b[0] = FORMAT_V2;
                    b[HEADER_LEN] = (rng.next() % 10) as u8; // a known type most of the time
                }
                _ => {}
            }
        }
        if let Ok(env) = parse_any(&b) {
            let (min, header) = match b[0] {
                FORMAT_V1 => (MIN_LEN, HEADER_LEN),
                _ => (MIN_LEN_V2, HEADER_LEN_V2),
            };
            assert!(b.len() >= min && env.key_id() >= 1 && env.key_id() <= i64::MAX as u64);
            assert_eq!(env.plaintext_len(), b.len() - min);
            assert_eq!(env.format_version(), b[0]);
            assert_eq!(env.plain_type().map(PlainType::as_u8), (header == HEADER_LEN_V2).then(|| b[HEADER_LEN]));
            assert_eq!(open_typed(&d, &env, b"").unwrap_err(), CryptoError::AuthenticationFailed);
        }
        assert_text_form_is_canonical(&b, &[TEXT_PREFIX, TEXT_PREFIX_V2], from_text_any, parse_any);
    }
}

/// Random mutations of valid v2 envelopes (bit flips, type rewrites, truncation, extension,
/// splices) never open to anything but the original value, and never panic.
#[test]
fn mutated_v2_envelopes_never_open_to_something_else() {
    let mut rng = TestRng(0xbb67_ae85_84ca_a73b);
    let d = dek();
    let originals: Vec<(TypedValue, Vec<u8>)> = typed_values()
        .into_iter()
        .map(|v| {
            let e = seal_typed(&d, 77, b"ctx", &v).expect("seal");
            (v, e)
        })
        .collect();
    for n in 0..20_000 {
        let (value, good) = &originals[n % originals.len()];
        let mut m = good.clone();
        let at = (rng.next() as usize) % m.len();
        match rng.next() % 5 {
            0 => m[at] ^= 1 << (rng.next() % 8),
            1 => m[HEADER_LEN] = (rng.next() % 10) as u8,
            2 => m.truncate(at),
            3 => m.extend(rng.bytes(8)),
            _ => {
                let junk = rng.bytes(6);
                m.splice(at..at, junk);
            }
        }
        if m == *good {
            assert_eq!(
                open_typed(&d, &parse_any(&m).expect("parse"), b"ctx").expect("open"),
                Opened::Typed(value.clone())
            );
            continue;
        }
        if let Ok(env) = parse_any(&m) {
            assert!(open_typed(&d, &env, b"ctx").is_err(), "a mutated envelope opened");
        }
    }
}

#[test]
fn unsupported_version_message_never_echoes_input() {
    // A small first byte may be a future format version and is named; a larger one is input
    // (e.g. plaintext given where an envelope belongs) and is not echoed.
    assert_eq!(CryptoError::UnsupportedVersion(3).to_string(), "unsupported envelope format version 3");
    assert_eq!(CryptoError::UnsupportedVersion(b'p').to_string(), "unsupported envelope format");
}
