//! Legal holds (GDPR Art. 17(3)(e)): a data subject under a hold is erased by nothing until the
//! hold is released (`shred.hold`, `shred.release_hold`, the view `shred.holds`; declared in
//! `sql/retention.sql`).
//!
//! Invariant: an erasure that deletes a held subject's DEKs fails in the same statement
//! ([`refuse`], run by every erasure path in [`super`] after its DELETE). Placing a hold
//! ([`place`]) inserts the hold, then locks every DEK of the subject (KEY SHARE) until it
//! commits: an erasure that reaches those rows later waits for the hold to commit and then
//! sees it under the latest snapshot; one that deleted them first (uncommitted) makes the hold
//! wait, and when it commits the hold finds no DEK and fails (40001) instead of holding an
//! erased subject. The reason is sealed under the subject's default DEK (context
//! [`REASON_CONTEXT`]), never stored or logged in clear.

use pgrx::pg_sys;

use crate::crypto::envelope;
use crate::error::ShredError;
use crate::keys::scan;
use crate::keys::spi::{run, Arg, Mode, Plan};
use crate::keys::store;
use crate::keys::subject::Subject;

/// The context (AAD) a hold's reason is sealed with: `shred.open(reason, 'pg_shred:legal_hold')`.
pub const REASON_CONTEXT: &[u8] = b"pg_shred:legal_hold";

static HELD: Plan = Plan::new(
    c"SELECT hold_id FROM shred.legal_hold
       WHERE subject OPERATOR(pg_catalog.=) ANY ($1) ORDER BY hold_id LIMIT 1",
    &[pg_sys::TEXTARRAYOID],
);

static PLACE: Plan = Plan::new(
    c"INSERT INTO shred.legal_hold AS h (subject, reason, placed_by)
      VALUES ($1, shred.sealed_in($2::pg_catalog.cstring), $3)
      ON CONFLICT (subject) DO UPDATE SET reason = excluded.reason, placed_at = pg_catalog.now(), placed_by = excluded.placed_by
      RETURNING h.hold_id",
    &[pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID],
);

static LOCK_KEYS: Plan = Plan::new(
    c"SELECT key_id FROM shred.subject_key WHERE subject OPERATOR(pg_catalog.=) $1 FOR KEY SHARE",
    &[pg_sys::TEXTOID],
);

static RELEASE: Plan = Plan::new(
    c"DELETE FROM shred.legal_hold WHERE subject OPERATOR(pg_catalog.=) $1 RETURNING hold_id",
    &[pg_sys::TEXTOID],
);

/// Fail ([`ShredError::Held`], 55006) when one of `subjects` (database encoding) is under a
/// hold committed anywhere, or placed by this transaction. Nothing before the holds table exists.
pub fn refuse(subjects: &[Vec<u8>]) -> Result<(), ShredError> {
    if subjects.is_empty() || scan::relation(c"legal_hold").is_err() {
        return Ok(());
    }
    let held = run(&HELD, &[Arg::TextArray(subjects)], Mode::ReadLatest, 1, |rows| Ok(rows.first().and_then(|r| r.int8(1))))?;
    match held {
        Some(hold_id) => Err(ShredError::Held(hold_id)),
        None => Ok(()),
    }
}

/// Place `subject` under a legal hold for `reason` (UTF-8), by the role named `placed_by`, or
/// replace the reason of its hold. Returns the hold id. A subject without a default DEK (never
/// sealed for, or erased) has nothing to hold: [`ShredError::NotFound`] (42704), and no DEK is
/// made for it (an erased subject's identifier is not brought back into the key store).
pub fn place(subject: &Subject<'_>, reason: &[u8], placed_by: &[u8]) -> Result<i64, ShredError> {
    let Some((key_id, dek)) = store::existing_key(subject, 0)? else {
        return Err(ShredError::NotFound("the data subject has no DEK (never sealed for, or erased): there is nothing to hold".into()));
    };
    let sealed = envelope::to_text(&envelope::seal(&dek, key_id as u64, REASON_CONTEXT, reason)?);
    let hold_id = run(&PLACE, &[Arg::Bytes(subject.db()), Arg::Bytes(sealed.as_bytes()), Arg::Bytes(placed_by)], Mode::Write, 1, |rows| {
        rows.first().and_then(|r| r.int8(1)).ok_or(ShredError::Internal("a hold without an id"))
    })?;
    // SAFETY: plain call; the lock below sees the hold's own row writes.
    unsafe { pg_sys::CommandCounterIncrement() };
    let locked = run(&LOCK_KEYS, &[Arg::Bytes(subject.db())], Mode::Write, 0, |rows| Ok(rows.len()))?;
    if locked == 0 {
        return Err(ShredError::Serialization("the data subject was erased while its legal hold was placed"));
    }
    Ok(hold_id)
}

/// Release the hold of `subject`. True when there was one.
pub fn release(subject: &Subject<'_>) -> Result<bool, ShredError> {
    run(&RELEASE, &[Arg::Bytes(subject.db())], Mode::Write, 0, |rows| Ok(!rows.is_empty()))
}
