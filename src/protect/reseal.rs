//! A protected column's values sealed again for the purpose the catalog now keeps it for
//! (`shred.set_purpose`, which has updated the catalog, and locked the view and the table
//! against writes, before calling `shred._reseal_column`).
//!
//! Invariants, once [`reseal`] returns (all in the caller's transaction: an ERROR leaves
//! nothing changed):
//! - every value of the column that opens is sealed under its row subject's DEK of the
//!   column's purpose (the default DEK for none), with the same AAD; a value already sealed
//!   under that DEK is left as it is, an erased value stays erased (no DEK is created for it),
//!   and a value that does not open in its row (altered, or sealed for another subject:
//!   `shred.check()` lists them) is left as it is;
//! - a searchable column's row token of each such value is keyed by that DEK, and its
//!   blind-index term is recorded with that DEK's key id and deleted for the DEK that sealed it
//!   before, so that erasing the new DEK leaves no link from the subject to the value. A term is
//!   deleted only when no other protected column shares the column's context (and so could
//!   hold the same term for the same subject);
//! - for a purpose that requires consent, a value of a subject without a confirmed consent
//!   fails the call (55000, [`crate::purposes::sealing_key`]).

use pgrx::pg_sys;

use super::{row, tokens};
use crate::crypto::envelope;
use crate::error::ShredError;
use crate::keys::subject::Subject;
use crate::keys::terms;

/// Seal the values of column `column` (its name, database encoding) of protected table `tbl`
/// again, as the module documentation says. Returns how many values were sealed again. Errors:
/// the column is not protected (42704); no consent (55000); no usable root key (F0000).
pub fn reseal(tbl: pg_sys::Oid, column: &[u8]) -> Result<i64, ShredError> {
    let t = tokens::table(tbl, Some(column))?;
    let [c] = t.columns.as_slice() else { return Err(ShredError::NotFound("the column is not a protected column of the table".into())) };
    let mut sets = vec![format!("{} = $2", c.quoted)];
    let mut types = vec![t.sealed];
    if let Some((bidx, _)) = &c.searchable {
        sets.push(format!("{bidx} = $3"));
        types.push(pg_sys::BYTEAOID);
    }
    // (blind index, key id) of the terms of the DEKs that sealed the values before
    let mut moved = Vec::new();
    let filter = format!("WHERE b.{} IS NOT NULL", c.quoted);
    let resealed = tokens::rewrite(&t, &filter, &sets, &types, |subject, stored| {
        let Some(Some(sealed)) = stored.first() else { return Ok(None) };
        // erased, or not a value of this row (shred.check() lists those): left as they are
        let Ok(Some(datum)) = row::try_open(sealed, subject, &c.context, c.kind)? else { return Ok(None) };
        let before = envelope::parse_any(sealed)?.key_id() as i64;
        let (key_id, dek) = crate::purposes::sealing_key(&Subject::new(subject)?, c.purpose.as_ref())?;
        if key_id == before {
            return Ok(None);
        }
        // SAFETY: a value of c.kind just opened.
        let value = unsafe { row::seal(&dek, key_id, subject, &c.context, datum, c.kind)? };
        let mut new = vec![Some(row::varlena_datum(&value))];
        if let Some((_, rule)) = &c.searchable {
            // SAFETY: as above.
            let text = unsafe { row::output(c.kind, datum) };
            let (index, token) = row::index_and_token(&dek, key_id, &c.context, &text, *rule)?;
            if c.own_context {
                moved.push((index.to_vec(), before));
            }
            new.push(Some(row::varlena_datum(&token)));
        }
        Ok(Some(new))
    })?;
    terms::forget(&moved)?;
    Ok(resealed)
}
