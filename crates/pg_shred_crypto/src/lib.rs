//! The pure cryptographic core of pg_shred.
//!
//! A crate of its own in the pg_shred workspace, with no PostgreSQL dependency: it does not
//! depend on pgrx and needs neither `pg_config` nor libclang to build, nor a server to test.
//! The extension re-exports it as `pg_shred::crypto`, and its SQL layer is the only place that
//! turns these bytes into PostgreSQL values.
//!
//! Constructions and their sources:
//! - AES-256-GCM (NIST SP 800-38D) for DEK wrapping and for sealing values, through the
//!   RustCrypto `aes-gcm` crate; 96-bit nonces from the OS CSPRNG, fresh per call.
//! - HKDF-SHA256 (RFC 5869) for every key derived from the root key, each with its own
//!   versioned `info` label (see [`keys`]).
//! - HMAC-SHA256 (RFC 2104) for blind indexes ([`blind`]), pseudonyms ([`pseudonym`]) and the
//!   subject digests of erasure records ([`audit`]).
//! - Ed25519 (RFC 8032) over the JSON Canonicalization Scheme (RFC 8785) for erasure receipts
//!   ([`receipt`]).
//! - The envelope formats v1 (untyped) and v2 (typed plaintext, see [`typed`]); see
//!   [`envelope`].
//!
//! Entry points: [`envelope::seal`] (v1) and [`envelope::seal_typed`] (v2) seal a value,
//! [`envelope::parse_any`] then [`envelope::open_typed`] opens either format; the other seal
//! and open functions are the same two operations with the caller's buffer or an encoded
//! typed plaintext (the table in [`envelope`] says which to call).
//!
//! Testing and benchmarking, from the workspace root:
//! - `cargo test -p pg_shred_crypto`: unit tests of every module, and known-answer tests
//!   (NIST AES-GCM and RFC 5869 HKDF vectors, golden key check value, wrapped DEK and
//!   envelopes of both formats, which must keep opening in every later version);
//! - `cargo bench -p pg_shred_crypto`: criterion benchmarks of seal/open (16 B to 64 KiB),
//!   DEK wrap/unwrap and generation, and KEK derivation.
//!
//! Feature `test-vectors` (off by default; the crate's own tests have it through
//! `cfg(test)`): constructors with a caller-chosen nonce (`envelope::seal_with_nonce`,
//! `envelope::seal_v2_with_nonce`, `keys::Kek::wrap_with_nonce`) and the addresses of key
//! memory (`keys::DataKey::addr`, `secret::Secret::addr`), for known-answer and core-dump
//! tests only.

pub mod audit;
pub mod blind;
pub mod consent;
pub mod envelope;
pub mod keys;
pub mod pseudonym;
pub mod receipt;
pub mod secret;
pub mod typed;

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Every way the pure core can fail.
///
/// Messages never contain key bytes, plaintext or subject identifiers: they are safe to show
/// to a database user as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The bytes of an envelope are not a well-formed envelope (too short, bad text form,
    /// key id out of range). The string says which check failed.
    MalformedEnvelope(&'static str),
    /// The envelope carries a format version this build does not know.
    UnsupportedVersion(u8),
    /// AES-GCM authentication failed: the envelope was altered, or it is opened under another
    /// context or with another DEK than it was sealed with. One variant for all of these, on
    /// purpose: the caller learns nothing about which.
    AuthenticationFailed,
    /// A wrapped DEK did not authenticate under the KEK: wrong root key, or the key store row
    /// was altered.
    UnwrapFailed,
    /// A wrapped DEK has the wrong length or format version.
    MalformedWrappedKey,
    /// The root key material is unusable. The string says why (never the bytes).
    InvalidRootKey(&'static str),
    /// A line of a keyring is unusable: its 1-based number and why (never its content).
    InvalidKeyring { line: usize, why: &'static str },
    /// A plaintext is not a valid encoding of its type (see [`typed`]): wrong length, or not
    /// UTF-8 where text is required. The string names the type and the check; it never
    /// contains the bytes.
    MalformedPlaintext(&'static str),
    /// The plaintext is larger than [`envelope::MAX_PLAINTEXT_LEN`].
    PlaintextTooLarge { len: usize, max: usize },
    /// The operating system's CSPRNG failed.
    Random,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::MalformedEnvelope(why) => write!(f, "malformed envelope: {why}"),
            // Only small numbers are shown: a larger first byte is input, not a version.
            CryptoError::UnsupportedVersion(v) if *v < 16 => {
                write!(f, "unsupported envelope format version {v}")
            }
            CryptoError::UnsupportedVersion(_) => write!(f, "unsupported envelope format"),
            CryptoError::AuthenticationFailed => write!(f, "envelope authentication failed"),
            CryptoError::UnwrapFailed => write!(f, "wrapped DEK authentication failed"),
            CryptoError::MalformedWrappedKey => write!(f, "malformed wrapped DEK"),
            CryptoError::InvalidRootKey(why) => write!(f, "invalid root key: {why}"),
            CryptoError::InvalidKeyring { line, why } => write!(f, "invalid keyring: line {line}: {why}"),
            CryptoError::MalformedPlaintext(why) => write!(f, "malformed plaintext: {why}"),
            CryptoError::PlaintextTooLarge { len, max } => {
                write!(f, "plaintext of {len} bytes exceeds the maximum of {max} bytes")
            }
            CryptoError::Random => write!(f, "the operating system's random number generator failed"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// Fill `buf` from the operating system's CSPRNG (`getrandom(2)` on Linux). Used for every key
/// and salt. No user-space state: forked processes never share its output.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::getrandom(buf).map_err(|_| CryptoError::Random)
}

/// Bumped in the child after every `fork()`, so a forked process reseeds its nonce generator.
static FORKS: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORKS.fetch_add(1, Ordering::SeqCst);
}

thread_local! {
    /// (fork count at seeding, generator).
    static NONCE_RNG: RefCell<Option<(u64, ChaCha20Rng)>> = const { RefCell::new(None) };
}

/// Fill `buf` with nonce bytes: ChaCha20 (RFC 8439 stream as a CSPRNG, `rand_chacha`) seeded
/// with 32 bytes from the OS, about 20x cheaper per call than a `getrandom(2)` system call.
///
/// A `pthread_atfork` child handler marks every fork, and the first nonce drawn after a fork
/// reseeds from the OS: backends forked from a postmaster that already loaded the library (and
/// used it) never share a nonce stream.
pub fn fill_nonce(buf: &mut [u8]) -> Result<(), CryptoError> {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only increments an atomic (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    let forks = FORKS.load(Ordering::SeqCst);
    NONCE_RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(seen, _)| *seen != forks).unwrap_or(true) {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            fill_random(seed.as_mut_slice())?;
            *slot = Some((forks, ChaCha20Rng::from_seed(*seed)));
        }
        match slot.as_mut() {
            Some((_, rng)) => {
                rng.fill_bytes(buf);
                Ok(())
            }
            None => Err(CryptoError::Random),
        }
    })
}

#[cfg(test)]
mod tests;
