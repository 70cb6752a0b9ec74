//! Fuzz targets of pg_shred's pure core (`pg_shred_crypto`), for cargo-afl (AFL++ on stable
//! Rust); `scripts/fuzz` builds and runs them.
//!
//! Each target is a module here with a `check(data)` that panics when one of the invariants its
//! module documentation states fails (more than "no panic": decoded values re-encode to the
//! same bytes, encoded values decode to themselves, and nothing forged ever opens); the binary
//! of the same name in src/bin/ hands AFL's inputs to it. Built without cargo-afl, a binary runs
//! `check` once on each file named on its command line (or on stdin), which replays a crash:
//!
//! ```text
//! cargo run --release --bin envelope_open -- target/fuzz/envelope_open/default/crashes/id:*
//! ```
//!
//! This module holds what the targets share: the fixed DEKs and contexts, the genuine envelopes
//! and wrapped DEKs (sealed and wrapped with fixed keys and nonces; the core's known-answer
//! vectors among them, tests/seeds.rs checks their text and hex stand in src/tests/kat.rs), the
//! only ones a target may ever see open.

pub mod canary;
pub mod envelope_binary;
pub mod envelope_open;
pub mod envelope_text;
pub mod keyring;
pub mod seeds;
pub mod typed_value;
pub mod wrapped_dek;

use std::io::Read;
use std::sync::OnceLock;

use pg_shred_crypto::envelope::{self, Opened};
use pg_shred_crypto::keys::{DataKey, Kek, RootKey, KEY_LEN};
use pg_shred_crypto::typed::TypedValue;

/// A target's check: panics when an invariant fails for the input.
pub type Check = fn(&[u8]);

/// The targets `scripts/fuzz` runs after the canary, and their `check` functions.
pub const TARGETS: [(&str, Check); 6] = [
    ("envelope_text", envelope_text::check),
    ("envelope_binary", envelope_binary::check),
    ("envelope_open", envelope_open::check),
    ("typed_value", typed_value::check),
    ("keyring", keyring::check),
    ("wrapped_dek", wrapped_dek::check),
];

/// The `main` of a target's binary: under `cargo afl build` (cfg `fuzzing`), AFL++'s persistent
/// loop, a panic aborting the process (a crash for AFL); otherwise [`replay`].
#[macro_export]
macro_rules! target {
    ($check:path) => {
        #[cfg(fuzzing)]
        fn main() {
            $crate::warm_up();
            afl::fuzz!(|data: &[u8]| {
                $check(data);
            });
        }

        #[cfg(not(fuzzing))]
        fn main() {
            $crate::replay($check);
        }
    };
}

/// Make the values every input shares (keys, genuine envelopes and wrapped DEKs) before AFL++
/// forks the process, so that the first input of each fork does not take other paths.
pub fn warm_up() {
    dek(0);
    genuine_envelopes();
    genuine_wrapped();
    other_kek();
}

/// Run `check` on each file named on the command line, or on stdin when none is.
pub fn replay(check: Check) {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data).expect("read stdin");
        check(&data);
        return;
    }
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        check(&data);
        println!("passes: {file}");
    }
}

/// The bytes (each repeated 32 times) of the DEKs of the genuine envelopes.
pub const DEK_BYTES: [u8; 5] = [0x11, 0x12, 0x13, 0x14, 0x15];

/// The contexts of the genuine envelopes.
pub const CONTEXTS: [&str; 9] = [
    "",
    "customers.email",
    "customers.name",
    "customers.photo",
    "customers.age",
    "orders.total",
    "customers.birth_date",
    "logins.at",
    "customers.profile",
];

/// The DEK of [`DEK_BYTES`]`[i]`.
pub fn dek(i: usize) -> &'static DataKey {
    static DEKS: OnceLock<Vec<DataKey>> = OnceLock::new();
    &DEKS.get_or_init(|| DEK_BYTES.iter().map(|b| DataKey::from_bytes(&[*b; KEY_LEN])).collect())[i]
}

/// The (DEK, context) indexes a selector byte picks: DEK from its high nibble, context from
/// its low nibble, each modulo the number there are. Every pair is reachable.
pub fn key_and_context(selector: u8) -> (usize, usize) {
    (usize::from(selector >> 4) % DEK_BYTES.len(), usize::from(selector & 0x0f) % CONTEXTS.len())
}

/// The selector byte of DEK index `dek` and context index `context`.
pub fn selector(dek: usize, context: usize) -> u8 {
    (dek as u8) << 4 | context as u8
}

/// An envelope sealed with a fixed DEK and nonce, and what it opens to.
pub struct GenuineEnvelope {
    /// Index in [`DEK_BYTES`].
    pub dek: usize,
    /// Index in [`CONTEXTS`].
    pub context: usize,
    pub bytes: Vec<u8>,
    pub opened: Opened,
}

/// The genuine envelopes: the core's golden v1 and v2 envelopes (src/tests/kat.rs), sealed
/// here again from the same DEK, key id, context, value and nonce.
pub fn genuine_envelopes() -> &'static [GenuineEnvelope] {
    static GENUINE: OnceLock<Vec<GenuineEnvelope>> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let text = |s: &str| Opened::Untyped(s.as_bytes().to_vec());
        let typed = Opened::Typed;
        // (DEK byte, key id, context, value, nonce byte), as in the known-answer tests.
        let table = [
            (0x11, 1, "", text(""), 0x21),
            (0x11, 1, "customers.email", text("leonie.koehler@example.org"), 0x22),
            (0x12, 4242, "customers.name", text("São José 🎉"), 0x23),
            (0x13, i64::MAX as u64, "", text("x"), 0x24),
            (0x11, 1, "", typed(TypedValue::Text(String::new())), 0x31),
            (0x11, 1, "customers.email", typed(TypedValue::Text("leonie.koehler@example.org".into())), 0x32),
            (0x12, 4242, "customers.photo", typed(TypedValue::Bytea(vec![0x00, 0xff, 0x00])), 0x33),
            (0x12, 4242, "customers.age", typed(TypedValue::Int4(42)), 0x34),
            (0x13, i64::MAX as u64, "", typed(TypedValue::Int8(-2)), 0x35),
            (0x13, 7, "orders.total", typed(TypedValue::Numeric("12345.6789".into())), 0x36),
            (0x14, 7, "customers.birth_date", typed(TypedValue::Date(-3516)), 0x37),
            (0x14, 7, "logins.at", typed(TypedValue::Timestamptz(762_525_296_789_012)), 0x38),
            (
                0x15,
                99,
                "customers.profile",
                typed(TypedValue::Jsonb("{\"vip\": true, \"city\": \"São Paulo\"}".into())),
                0x39,
            ),
        ];
        table
            .into_iter()
            .map(|(dek_byte, key_id, context, opened, nonce_byte)| {
                let d = DEK_BYTES.iter().position(|b| *b == dek_byte).expect("a DEK of DEK_BYTES");
                let c = CONTEXTS.iter().position(|s| *s == context).expect("a context of CONTEXTS");
                let nonce = [nonce_byte; 12];
                let bytes = match &opened {
                    Opened::Untyped(p) => envelope::seal_with_nonce(dek(d), key_id, context.as_bytes(), p, &nonce),
                    Opened::Typed(v) => envelope::seal_v2_with_nonce(
                        dek(d),
                        key_id,
                        context.as_bytes(),
                        v.plain_type(),
                        &v.encode(),
                        &nonce,
                    ),
                }
                .expect("seal a genuine envelope");
                GenuineEnvelope { dek: d, context: c, bytes, opened }
            })
            .collect()
    })
}

/// Root key (32 times this byte) and salt (32 times this byte) of the KEK of the genuine
/// wrapped DEKs, as in the known-answer tests.
pub const ROOT_KEY_BYTE: u8 = 0x01;
pub const SALT: [u8; 32] = [0x02; 32];

/// The KEK of [`ROOT_KEY_BYTE`] and [`SALT`].
pub fn kek() -> &'static Kek {
    static KEK: OnceLock<Kek> = OnceLock::new();
    KEK.get_or_init(|| RootKey::parse(&[ROOT_KEY_BYTE; KEY_LEN]).expect("root key").kek(&SALT))
}

/// The KEK of the same root key under another salt.
pub fn other_kek() -> &'static Kek {
    static OTHER: OnceLock<Kek> = OnceLock::new();
    OTHER.get_or_init(|| RootKey::parse(&[ROOT_KEY_BYTE; KEY_LEN]).expect("root key").kek(b"another salt"))
}

/// A DEK wrapped under [`kek`] with a fixed nonce for a key id and subject.
pub struct GenuineWrapped {
    pub key_id: u64,
    pub subject: &'static [u8],
    pub dek: [u8; KEY_LEN],
    pub bytes: Vec<u8>,
}

/// The genuine wrapped DEKs, one per (key id, subject): the first is the core's golden wrapped
/// DEK; the others cover the largest key id, an empty subject, a reserved subject and UTF-8.
pub fn genuine_wrapped() -> &'static [GenuineWrapped] {
    static GENUINE: OnceLock<Vec<GenuineWrapped>> = OnceLock::new();
    GENUINE.get_or_init(|| {
        // (key id, subject, DEK byte, nonce byte)
        let table: [(u64, &'static [u8], u8, u8); 4] = [
            (1, b"customer:1", 0x03, 0x04),
            (i64::MAX as u64, b"", 0x05, 0x06),
            ((1 << 52) + 7, b"pg_shred:blind-index:customers.email", 0x07, 0x08),
            (4242, "São José".as_bytes(), 0x09, 0x0a),
        ];
        table
            .into_iter()
            .map(|(key_id, subject, dek_byte, nonce_byte)| {
                let dek = [dek_byte; KEY_LEN];
                let bytes = kek()
                    .wrap_with_nonce(&DataKey::from_bytes(&dek), key_id, subject, &[nonce_byte; 12])
                    .expect("wrap a genuine DEK");
                GenuineWrapped { key_id, subject, dek, bytes }
            })
            .collect()
    })
}

/// A key id in 1 ..= 2^63-1 from the first (up to) 8 bytes of `data`, big endian.
pub fn key_id_from(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[8 - n..].copy_from_slice(&data[..n]);
    (u64::from_be_bytes(b) & i64::MAX as u64).max(1)
}

/// A position in `0..len` and a bit, chosen by the input: where a target flips one bit.
pub fn flip_at(data: &[u8], len: usize) -> (usize, u8) {
    let sum = data.iter().fold(0usize, |acc, b| acc.wrapping_mul(31).wrapping_add(usize::from(*b)));
    (sum % len, 1 << (data.len() % 8))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
