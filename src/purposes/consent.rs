//! The consent ledger (`shred.consent`): double opt-in per data subject and purpose, and its
//! withdrawal, provable after the subject is erased.
//!
//! - A record holds the subject's keyed digest (the erasure records' digest,
//!   [`store::subject_digest`]), never the subject; the evidence of the first opt-in sealed
//!   under the subject's default DEK (it dies with the subject); the digest of the
//!   confirmation token ([`crate::crypto::consent`]), never the token; and the times of the
//!   request, the confirmation and the withdrawal, and the first use of the consent.
//! - [`confirm`] answers `false`, never an error, for whatever is not a live token, and runs the
//!   same single statement for an unknown, expired, withdrawn or used token: its answer and its
//!   cost tell nothing about any data subject.
//! - A consent stands while it is confirmed and not withdrawn, and ends with an erasure of the
//!   whole data subject (`shred.erase(subject)`, which marks it `erased_at` in the erasing
//!   transaction, before deleting the DEKs): a subject that comes back after being forgotten
//!   must opt in again.
//! - A withdrawal and the first DEK created under a consent ([`claim`]) both update the consent
//!   row: whichever comes second waits for the first to end, then sees what it did (READ
//!   COMMITTED) or fails with 40001 (a transaction snapshot), so no purpose DEK outlives a
//!   withdrawal committed after it was created.

use pgrx::pg_sys;

use super::Purpose;
use crate::crypto::envelope;
use crate::crypto::typed::TypedValue;
use crate::error::ShredError;
use crate::gucs;
use crate::keys::spi::{run, Arg, Mode, Plan};
use crate::keys::store;
use crate::keys::subject::Subject;

/// The AAD context of consent evidence (bound with the subject as a protected row's value is:
/// see [`crate::protect::row::row_aad`]), so that `shred.consent_history` opens it as a value
/// of the subject's own.
pub const EVIDENCE_CONTEXT: &[u8] = b"pg_shred.consent";

static INSERT_REQUEST: Plan = Plan::new(
    c"INSERT INTO shred.consent (token_digest, purpose_id, subject_digest, evidence, token_expires_at)
      VALUES ($1, $2, $3, shred.sealed_in($4::pg_catalog.cstring),
              pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5::pg_catalog.float8))",
    &[pg_sys::BYTEAOID, pg_sys::INT4OID, pg_sys::BYTEAOID, pg_sys::TEXTOID, pg_sys::INT4OID],
);

/// One statement for every token, live or not (see the module documentation).
static CONFIRM: Plan = Plan::new(
    c"UPDATE shred.consent SET confirmed_at = COALESCE(confirmed_at, pg_catalog.now())
       WHERE token_digest OPERATOR(pg_catalog.=) $1 AND withdrawn_at IS NULL
         AND token_expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
      RETURNING true",
    &[pg_sys::BYTEAOID],
);

static WITHDRAW: Plan = Plan::new(
    c"UPDATE shred.consent SET withdrawn_at = pg_catalog.now()
       WHERE subject_digest OPERATOR(pg_catalog.=) $1 AND purpose_id OPERATOR(pg_catalog.=) $2 AND withdrawn_at IS NULL
      RETURNING true",
    &[pg_sys::BYTEAOID, pg_sys::INT4OID],
);

/// A consent stands while it is confirmed, not withdrawn, and not ended by an erasure of the
/// whole data subject.
static CLAIM: Plan = Plan::new(
    c"UPDATE shred.consent c SET used_at = COALESCE(c.used_at, pg_catalog.now())
       WHERE c.subject_digest OPERATOR(pg_catalog.=) $1 AND c.purpose_id OPERATOR(pg_catalog.=) $2
         AND c.confirmed_at IS NOT NULL AND c.withdrawn_at IS NULL AND c.erased_at IS NULL
      RETURNING true",
    &[pg_sys::BYTEAOID, pg_sys::INT4OID],
);

/// Whether a consent stands (as [`CLAIM`] decides).
static HAS_CONSENT: Plan = Plan::new(
    c"SELECT true FROM shred.consent c
       WHERE c.subject_digest OPERATOR(pg_catalog.=) $1 AND c.purpose_id OPERATOR(pg_catalog.=) $2
         AND c.confirmed_at IS NOT NULL AND c.withdrawn_at IS NULL AND c.erased_at IS NULL
      LIMIT 1",
    &[pg_sys::BYTEAOID, pg_sys::INT4OID],
);

/// The erasure of whole subjects ends their standing or pending consents: before their DEKs
/// are deleted, so that a first seal under one of them (which updates the same row) and the
/// erasure serialize.
static END_BY_ERASURE: Plan = Plan::new(
    c"UPDATE shred.consent SET erased_at = pg_catalog.now()
       WHERE subject_digest OPERATOR(pg_catalog.=) ANY ($1) AND erased_at IS NULL AND withdrawn_at IS NULL",
    &[pg_sys::BYTEAARRAYOID],
);

/// A purpose DEK erased again by `shred.replay_erasures` (after a restore of an older backup)
/// withdraws its subject's consents for the purpose: the erasure may have been a withdrawal
/// made after the backup, and a withdrawal must not come undone.
static WITHDRAW_BY_REPLAY: Plan = Plan::new(
    c"UPDATE shred.consent SET withdrawn_at = pg_catalog.now()
       WHERE subject_digest OPERATOR(pg_catalog.=) $1 AND purpose_id OPERATOR(pg_catalog.=) $2
         AND withdrawn_at IS NULL AND erased_at IS NULL",
    &[pg_sys::BYTEAOID, pg_sys::INT4OID],
);

/// Record the first opt-in of `subject` for `purpose` now, with `evidence` (the canonical text
/// of a jsonb value, sealed under the subject's default DEK, created on first use), and return
/// the confirmation token (43 URL-safe characters), valid for `shred.consent_token_lifetime`.
pub fn request(subject: &Subject<'_>, purpose: &Purpose, evidence: Option<String>) -> Result<String, ShredError> {
    let digest = store::subject_digest(subject)?;
    let sealed = match evidence {
        Some(json) => {
            let (key_id, dek) = store::get_or_create(subject, 0)?;
            let aad = crate::protect::row::row_aad(EVIDENCE_CONTEXT, subject.db())?;
            let bytes = envelope::seal_typed(&dek, key_id as u64, &aad, &TypedValue::Jsonb(json))?;
            Some(envelope::to_text(&bytes))
        }
        None => None,
    };
    let (token, token_digest) = crate::crypto::consent::generate()?;
    let lifetime = gucs::consent_token_lifetime_secs();
    // A NULL evidence is passed as NULL (sealed_in is STRICT).
    run_request(&token_digest, purpose.id, &digest, sealed.as_deref(), lifetime)?;
    Ok(token)
}

fn run_request(token_digest: &[u8], purpose: i32, digest: &[u8], sealed: Option<&str>, lifetime: i32) -> Result<(), ShredError> {
    let evidence = match sealed {
        Some(text) => Arg::Bytes(text.as_bytes()),
        None => Arg::Null,
    };
    run(
        &INSERT_REQUEST,
        &[Arg::Bytes(token_digest), Arg::Int4(purpose), Arg::Bytes(digest), evidence, Arg::Int4(lifetime)],
        Mode::Write,
        0,
        |_| Ok(()),
    )
}

/// The second opt-in: true when `token` (its text form) confirms a pending consent, or names
/// one it confirmed already and is still within its lifetime; false for anything else.
pub fn confirm(token: &[u8]) -> Result<bool, ShredError> {
    // Not a token's text form: looked up as a digest no token has, so that it costs what an
    // unknown token costs.
    let digest = crate::crypto::consent::digest_of(token).unwrap_or([0u8; crate::crypto::consent::DIGEST_LEN]);
    run(&CONFIRM, &[Arg::Bytes(&digest)], Mode::Write, 1, |rows| Ok(!rows.is_empty()))
}

/// Withdraw every standing (pending or confirmed) consent of `subject` for `purpose`, in the
/// caller's transaction. True when a consent was withdrawn. The caller erases the subject's DEK
/// of a purpose that requires consent in the same statement (`crate::erasure::withdraw_consent`;
/// a purpose that does not require consent keeps its data: it is kept on another ground, and
/// only an eraser may erase it).
pub fn withdraw(subject: &Subject<'_>, purpose: &Purpose) -> Result<bool, ShredError> {
    let withdrawn = match store::existing_subject_digest(subject)? {
        Some(digest) => run(&WITHDRAW, &[Arg::Bytes(&digest), Arg::Int4(purpose.id)], Mode::Write, 0, |rows| Ok(!rows.is_empty()))?,
        None => false,
    };
    // SAFETY: plain call; the erasure that follows sees the withdrawal.
    unsafe { pg_sys::CommandCounterIncrement() };
    Ok(withdrawn)
}

/// End the consents of `subjects`, whose DEKs an erasure of the whole subject is about to
/// delete (see [`END_BY_ERASURE`]). Nothing to do before 0.6.0, or while the audit key does not
/// exist (no consent was ever recorded).
pub fn end_by_erasure(subjects: &[&Subject<'_>]) -> Result<(), ShredError> {
    if crate::keys::scan::relation(c"consent").is_err() {
        return Ok(());
    }
    let Some(key) = store::digest_key()? else { return Ok(()) };
    let digests: Vec<Vec<u8>> = subjects.iter().map(|s| key.digest(s.utf8()).to_vec()).collect();
    run(&END_BY_ERASURE, &[Arg::ByteaArray(&digests)], Mode::Write, 0, |_| Ok(()))
}

/// After `shred.replay_erasures` deleted DEKs again: end the consents of subjects erased as a
/// whole (their default DEK was among the key ids; `purpose` is `None` for all their DEKs), and
/// withdraw those for the purposes whose DEK alone it deleted.
pub fn end_by_replay(erased: &[(Vec<u8>, Option<i32>)]) -> Result<(), ShredError> {
    if crate::keys::scan::relation(c"consent").is_err() {
        return Ok(());
    }
    let Some(key) = store::digest_key()? else { return Ok(()) };
    let mut whole = Vec::new();
    for (subject, purpose) in erased {
        let utf8 = crate::pg::encoding::server_to_utf8(subject, "subject")?;
        let digest = key.digest(&utf8).to_vec();
        match purpose {
            None => whole.push(digest),
            Some(p) => run(&WITHDRAW_BY_REPLAY, &[Arg::Bytes(&digest), Arg::Int4(*p)], Mode::Write, 0, |_| Ok(()))?,
        }
    }
    if !whole.is_empty() {
        run(&END_BY_ERASURE, &[Arg::ByteaArray(&whole)], Mode::Write, 0, |_| Ok(()))?;
    }
    Ok(())
}

/// Whether `subject` has a standing consent for `purpose`: confirmed, not withdrawn, and not
/// ended by an erasure of the whole subject (latest snapshot: a withdrawal or erasure
/// committed anywhere counts at once).
pub fn has(subject: &Subject<'_>, purpose: &Purpose) -> Result<bool, ShredError> {
    let Some(digest) = store::existing_subject_digest(subject)? else { return Ok(false) };
    run(&HAS_CONSENT, &[Arg::Bytes(&digest), Arg::Int4(purpose.id)], Mode::ReadLatest, 1, |rows| Ok(!rows.is_empty()))
}

/// Before the first DEK of `subject` for `purpose` (which requires consent) is created: mark
/// its standing confirmed consents used, or refuse ([`ShredError::NoConsent`]).
pub fn claim(subject: &Subject<'_>, purpose: &Purpose) -> Result<(), ShredError> {
    let refused = || ShredError::NoConsent(purpose.name.to_string());
    let Some(digest) = store::existing_subject_digest(subject)? else { return Err(refused()) };
    let claimed = run(&CLAIM, &[Arg::Bytes(&digest), Arg::Int4(purpose.id)], Mode::Write, 0, |rows| Ok(!rows.is_empty()))?;
    if !claimed {
        return Err(refused());
    }
    Ok(())
}
