//! The key store: `shred.subject_key` (one wrapped DEK per data subject, and from 0.6.0 one
//! more per purpose the subject's data is kept for: purpose 0 is the default DEK) and
//! `shred.root_key_version` (salt, key-check value and retirement time per root-key version),
//! and root-key rotation (rewrapping DEKs under the newest version). Reads are index
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
use super::root;
use super::spi::{run, Arg, Mode, Plan};
use crate::crypto::keys::DataKey;
use crate::crypto::CryptoError;
use super::subject::Subject;
use crate::error::ShredError;
use crate::pg::encoding::server_to_utf8;

/// Key ids are drawn at random from `[KEY_ID_MIN, 2 * KEY_ID_MIN)`: they tell nothing about the
/// order in which subjects got their DEKs, stay exact in clients that hold integers as IEEE
/// doubles (below 2^53), and lie above every id the key store's sequence handed out before
/// 0.4.0 (it started below 2^52 and counts up by one), so a new id never meets an id erased
/// before erasures were recorded. An id that is in use or recorded as erased is drawn again
/// (see [`INSERT_KEYS`]): key ids are never reused.
const KEY_ID_MIN: i64 = 1 << 52;

/// A random key id (see [`KEY_ID_MIN`]).
fn random_key_id() -> Result<i64, ShredError> {
    let mut bytes = [0u8; 8];
    crate::crypto::fill_nonce(&mut bytes)?;
    Ok(KEY_ID_MIN + (u64::from_le_bytes(bytes) % KEY_ID_MIN as u64) as i64)
}

/// Key ids from the key store's sequence (the 0.1.0 schema only, see `insert_new`).
static NEXT_KEY_IDS: Plan = Plan::new(
    c"SELECT pg_catalog.nextval('shred.subject_key_key_id_seq'::pg_catalog.regclass)
        FROM pg_catalog.generate_series(1, $1)",
    &[pg_sys::INT8OID],
);

/// Insert new DEKs (arrays of key ids, subjects, wrapped DEKs), skipping any whose subject has
/// a DEK already (created concurrently: the statement waits for its transaction) or whose key
/// id is in use or recorded as erased: such rows are not returned, and the caller looks again.
/// Only `create_keys` inserts this way, and it exists from 0.4.0 on, so the erasure log does.
static INSERT_KEYS: Plan = Plan::new(
    c"INSERT INTO shred.subject_key AS k (key_id, subject, wrapped_dek, root_key_version)
      SELECT n.key_id, n.subject, n.wrapped_dek, $4
        FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.text[]),
                        pg_catalog.unnest($3::pg_catalog.bytea[])) n (key_id, subject, wrapped_dek)
       WHERE NOT EXISTS (SELECT FROM shred.erasure_log l WHERE l.key_id OPERATOR(pg_catalog.=) n.key_id)
      ON CONFLICT DO NOTHING
      RETURNING k.key_id",
    &[pg_sys::INT8ARRAYOID, pg_sys::TEXTARRAYOID, pg_sys::BYTEAARRAYOID, pg_sys::INT4OID],
);

/// [`INSERT_KEYS`] without `ON CONFLICT`: a conflict raises a unique violation (see
/// `insert_new`).
static INSERT_KEYS_FAST: Plan = Plan::new(
    c"INSERT INTO shred.subject_key AS k (key_id, subject, wrapped_dek, root_key_version)
      SELECT n.key_id, n.subject, n.wrapped_dek, $4
        FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.text[]),
                        pg_catalog.unnest($3::pg_catalog.bytea[])) n (key_id, subject, wrapped_dek)
       WHERE NOT EXISTS (SELECT FROM shred.erasure_log l WHERE l.key_id OPERATOR(pg_catalog.=) n.key_id)
      RETURNING k.key_id",
    &[pg_sys::INT8ARRAYOID, pg_sys::TEXTARRAYOID, pg_sys::BYTEAARRAYOID, pg_sys::INT4OID],
);


/// One new DEK (the first seal of a subject), as [`INSERT_KEYS`] does for many.
static INSERT_KEY: Plan = Plan::new(
    c"INSERT INTO shred.subject_key AS k (key_id, subject, wrapped_dek, root_key_version)
      SELECT $1, $2, $3, $4
       WHERE NOT EXISTS (SELECT FROM shred.erasure_log l WHERE l.key_id OPERATOR(pg_catalog.=) $1)
      ON CONFLICT DO NOTHING
      RETURNING k.key_id",
    &[pg_sys::INT8OID, pg_sys::TEXTOID, pg_sys::BYTEAOID, pg_sys::INT4OID],
);

/// One new purpose DEK (0.6.0 on), as [`INSERT_KEY`].
static INSERT_PURPOSE_KEY: Plan = Plan::new(
    c"INSERT INTO shred.subject_key AS k (key_id, subject, wrapped_dek, root_key_version, purpose_id)
      SELECT $1, $2, $3, $4, $5
       WHERE NOT EXISTS (SELECT FROM shred.erasure_log l WHERE l.key_id OPERATOR(pg_catalog.=) $1)
      ON CONFLICT DO NOTHING
      RETURNING k.key_id",
    &[pg_sys::INT8OID, pg_sys::TEXTOID, pg_sys::BYTEAOID, pg_sys::INT4OID, pg_sys::INT4OID],
);

static INSERT_KEY_OLD: Plan = Plan::new(
    c"INSERT INTO shred.subject_key AS k (key_id, subject, wrapped_dek, root_key_version)
      VALUES ($1, $2, $3, $4)
      ON CONFLICT DO NOTHING
      RETURNING k.key_id",
    &[pg_sys::INT8OID, pg_sys::TEXTOID, pg_sys::BYTEAOID, pg_sys::INT4OID],
);

/// The DEKs with these key ids (latest snapshot), read in key-id order.
static KEYS_BY_ID: Plan = Plan::new(
    c"SELECT key_id, subject, wrapped_dek, root_key_version FROM shred.subject_key
       WHERE key_id OPERATOR(pg_catalog.=) ANY ($1) ORDER BY key_id",
    &[pg_sys::INT8ARRAYOID],
);

/// Which of the subjects have a DEK (latest snapshot), before 0.6.0.
static HAVE_KEYS: Plan = Plan::new(
    c"SELECT subject FROM shred.subject_key WHERE subject OPERATOR(pg_catalog.=) ANY ($1)",
    &[pg_sys::TEXTARRAYOID],
);

/// Which of the subjects have a default DEK (latest snapshot), 0.6.0 on.
static HAVE_DEFAULT_KEYS: Plan = Plan::new(
    c"SELECT subject FROM shred.subject_key
       WHERE subject OPERATOR(pg_catalog.=) ANY ($1) AND purpose_id OPERATOR(pg_catalog.=) 0",
    &[pg_sys::TEXTARRAYOID],
);

/// Every DEK of a subject: its default DEK and its purpose DEKs.
static DELETE_KEY: Plan = Plan::new(
    c"DELETE FROM shred.subject_key WHERE subject OPERATOR(pg_catalog.=) $1 RETURNING key_id",
    &[pg_sys::TEXTOID],
);

/// One purpose DEK of a subject.
static DELETE_PURPOSE_KEY: Plan = Plan::new(
    c"DELETE FROM shred.subject_key
       WHERE subject OPERATOR(pg_catalog.=) $1 AND purpose_id OPERATOR(pg_catalog.=) $2 RETURNING key_id",
    &[pg_sys::TEXTOID, pg_sys::INT4OID],
);

/// The DEKs (default and purpose DEKs) of a slice of subjects: one index probe per subject (an
/// `ARRAY()` subquery in the select list, which the planner cannot turn into a join), then the
/// deletion by key id. `subject = ANY ($1)` could be planned as a sequential scan testing
/// every row against every subject of the slice (stale statistics after a bulk load), a cost
/// that grows with the key store, not with the slice.
static DELETE_KEYS: Plan = Plan::new(
    c"DELETE FROM shred.subject_key
       WHERE key_id OPERATOR(pg_catalog.=) ANY (ARRAY(
             SELECT pg_catalog.unnest(ARRAY(SELECT k.key_id FROM shred.subject_key k
                                             WHERE k.subject OPERATOR(pg_catalog.=) s.subject))
               FROM pg_catalog.unnest($1::pg_catalog.text[]) s (subject)))
      RETURNING key_id, subject",
    &[pg_sys::TEXTARRAYOID],
);

/// The last erasure of a subject, before 0.6.0.
static LAST_ERASURE: Plan = Plan::new(
    c"SELECT pg_catalog.max(erased_at) FROM shred.erasure_log WHERE subject_digest OPERATOR(pg_catalog.=) $1",
    &[pg_sys::BYTEAOID],
);

/// The last erasure of a whole subject (not of one purpose: `purpose_id IS NULL`), 0.6.0 on.
static LAST_WHOLE_ERASURE: Plan = Plan::new(
    c"SELECT pg_catalog.max(erased_at) FROM shred.erasure_log
       WHERE subject_digest OPERATOR(pg_catalog.=) $1 AND purpose_id IS NULL",
    &[pg_sys::BYTEAOID],
);

/// Whether a subject of the slice still has a DEK: one index probe per subject, as
/// [`DELETE_KEYS`].
static ANY_KEY_LEFT: Plan = Plan::new(
    c"SELECT 1 FROM pg_catalog.unnest($1::pg_catalog.text[]) s (subject)
       WHERE (SELECT true FROM shred.subject_key k WHERE k.subject OPERATOR(pg_catalog.=) s.subject LIMIT 1)
      LIMIT 1",
    &[pg_sys::TEXTARRAYOID],
);

/// DEKs of data subjects (not pg_shred's own keys under reserved `pg_shred:` subjects).
static KEY_COUNT: Plan = Plan::new(
    c"SELECT pg_catalog.count(*) FROM shred.subject_key WHERE NOT pg_catalog.starts_with(subject, 'pg_shred:')",
    &[],
);

static VERSION_USAGE: Plan = Plan::new(
    c"SELECT v.version, v.salt, v.key_check,
             (SELECT pg_catalog.count(*) FROM shred.subject_key k
               WHERE k.root_key_version OPERATOR(pg_catalog.=) v.version)
        FROM shred.root_key_version v ORDER BY v.version",
    &[],
);

static PICK_FOR_REWRAP: Plan = Plan::new(
    c"SELECT key_id, subject, wrapped_dek, root_key_version FROM shred.subject_key
       WHERE root_key_version OPERATOR(pg_catalog.<>) $1
         AND root_key_version OPERATOR(pg_catalog.=) ANY ($2)
       ORDER BY key_id LIMIT $3 FOR UPDATE",
    &[pg_sys::INT4OID, pg_sys::INT4ARRAYOID, pg_sys::INT8OID],
);

static UPDATE_WRAPPED: Plan = Plan::new(
    c"UPDATE shred.subject_key SET wrapped_dek = $2, root_key_version = $3
       WHERE key_id OPERATOR(pg_catalog.=) $1",
    &[pg_sys::INT8OID, pg_sys::BYTEAOID, pg_sys::INT4OID],
);

static NOT_UNDER: Plan = Plan::new(
    c"SELECT root_key_version, pg_catalog.count(*) FROM shred.subject_key
       WHERE root_key_version OPERATOR(pg_catalog.<>) $1 GROUP BY root_key_version ORDER BY 1",
    &[pg_sys::INT4OID],
);

static LOCK_KEYS: Plan = Plan::new(c"LOCK TABLE shred.subject_key IN SHARE MODE", &[]);

static DEKS_UNDER: Plan = Plan::new(
    c"SELECT pg_catalog.count(*) FROM shred.subject_key WHERE root_key_version OPERATOR(pg_catalog.=) $1",
    &[pg_sys::INT4OID],
);

static RETIRE_VERSION: Plan = Plan::new(
    c"UPDATE shred.root_key_version SET retired_at = pg_catalog.now()
       WHERE version OPERATOR(pg_catalog.=) $1 AND retired_at IS NULL",
    &[pg_sys::INT4OID],
);

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
    /// The DEK's purpose (0: the subject's default DEK); `None` when not read.
    purpose: Option<i32>,
}

impl KeyRow {
    /// A row read over SPI as `key_id, subject, wrapped_dek, root_key_version`.
    fn from_row(r: &super::spi::Row) -> Result<Self, ShredError> {
        Ok(KeyRow {
            key_id: r.int8(1).ok_or_else(|| missing("key id"))?,
            subject: r.bytes(2).ok_or_else(|| missing("subject"))?,
            wrapped: r.bytes(3).ok_or_else(|| missing("wrapped DEK"))?,
            version: r.int4(4).ok_or_else(|| missing("root-key version"))?,
            purpose: None,
        })
    }

    /// Unwrap this row's DEK, after checking the root key against its version.
    fn unwrap_dek(&self) -> Result<DataKey, ShredError> {
        // A DEK whose root-key version row is missing cannot be verified: fail closed.
        let row = version_row(self.version)?.ok_or(ShredError::RootKeyMismatch(self.version))?;
        let subject = server_to_utf8(&self.subject, "subject")?;
        root::with_kek(self.version, &row.salt, &row.key_check, |kek| {
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
    /// A subject's DEK for a purpose (0: the default DEK).
    Subject(&'a [u8], i32),
}

/// Read a key store row under the latest snapshot (see [`scan`]).
fn lookup(by: By<'_>) -> Result<Option<KeyRow>, ShredError> {
    let key = match by {
        By::Id(id) => scan::Key::Id(id),
        By::Subject(s, p) => scan::Key::Subject(s, p),
    };
    let columns = [col::KEY_ID, col::SUBJECT, col::WRAPPED_DEK, col::ROOT_KEY_VERSION, col::PURPOSE_ID];
    let Some(row) = scan::fetch(key, &columns)? else { return Ok(None) };
    let mut values = row.into_iter();
    let mut next = || values.next().unwrap_or(scan::Value::Null);
    let key_id = next().int().ok_or_else(|| missing("key id"))?;
    let subject = next().into_bytes().ok_or_else(|| missing("subject"))?;
    let wrapped = next().into_bytes().ok_or_else(|| missing("wrapped DEK"))?;
    let version = next().int().ok_or_else(|| missing("root-key version"))? as i32;
    // NULL before 0.6.0, when every DEK is a default DEK.
    let purpose = Some(next().int().unwrap_or(0) as i32);
    Ok(Some(KeyRow { key_id, subject, wrapped, version, purpose }))
}

/// Unwrap a row's DEK and cache it, unless the cache was flushed since generation `seen`.
fn unwrap_and_cache(row: &KeyRow, seen: u64) -> Result<Rc<DataKey>, ShredError> {
    let dek = Rc::new(row.unwrap_dek()?);
    match row.purpose {
        Some(purpose) => cache::insert(row.key_id, &row.subject, purpose, dek.clone(), seen),
        None => cache::insert_by_id(row.key_id, &row.subject, dek.clone(), seen),
    }
    Ok(dek)
}

/// The DEK with `key_id`, or `None` when it does not exist (its data subject was erased, in a
/// transaction committed before this call, or earlier in this one). A key id that names no DEK
/// is not proof of an erasure: use [`dek_by_id`] to open values.
pub fn live_dek(key_id: i64) -> Result<Option<Rc<DataKey>>, ShredError> {
    cache::accept_invalidations();
    if let Some(dek) = cache::get_by_id(key_id) {
        return Ok(Some(dek));
    }
    read_dek(key_id)
}

/// [`live_dek`] past the cache: read the key store (latest snapshot), and cache what it finds.
fn read_dek(key_id: i64) -> Result<Option<Rc<DataKey>>, ShredError> {
    let seen = cache::generation();
    match lookup(By::Id(key_id))? {
        Some(row) => Ok(Some(unwrap_and_cache(&row, seen)?)),
        None => Ok(None),
    }
}

/// The DEK that opens a value sealed under `key_id`: `None` only when this key store erased it
/// ([`erased_here`]); a key id it never held is [`ShredError::UnknownKey`] (the value comes
/// from another database or was altered), never a silent NULL. A cached DEK is returned before
/// anything else is looked at; a key id remembered as erased reads nothing.
pub fn dek_by_id(key_id: i64) -> Result<Option<Rc<DataKey>>, ShredError> {
    cache::accept_invalidations();
    if let Some(dek) = cache::get_by_id(key_id) {
        return Ok(Some(dek));
    }
    if cache::known_erased(key_id) {
        return Ok(None);
    }
    match read_dek(key_id)? {
        Some(dek) => Ok(Some(dek)),
        None if erased_here(key_id)? => Ok(None),
        None => Err(ShredError::UnknownKey),
    }
}

/// Whether this key store erased the DEK with `key_id`: its erasure record exists (latest
/// snapshot) or is queued by this transaction. A record committed by another transaction is
/// final and remembered by the backend ([`cache::known_erased`]), so later opens of the same
/// key id read nothing; once a transaction has looked up many erased key ids (a scan over
/// erased values), the backend reads every committed record at once. Records are written by every erasure since
/// 0.2.0 and by `shred.replay_erasures`, and are kept by pg_dump.
///
/// Erasures under the 0.1.0 schema leave no record. So a key id below [`KEY_ID_MIN`] (handed
/// out by the key store's sequence: before 0.4.0, or under the 0.1.0 schema) counts as erased
/// without one when the sequence handed it out (see [`SEQUENCE_HANDED_OUT`]); otherwise it was
/// never this key store's. Under the 0.1.0 schema, which
/// has no erasure log, every missing DEK counts as erased.
pub fn erased_here(key_id: i64) -> Result<bool, ShredError> {
    if super::deferred::erasure_queued(key_id) {
        return Ok(true);
    }
    if scan::relation(c"erasure_log").is_err() {
        return Ok(true);
    }
    match scan::committed(scan::Key::Erasure(key_id))? {
        Some(true) => {
            cache::remember_erased(key_id);
            if cache::erased_probe() {
                cache::remember_all_erased(scan::committed_erasures(cache::ERASED_IDS)?);
            }
            return Ok(true);
        }
        Some(false) => return Ok(true),
        None => {}
    }
    // The sequence is the coordinator's on a Citus cluster, and a statement Citus runs on a
    // worker cannot query the key store's tables there through the planner: such a key id is
    // unknown there (an error, never a silent NULL).
    if key_id >= KEY_ID_MIN || crate::pg::citus::internal_connection() {
        return Ok(false);
    }
    run(&SEQUENCE_HANDED_OUT, &[Arg::Int8(key_id), Arg::Int8(KEY_ID_MIN)], Mode::ReadLatest, 1, |rows| {
        Ok(rows.first().and_then(|r| r.bool(1)).unwrap_or(false))
    })
}

/// Whether the key store's sequence handed out `$1` (a pre-0.4.0 key id): it was called since
/// its random start (`is_called`: pg_dump keeps it), and `$1` lies between the lowest sequential
/// key id still known (a DEK or an erasure record; the start itself is not recorded) and the
/// last one handed out.
static SEQUENCE_HANDED_OUT: Plan = Plan::new(
    c"SELECT s.is_called AND $1 OPERATOR(pg_catalog.<=) s.last_value
             AND $1 OPERATOR(pg_catalog.>=) LEAST(
                 (SELECT pg_catalog.min(k.key_id) FROM shred.subject_key k WHERE k.key_id OPERATOR(pg_catalog.<) $2),
                 (SELECT pg_catalog.min(l.key_id) FROM shred.erasure_log l WHERE l.key_id OPERATOR(pg_catalog.<) $2))
        FROM shred.subject_key_key_id_seq s",
    &[pg_sys::INT8OID, pg_sys::INT8OID],
);
/// What the key store knows of `key_id`: whether its DEK exists (`Some(false)` when erased
/// here, `None` when never known here). Needs no root key.
pub fn key_state(key_id: i64) -> Result<Option<bool>, ShredError> {
    cache::accept_invalidations();
    if cache::known_erased(key_id) {
        return Ok(Some(false));
    }
    if key_exists(key_id)? {
        return Ok(Some(true));
    }
    Ok(if erased_here(key_id)? { Some(false) } else { None })
}

/// The DEK with `key_id` for a value stored in a row of `subject` (database encoding), or
/// `None` when this key store erased it (an unknown key id is [`ShredError::UnknownKey`], as in
/// [`dek_by_id`]). A DEK of another subject is refused exactly like a tampered value
/// ([`CryptoError::AuthenticationFailed`]): a value sealed for one subject never opens in
/// another subject's row, whatever AAD it was sealed with.
pub fn dek_for_row(key_id: i64, subject: &[u8]) -> Result<Option<Rc<DataKey>>, ShredError> {
    cache::accept_invalidations();
    if let Some((dek, same)) = cache::get_by_id_for(key_id, subject) {
        return if same { Ok(Some(dek)) } else { Err(CryptoError::AuthenticationFailed.into()) };
    }
    if cache::known_erased(key_id) {
        return Ok(None);
    }
    let seen = cache::generation();
    match lookup(By::Id(key_id))? {
        Some(row) if row.subject != subject => Err(CryptoError::AuthenticationFailed.into()),
        Some(row) => Ok(Some(unwrap_and_cache(&row, seen)?)),
        None if erased_here(key_id)? => Ok(None),
        None => Err(ShredError::UnknownKey),
    }
}

/// Read set-wise into the cache the DEKs of those of `key_ids` that are neither cached nor known
/// erased: one statement for all of them, whose key-id index scan visits the ids in order (a
/// probe per id lands on random index and table pages). For callers that hold many values at
/// once (`shred.check()`): at most half the cache's size of ids per call is useful, the rest is
/// skipped. Ids without a DEK are left to [`dek_by_id`] (erased or unknown).
pub fn prefetch(key_ids: &[i64]) -> Result<(), ShredError> {
    cache::accept_invalidations();
    let room = prefetch_room();
    let mut wanted: Vec<i64> = key_ids.iter().copied().filter(|&id| !cache::contains(id) && !cache::known_erased(id)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted.truncate(room);
    if wanted.is_empty() {
        return Ok(());
    }
    let seen = cache::generation();
    let rows = run(&KEYS_BY_ID, &[Arg::Int8Array(&wanted)], Mode::ReadLatest, 0, |rows| {
        rows.iter().map(KeyRow::from_row).collect::<Result<Vec<KeyRow>, ShredError>>()
    })?;
    // A DEK that does not unwrap is left for the value's own open to report (or, in
    // `shred.check()`, to count): a prefetch never fails where the per-value path would not.
    for row in rows {
        if let Ok(dek) = row.unwrap_dek() {
            cache::insert_by_id(row.key_id, &row.subject, Rc::new(dek), seen);
        }
    }
    Ok(())
}

/// How many key ids one [`prefetch`] reads at the most: half of what the cache holds, by count
/// and by memory.
pub fn prefetch_room() -> usize {
    cache::room() / 2
}

/// The DEK of `subject` for `purpose` (0: its default DEK) if it has one; never creates one.
pub fn existing_dek(subject: &Subject<'_>, purpose: i32) -> Result<Option<Rc<DataKey>>, ShredError> {
    Ok(existing_key(subject, purpose)?.map(|(_, dek)| dek))
}

/// [`existing_dek`] with its key id.
pub fn existing_key(subject: &Subject<'_>, purpose: i32) -> Result<Option<(i64, Rc<DataKey>)>, ShredError> {
    cache::accept_invalidations();
    if let Some(hit) = cache::get_by_subject(subject.db(), purpose) {
        return Ok(Some(hit));
    }
    let seen = cache::generation();
    match lookup(By::Subject(subject.db(), purpose))? {
        Some(row) => Ok(Some((row.key_id, unwrap_and_cache(&row, seen)?))),
        None => Ok(None),
    }
}

/// Whether a DEK with `key_id` exists (latest snapshot). Needs no root key.
pub fn key_exists(key_id: i64) -> Result<bool, ShredError> {
    Ok(scan::fetch(scan::Key::Id(key_id), &[])?.is_some())
}

/// The stored row of root-key `version`, if registered. Cached per backend once read (see
/// `cache::version_row`).
fn version_row(version: i32) -> Result<Option<cache::VersionRow>, ShredError> {
    if let Some(row) = cache::version_row(version) {
        return Ok(Some(row));
    }
    let row = scan::fetch(scan::Key::Version(version), &[col::SALT, col::KEY_CHECK, col::RETIRED_AT])?.and_then(|r| {
        let mut values = r.into_iter();
        Some(cache::VersionRow {
            salt: values.next()?.into_bytes()?,
            key_check: values.next()?.into_bytes()?,
            retired: !matches!(values.next()?, scan::Value::Null),
        })
    });
    if let Some(r) = &row {
        cache::set_version_row(version, r.clone());
    }
    Ok(row)
}

/// The root-key version new DEKs are wrapped under (the keyring's newest) and its row,
/// registering it on first use. Fails closed when the keyring's key does not match, and
/// refuses a retired version.
fn current_version() -> Result<(i32, cache::VersionRow), ShredError> {
    let version = root::newest_version()?;
    let row = match version_row(version)? {
        Some(row) => row,
        None => {
            register_version(version)?;
            version_row(version)?
                .ok_or(ShredError::Serialization("a root-key version registered concurrently is not visible"))?
        }
    };
    if row.retired {
        return Err(ShredError::VersionRetired(version));
    }
    Ok((version, row))
}

/// Register the keyring's root-key `version` (salt and key-check value) so that DEKs can be
/// wrapped under it. Refused unless the keyring is this database's: every registered version
/// the keyring holds must match its key-check value, and every registered version it lacks
/// must wrap no DEK. A version number below a registered one is refused too: versions are
/// registered in ascending order, which the erasure horizon relies on.
fn register_version(version: i32) -> Result<(), ShredError> {
    let registered = run(&VERSION_USAGE, &[], Mode::ReadLatest, 0, |rows| {
        rows.iter()
            .map(|r| {
                Ok((
                    r.int4(1).ok_or_else(|| missing("version"))?,
                    r.bytes(2).ok_or_else(|| missing("salt"))?,
                    r.bytes(3).ok_or_else(|| missing("key-check value"))?,
                    r.int8(4).unwrap_or(0),
                ))
            })
            .collect::<Result<Vec<_>, ShredError>>()
    })?;
    for (v, salt, key_check, deks) in &registered {
        match root::key_matches(*v, salt, key_check)? {
            Some(false) => return Err(ShredError::RootKeyMismatch(*v)),
            None if *deks > 0 => return Err(ShredError::VersionNotInKeyring(*v)),
            _ => {}
        }
        if *v > version {
            return Err(ShredError::KeyringBehind(version, *v));
        }
    }
    let (salt, key_check) = root::new_version_material(version)?;
    run(
        &INSERT_VERSION,
        &[Arg::Int4(version), Arg::Bytes(&salt), Arg::Bytes(&key_check)],
        Mode::Write,
        0,
        |_| Ok(()),
    )?;
    // SAFETY: plain call; makes the row visible to the next latest-snapshot read.
    unsafe { pg_sys::CommandCounterIncrement() };
    Ok(())
}


/// How often key creation draws again for subjects whose new row was not inserted (created
/// concurrently, or a key id already taken) before giving up with 40001.
const CREATE_ATTEMPTS: usize = 4;

/// New key ids for `n` DEKs: random (see [`KEY_ID_MIN`]), or from the sequence under the 0.1.0
/// schema, where erasures leave no record and `erased_here` relies on the sequence.
fn new_key_ids(n: usize, recorded: bool) -> Result<Vec<i64>, ShredError> {
    if recorded {
        return (0..n).map(|_| random_key_id()).collect();
    }
    run(&NEXT_KEY_IDS, &[Arg::Int8(n as i64)], Mode::Write, 0, |rows| {
        rows.iter().map(|r| r.int8(1).ok_or_else(|| missing("key id"))).collect()
    })
}

/// A new random DEK for each of `subjects`, wrapped under the newest root-key version for its
/// key id and subject (both bound into the AAD). Returns the version and the wrapped DEKs.
fn generate_wrapped(subjects: &[&Subject<'_>], ids: &[i64]) -> Result<(i32, Vec<DataKey>, Vec<Vec<u8>>), ShredError> {
    let (version, row) = current_version()?;
    let mut deks = Vec::with_capacity(subjects.len());
    let mut wrapped = Vec::with_capacity(subjects.len());
    root::with_kek(version, &row.salt, &row.key_check, |kek| {
        for (subject, key_id) in subjects.iter().zip(ids) {
            let dek = DataKey::generate()?;
            wrapped.push(kek.wrap(&dek, *key_id as u64, subject.utf8())?);
            deks.push(dek);
        }
        Ok(())
    })?;
    Ok((version, deks, wrapped))
}

/// Generate, wrap and insert, in one statement, a new DEK for each of `subjects` (database
/// encoding, checked, distinct). Returns (position in
/// `subjects`, key id, DEK) of the rows inserted; a subject given a DEK concurrently, or whose
/// drawn key id is in use or erased, is left out and the caller looks again.
///
/// The rows go in first by a plain `INSERT` in a subtransaction: without `ON CONFLICT` each
/// row costs its two index insertions and no conflict pre-checks. Only when that meets a unique
/// violation (a subject created concurrently, or a drawn key id in use) is it rolled back and
/// the statement run again with `ON CONFLICT DO NOTHING`.
fn insert_new(subjects: &[&Subject<'_>]) -> Result<Vec<(usize, i64, DataKey)>, ShredError> {
    let ids = new_key_ids(subjects.len(), true)?;
    let (version, deks, wrapped) = generate_wrapped(subjects, &ids)?;
    let texts: Vec<Vec<u8>> = subjects.iter().map(|s| s.db().to_vec()).collect();
    let args = [Arg::Int8Array(&ids), Arg::TextArray(&texts), Arg::ByteaArray(&wrapped), Arg::Int4(version)];
    let returned = |rows: &[super::spi::Row]| Ok(rows.iter().filter_map(|r| r.int8(1)).collect::<std::collections::HashSet<i64>>());
    let unique_violation = |code| code == pgrx::PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION;
    let inserted = match crate::pg::subxact::attempt(|| run(&INSERT_KEYS_FAST, &args, Mode::Write, 0, returned), unique_violation) {
        Ok(inserted) => inserted?,
        Err(_) => run(&INSERT_KEYS, &args, Mode::Write, 0, returned)?,
    };
    // SAFETY: plain call; makes the new rows visible to later reads in this statement.
    unsafe { pg_sys::CommandCounterIncrement() };
    Ok(ids
        .into_iter()
        .zip(deks)
        .enumerate()
        .filter(|(_, (id, _))| inserted.contains(id))
        .map(|(i, (id, dek))| (i, id, dek))
        .collect())
}

/// Insert one new DEK for `subject` and `purpose` (the first seal): `None` when another
/// transaction created that DEK first (the caller reads it), or the drawn key id was taken.
/// A purpose DEK's wrapping binds the key id and subject as a default DEK's does: the key id
/// names one DEK, whatever its purpose.
fn insert_one(subject: &Subject<'_>, purpose: i32) -> Result<Option<(i64, DataKey)>, ShredError> {
    let recorded = scan::relation(c"erasure_log").is_ok();
    if purpose != 0 && !scan::purposes_installed()? {
        return Err(ShredError::NotReady("purposes need pg_shred 0.6.0: run ALTER EXTENSION pg_shred UPDATE".into()));
    }
    let ids = new_key_ids(1, recorded)?;
    let key_id = *ids.first().ok_or_else(|| missing("key id"))?;
    let (version, mut deks, wrapped) = generate_wrapped(&[subject], &ids)?;
    let wrapped = wrapped.first().ok_or_else(|| missing("wrapped DEK"))?;
    let args = [Arg::Int8(key_id), Arg::Bytes(subject.db()), Arg::Bytes(wrapped), Arg::Int4(version), Arg::Int4(purpose)];
    let plan = match (purpose, recorded) {
        (0, true) => &INSERT_KEY,
        (0, false) => &INSERT_KEY_OLD,
        _ => &INSERT_PURPOSE_KEY,
    };
    let args = if purpose == 0 { &args[..4] } else { &args[..] };
    let inserted = run(plan, args, Mode::Write, 0, |rows| Ok(!rows.is_empty()))?;
    // SAFETY: plain call; makes the new row visible to later reads in this statement.
    unsafe { pg_sys::CommandCounterIncrement() };
    Ok(if inserted { deks.pop().map(|dek| (key_id, dek)) } else { None })
}

/// The key id and DEK of `subject` for `purpose` (0: its default DEK), creating and storing a
/// new random DEK on first use. Race-safe: concurrent first seals of one subject end with one
/// DEK per purpose. Whether a purpose DEK may be created (consent) is the caller's to check.
pub fn get_or_create(subject: &Subject<'_>, purpose: i32) -> Result<(i64, Rc<DataKey>), ShredError> {
    cache::accept_invalidations();
    if let Some(hit) = cache::get_by_subject(subject.db(), purpose) {
        return Ok(hit);
    }
    let seen = cache::generation();
    for _ in 0..CREATE_ATTEMPTS {
        if let Some(row) = lookup(By::Subject(subject.db(), purpose))? {
            // A DEK that existed, or one another transaction created first and committed.
            return Ok((row.key_id, unwrap_and_cache(&row, seen)?));
        }
        if purpose != 0 {
            hold_default(subject)?;
        }
        if let Some((key_id, dek)) = insert_one(subject, purpose)? {
            // Cached at once; an abort of this (sub)transaction flushes the cache.
            let dek = Rc::new(dek);
            cache::insert(key_id, subject.db(), purpose, dek.clone(), seen);
            return Ok((key_id, dek));
        }
    }
    Err(ShredError::Serialization("a DEK created concurrently is not visible"))
}

/// The subject's default DEK, locked (`FOR KEY SHARE`) until this transaction ends.
static LOCK_DEFAULT_KEY: Plan = Plan::new(
    c"SELECT key_id FROM shred.subject_key
       WHERE subject OPERATOR(pg_catalog.=) $1 AND purpose_id OPERATOR(pg_catalog.=) 0 FOR KEY SHARE",
    &[pg_sys::TEXTOID],
);

/// Before a purpose DEK of `subject` is created: make sure the subject has a default DEK, and
/// hold it (KEY SHARE) until this transaction ends. An erasure of the whole subject deletes the
/// default DEK, so the two serialize on it: an erasure that comes first makes the creation wait
/// and then create the subject anew (after the erasure, as a new first seal would), or fail with
/// 40001 under a transaction snapshot; one that comes second waits, and then finds the new
/// purpose DEK under the latest snapshot (see [`delete_until_gone`]).
fn hold_default(subject: &Subject<'_>) -> Result<(), ShredError> {
    for _ in 0..CREATE_ATTEMPTS {
        get_or_create(subject, 0)?;
        let held = run(&LOCK_DEFAULT_KEY, &[Arg::Bytes(subject.db())], Mode::Write, 1, |rows| Ok(!rows.is_empty()))?;
        if held {
            return Ok(());
        }
        // Erased by a transaction that committed meanwhile: its invalidation drops the cached
        // default DEK at the next lookup, which creates it anew.
    }
    Err(ShredError::Serialization("the data subject was erased concurrently"))
}

/// Create the DEKs of every subject in `subjects` that has none, set-based: one `INSERT` of the
/// new DEKs per [`CREATE_CHUNK`] subjects, and a lookup and another `INSERT` only for subjects
/// that already had one or lost a race (created concurrently: theirs is kept) or drew a key id
/// in use (see [`create_chunk`]). Returns how many DEKs this call created. The new DEKs are
/// cached (the cache keeps the newest).
pub fn create_keys(subjects: &[Subject<'_>]) -> Result<i64, ShredError> {
    cache::accept_invalidations();
    let seen = cache::generation();
    let mut all: Vec<&Subject<'_>> = subjects.iter().collect();
    all.sort_unstable_by(|a, b| a.db().cmp(b.db()));
    all.dedup_by(|a, b| a.db() == b.db());
    let mut created = 0i64;
    // Chunks bound the memory of DEKs held at once (about 1.2 KiB each, with their key schedule).
    for chunk in all.chunks(CREATE_CHUNK) {
        created += create_chunk(chunk.to_vec(), seen)?;
    }
    Ok(created)
}

/// Subjects whose DEKs [`create_keys`] creates with one statement at the most.
const CREATE_CHUNK: usize = 10_000;

/// [`create_keys`] of at most [`CREATE_CHUNK`] distinct subjects. The first attempt inserts
/// them all without looking first (a bulk load's subjects are new); when one has a DEK already,
/// that attempt is rolled back (see [`insert_new`]) and the next ones insert only the subjects
/// that a lookup finds without one.
fn create_chunk(mut wanted: Vec<&Subject<'_>>, seen: u64) -> Result<i64, ShredError> {
    let mut created = 0i64;
    for attempt in 0..CREATE_ATTEMPTS {
        if attempt > 0 {
            let list: Vec<Vec<u8>> = wanted.iter().map(|s| s.db().to_vec()).collect();
            let plan = if scan::purposes_installed()? { &HAVE_DEFAULT_KEYS } else { &HAVE_KEYS };
            let have = run(plan, &[Arg::TextArray(&list)], Mode::ReadLatest, 0, |rows| {
                Ok(rows.iter().filter_map(|r| r.bytes(1)).collect::<std::collections::HashSet<Vec<u8>>>())
            })?;
            wanted.retain(|s| !have.contains(s.db()));
            if wanted.is_empty() {
                return Ok(created);
            }
        }
        let made = insert_new(&wanted)?;
        created += made.len() as i64;
        let mut done = vec![false; wanted.len()];
        for (i, key_id, dek) in made {
            cache::insert_wanted(key_id, wanted[i].db(), 0, Rc::new(dek), seen);
            done[i] = true;
        }
        let mut flags = done.into_iter();
        wanted.retain(|_| !flags.next().unwrap_or(true));
        if wanted.is_empty() {
            return Ok(created);
        }
    }
    Err(ShredError::Serialization("DEKs created concurrently are not visible"))
}

/// Whether statements of this transaction share one snapshot (REPEATABLE READ, SERIALIZABLE).
fn uses_transaction_snapshot() -> bool {
    // SAFETY: plain read of the backend's isolation level.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// How often a READ COMMITTED erasure retries when a DEK appeared after its statement began.
const ERASE_ATTEMPTS: usize = 3;

/// Run `delete` (one DELETE statement, returning how many DEKs it deleted) until every
/// targeted DEK is gone: until `left` finds none under the latest snapshot. A DEK committed by
/// another transaction after the DELETE's snapshot (a purpose DEK whose creation held the
/// subject's default DEK, which the DELETE waited for: see [`hold_default`]) is deleted by a
/// retry with a fresh snapshot in READ COMMITTED; under a transaction snapshot it cannot be,
/// so the erasure fails with 40001 instead of leaving the subject readable while reporting
/// success. A deleted row stays locked by this transaction, so no other can create that DEK
/// again (or a purpose DEK beside a deleted default DEK) before it ends.
fn delete_until_gone(
    mut delete: impl FnMut() -> Result<i64, ShredError>,
    mut left: impl FnMut() -> Result<bool, ShredError>,
) -> Result<i64, ShredError> {
    let mut total = 0;
    for _ in 0..ERASE_ATTEMPTS {
        total += delete()?;
        // SAFETY: plain call; later reads in this statement see the deletion.
        unsafe { pg_sys::CommandCounterIncrement() };
        if !left()? {
            return Ok(total);
        }
        if uses_transaction_snapshot() {
            break;
        }
    }
    Err(ShredError::Serialization("a data subject's DEK was created by a transaction this one cannot see"))
}

/// Delete every DEK of `subject` (database encoding: its default DEK and its purpose DEKs), in
/// the caller's transaction, and queue their erasure records (of the whole subject) and the
/// deletion of their blind-index terms (written set-based before COMMIT: see
/// [`super::deferred`]). True when a DEK was deleted. This backend's cache loses only the
/// erased DEKs (other backends drop theirs at COMMIT).
pub fn erase(subject: &Subject<'_>, before: Hook<'_>, after: Hook<'_>) -> Result<bool, ShredError> {
    before(&[subject])?;
    let mut erased = Vec::new();
    let one = [subject.db().to_vec()];
    let deleted = delete_until_gone(
        || {
            cache::deleting(|| {
                run(&DELETE_KEY, &[Arg::Bytes(subject.db())], Mode::Write, 0, |rows| {
                    erased.extend(rows.iter().filter_map(|r| r.int8(1)).map(|id| (id, subject.db().to_vec(), None)));
                    Ok(rows.len() as i64)
                })
            })
        },
        || run(&ANY_KEY_LEFT, &[Arg::TextArray(&one)], Mode::ReadLatest, 1, |rows| Ok(!rows.is_empty())),
    )?;
    let key_ids: Vec<i64> = erased.iter().map(|(id, _, _)| *id).collect();
    cache::evict(&key_ids);
    after_erasure(&erased)?;
    after(&[subject])?;
    Ok(deleted > 0)
}

/// Delete the DEK of `subject` for `purpose` (not 0) only, as [`erase`] does (in the caller's
/// transaction, recorded as an erasure of that purpose, its blind-index terms deleted). The
/// subject's default DEK and other purposes' DEKs stay. True when a DEK was deleted.
pub fn erase_purpose(subject: &Subject<'_>, purpose: i32) -> Result<bool, ShredError> {
    if purpose == 0 {
        return Err(ShredError::Internal("erase_purpose of the default DEK"));
    }
    let mut erased = Vec::new();
    let deleted = delete_until_gone(
        || {
            cache::deleting(|| {
                run(&DELETE_PURPOSE_KEY, &[Arg::Bytes(subject.db()), Arg::Int4(purpose)], Mode::Write, 0, |rows| {
                    erased.extend(rows.iter().filter_map(|r| r.int8(1)).map(|id| (id, subject.db().to_vec(), Some(purpose))));
                    Ok(rows.len() as i64)
                })
            })
        },
        || Ok(lookup(By::Subject(subject.db(), purpose))?.is_some()),
    )?;
    let key_ids: Vec<i64> = erased.iter().map(|(id, _, _)| *id).collect();
    cache::evict(&key_ids);
    after_erasure(&erased)?;
    Ok(deleted > 0)
}

/// Reserved subject of the key behind the subject digests of erasure records.
const AUDIT_SUBJECT: &[u8] = b"pg_shred:audit";

fn audit_subject() -> Result<Subject<'static>, ShredError> {
    Subject::reserved(AUDIT_SUBJECT)
}

/// When `subject` (database encoding) was last erased, as a `timestamptz` datum, if the
/// erasure log records it.
pub fn last_erasure(subject: &Subject<'_>) -> Result<Option<pg_sys::Datum>, ShredError> {
    if scan::relation(c"erasure_log").is_err() {
        return Ok(None);
    }
    super::deferred::flush()?;
    let Some(digest) = existing_subject_digest(subject)? else { return Ok(None) };
    let plan = if scan::purposes_installed()? { &LAST_WHOLE_ERASURE } else { &LAST_ERASURE };
    run(plan, &[Arg::Bytes(&digest)], Mode::ReadLatest, 1, |rows| Ok(rows.first().and_then(|r| r.int8(1))))
        .map(|us| us.map(pg_sys::Datum::from))
}

/// The keyed digest of `subject` that erasure records and consent records hold (HMAC-SHA256
/// under the key store's audit key, see [`crate::crypto::audit`]), creating the audit key on
/// first use.
pub fn subject_digest(subject: &Subject<'_>) -> Result<[u8; 32], ShredError> {
    let key = get_or_create(&audit_subject()?, 0)?.1;
    Ok(crate::crypto::audit::DigestKey::new(&key).digest(subject.utf8()))
}

/// [`subject_digest`], or `None` while the audit key does not exist (nothing was ever recorded
/// under any digest): never creates it.
pub fn existing_subject_digest(subject: &Subject<'_>) -> Result<Option<[u8; 32]>, ShredError> {
    Ok(digest_key()?.map(|key| key.digest(subject.utf8())))
}

/// The key of subject digests, for many digests at once; `None` while the audit key does not
/// exist (never creates it).
pub fn digest_key() -> Result<Option<crate::crypto::audit::DigestKey>, ShredError> {
    Ok(existing_dek(&audit_subject()?, 0)?.map(|key| crate::crypto::audit::DigestKey::new(&key)))
}

/// What follows every deletion of DEKs, in the same transaction: queue, for each erased
/// (key id, subject, purpose when the erasure was of one purpose only), its erasure record
/// (the key id, the time, that purpose, and the subject's keyed digest,
/// never the subject: the proof of when a subject was erased, and what tells an erased DEK
/// from a lost one; none before the log exists, 0.1.0 schema) and the deletion of the
/// blind-index terms stored with the key id. Nothing outside pg_shred's own tables is read,
/// written or locked: row tokens left in protected tables were keyed by the erased DEKs and
/// cannot be recomputed (see `terms`).
fn after_erasure(erased: &[(i64, Vec<u8>, Option<i32>)]) -> Result<(), ShredError> {
    if erased.is_empty() {
        return Ok(());
    }
    let digest_key = if scan::relation(c"erasure_log").is_ok() {
        Some(crate::crypto::audit::DigestKey::new(&get_or_create(&audit_subject()?, 0)?.1))
    } else {
        None
    };
    for (key_id, subject, purpose) in erased {
        let digest = match &digest_key {
            Some(key) => Some(key.digest(&server_to_utf8(subject, "subject")?).to_vec()),
            None => None,
        };
        super::deferred::erased(*key_id, digest, *purpose)?;
    }
    Ok(())
}

/// pg_shred's own keys (reserved `pg_shred:` subjects) are never deleted by key id.
static DELETE_KEY_IDS: Plan = Plan::new(
    c"DELETE FROM shred.subject_key
       WHERE key_id OPERATOR(pg_catalog.=) ANY ($1) AND NOT pg_catalog.starts_with(subject, 'pg_shred:')
      RETURNING key_id, subject",
    &[pg_sys::INT8ARRAYOID],
);

/// [`DELETE_KEY_IDS`], 0.6.0 on: with each DEK's purpose.
static DELETE_KEY_IDS_PURPOSES: Plan = Plan::new(
    c"DELETE FROM shred.subject_key
       WHERE key_id OPERATOR(pg_catalog.=) ANY ($1) AND NOT pg_catalog.starts_with(subject, 'pg_shred:')
      RETURNING key_id, subject, purpose_id",
    &[pg_sys::INT8ARRAYOID],
);

/// Erasure records, without a subject digest, for key ids this key store does not hold and has
/// no record of (from 0.4.0 on, when `subject_digest` may be NULL): DEKs created and erased
/// after the restored backup was taken.
static RECORD_UNHELD: Plan = Plan::new(
    c"INSERT INTO shred.erasure_log (key_id, subject_digest)
      SELECT DISTINCT i.id, NULL::pg_catalog.bytea FROM pg_catalog.unnest($1::pg_catalog.int8[]) i (id)
       WHERE i.id OPERATOR(pg_catalog.>) 0
         AND NOT EXISTS (SELECT FROM shred.subject_key k WHERE k.key_id OPERATOR(pg_catalog.=) i.id)
         AND NOT (SELECT a.attnotnull FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid OPERATOR(pg_catalog.=) 'shred.erasure_log'::pg_catalog.regclass
                     AND a.attname OPERATOR(pg_catalog.=) 'subject_digest')
      ON CONFLICT (key_id) DO NOTHING",
    &[pg_sys::INT8ARRAYOID],
);

/// Erase again, after a restore of an older backup, the DEKs with the key ids in `key_ids` (a
/// `bigint[]` datum, e.g. the key ids of a newer `shred.erasure_log`): key ids are never reused,
/// so this erases exactly the subjects erased since the backup. Records the erasures and clears
/// blind-index terms as `shred.erase` does; key ids this key store never held are recorded as
/// erased too (without a subject digest), so values sealed under them open as erased rather
/// than unknown. pg_shred's own keys are never deleted. `after` gets each deleted DEK's
/// (subject, purpose: `None` for a default DEK). Returns how many DEKs were deleted.
pub fn replay_erasures(key_ids: pg_sys::Datum, after: impl FnOnce(&[(Vec<u8>, Option<i32>)]) -> Result<(), ShredError>) -> Result<i64, ShredError> {
    super::deferred::flush()?;
    run(&RECORD_UNHELD, &[Arg::Datum(key_ids)], Mode::Write, 0, |_| Ok(()))?;
    // A replayed purpose DEK is recorded as an erasure of its purpose (the subject's default
    // DEK is replayed on its own when the whole subject was erased).
    let plan = if scan::purposes_installed()? { &DELETE_KEY_IDS_PURPOSES } else { &DELETE_KEY_IDS };
    let erased = run(plan, &[Arg::Datum(key_ids)], Mode::Write, 0, |rows| {
        rows.iter()
            .map(|r| {
                Ok((
                    r.int8(1).ok_or_else(|| missing("key id"))?,
                    r.bytes(2).ok_or_else(|| missing("subject"))?,
                    r.int4(3).filter(|&p| p != 0),
                ))
            })
            .collect::<Result<Vec<_>, ShredError>>()
    })?;
    // A purpose DEK replayed together with its subject's default DEK was erased with the whole
    // subject (as `shred.erase(subject)` records it), not alone.
    let whole: std::collections::HashSet<Vec<u8>> = erased.iter().filter(|(_, _, p)| p.is_none()).map(|(_, s, _)| s.clone()).collect();
    let erased: Vec<(i64, Vec<u8>, Option<i32>)> = erased
        .into_iter()
        .map(|(id, s, p)| {
            let p = if whole.contains(&s) { None } else { p };
            (id, s, p)
        })
        .collect();
    if !erased.is_empty() {
        after_erasure(&erased)?;
        after(&erased.iter().map(|(_, s, p)| (s.clone(), *p)).collect::<Vec<_>>())?;
    }
    Ok(erased.len() as i64)
}

/// What an erasure of whole subjects runs for each slice of subjects, before it deletes their
/// DEKs (the consent ledger ends their consents: see `crate::purposes::consent`), and after,
/// in the same statement, while the deleted DEKs stay locked until the transaction ends
/// (legal holds are checked, end dates forgotten: see `crate::erasure`).
pub type Hook<'f> = &'f mut dyn FnMut(&[&Subject<'_>]) -> Result<(), ShredError>;

/// Subjects [`erase_many`] deletes with one statement at the most.
pub const ERASE_SLICE: usize = 10_000;

/// Delete the DEKs of every subject in `subjects`, in the caller's transaction, and queue their
/// erasure records and the deletion of their blind-index terms (as [`erase`]). Returns how many
/// DEKs were deleted.
///
/// Memory: `subjects` is taken [`ERASE_SLICE`] at a time, each slice deleted with one statement
/// whose rows, parameters and bookkeeping are freed before the next slice starts; the queued
/// records are written every [`super::deferred::BATCH`]. A million subjects thus take about
/// what ten thousand take, besides the caller's array. An ERROR in any slice (a bad subject
/// further on, a cancel) rolls back every slice with the caller's (sub)transaction: nothing is
/// erased half-way.
pub fn erase_many<'a>(subjects: impl Iterator<Item = Subject<'a>>, before: Hook<'_>, after: Hook<'_>) -> Result<i64, ShredError> {
    let mut subjects = subjects.peekable();
    let mut deleted = 0;
    while subjects.peek().is_some() {
        let slice: Vec<Subject<'a>> = subjects.by_ref().take(ERASE_SLICE).collect();
        deleted += erase_slice(&slice, &mut *before, &mut *after)?;
    }
    Ok(deleted)
}

/// [`erase_many`] of at most [`ERASE_SLICE`] subjects, with one DELETE. Returns how many DEKs
/// it deleted (a subject may have purpose DEKs besides its default DEK).
fn erase_slice(subjects: &[Subject<'_>], before: Hook<'_>, after: Hook<'_>) -> Result<i64, ShredError> {
    let refs: Vec<&Subject<'_>> = subjects.iter().collect();
    before(&refs)?;
    let list: Vec<Vec<u8>> = subjects.iter().map(|s| s.db().to_vec()).collect();
    let mut erased = Vec::new();
    delete_until_gone(
        || {
            run(&DELETE_KEYS, &[Arg::TextArray(&list)], Mode::Write, 0, |rows| {
                for r in rows {
                    erased.push((r.int8(1).ok_or_else(|| missing("key id"))?, r.bytes(2).ok_or_else(|| missing("subject"))?, None));
                }
                Ok(rows.len() as i64)
            })
        },
        || run(&ANY_KEY_LEFT, &[Arg::TextArray(&list)], Mode::ReadLatest, 1, |rows| Ok(!rows.is_empty())),
    )?;
    after_erasure(&erased)?;
    after(&refs)?;
    Ok(erased.len() as i64)
}

/// Purpose DEKs are deleted by key id only here: never a default DEK, nor pg_shred's own.
static DELETE_PURPOSE_KEY_IDS: Plan = Plan::new(
    c"DELETE FROM shred.subject_key
       WHERE key_id OPERATOR(pg_catalog.=) ANY ($1) AND purpose_id OPERATOR(pg_catalog.<>) 0
      RETURNING key_id, subject, purpose_id",
    &[pg_sys::INT8ARRAYOID],
);

/// Delete the purpose DEKs with the key ids in `key_ids` (default DEKs are never deleted by
/// this), in the caller's transaction, each recorded as an erasure of its purpose with its
/// blind-index terms deleted, as [`erase_purpose`] does. Returns each deleted DEK's subject
/// (database encoding), for the caller's checks, which run while the deleted DEKs stay locked.
pub fn erase_purpose_keys(key_ids: &[i64]) -> Result<Vec<Vec<u8>>, ShredError> {
    if key_ids.is_empty() {
        return Ok(Vec::new());
    }
    let erased = cache::deleting(|| {
        run(&DELETE_PURPOSE_KEY_IDS, &[Arg::Int8Array(key_ids)], Mode::Write, 0, |rows| {
            rows.iter()
                .map(|r| {
                    Ok((
                        r.int8(1).ok_or_else(|| missing("key id"))?,
                        r.bytes(2).ok_or_else(|| missing("subject"))?,
                        Some(r.int4(3).ok_or_else(|| missing("purpose"))?),
                    ))
                })
                .collect::<Result<Vec<_>, ShredError>>()
        })
    })?;
    let ids: Vec<i64> = erased.iter().map(|(id, _, _)| *id).collect();
    cache::evict(&ids);
    after_erasure(&erased)?;
    Ok(erased.into_iter().map(|(_, s, _)| s).collect())
}

/// Whether one of `roles` (OIDs) owns the pg_shred extension, its key table, the schema `shred`
/// or the schema the extension was created in: `DROP OWNED BY` such a role drops the key store.
pub fn owns_key_store(roles: &[i64]) -> Result<bool, ShredError> {
    run(&OWNS_KEY_STORE, &[Arg::Int8Array(roles)], Mode::ReadLatest, 1, |rows| Ok(!rows.is_empty()))
}

static OWNS_KEY_STORE: Plan = Plan::new(
    c"SELECT FROM pg_catalog.pg_extension e
       WHERE e.extname OPERATOR(pg_catalog.=) 'pg_shred' AND e.extowner::pg_catalog.int8 OPERATOR(pg_catalog.=) ANY ($1)
      UNION ALL
      SELECT FROM pg_catalog.pg_class c
       WHERE c.oid OPERATOR(pg_catalog.=) 'shred.subject_key'::pg_catalog.regclass
         AND c.relowner::pg_catalog.int8 OPERATOR(pg_catalog.=) ANY ($1)
      UNION ALL
      SELECT FROM pg_catalog.pg_namespace n
       WHERE (n.nspname OPERATOR(pg_catalog.=) 'shred'
              OR n.oid OPERATOR(pg_catalog.=) (SELECT e.extnamespace FROM pg_catalog.pg_extension e
                                                WHERE e.extname OPERATOR(pg_catalog.=) 'pg_shred'))
         AND n.nspowner::pg_catalog.int8 OPERATOR(pg_catalog.=) ANY ($1)",
    &[pg_sys::INT8ARRAYOID],
);

/// Whether dropping the schemas named `names` drops the key store: one is `shred`, or the
/// schema the extension was created in (the extension depends on it).
pub fn schemas_hold_key_store(names: &[Vec<u8>]) -> Result<bool, ShredError> {
    run(&SCHEMAS_HOLD_KEY_STORE, &[Arg::TextArray(names)], Mode::ReadLatest, 1, |rows| Ok(!rows.is_empty()))
}

static SCHEMAS_HOLD_KEY_STORE: Plan = Plan::new(
    c"SELECT FROM pg_catalog.pg_namespace n
       WHERE n.nspname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.name[])
         AND (n.nspname OPERATOR(pg_catalog.=) 'shred'
              OR n.oid OPERATOR(pg_catalog.=) (SELECT e.extnamespace FROM pg_catalog.pg_extension e
                                                WHERE e.extname OPERATOR(pg_catalog.=) 'pg_shred'))",
    &[pg_sys::TEXTARRAYOID],
);

/// How many data subjects' DEKs the key store holds (latest snapshot).
pub fn key_count() -> Result<i64, ShredError> {
    run(&KEY_COUNT, &[], Mode::ReadLatest, 1, |rows| Ok(rows.first().and_then(|r| r.int8(1)).unwrap_or(0)))
}

/// Fail closed unless the keyring is readable and its newest version matches its stored
/// key-check value (when that version is registered).
pub fn verify_root_key() -> Result<(), ShredError> {
    let version = root::newest_version()?;
    match version_row(version)? {
        Some(row) => root::with_kek(version, &row.salt, &row.key_check, |_| Ok(())),
        None => Ok(()),
    }
}

/// Whether this transaction is inside an explicit transaction block (BEGIN ... COMMIT).
fn in_transaction_block() -> bool {
    // SAFETY: plain read of the backend's transaction state.
    unsafe { pg_sys::IsTransactionBlock() }
}

/// What one step of a rotation did.
pub struct RewrapStep {
    /// The version DEKs are rewrapped under (the keyring's newest).
    pub target: i32,
    /// DEKs rewrapped by this step.
    pub rewrapped: i64,
    /// DEKs still wrapped under other versions the keyring holds.
    pub remaining: i64,
    /// (version, DEKs) still wrapped under versions the keyring lacks: they cannot be
    /// rewrapped until the version is put back.
    pub unreachable: Vec<(i32, i64)>,
    /// Whether nothing is left to rewrap (every DEK the keyring can reach is under `target`).
    pub done: bool,
}

/// Rewrap up to `batch_size` DEKs (in key id order, rows locked) that are wrapped under another
/// root-key version than the keyring's newest, under the newest. Each DEK is unwrapped under
/// its own verified version and wrapped again with a fresh nonce, for the same key id and
/// subject; the DEK itself, and so every envelope, is unchanged. Inside an explicit
/// transaction block, every remaining batch runs in this call (the caller cannot commit
/// between batches).
pub fn rewrap_batch(batch_size: i64) -> Result<RewrapStep, ShredError> {
    if batch_size < 1 {
        return Err(ShredError::InvalidParameter("batch_size must be at least 1"));
    }
    let (target, row) = current_version()?;
    let versions = root::keyring_versions()?;
    let mut rewrapped = 0i64;
    let done = loop {
        let rows = run(
            &PICK_FOR_REWRAP,
            &[Arg::Int4(target), Arg::Int4Array(&versions), Arg::Int8(batch_size)],
            Mode::Write,
            0,
            |rows| rows.iter().map(KeyRow::from_row).collect::<Result<Vec<_>, ShredError>>(),
        )?;
        for key in &rows {
            let dek = key.unwrap_dek()?;
            let subject = server_to_utf8(&key.subject, "subject")?;
            let wrapped = root::with_kek(target, &row.salt, &row.key_check, |kek| {
                Ok(kek.wrap(&dek, key.key_id as u64, &subject)?)
            })?;
            run(
                &UPDATE_WRAPPED,
                &[Arg::Int8(key.key_id), Arg::Bytes(&wrapped), Arg::Int4(target)],
                Mode::Write,
                0,
                |_| Ok(()),
            )?;
        }
        rewrapped += rows.len() as i64;
        // SAFETY: plain call; later reads see the rewrapped rows.
        unsafe { pg_sys::CommandCounterIncrement() };
        if (rows.len() as i64) < batch_size {
            break true;
        }
        if !in_transaction_block() {
            break false;
        }
    };
    let left = run(&NOT_UNDER, &[Arg::Int4(target)], Mode::Write, 0, |rows| {
        Ok(rows.iter().filter_map(|r| Some((r.int4(1)?, r.int8(2)?))).collect::<Vec<_>>())
    })?;
    let (remaining, unreachable): (Vec<_>, Vec<_>) = left.into_iter().partition(|(v, _)| versions.contains(v));
    Ok(RewrapStep { target, rewrapped, remaining: remaining.iter().map(|(_, n)| n).sum(), unreachable, done })
}

/// Retire root-key `version`: record that no DEK is wrapped under it any more, so it may be
/// removed from the keyring and destroyed (which ends the erasure horizon of copies made
/// while it wrapped DEKs). Refused while any DEK is wrapped under it, and for the keyring's
/// newest version (new DEKs are wrapped under it). The key table is locked (SHARE) until the
/// end of the transaction, so no DEK can be wrapped under it meanwhile. Returns false when it
/// was retired already.
pub fn retire_version(version: i32) -> Result<bool, ShredError> {
    if version_row(version)?.is_none() {
        return Err(ShredError::NotFound(format!("root-key version {version} is not registered in this database")));
    }
    if root::newest_version()? == version {
        return Err(ShredError::NotReady(format!(
            "root-key version {version} is the keyring's newest: new DEKs are wrapped under it; add a newer version and rotate first"
        )));
    }
    run(&LOCK_KEYS, &[], Mode::Write, 0, |_| Ok(()))?;
    let deks = run(&DEKS_UNDER, &[Arg::Int4(version)], Mode::Write, 1, |rows| {
        Ok(rows.first().and_then(|r| r.int8(1)).unwrap_or(0))
    })?;
    if deks > 0 {
        return Err(ShredError::NotReady(format!(
            "root-key version {version} still wraps {deks} DEKs; CALL shred.rotate_root_key() first"
        )));
    }
    let retired = run(&RETIRE_VERSION, &[Arg::Int4(version)], Mode::Write, 0, |_| {
        // SAFETY: set by the UPDATE just run on this connection.
        Ok(unsafe { pg_sys::SPI_processed } > 0)
    })?;
    // Other backends drop their cached version rows at COMMIT, and so see the retirement.
    // SAFETY: registers an invalidation message in the current transaction.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(scan::relation(c"root_key_version")?) };
    Ok(retired)
}

/// For each keyring version: (version, whether its key matches the registered key-check
/// value; `None` when the version is not registered).
pub fn keyring_status() -> Result<Vec<(i32, Option<bool>)>, ShredError> {
    root::keyring_versions()?
        .into_iter()
        .map(|v| {
            let matches = match version_row(v)? {
                Some(row) => root::key_matches(v, &row.salt, &row.key_check)?,
                None => None,
            };
            Ok((v, matches))
        })
        .collect()
}
