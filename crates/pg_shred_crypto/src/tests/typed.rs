//! Unit tests of `crypto::typed`. The expected encodings of dates and timestamps were computed
//! independently with Python's `datetime` and `struct.pack(">i"/">q")`.
use crate::typed::*;
use crate::CryptoError;

#[test]
fn type_bytes_are_fixed() {
    let bytes: Vec<u8> = PlainType::ALL.iter().map(|t| t.as_u8()).collect();
    assert_eq!(bytes, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(PlainType::Text as u8, 1);
    assert_eq!(PlainType::Jsonb as u8, 8);
    for t in PlainType::ALL {
        assert_eq!(PlainType::from_u8(t.as_u8()), Some(t));
    }
    for b in [0u8, 9, 10, 0x7f, 0x80, 0xff] {
        assert_eq!(PlainType::from_u8(b), None, "byte {b}");
    }
    assert_eq!((0..=255u8).filter_map(PlainType::from_u8).count(), 8);
}

#[test]
fn names_are_postgresql_type_names() {
    let names: Vec<&str> = PlainType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        ["text", "bytea", "integer", "bigint", "numeric", "date", "timestamp with time zone", "jsonb"]
    );
    assert_eq!(PlainType::Int4.to_string(), "integer");
}

/// (value, expected encoding in hex)
fn known_encodings() -> Vec<(TypedValue, &'static str)> {
    vec![
        (TypedValue::Text(String::new()), ""),
        (TypedValue::Text("São".into()), "53c3a36f"),
        (TypedValue::Bytea(vec![0, 0xff, 0]), "00ff00"),
        (TypedValue::Int4(42), "0000002a"),
        (TypedValue::Int4(-2), "fffffffe"),
        (TypedValue::Int4(i32::MIN), "80000000"),
        (TypedValue::Int8(-2), "fffffffffffffffe"),
        (TypedValue::Int8(i64::MIN), "8000000000000000"),
        (TypedValue::Int8(i64::MAX), "7fffffffffffffff"),
        (TypedValue::Numeric("12345.6789".into()), "31323334352e36373839"),
        (TypedValue::Numeric("NaN".into()), "4e614e"),
        // 1990-05-17 is 3516 days before 2000-01-01
        (TypedValue::Date(-3516), "fffff244"),
        (TypedValue::Date(0), "00000000"),
        // date 'infinity' is i32::MAX
        (TypedValue::Date(i32::MAX), "7fffffff"),
        // 2024-02-29 12:34:56.789012 UTC
        (TypedValue::Timestamptz(762_525_296_789_012), "0002b58341728614"),
        // timestamptz '-infinity' is i64::MIN
        (TypedValue::Timestamptz(i64::MIN), "8000000000000000"),
        (TypedValue::Jsonb("{\"a\": 1}".into()), "7b2261223a20317d"),
    ]
}

#[test]
fn encodings_are_the_documented_ones_and_round_trip() {
    for (value, hex_want) in known_encodings() {
        let bytes = value.encode();
        assert_eq!(hex::encode(&bytes), hex_want, "{:?}", value.plain_type());
        check(value.plain_type(), &bytes).expect("valid encoding");
        assert_eq!(TypedValue::decode(value.plain_type(), &bytes).expect("decode"), value);
    }
}

#[test]
fn wrong_lengths_are_refused() {
    let cases: [(PlainType, usize, &str); 4] = [
        (PlainType::Int4, 4, "an integer plaintext is not 4 bytes long"),
        (PlainType::Date, 4, "a date plaintext is not 4 bytes long"),
        (PlainType::Int8, 8, "a bigint plaintext is not 8 bytes long"),
        (PlainType::Timestamptz, 8, "a timestamp with time zone plaintext is not 8 bytes long"),
    ];
    for (t, len, why) in cases {
        for bad in [0, 1, len - 1, len + 1, 2 * len] {
            assert_eq!(
                TypedValue::decode(t, &vec![7u8; bad]).unwrap_err(),
                CryptoError::MalformedPlaintext(why),
                "{t} of {bad} bytes"
            );
        }
        assert!(TypedValue::decode(t, &vec![7u8; len]).is_ok());
    }
}

#[test]
fn invalid_utf8_is_refused_for_text_types_and_never_echoed() {
    let secret = b"secret-value\xff\xfe";
    for (t, why) in [
        (PlainType::Text, "a text plaintext is not valid UTF-8"),
        (PlainType::Numeric, "a numeric plaintext is not valid UTF-8"),
        (PlainType::Jsonb, "a jsonb plaintext is not valid UTF-8"),
    ] {
        let err = TypedValue::decode(t, secret).unwrap_err();
        assert_eq!(err, CryptoError::MalformedPlaintext(why));
        let msg = err.to_string();
        assert_eq!(msg, format!("malformed plaintext: {why}"));
        assert!(!msg.contains("secret") && !msg.contains("ff"), "{msg}");
        // a lone continuation byte and a truncated sequence
        assert!(check(t, b"\x80").is_err());
        assert!(check(t, "é".as_bytes().split_at(1).0).is_err());
    }
    // bytea takes anything
    assert_eq!(TypedValue::decode(PlainType::Bytea, secret).expect("bytea"), TypedValue::Bytea(secret.to_vec()));
}

#[test]
fn debug_shows_the_type_only() {
    let v = TypedValue::Text("leonie.koehler@example.org".into());
    assert_eq!(format!("{v:?}"), "TypedValue::Text(..)");
    assert_eq!(format!("{:?}", TypedValue::Int8(123_456_789)), "TypedValue::Int8(..)");
}
