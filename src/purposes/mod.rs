//! Purposes: why a data subject's data is kept (`'marketing'`, `'billing'`), each with its own
//! DEK per subject, so that one purpose can be erased (a withdrawn consent) while the subject's
//! other data stays readable.
//!
//! Invariants:
//! - A purpose, once defined, keeps its id and its `requires_consent` for good (purposes are
//!   never dropped; `shred.define_purpose` may change only the description and retention), so
//!   a backend may remember a committed purpose for as long as its DEK cache lives: the map is
//!   dropped with every flush of the DEK cache (any abort, any change to the key store
//!   committed anywhere, DROP EXTENSION), so a purpose of a rolled-back transaction is never
//!   remembered.
//! - A DEK of a purpose that requires consent is created only under a confirmed, unwithdrawn
//!   consent ([`consent::claim`], which also makes a concurrent withdrawal wait or fail), and a
//!   withdrawal erases it in the same transaction: such a DEK exists only while its consent
//!   stands, so sealing under an existing one needs no consent lookup.

pub mod consent;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::crypto::keys::DataKey;
use crate::error::ShredError;
use crate::keys::cache;
use crate::keys::scan;
use crate::keys::spi::{run, Arg, Mode, Plan};
use crate::keys::store;
use crate::keys::subject::Subject;

/// A defined purpose, as sealing and erasing need it.
#[derive(Clone)]
pub struct Purpose {
    /// Its id in the key store (`shred.subject_key.purpose_id`; never 0, the default DEK's).
    pub id: i32,
    /// Whether sealing for it needs the data subject's confirmed consent.
    pub requires_consent: bool,
    /// Its name (for messages; purposes are not personal data). Shared, so that the copy each
    /// seal takes of a resolved purpose allocates nothing.
    pub name: Rc<str>,
    /// How far past a seal the retention clock of its DEKs is set (milliseconds): a tenth of
    /// its retention, a day at the most (and a day without retention), so that a DEK's clock
    /// is written at most that often per backend and retention erases late by at most that
    /// much, never early (`crate::keys::deferred::sealed`). Taken from the retention when the
    /// backend resolved the purpose: a retention changed since only makes that bound longer
    /// or shorter, never moves a clock back.
    pub clock_granule_ms: i64,
}

/// A day, in milliseconds: the longest retention-clock granule.
const DAY_MS: i64 = 86_400_000;

/// The granule of a retention of `retention_secs` seconds (see [`Purpose::clock_granule_ms`]).
fn clock_granule_ms(retention_secs: Option<f64>) -> i64 {
    match retention_secs {
        Some(secs) if secs.is_finite() && secs > 0.0 => ((secs * 100.0) as i64).clamp(1, DAY_MS),
        _ => DAY_MS,
    }
}

static PURPOSE_BY_NAME: Plan = Plan::new(
    c"SELECT purpose_id, requires_consent, pg_catalog.date_part('epoch', retention)
        FROM shred.purpose WHERE name OPERATOR(pg_catalog.=) $1",
    &[pg_sys::TEXTOID],
);

static PURPOSE_NAME: Plan = Plan::new(
    c"SELECT name FROM shred.purpose WHERE purpose_id OPERATOR(pg_catalog.=) $1",
    &[pg_sys::INT4OID],
);

thread_local! {
    /// Purposes looked up by this backend, by name, and the DEK cache generation they belong to.
    static KNOWN: RefCell<(u64, HashMap<Vec<u8>, Purpose>)> = RefCell::new((0, HashMap::new()));
}

/// The purpose named `name` (database encoding). Errors: no such purpose (42704); the
/// extension not updated to 0.6.0 (55000).
pub fn resolve(name: &[u8]) -> Result<Purpose, ShredError> {
    cache::accept_invalidations();
    let generation = cache::generation();
    let known = KNOWN.with(|k| {
        let mut k = k.borrow_mut();
        if k.0 != generation {
            *k = (generation, HashMap::new());
        }
        k.1.get(name).cloned()
    });
    if let Some(p) = known {
        return Ok(p);
    }
    if scan::relation(c"purpose").is_err() {
        return Err(ShredError::NotReady("purposes need pg_shred 0.6.0: run ALTER EXTENSION pg_shred UPDATE".into()));
    }
    let found = run(&PURPOSE_BY_NAME, &[Arg::Bytes(name)], Mode::ReadLatest, 1, |rows| {
        Ok(rows.first().and_then(|r| Some((r.int4(1)?, r.bool(2)?, r.float8(3)))))
    })?;
    let readable = String::from_utf8_lossy(name).into_owned();
    let Some((id, requires_consent, retention_secs)) = found else {
        // Only a well-formed purpose name is echoed: a caller's mistake (personal data passed
        // as the purpose, a huge value) never reaches the message or the log.
        return Err(ShredError::NotFound(if is_purpose_name(name) {
            format!("purpose \"{readable}\" is not defined (see shred.define_purpose)")
        } else {
            "the purpose given is not a purpose name (1 to 63 lower-case letters, digits and underscores, starting with a letter)".into()
        }));
    };
    let purpose = Purpose { id, requires_consent, name: readable.into(), clock_granule_ms: clock_granule_ms(retention_secs) };
    KNOWN.with(|k| {
        let mut k = k.borrow_mut();
        if k.0 == generation {
            k.1.insert(name.to_vec(), purpose.clone());
        }
    });
    Ok(purpose)
}

/// Whether `name` has the form of a purpose name (`^[a-z][a-z0-9_]{0,62}$`, as `shred.purpose`
/// checks).
fn is_purpose_name(name: &[u8]) -> bool {
    matches!(name.first(), Some(b'a'..=b'z'))
        && name.len() <= 63
        && name.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The purpose with id `id` (a protected column's, from the catalog), resolved as [`resolve`]
/// resolves its name. Errors: no such purpose ([`ShredError::Internal`]: the catalog names
/// only defined purposes, and purposes are never dropped).
pub fn by_id(id: i32) -> Result<Purpose, ShredError> {
    let name = run(&PURPOSE_NAME, &[Arg::Int4(id)], Mode::ReadLatest, 1, |rows| Ok(rows.first().and_then(|r| r.bytes(1))))?;
    resolve(&name.ok_or(ShredError::Internal("a protected column names an undefined purpose"))?)
}

/// The key id and DEK that seal for `subject` and `purpose` (`None`: the subject's default
/// DEK), created on first use. For a purpose that requires consent, a missing DEK is created
/// only under the subject's confirmed, unwithdrawn consent; without one the seal is refused
/// ([`ShredError::NoConsent`], 55000).
///
/// Every seal for a purpose runs its DEK's retention clock (see [`Purpose::clock_granule_ms`]).
pub fn sealing_key(subject: &Subject<'_>, purpose: Option<&Purpose>) -> Result<(i64, Rc<DataKey>), ShredError> {
    let Some(p) = purpose else { return store::get_or_create(subject, 0) };
    let key = if !p.requires_consent {
        store::get_or_create(subject, p.id)?
    } else if let Some(hit) = store::existing_key(subject, p.id)? {
        hit
    } else {
        consent::claim(subject, p)?;
        store::get_or_create(subject, p.id)?
    };
    crate::keys::deferred::sealed(key.0, p.id, p.clock_granule_ms)?;
    Ok(key)
}

/// The DEK of `subject` for `purpose` (`None`: its default DEK) if it exists; never creates one.
pub fn existing_dek(subject: &Subject<'_>, purpose: Option<&Purpose>) -> Result<Option<Rc<DataKey>>, ShredError> {
    store::existing_dek(subject, purpose.map_or(0, |p| p.id))
}

/// Erase the DEK of `subject` for `purpose` only (see [`store::erase_purpose`]).
pub fn erase(subject: &Subject<'_>, purpose: &Purpose) -> Result<bool, ShredError> {
    store::erase_purpose(subject, purpose.id)
}
