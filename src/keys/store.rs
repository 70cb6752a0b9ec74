//! The key store: `shred.subject_key` (one wrapped DEK per data subject) and
//! `shred.root_key_version` (salt and key-check value per root-key version). Reads are index
//! scans under the latest snapshot ([`scan`]); writes run over SPI with the key store owner's
//! rights ([`super::spi`]); unwrapped DEKs are cached per backend ([`cache`]).
//!
//! Subjects are passed in the database encoding (as stored in the table); the AAD of a wrapped
//! DEK uses the subject's UTF-8 bytes, so keys survive a restore into a database of another
//! encoding.

use pgrx::pg_sys;

use std::rc::Rc;

use super::cache;
use super::scan::{self, col};
use super::root::{self, CURRENT_VERSION};
use super::spi::{run, Arg, Mode, Plan};
use crate::crypto::keys::DataKey;
use crate::error::ShredError;
use crate::sql::encoding::server_to_utf8;

/// Key ids are taken from the sequence this many at a time (unused ones are gaps, as with any
/// sequence).
const KEY_ID_BATCH: i64 = 32;

static NEXT_KEY_IDS: Plan = Plan::new(
    c"SELECT pg_catalog.nextval('shred.subject_key_key_id_seq'::pg_catalog.regclass)
        FROM pg_catalog.generate_series(1, $1)",
    &[pg_sys::INT8OID],
);

static INSERT_KEY: Plan = Plan::new(
    c"INSERT INTO shred.subject_key (key_id, subject, wrapped_dek, root_key_version)
      VALUES ($1, $2, $3, $4)
      ON CONFLICT (subject) DO NOTHING
      RETURNING key_id",
    &[pg_sys::INT8OID, pg_sys::TEXTOID, pg_sys::BYTEAOID, pg_sys::INT4OID],
);

static DELETE_KEY: Plan = Plan::new(
    c"DELETE FROM shred.subject_key WHERE subject OPERATOR(pg_catalog.=) $1 RETURNING key_id",
    &[pg_sys::TEXTOID],
);

static DELETE_KEYS: Plan = Plan::new(
    c"DELETE FROM shred.subject_key WHERE subject OPERATOR(pg_catalog.=) ANY ($1)",
    &[pg_sys::TEXTARRAYOID],
);

static ANY_KEY_LEFT: Plan = Plan::new(
    c"SELECT 1 FROM shred.subject_key WHERE subject OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1",
    &[pg_sys::TEXTARRAYOID],
);

static KEY_COUNT: Plan = Plan::new(c"SELECT pg_catalog.count(*) FROM shred.subject_key", &[]);

static INSERT_VERSION: Plan = Plan::new(
    c"INSERT INTO shred.root_key_version (version, salt, key_check) VALUES ($1, $2, $3)
      ON CONFLICT (version) DO NOTHING",
    &[pg_sys::INT4OID, pg_sys::BYTEAOID, pg_sys::BYTEAOID],
);

/// A key store row, copied out of the scanned tuple. Nothing here is secret: the DEK is wrapped.
struct KeyRow {
    key_id: i64,
    subject: Vec<u8>,
    wrapped: Vec<u8>,
    version: i32,
}

impl KeyRow {
    /// Unwrap this row's DEK, after checking the root key against its version.
    fn unwrap_dek(&self) -> Result<DataKey, ShredError> {
        // A DEK whose root-key version row is missing cannot be verified: fail closed.
        let (salt, key_check) = version_row(self.version)?.ok_or(ShredError::RootKeyMismatch(self.version))?;
        let subject = server_to_utf8(&self.subject, "subject")?;
        root::with_kek(self.version, &salt, &key_check, |kek| {
            Ok(kek.unwrap(&self.wrapped, self.key_id as u64, &subject)?)
        })
    }
}

fn missing(what: &str) -> ShredError {
    ShredError::KeyStore(format!("a key store row has no {what}"))
}

/// How a key store row is looked up.
#[derive(Clone, Copy)]
enum By<'a> {
    Id(i64),
    Subject(&'a [u8]),
}

/// Read a key store row under the latest snapshot (see [`scan`]).
fn lookup(by: By<'_>) -> Result<Option<KeyRow>, ShredError> {
    let key = match by {
        By::Id(id) => scan::Key::Id(id),
        By::Subject(s) => scan::Key::Subject(s),
    };
    let columns = [col::KEY_ID, col::SUBJECT, col::WRAPPED_DEK, col::ROOT_KEY_VERSION];
    let Some(row) = scan::fetch(key, &columns)? else { return Ok(None) };
    let mut values = row.into_iter();
    let mut next = || values.next().unwrap_or(scan::Value::Null);
    let key_id = next().int().ok_or_else(|| missing("key id"))?;
    let subject = next().into_bytes().ok_or_else(|| missing("subject"))?;
    let wrapped = next().into_bytes().ok_or_else(|| missing("wrapped DEK"))?;
    let version = next().int().ok_or_else(|| missing("root-key version"))? as i32;
    Ok(Some(KeyRow { key_id, subject, wrapped, version }))
}

/// Unwrap a row's DEK and cache it, unless the cache was flushed since generation `seen`.
fn unwrap_and_cache(row: &KeyRow, seen: u64) -> Result<Rc<DataKey>, ShredError> {
    let dek = Rc::new(row.unwrap_dek()?);
    cache::insert(row.key_id, &row.subject, dek.clone(), seen);
    Ok(dek)
}

/// The DEK with `key_id`, or `None` when it does not exist (its data subject was erased, in a
/// transaction committed before this call, or earlier in this one).
pub fn dek_by_id(key_id: i64) -> Result<Option<Rc<DataKey>>, ShredError> {
    cache::accept_invalidations();
    if let Some(dek) = cache::get_by_id(key_id) {
        return Ok(Some(dek));
    }
    let seen = cache::generation();
    match lookup(By::Id(key_id))? {
        Some(row) => Ok(Some(unwrap_and_cache(&row, seen)?)),
        None => Ok(None),
    }
}

/// Whether a DEK with `key_id` exists (latest snapshot). Needs no root key.
pub fn key_exists(key_id: i64) -> Result<bool, ShredError> {
    Ok(scan::fetch(scan::Key::Id(key_id), &[])?.is_some())
}

/// The stored (salt, key-check value) of root-key `version`, if registered. Cached per backend
/// once read (see `cache::version_row`).
fn version_row(version: i32) -> Result<Option<cache::VersionRow>, ShredError> {
    if let Some(row) = cache::version_row(version) {
        return Ok(Some(row));
    }
    let row = scan::fetch(scan::Key::Version(version), &[col::SALT, col::KEY_CHECK])?.and_then(|r| {
        let mut values = r.into_iter();
        Some((values.next()?.into_bytes()?, values.next()?.into_bytes()?))
    });
    if let Some(r) = &row {
        cache::set_version_row(version, r.clone());
    }
    Ok(row)
}

/// The salt and key-check value of the current root-key version, registering the configured
/// root key as that version on first use. Fails closed when the configured key does not match.
fn current_version_row() -> Result<cache::VersionRow, ShredError> {
    if let Some(row) = version_row(CURRENT_VERSION)? {
        return Ok(row);
    }
    let (salt, key_check) = root::new_version_material()?;
    run(
        &INSERT_VERSION,
        &[Arg::Int4(CURRENT_VERSION), Arg::Bytes(&salt), Arg::Bytes(&key_check)],
        Mode::Write,
        0,
        |_| Ok(()),
    )?;
    // SAFETY: plain call; makes the row visible to the next latest-snapshot read.
    unsafe { pg_sys::CommandCounterIncrement() };
    version_row(CURRENT_VERSION)?.ok_or(ShredError::Serialization("a root-key version registered concurrently is not visible"))
}

/// The key id and DEK of `subject` (database encoding), creating and storing a new random DEK
/// on first use. Race-safe: concurrent first seals of one subject end with one DEK.
pub fn get_or_create(subject: &[u8]) -> Result<(i64, Rc<DataKey>), ShredError> {
    cache::accept_invalidations();
    if let Some(hit) = cache::get_by_subject(subject) {
        return Ok(hit);
    }
    let seen = cache::generation();
    if let Some(row) = lookup(By::Subject(subject))? {
        return Ok((row.key_id, unwrap_and_cache(&row, seen)?));
    }
    let (salt, key_check) = current_version_row()?;
    let key_id = cache::next_key_id(|| {
        run(&NEXT_KEY_IDS, &[Arg::Int8(KEY_ID_BATCH)], Mode::Write, 0, |rows| {
            rows.iter().map(|r| r.int8(1).ok_or_else(|| missing("key id"))).collect()
        })
    })?
    .ok_or_else(|| missing("key id"))?;
    let dek = DataKey::generate()?;
    let subject_utf8 = server_to_utf8(subject, "subject")?;
    let wrapped = root::with_kek(CURRENT_VERSION, &salt, &key_check, |kek| {
        Ok(kek.wrap(&dek, key_id as u64, &subject_utf8)?)
    })?;
    let inserted = run(
        &INSERT_KEY,
        &[Arg::Int8(key_id), Arg::Bytes(subject), Arg::Bytes(&wrapped), Arg::Int4(CURRENT_VERSION)],
        Mode::Write,
        0,
        |rows| Ok(!rows.is_empty()),
    )?;
    // SAFETY: plain call; makes the new row visible to later reads in this statement.
    unsafe { pg_sys::CommandCounterIncrement() };
    if inserted {
        // Cached at once; an abort of this (sub)transaction flushes the cache.
        let dek = Rc::new(dek);
        cache::insert(key_id, subject, dek.clone(), seen);
        return Ok((key_id, dek));
    }
    // Another transaction created this subject's DEK first and committed: use the winner's.
    drop(dek);
    match lookup(By::Subject(subject))? {
        Some(row) => Ok((row.key_id, unwrap_and_cache(&row, seen)?)),
        None => Err(ShredError::Serialization("a DEK created concurrently is not visible")),
    }
}

/// Whether statements of this transaction share one snapshot (REPEATABLE READ, SERIALIZABLE).
fn uses_transaction_snapshot() -> bool {
    // SAFETY: plain read of the backend's isolation level.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// How often a READ COMMITTED erasure retries when a DEK appeared after its statement began.
const ERASE_ATTEMPTS: usize = 3;

/// Run `delete` (one DELETE statement, returning how many DEKs it deleted) until every
/// targeted subject is gone: at once when it deleted `all` of them (a deleted row stays locked
/// by this transaction, so no other can re-create it meanwhile), otherwise when `left` finds
/// none under the latest snapshot. A DEK committed by another transaction after the DELETE's
/// snapshot is deleted by a retry with a fresh snapshot in READ COMMITTED; under a transaction
/// snapshot it cannot be, so the erasure fails with 40001 instead of leaving the subject
/// readable while reporting success.
fn delete_until_gone(
    all: i64,
    mut delete: impl FnMut() -> Result<i64, ShredError>,
    mut left: impl FnMut() -> Result<bool, ShredError>,
) -> Result<i64, ShredError> {
    let mut total = 0;
    for _ in 0..ERASE_ATTEMPTS {
        total += delete()?;
        // SAFETY: plain call; later reads in this statement see the deletion.
        unsafe { pg_sys::CommandCounterIncrement() };
        if total >= all || !left()? {
            return Ok(total);
        }
        if uses_transaction_snapshot() {
            break;
        }
    }
    Err(ShredError::Serialization("a data subject's DEK was created by a transaction this one cannot see"))
}

/// Delete the DEK of `subject` (database encoding). True when one was deleted.
pub fn erase(subject: &[u8]) -> Result<bool, ShredError> {
    let deleted = delete_until_gone(
        1,
        || run(&DELETE_KEY, &[Arg::Bytes(subject)], Mode::Write, 0, |rows| Ok(rows.len() as i64)),
        || Ok(lookup(By::Subject(subject))?.is_some()),
    )?;
    Ok(deleted > 0)
}

/// Delete the DEKs of every subject in `subjects` (a `text[]` datum of `count` elements, none
/// NULL) in one statement. Returns how many were deleted.
pub fn erase_many(subjects: pg_sys::Datum, count: i64) -> Result<i64, ShredError> {
    delete_until_gone(
        count,
        || {
            run(&DELETE_KEYS, &[Arg::Datum(subjects)], Mode::Write, 0, |_| {
                // SAFETY: set by the DELETE just run on this connection.
                Ok(unsafe { pg_sys::SPI_processed } as i64)
            })
        },
        || run(&ANY_KEY_LEFT, &[Arg::Datum(subjects)], Mode::ReadLatest, 1, |rows| Ok(!rows.is_empty())),
    )
}

/// How many DEKs the key store holds (latest snapshot).
pub fn key_count() -> Result<i64, ShredError> {
    run(&KEY_COUNT, &[], Mode::ReadLatest, 1, |rows| Ok(rows.first().and_then(|r| r.int8(1)).unwrap_or(0)))
}

/// Fail closed unless the configured root key is readable and matches the current root-key
/// version (when that version is registered).
pub fn verify_root_key() -> Result<(), ShredError> {
    match version_row(CURRENT_VERSION)? {
        Some((salt, key_check)) => root::with_kek(CURRENT_VERSION, &salt, &key_check, |_| Ok(())),
        None => root::require_root_key(),
    }
}
