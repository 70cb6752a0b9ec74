//! Typed plaintexts: the canonical byte encoding of the SQL values pg_shred seals, so that an
//! envelope (format v2, see [`super::envelope`]) can record the type it was sealed from and
//! a value sealed as text is never silently opened as an integer.
//!
//! | type | byte | encoding | length |
//! |---|---|---|---|
//! | `text` | 1 | UTF-8 | any |
//! | `bytea` | 2 | the raw bytes | any |
//! | `integer` (int4) | 3 | two's complement, big endian | 4 |
//! | `bigint` (int8) | 4 | two's complement, big endian | 8 |
//! | `numeric` | 5 | PostgreSQL's canonical text output (`numeric_out`), UTF-8 | any |
//! | `date` | 6 | days since 2000-01-01 (PostgreSQL's epoch), i32 big endian | 4 |
//! | `timestamp with time zone` | 7 | microseconds since 2000-01-01 00:00:00 UTC, i64 big endian | 8 |
//! | `jsonb` | 8 | PostgreSQL's canonical text output (`jsonb_out`), UTF-8 | any |
//!
//! The fixed-width encodings are those of PostgreSQL's binary send functions (`int4send`,
//! `int8send`, `date_send`, `timestamptz_send`), which also use big-endian two's complement
//! and the 2000-01-01 epoch; `date` and `timestamptz` carry PostgreSQL's internal values as
//! they are, so `infinity` and `-infinity` are `i32::MAX`/`i32::MIN` and
//! `i64::MAX`/`i64::MIN`. `numeric` and `jsonb` are stored as text because their binary forms
//! are internal to PostgreSQL; the SQL layer converts to and from text, and the core only
//! checks UTF-8.
//!
//! What the core checks when decoding: the exact length of fixed-width types and UTF-8 of the
//! text types. What it leaves to the SQL layer: PostgreSQL's range of dates and timestamps
//! (as `date_recv`/`timestamptz_recv` check it), the grammar of numeric and JSON text, and
//! zero bytes in text (PostgreSQL text cannot hold them).

use std::fmt;

use super::CryptoError;

/// The SQL type a plaintext was sealed from. The discriminant is the byte stored in an
/// envelope v2; it never changes once released.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlainType {
    Text = 1,
    Bytea = 2,
    Int4 = 3,
    Int8 = 4,
    Numeric = 5,
    Date = 6,
    Timestamptz = 7,
    Jsonb = 8,
}

impl PlainType {
    /// Every type, in byte order.
    pub const ALL: [PlainType; 8] = [
        PlainType::Text,
        PlainType::Bytea,
        PlainType::Int4,
        PlainType::Int8,
        PlainType::Numeric,
        PlainType::Date,
        PlainType::Timestamptz,
        PlainType::Jsonb,
    ];

    /// The type stored as `byte`, or `None` for a byte no type uses (0, 9 ..= 255).
    pub fn from_u8(byte: u8) -> Option<PlainType> {
        PlainType::ALL.get(usize::from(byte).wrapping_sub(1)).copied()
    }

    /// The byte stored in an envelope v2.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The type's name as PostgreSQL prints it (`format_type`), for error messages such as
    /// "the value was sealed as text, not as integer". Stable.
    /// Whether a value sealed as `sealed` (`None`: an untyped format-v1 envelope, which holds
    /// text or bytes) may be opened as `self`.
    pub fn opens(self, sealed: Option<PlainType>) -> bool {
        match sealed {
            None => matches!(self, PlainType::Text | PlainType::Bytea),
            Some(t) => t == self,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PlainType::Text => "text",
            PlainType::Bytea => "bytea",
            PlainType::Int4 => "integer",
            PlainType::Int8 => "bigint",
            PlainType::Numeric => "numeric",
            PlainType::Date => "date",
            PlainType::Timestamptz => "timestamp with time zone",
            PlainType::Jsonb => "jsonb",
        }
    }
}

impl fmt::Display for PlainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Check that `bytes` is a valid encoding of `plain_type` (see the module table): exact
/// length for fixed-width types, UTF-8 for text types, anything for bytea.
///
/// Errors: [`CryptoError::MalformedPlaintext`] naming the type and the check; the bytes are
/// never part of the message.
pub fn check(plain_type: PlainType, bytes: &[u8]) -> Result<(), CryptoError> {
    let (ok, why) = match plain_type {
        PlainType::Bytea => (true, ""),
        PlainType::Text => (std::str::from_utf8(bytes).is_ok(), "a text plaintext is not valid UTF-8"),
        PlainType::Numeric => (std::str::from_utf8(bytes).is_ok(), "a numeric plaintext is not valid UTF-8"),
        PlainType::Jsonb => (std::str::from_utf8(bytes).is_ok(), "a jsonb plaintext is not valid UTF-8"),
        PlainType::Int4 => (bytes.len() == 4, "an integer plaintext is not 4 bytes long"),
        PlainType::Date => (bytes.len() == 4, "a date plaintext is not 4 bytes long"),
        PlainType::Int8 => (bytes.len() == 8, "a bigint plaintext is not 8 bytes long"),
        PlainType::Timestamptz => {
            (bytes.len() == 8, "a timestamp with time zone plaintext is not 8 bytes long")
        }
    };
    if ok {
        Ok(())
    } else {
        Err(CryptoError::MalformedPlaintext(why))
    }
}

/// A typed plaintext. Its `Debug` output shows the type only, never the value (it is
/// personal data).
#[derive(Clone, PartialEq, Eq)]
pub enum TypedValue {
    Text(String),
    Bytea(Vec<u8>),
    Int4(i32),
    Int8(i64),
    /// PostgreSQL's canonical text output of a numeric, e.g. `"12345.6789"`, `"NaN"`.
    Numeric(String),
    /// Days since 2000-01-01 (PostgreSQL's `DateADT`).
    Date(i32),
    /// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's `TimestampTz`).
    Timestamptz(i64),
    /// PostgreSQL's canonical text output of a jsonb value.
    Jsonb(String),
}

impl fmt::Debug for TypedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypedValue::{:?}(..)", self.plain_type())
    }
}

impl TypedValue {
    /// The value's type.
    pub fn plain_type(&self) -> PlainType {
        match self {
            TypedValue::Text(_) => PlainType::Text,
            TypedValue::Bytea(_) => PlainType::Bytea,
            TypedValue::Int4(_) => PlainType::Int4,
            TypedValue::Int8(_) => PlainType::Int8,
            TypedValue::Numeric(_) => PlainType::Numeric,
            TypedValue::Date(_) => PlainType::Date,
            TypedValue::Timestamptz(_) => PlainType::Timestamptz,
            TypedValue::Jsonb(_) => PlainType::Jsonb,
        }
    }

    /// The canonical encoding of the value (see the module table). Cannot fail.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            TypedValue::Text(s) | TypedValue::Numeric(s) | TypedValue::Jsonb(s) => s.as_bytes().to_vec(),
            TypedValue::Bytea(b) => b.clone(),
            TypedValue::Int4(v) | TypedValue::Date(v) => v.to_be_bytes().to_vec(),
            TypedValue::Int8(v) | TypedValue::Timestamptz(v) => v.to_be_bytes().to_vec(),
        }
    }

    /// Decode `bytes` as a value of `plain_type`: the inverse of [`TypedValue::encode`].
    ///
    /// Errors: [`CryptoError::MalformedPlaintext`] as for [`check`].
    pub fn decode(plain_type: PlainType, bytes: &[u8]) -> Result<TypedValue, CryptoError> {
        check(plain_type, bytes)?;
        let utf8 = || String::from_utf8_lossy(bytes).into_owned(); // valid UTF-8: checked above
        let be4 = || i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let be8 = || {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes);
            i64::from_be_bytes(b)
        };
        Ok(match plain_type {
            PlainType::Text => TypedValue::Text(utf8()),
            PlainType::Bytea => TypedValue::Bytea(bytes.to_vec()),
            PlainType::Int4 => TypedValue::Int4(be4()),
            PlainType::Int8 => TypedValue::Int8(be8()),
            PlainType::Numeric => TypedValue::Numeric(utf8()),
            PlainType::Date => TypedValue::Date(be4()),
            PlainType::Timestamptz => TypedValue::Timestamptz(be8()),
            PlainType::Jsonb => TypedValue::Jsonb(utf8()),
        })
    }
}
