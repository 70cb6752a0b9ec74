//! Rewriting the rows of a protected table from their sealed values, as the table's owner: the
//! row tokens of its searchable columns ([`rebuild`]: for tables protected before row tokens
//! existed, 0.2.0 stored the blind index itself, run once by the upgrade), and one column's
//! values sealed again for another purpose ([`super::reseal`]).
//!
//! The table is read and written as its owner (security-restricted, pinned `search_path`), a
//! batch of rows at a time through a cursor, with two statements prepared once per call that
//! call no function: no EXECUTE right of the owner is needed, and the owner's code they may run
//! (triggers, index expressions) runs as the owner, never with the caller's rights. Values are
//! opened and sealed in Rust; a row's DEKs are those of the column's purpose
//! ([`crate::purposes::sealing_key`]: a purpose that requires consent needs the subject's
//! confirmed consent for a DEK to be created, 55000 otherwise).

use std::ffi::CString;

use pgrx::prelude::*;

use super::catalog_text;
use super::{owner, row};
use crate::crypto::blind::Normalization;
use crate::error::ShredError;
use crate::keys::spi::{run, with_role, Arg, Mode, Plan, TablePlan};
use crate::keys::subject::Subject;
use crate::purposes::Purpose;

/// Protected columns of one table (`$2` NULL: the searchable ones; else the one named `$2`). A
/// column's purpose id is read from the row's JSON, where it is missing (NULL) under a schema
/// older than 0.6.0, whose catalog has no `purpose_id`.
static COLUMNS: Plan = Plan::new(
    c"SELECT pg_catalog.quote_ident(pc.column_name), pg_catalog.quote_ident(pc.blind_index_column), pc.context,
             pc.normalization, shred._kind_oid(pc.plain_type)::pg_catalog.int8, t.subject_prefix,
             pg_catalog.quote_ident(t.subject_column),
             pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
             (pg_catalog.to_jsonb(pc) OPERATOR(pg_catalog.->>) 'purpose_id')::pg_catalog.int4,
             NOT EXISTS (SELECT FROM shred.protected_column o
                          WHERE o.context OPERATOR(pg_catalog.=) pc.context AND o.blind_index_column IS NOT NULL
                            AND NOT (o.relation OPERATOR(pg_catalog.=) pc.relation AND o.column_name OPERATOR(pg_catalog.=) pc.column_name)),
             'shred.sealed'::pg_catalog.regtype::pg_catalog.oid::pg_catalog.int8
        FROM shred.protected_column pc
        JOIN shred.protected_table t ON t.relation OPERATOR(pg_catalog.=) pc.relation
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pc.relation
        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
       WHERE pc.relation OPERATOR(pg_catalog.=) $1::pg_catalog.oid
         AND ($2 IS NULL AND pc.blind_index_column IS NOT NULL OR pc.column_name OPERATOR(pg_catalog.=) $2)
       ORDER BY pc.column_name",
    &[pg_sys::INT8OID, pg_sys::TEXTOID],
);

/// A protected column, as rewriting its rows needs it.
pub(super) struct Column {
    /// Its name, quoted.
    pub quoted: String,
    /// Its row-token column (quoted) and normalisation, when searchable.
    pub searchable: Option<(String, Normalization)>,
    pub context: Vec<u8>,
    /// The type its values are sealed and opened as.
    pub kind: pg_sys::Oid,
    /// The purpose it is kept for (`None`: the default DEK).
    pub purpose: Option<Purpose>,
    /// Whether no other protected column shares its context, and so its blind-index terms.
    pub own_context: bool,
}

/// A protected table and some of its columns.
pub(super) struct Table {
    owner: pg_sys::Oid,
    prefix: Vec<u8>,
    /// The subject column, quoted.
    subject_column: String,
    /// The table's name, schema-qualified and quoted.
    qualified: String,
    /// The OID of `shred.sealed`.
    pub sealed: pg_sys::Oid,
    pub columns: Vec<Column>,
}

/// Protected table `tbl` with its column named `column` (`None`: its searchable columns); no
/// column when there is none such.
pub(super) fn table(tbl: pg_sys::Oid, column: Option<&[u8]>) -> Result<Table, ShredError> {
    let (mut prefix, mut subject_column, mut qualified, mut sealed) = (Vec::new(), String::new(), String::new(), pg_sys::InvalidOid);
    let name = column.map_or(Arg::Null, Arg::Bytes);
    let columns = run(&COLUMNS, &[Arg::Int8(u32::from(tbl) as i64), name], Mode::Write, 0, |rows| {
        rows.iter()
            .map(|r| {
                prefix = r.bytes(6).unwrap_or_default();
                subject_column = catalog_text(r.bytes(7))?;
                qualified = catalog_text(r.bytes(8))?;
                sealed = pg_sys::Oid::from(r.int8(11).unwrap_or(0) as u32);
                let searchable = match r.bytes(2) {
                    None => None,
                    Some(bidx) => Some((
                        catalog_text(Some(bidx))?,
                        Normalization::from_name(&r.bytes(4).unwrap_or_default())
                            .ok_or(ShredError::Internal("a blind index without normalisation"))?,
                    )),
                };
                Ok((
                    Column {
                        quoted: catalog_text(r.bytes(1))?,
                        searchable,
                        context: r.bytes(3).unwrap_or_default(),
                        kind: pg_sys::Oid::from(r.int8(5).unwrap_or(0) as u32),
                        purpose: None,
                        own_context: r.bool(10).unwrap_or(false),
                    },
                    r.int4(9),
                ))
            })
            .collect::<Result<Vec<_>, ShredError>>()
    })?;
    // Purposes resolved once the catalog's rows are read (a lookup runs statements of its own).
    let columns = columns
        .into_iter()
        .map(|(c, purpose)| Ok(Column { purpose: purpose.map(crate::purposes::by_id).transpose()?, ..c }))
        .collect::<Result<Vec<_>, ShredError>>()?;
    Ok(Table { owner: owner::owner_of(tbl)?, prefix, subject_column, qualified, sealed, columns })
}

/// Rows of a protected table read at once by [`rewrite`], at the most.
const BATCH: i64 = 10_000;

/// Read every row of `t` (`filter`: a WHERE clause over alias `b`, or empty) as its owner, with
/// its subject and the stored values of `t.columns` (envelope bytes, NULL as `None`), and for
/// each row for which `change` gives values, write them into that row by `sets` (`<column> =
/// $<n>`, n from 2, parameters of `types`). Rows without a subject are left alone. Returns how
/// many rows were written.
pub(super) fn rewrite(
    t: &Table,
    filter: &str,
    sets: &[String],
    types: &[pg_sys::Oid],
    mut change: impl FnMut(&[u8], &[Option<Vec<u8>>]) -> Result<Option<Vec<Option<pg_sys::Datum>>>, ShredError>,
) -> Result<i64, ShredError> {
    let (qualified, subject) = (&t.qualified, &t.subject_column);
    let read: Vec<String> = t.columns.iter().map(|c| format!(", b.{}", c.quoted)).collect();
    let select = format!(
        "SELECT b.tableoid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) b.ctid::pg_catalog.text,
                b.{subject}::pg_catalog.text{} FROM {qualified} b {filter}",
        read.concat()
    );
    let update = format!(
        "UPDATE {qualified} SET {} WHERE tableoid OPERATOR(pg_catalog.=) pg_catalog.split_part($1, ':', 1)::pg_catalog.oid
            AND ctid OPERATOR(pg_catalog.=) pg_catalog.split_part($1, ':', 2)::pg_catalog.tid",
        sets.join(", ")
    );
    let sql = |s: String| CString::new(s).map_err(|_| ShredError::Internal("a statement with a zero byte"));
    let (select, update) = (sql(select)?, sql(update)?);
    let mut argtypes = vec![pg_sys::TEXTOID];
    argtypes.extend_from_slice(types);
    with_role(t.owner, || {
        let select = TablePlan::prepare(&select, &[], c"pg_catalog, pg_temp")?;
        let update = TablePlan::prepare(&update, &argtypes, c"pg_catalog, pg_temp")?;
        let mut written = 0i64;
        select.scan(&mut [], &[], BATCH, |rows| {
            for r in rows {
                let (Some(at), Some(value)) = (r.bytes(1), r.bytes(2)) else { continue };
                let mut subject = t.prefix.clone();
                subject.extend_from_slice(&value);
                let stored: Vec<Option<Vec<u8>>> = (0..t.columns.len()).map(|i| r.bytes(i as i32 + 3)).collect();
                let Some(new) = change(&subject, &stored)? else { continue };
                let mut values = vec![row::varlena_datum(&at)];
                let mut nulls = vec![false];
                for v in new {
                    values.push(v.unwrap_or(pg_sys::Datum::from(0usize)));
                    nulls.push(v.is_none());
                }
                update.execute(&mut values, &nulls)?;
                written += 1;
            }
            Ok(())
        })?;
        Ok(written)
    })
}

/// Recompute every row token of `tbl`, keyed by the row subject's DEK of each column's
/// purpose; returns the number of rows updated.
pub fn rebuild(tbl: pg_sys::Oid) -> Result<i64, ShredError> {
    let t = table(tbl, None)?;
    if t.columns.is_empty() {
        return Ok(0);
    }
    let mut sets = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        let (bidx, _) = c.searchable.as_ref().ok_or(ShredError::Internal("a searchable column without its row tokens"))?;
        sets.push(format!("{bidx} = ${}", i + 2));
    }
    let types = vec![pg_sys::BYTEAOID; t.columns.len()];
    rewrite(&t, "", &sets, &types, |subject, stored| {
        let mut tokens = Vec::with_capacity(stored.len());
        for (c, sealed) in t.columns.iter().zip(stored) {
            let opened = match sealed {
                Some(sealed) => row::open(sealed, subject, &c.context, c.kind)?,
                None => None,
            };
            let token = match (opened, &c.searchable) {
                (Some(datum), Some((_, rule))) => {
                    // SAFETY: a value of c.kind just opened.
                    let text = unsafe { row::output(c.kind, datum) };
                    let (key_id, dek) = crate::purposes::sealing_key(&Subject::new(subject)?, c.purpose.as_ref())?;
                    Some(row::varlena_datum(&row::index_value(&dek, key_id, &c.context, &text, *rule)?))
                }
                _ => None,
            };
            tokens.push(token);
        }
        Ok(Some(tokens))
    })
}
