//! Target `typed_value`: typed plaintexts (format v2's payload), decoded by
//! `TypedValue::decode` and checked by `typed::check`. Input: a type byte, then the encoded
//! plaintext.
//!
//! Asserts:
//! - `PlainType::from_u8` knows exactly the bytes 1 ..= 8, and `as_u8` gives the byte back.
//! - `decode` (and `check`) accept exactly the encodings of the table in src/typed.rs (restated
//!   here): any bytes for bytea, UTF-8 for text, numeric and jsonb, exactly 4 bytes for integer
//!   and date, exactly 8 for bigint and timestamptz; they refuse the rest with
//!   `MalformedPlaintext` only. Fixed-width values are the big-endian two's complement of the
//!   bytes, text values the UTF-8 string.
//! - what decodes re-encodes to the same bytes (`encode(decode(b)) == b`) and decodes again to
//!   the same value; its `Debug` shows the type only, never the value.
//! - `opens`: a type opens a v2 value of its own type only, and a v1 value when it is text or
//!   bytea.
//! - encode, seal, open gives back the value: a value of the input's type made from the input's
//!   bytes, sealed with `seal_typed` under a fixed DEK, parses as v2 with its type and the length
//!   of its encoding, survives the text form, and opens (`open_typed`) to the same value; with its
//!   type byte rewritten to any other type it does not open (the type is authenticated).

use pg_shred_crypto::envelope::{self, Opened, HEADER_LEN};
use pg_shred_crypto::typed::{self, PlainType, TypedValue};
use pg_shred_crypto::CryptoError;

use crate::{dek, key_id_from, CONTEXTS};

pub fn check(data: &[u8]) {
    let Some((&type_byte, bytes)) = data.split_first() else { return };
    let Some(t) = PlainType::from_u8(type_byte) else {
        assert!(type_byte == 0 || type_byte > 8, "from_u8 refuses the type byte {type_byte}");
        return;
    };
    assert!((1..=8).contains(&type_byte) && t.as_u8() == type_byte, "from_u8({type_byte}) gives {t:?}");

    let decoded = TypedValue::decode(t, bytes);
    assert_eq!(decoded.is_ok(), typed::check(t, bytes).is_ok(), "decode and check disagree");
    let expected = documented(t, bytes);
    match decoded {
        Ok(v) => {
            assert!(expected.as_ref() == Some(&v), "decode accepted another value than the table's ({t:?})");
            roundtrip(t, &v);
            assert_eq!(v.encode(), bytes, "a decoded value does not re-encode to its bytes");
        }
        Err(e) => {
            assert!(matches!(e, CryptoError::MalformedPlaintext(_)), "decode failed with {e:?}");
            assert!(expected.is_none(), "decode refused a valid {t:?} encoding");
        }
    }

    for other in PlainType::ALL {
        assert_eq!(other.opens(Some(t)), other == t, "{other:?} opens {t:?}");
    }
    assert_eq!(t.opens(None), matches!(t, PlainType::Text | PlainType::Bytea), "{t:?} opens v1");

    let value = made_from(t, bytes);
    roundtrip(t, &value);
    let key_id = key_id_from(bytes);
    let context = CONTEXTS[usize::from(type_byte)].as_bytes();
    let sealed = envelope::seal_typed(dek(0), key_id, context, &value).expect("seal_typed");
    let text = envelope::to_text(&sealed);
    assert_eq!(envelope::from_text_any(&text).expect("its text form parses"), sealed);
    let env = envelope::parse_any(&sealed).expect("a fresh v2 envelope parses");
    assert_eq!((env.key_id(), env.plain_type(), env.plaintext_len()), (key_id, Some(t), value.encode().len()));
    let opened = envelope::open_typed(dek(0), &env, context).expect("a fresh v2 envelope opens");
    assert!(opened == Opened::Typed(value), "seal_typed then open_typed gives another value");
    for other in PlainType::ALL.into_iter().filter(|o| *o != t) {
        let mut retyped = sealed.clone();
        retyped[HEADER_LEN] = other.as_u8();
        let env = envelope::parse_any(&retyped).expect("a retyped envelope parses");
        assert_eq!(
            envelope::open_typed(dek(0), &env, context),
            Err(CryptoError::AuthenticationFailed),
            "a {t:?} value opened as {other:?}"
        );
    }
}

/// Encode then decode gives back `v`, of type `t`, whose `Debug` names the type only.
fn roundtrip(t: PlainType, v: &TypedValue) {
    assert_eq!(v.plain_type(), t);
    assert!(TypedValue::decode(t, &v.encode()).as_ref() == Ok(v), "decode(encode(v)) != v ({t:?})");
    assert_eq!(format!("{v:?}"), format!("TypedValue::{t:?}(..)"), "Debug shows more than the type");
}

/// The value the table in src/typed.rs gives `bytes` as an encoding of `t`, if they are one.
fn documented(t: PlainType, bytes: &[u8]) -> Option<TypedValue> {
    let text = || std::str::from_utf8(bytes).ok().map(str::to_owned);
    let be4 = || <[u8; 4]>::try_from(bytes).ok().map(i32::from_be_bytes);
    let be8 = || <[u8; 8]>::try_from(bytes).ok().map(i64::from_be_bytes);
    match t {
        PlainType::Text => text().map(TypedValue::Text),
        PlainType::Bytea => Some(TypedValue::Bytea(bytes.to_vec())),
        PlainType::Int4 => be4().map(TypedValue::Int4),
        PlainType::Int8 => be8().map(TypedValue::Int8),
        PlainType::Numeric => text().map(TypedValue::Numeric),
        PlainType::Date => be4().map(TypedValue::Date),
        PlainType::Timestamptz => be8().map(TypedValue::Timestamptz),
        PlainType::Jsonb => text().map(TypedValue::Jsonb),
    }
}

/// A value of type `t` made from any `bytes`: the text types take them as (lossy) UTF-8, the
/// fixed-width ones their first 4 or 8 bytes (zero-padded).
fn made_from(t: PlainType, bytes: &[u8]) -> TypedValue {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    let mut wide = [0u8; 8];
    let n = bytes.len().min(8);
    wide[..n].copy_from_slice(&bytes[..n]);
    let be4 = i32::from_be_bytes([wide[0], wide[1], wide[2], wide[3]]);
    let be8 = i64::from_be_bytes(wide);
    match t {
        PlainType::Text => TypedValue::Text(text()),
        PlainType::Bytea => TypedValue::Bytea(bytes.to_vec()),
        PlainType::Int4 => TypedValue::Int4(be4),
        PlainType::Int8 => TypedValue::Int8(be8),
        PlainType::Numeric => TypedValue::Numeric(text()),
        PlainType::Date => TypedValue::Date(be4),
        PlainType::Timestamptz => TypedValue::Timestamptz(be8),
        PlainType::Jsonb => TypedValue::Jsonb(text()),
    }
}
