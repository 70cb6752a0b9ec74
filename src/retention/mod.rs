//! Retention that erases by itself: what is due, erased in batches (`CALL shred.run_retention`,
//! and the background worker of [`worker`]), and end dates of whole subjects
//! (`shred.expire_subject`). Declared in `sql/retention.sql`.
//!
//! What is due, at the time of the batch's transaction (`now()`):
//! - a whole data subject whose end date (`shred.subject_expiry`) has passed: erased as
//!   `shred.erase(subject)` erases it ([`crate::erasure::erase_subjects`]);
//! - a purpose DEK whose retention clock (`shred.key_use.sealed_before`, an upper bound of its
//!   last seal: `crate::keys::deferred::sealed`) is older than its purpose's retention: erased
//!   as `shred.erase(subject, purpose)` erases it ([`crate::erasure::erase_due_purpose_keys`]).
//!
//! Invariants: nothing of a subject under a legal hold is chosen (and an erasure path refuses
//! one held meanwhile); a batch is one transaction of its caller's, so an interrupted run keeps
//! exactly the batches that committed, and the next run chooses what is still due. The clocks
//! and end dates are read through their indexes (`key_use_due`, `subject_expiry_due`): a batch
//! costs what it erases, not what the key store holds.

pub mod worker;

use pgrx::pg_sys;

use crate::error::ShredError;
use crate::keys::scan;
use crate::keys::spi::{run, Arg, Mode, Plan};
use crate::keys::store;
use crate::keys::subject::Subject;

/// Whole subjects past their end date, not held, oldest end date first.
static DUE_SUBJECTS: Plan = Plan::new(
    c"SELECT e.subject FROM shred.subject_expiry e
       WHERE e.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
         AND NOT EXISTS (SELECT FROM shred.legal_hold h WHERE h.subject OPERATOR(pg_catalog.=) e.subject)
       ORDER BY e.expires_at
       LIMIT $1",
    &[pg_sys::INT8OID],
);

/// Purpose DEKs past their purpose's retention, not held; and clocks whose DEK is gone
/// (erased by a transaction that committed before this clock was written), second column true.
static DUE_KEYS: Plan = Plan::new(
    c"SELECT u.key_id, k.key_id IS NULL
        FROM shred.purpose p
        JOIN shred.key_use u ON u.purpose_id OPERATOR(pg_catalog.=) p.purpose_id
                            AND u.sealed_before OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) p.retention)
        LEFT JOIN shred.subject_key k ON k.key_id OPERATOR(pg_catalog.=) u.key_id
       WHERE p.retention IS NOT NULL
         AND (k.key_id IS NULL
              OR NOT EXISTS (SELECT FROM shred.legal_hold h WHERE h.subject OPERATOR(pg_catalog.=) k.subject))
       LIMIT $1",
    &[pg_sys::INT8OID],
);

/// DEKs due, of held subjects ($1 true) or not: of whole subjects past their end date, and
/// purpose DEKs past their retention that no such end date covers.
static DUE_COUNT: Plan = Plan::new(
    c"SELECT (SELECT pg_catalog.count(*) FROM shred.subject_expiry e
                JOIN shred.subject_key k ON k.subject OPERATOR(pg_catalog.=) e.subject
               WHERE e.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
                 AND $1 OPERATOR(pg_catalog.=) EXISTS (SELECT FROM shred.legal_hold h WHERE h.subject OPERATOR(pg_catalog.=) e.subject))
           OPERATOR(pg_catalog.+)
           (SELECT pg_catalog.count(*) FROM shred.purpose p
                JOIN shred.key_use u ON u.purpose_id OPERATOR(pg_catalog.=) p.purpose_id
                                    AND u.sealed_before OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) p.retention)
                JOIN shred.subject_key k ON k.key_id OPERATOR(pg_catalog.=) u.key_id
               WHERE p.retention IS NOT NULL
                 AND $1 OPERATOR(pg_catalog.=) EXISTS (SELECT FROM shred.legal_hold h WHERE h.subject OPERATOR(pg_catalog.=) k.subject)
                 AND NOT EXISTS (SELECT FROM shred.subject_expiry e WHERE e.subject OPERATOR(pg_catalog.=) k.subject
                                    AND e.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()))",
    &[pg_sys::BOOLOID],
);

/// The totals of `shred.retention_status`: a run's first batch starts its count ($3).
static RECORD_RUN: Plan = Plan::new(
    c"INSERT INTO shred.retention_run AS r (singleton, last_run_at, last_run_by, keys_erased_last_run, keys_erased, runs)
      VALUES (true, pg_catalog.now(), $1, $2, $2, 1)
      ON CONFLICT (singleton) DO UPDATE
         SET last_run_at = pg_catalog.now(), last_run_by = excluded.last_run_by,
             keys_erased_last_run = CASE WHEN $3 THEN excluded.keys_erased_last_run
                                         ELSE r.keys_erased_last_run OPERATOR(pg_catalog.+) excluded.keys_erased_last_run END,
             keys_erased = r.keys_erased OPERATOR(pg_catalog.+) excluded.keys_erased,
             runs = r.runs OPERATOR(pg_catalog.+) CASE WHEN $3 THEN 1 ELSE 0 END",
    &[pg_sys::TEXTOID, pg_sys::INT8OID, pg_sys::BOOLOID],
);

static FORGET_END_DATE: Plan = Plan::new(
    c"DELETE FROM shred.subject_expiry WHERE subject OPERATOR(pg_catalog.=) $1 RETURNING true",
    &[pg_sys::TEXTOID],
);

static SET_END_DATE: Plan = Plan::new(
    c"INSERT INTO shred.subject_expiry (subject, expires_at) VALUES ($1, $2)",
    &[pg_sys::TEXTOID, pg_sys::TIMESTAMPTZOID],
);

/// Whether this database's pg_shred has retention (0.6.0 on).
pub fn installed() -> bool {
    scan::relation(c"key_use").is_ok()
}

/// Whether the extension pg_shred is installed in this database with retention: its table
/// `shred.key_use` exists and is a member of the extension. The retention worker asks this
/// before anything else: in a database without the extension, a schema `shred` and tables in it
/// are whoever made them, and must not be taken for pg_shred's (nor their owner for the key
/// store's).
pub fn installed_by_extension() -> bool {
    let Ok(relid) = scan::relation(c"key_use") else { return false };
    // SAFETY: syscache and dependency lookups inside a transaction.
    unsafe {
        let ext = pg_sys::get_extension_oid(c"pg_shred".as_ptr(), true);
        ext != pg_sys::InvalidOid && pg_sys::getExtensionOfObject(pg_sys::RelationRelationId, relid) == ext
    }
}

fn require_installed() -> Result<(), ShredError> {
    if installed() {
        Ok(())
    } else {
        Err(ShredError::NotReady("retention needs pg_shred 0.6.0: run ALTER EXTENSION pg_shred UPDATE".into()))
    }
}

/// Who ran a batch, as `shred.retention_status` shows it.
#[derive(Clone, Copy)]
pub enum RunBy {
    /// The background worker.
    Worker,
    /// `CALL shred.run_retention()`.
    Call,
}

impl RunBy {
    fn label(self) -> &'static [u8] {
        match self {
            RunBy::Worker => b"worker",
            RunBy::Call => b"shred.run_retention",
        }
    }
}

/// Erase up to `batch_size` DEKs that are due (whole subjects first), in the caller's
/// transaction, and add them to the totals (`first`: the first batch of a run). Returns how many
/// DEKs were erased; 0 only when nothing is due: what takes no erasure (an end date of a
/// subject without a DEK, the clock of a DEK erased meanwhile) is cleared in the same batch
/// until something is erased or nothing is left. The root key is needed (and checked) only when
/// something is due: a database with nothing to erase needs none.
pub fn run_batch(batch_size: i64, by: RunBy, first: bool) -> Result<i64, ShredError> {
    require_installed()?;
    let mut erased = 0;
    loop {
        let (done, handled) = round(batch_size - erased)?;
        erased += done;
        if handled == 0 || done > 0 || erased >= batch_size {
            break;
        }
    }
    run(&RECORD_RUN, &[Arg::Bytes(by.label()), Arg::Int8(erased), Arg::Bool(first)], Mode::Write, 0, |_| Ok(()))?;
    Ok(erased)
}

/// One round of [`run_batch`], of at most `room` (at least 1) due subjects and DEKs: (DEKs
/// erased, subjects and clocks handled, with or without an erasure).
fn round(room: i64) -> Result<(i64, usize), ShredError> {
    let subjects = run(&DUE_SUBJECTS, &[Arg::Int8(room)], Mode::Write, 0, |rows| {
        Ok(rows.iter().filter_map(|r| r.bytes(1)).collect::<Vec<_>>())
    })?;
    let mut erased = 0;
    if !subjects.is_empty() {
        store::verify_root_key()?;
        let checked = subjects.iter().map(|s| Subject::new(s)).collect::<Result<Vec<_>, _>>()?;
        erased += crate::erasure::erase_subjects(checked.into_iter())?;
        // A subject that had no DEK (left) is done too.
        crate::erasure::forget_end_dates(&subjects)?;
        // The erased DEKs' clocks go now, not at COMMIT: the purpose DEKs chosen next are live.
        crate::keys::deferred::flush()?;
    }
    let mut handled = subjects.len();
    let room = room - erased;
    if room > 0 {
        let (keys, orphans) = run(&DUE_KEYS, &[Arg::Int8(room)], Mode::Write, 0, |rows| {
            let (mut keys, mut orphans) = (Vec::new(), Vec::new());
            for r in rows {
                let id = r.int8(1).ok_or(ShredError::Internal("a due DEK without a key id"))?;
                if r.bool(2) == Some(true) { orphans.push(id) } else { keys.push(id) }
            }
            Ok((keys, orphans))
        })?;
        handled += keys.len() + orphans.len();
        if !orphans.is_empty() {
            crate::keys::deferred::forget_clocks(&orphans)?;
        }
        if !keys.is_empty() {
            store::verify_root_key()?;
            erased += crate::erasure::erase_due_purpose_keys(&keys)?;
        }
    }
    Ok((erased, handled))
}

/// How many DEKs are due now, of held subjects or not (`shred.retention_status`).
pub fn due(held: bool) -> Result<i64, ShredError> {
    require_installed()?;
    run(&DUE_COUNT, &[Arg::Bool(held)], Mode::ReadLatest, 1, |rows| Ok(rows.first().and_then(|r| r.int8(1)).unwrap_or(0)))
}

/// Set (`at`: a timestamptz datum), move or remove (`None`) the end date of `subject`. True when
/// it had one before.
pub fn expire(subject: &Subject<'_>, at: Option<pg_sys::Datum>) -> Result<bool, ShredError> {
    require_installed()?;
    let had = run(&FORGET_END_DATE, &[Arg::Bytes(subject.db())], Mode::Write, 0, |rows| Ok(!rows.is_empty()))?;
    if let Some(at) = at {
        run(&SET_END_DATE, &[Arg::Bytes(subject.db()), Arg::Datum(at)], Mode::Write, 0, |_| Ok(()))?;
    }
    Ok(had)
}
