//! A data subject identifier as the key store takes it.
//!
//! Invariant: a [`Subject`] was checked once, where it entered (a SQL argument, a protected
//! row's subject column, one of pg_shred's own reserved subjects): at most [`MAX_SUBJECT_LEN`]
//! bytes, valid text (UTF-8 in a SQL_ASCII database), and under the reserved `pg_shred:` prefix
//! only when made by [`Subject::reserved`]. It carries both forms the key store needs: the bytes
//! in the database encoding (what `shred.subject_key.subject` stores and is looked up by) and
//! the UTF-8 bytes (what a wrapped DEK's AAD and an erasure record's digest bind, so keys and
//! records survive a restore into a database of another encoding).

use std::borrow::Cow;

use crate::error::{ShredError, MAX_SUBJECT_LEN};
use crate::pg::encoding::server_to_utf8;

/// Prefix of the subjects the key store reserves for pg_shred's own keys.
pub const RESERVED_PREFIX: &[u8] = b"pg_shred:";

pub struct Subject<'a> {
    db: &'a [u8],
    utf8: Cow<'a, [u8]>,
}

impl<'a> Subject<'a> {
    /// A data subject given by a user (database encoding). Errors: longer than
    /// [`MAX_SUBJECT_LEN`] bytes (54000), not valid text (22021), reserved prefix (22023).
    pub fn new(db: &'a [u8]) -> Result<Self, ShredError> {
        let subject = Self::checked(db)?;
        if db.starts_with(RESERVED_PREFIX) {
            return Err(ShredError::InvalidParameter("subjects starting with 'pg_shred:' are reserved for pg_shred's own keys"));
        }
        Ok(subject)
    }

    /// One of pg_shred's own subjects (`pg_shred:…`, e.g. a blind-index context's key).
    pub fn reserved(db: &'a [u8]) -> Result<Self, ShredError> {
        if !db.starts_with(RESERVED_PREFIX) {
            return Err(ShredError::Internal("a reserved subject without the reserved prefix"));
        }
        Self::checked(db)
    }

    fn checked(db: &'a [u8]) -> Result<Self, ShredError> {
        if db.len() > MAX_SUBJECT_LEN {
            return Err(ShredError::SubjectTooLong(db.len()));
        }
        Ok(Subject { db, utf8: server_to_utf8(db, "subject")? })
    }

    /// The subject in the database encoding.
    pub fn db(&self) -> &[u8] {
        self.db
    }

    /// The subject as UTF-8.
    pub fn utf8(&self) -> &[u8] {
        &self.utf8
    }
}
