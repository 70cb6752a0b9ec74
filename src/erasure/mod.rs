//! Erasure as users ask for it, and proving it afterwards.
//!
//! Invariant: every erasure pg_shred makes goes through this module ([`erase_subject`],
//! [`erase_subjects`], [`erase_purpose`], [`withdraw_consent`], [`erase_due_purpose_keys`] for
//! retention, [`replay_erasures`] after a restore), which composes the key store's deletion with what must
//! happen in the same statement:
//! - the consents of an erased whole subject end (`crate::purposes::consent`);
//! - a subject under a legal hold is not erased ([`holds`]): the check runs after the DEKs are
//!   deleted, under the latest snapshot, while the deleted rows stay locked by this
//!   transaction, so a hold committed before the erasure (or placed while it waited for the
//!   rows a hold locks) is always seen, and the statement fails with nothing erased;
//! - an erased whole subject's end date (`shred.subject_expiry`) goes with it, so its
//!   identifier is left nowhere in pg_shred's tables.
//!
//! - [`receipts`]: signed erasure receipts and the residue check (what copies of an erased
//!   DEK remain until the erasure horizon), declared in `sql/receipts.sql`.

pub mod holds;
pub mod receipts;

use pgrx::pg_sys;

use crate::error::ShredError;
use crate::keys::scan;
use crate::keys::deferred;
use crate::pg::citus::PinnedRemoteSettings;
use crate::keys::spi::{run, Arg, Mode, Plan};
use crate::keys::store;
use crate::keys::subject::Subject;
use crate::purposes::{self, consent, Purpose};

static FORGET_END_DATES: Plan = Plan::new(
    c"DELETE FROM shred.subject_expiry WHERE subject OPERATOR(pg_catalog.=) ANY ($1)",
    &[pg_sys::TEXTARRAYOID],
);

/// Delete the end dates of erased whole subjects (database encoding). Nothing before the
/// retention tables exist.
pub(crate) fn forget_end_dates(subjects: &[Vec<u8>]) -> Result<(), ShredError> {
    if subjects.is_empty() || scan::relation(c"subject_expiry").is_err() {
        return Ok(());
    }
    run(&FORGET_END_DATES, &[Arg::TextArray(subjects)], Mode::Write, 0, |_| Ok(()))
}

/// Run an erasing call: on a database with Citus, its statements pinned as one (see
/// [`PinnedRemoteSettings`]: one round of `SET LOCAL`s to the other nodes, not one per
/// statement), and its erasure records written before it returns (elsewhere they wait for
/// COMMIT, set-based: see [`deferred`]), because a worker that reads the key store later in the
/// same distributed transaction (opening an erased value) must find the record of the DEK it no
/// longer finds, as this backend would.
fn erasing<R>(erase: impl FnOnce() -> Result<R, ShredError>) -> Result<R, ShredError> {
    let _pinned = PinnedRemoteSettings::pin(scan::distributed()?)?;
    let erased = erase()?;
    if crate::pg::citus::installed() {
        deferred::flush()?;
    }
    Ok(erased)
}

/// What follows the deletion of whole subjects' DEKs, in the same statement.
fn after_whole(subjects: &[&Subject<'_>]) -> Result<(), ShredError> {
    let list: Vec<Vec<u8>> = subjects.iter().map(|s| s.db().to_vec()).collect();
    holds::refuse(&list)?;
    forget_end_dates(&list)
}

/// Erase the whole `subject`: end its consents, delete every DEK it has (see [`store::erase`]),
/// refuse a held subject, forget its end date. True when a DEK was deleted.
pub fn erase_subject(subject: &Subject<'_>) -> Result<bool, ShredError> {
    erasing(|| store::erase(subject, &mut |s| consent::end_by_erasure(s), &mut |s| after_whole(s)))
}

/// Erase many whole subjects, a slice at a time, as [`erase_subject`] (see
/// [`store::erase_many`]). Returns how many DEKs were deleted.
pub fn erase_subjects<'a>(subjects: impl Iterator<Item = Subject<'a>>) -> Result<i64, ShredError> {
    erasing(|| store::erase_many(subjects, &mut |s| consent::end_by_erasure(s), &mut |s| after_whole(s)))
}

/// Erase the DEK of `subject` for `purpose` only (see [`store::erase_purpose`]); a held
/// subject is refused.
pub fn erase_purpose(subject: &Subject<'_>, purpose: &Purpose) -> Result<bool, ShredError> {
    erasing(|| {
        let erased = purposes::erase(subject, purpose)?;
        // Only a deletion is refused: a withdrawal that erases nothing (no DEK of that purpose)
        // tells its caller nothing about holds.
        if erased {
            holds::refuse(&[subject.db().to_vec()])?;
        }
        Ok(erased)
    })
}

/// Withdraw `subject`'s consent for `purpose` (see [`consent::withdraw`]) and, for a purpose
/// that requires consent, erase its DEK of that purpose in the same transaction. A held
/// subject is refused (nothing is recorded): its DEK must stay, and a DEK of such a purpose
/// exists only while its consent stands.
pub fn withdraw_consent(subject: &Subject<'_>, purpose: &Purpose) -> Result<bool, ShredError> {
    let withdrawn = consent::withdraw(subject, purpose)?;
    if purpose.requires_consent {
        erase_purpose(subject, purpose)?;
    }
    Ok(withdrawn)
}

/// Retention: erase the purpose DEKs with these key ids (see [`store::erase_purpose_keys`]);
/// a held subject among them fails the whole call. Returns how many were deleted.
pub fn erase_due_purpose_keys(key_ids: &[i64]) -> Result<i64, ShredError> {
    erasing(|| {
        let subjects = store::erase_purpose_keys(key_ids)?;
        holds::refuse(&subjects)?;
        Ok(subjects.len() as i64)
    })
}

/// `shred.replay_erasures`: the DEKs erased again (a held subject among them fails the call),
/// the consents they covered ended (see [`consent::end_by_replay`]), and the end dates of the
/// whole subjects among them forgotten.
pub fn replay_erasures(key_ids: pg_sys::Datum) -> Result<i64, ShredError> {
    erasing(|| store::replay_erasures(key_ids, |erased| {
        let subjects: Vec<Vec<u8>> = erased.iter().map(|(s, _)| s.clone()).collect();
        holds::refuse(&subjects)?;
        consent::end_by_replay(erased)?;
        let whole: Vec<Vec<u8>> = erased.iter().filter(|(_, p)| p.is_none()).map(|(s, _)| s.clone()).collect();
        forget_end_dates(&whole)
    }))
}
