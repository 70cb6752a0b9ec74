//! Rebuilding the row tokens of a protected table's searchable columns from its sealed values:
//! for tables protected before row tokens existed (0.2.0 stored the blind index itself), run
//! once by the upgrade. Reads and writes the table as its owner (security-restricted, pinned
//! `search_path`); the statements call no function, so no EXECUTE right of the owner is needed
//! and no owner's code runs with another role's rights.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use super::catalog_text;
use super::{owner, row};
use crate::crypto::blind::Normalization;
use crate::crypto::envelope;
use crate::error::ShredError;
use crate::keys::spi::{run, with_role, Arg, Mode, Plan};
use crate::keys::store;

static SEARCHABLE: Plan = Plan::new(
    c"SELECT pg_catalog.quote_ident(pc.column_name), pg_catalog.quote_ident(pc.blind_index_column), pc.context,
             pc.normalization, shred._kind_oid(pc.plain_type)::pg_catalog.int8, t.subject_prefix,
             pg_catalog.quote_ident(t.subject_column),
             pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
        FROM shred.protected_column pc
        JOIN shred.protected_table t ON t.relation OPERATOR(pg_catalog.=) pc.relation
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pc.relation
        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
       WHERE pc.relation OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND pc.blind_index_column IS NOT NULL
       ORDER BY pc.column_name",
    &[pg_sys::INT8OID],
);

struct Searchable {
    column: String,
    bidx: String,
    context: Vec<u8>,
    rule: Normalization,
    typ: pg_sys::Oid,
}


/// Recompute every row token of `tbl`; returns the number of rows updated.
pub fn rebuild(tbl: pg_sys::Oid) -> Result<i64, ShredError> {
    let (mut prefix, mut subject_column, mut qualified) = (Vec::new(), String::new(), String::new());
    let columns = run(&SEARCHABLE, &[Arg::Int8(u32::from(tbl) as i64)], Mode::Write, 0, |rows| {
        rows.iter()
            .map(|r| {
                prefix = r.bytes(6).unwrap_or_default();
                subject_column = catalog_text(r.bytes(7))?;
                qualified = catalog_text(r.bytes(8))?;
                Ok(Searchable {
                    column: catalog_text(r.bytes(1))?,
                    bidx: catalog_text(r.bytes(2))?,
                    context: r.bytes(3).unwrap_or_default(),
                    rule: Normalization::from_name(&r.bytes(4).unwrap_or_default())
                        .ok_or(ShredError::Internal("a blind index without normalisation"))?,
                    typ: pg_sys::Oid::from(r.int8(5).unwrap_or(0) as u32),
                })
            })
            .collect::<Result<Vec<_>, ShredError>>()
    })?;
    if columns.is_empty() {
        return Ok(0);
    }
    let select = format!(
        "SELECT tableoid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) ctid::pg_catalog.text,
                pg_catalog.convert_to({subject_column}::pg_catalog.text, pg_catalog.getdatabaseencoding()), {} FROM {qualified}",
        columns.iter().map(|c| format!("{}::pg_catalog.text", c.column)).collect::<Vec<_>>().join(", ")
    );
    let update = format!(
        "UPDATE {qualified} SET {} WHERE tableoid OPERATOR(pg_catalog.=) pg_catalog.split_part($1, ':', 1)::pg_catalog.oid
            AND ctid OPERATOR(pg_catalog.=) pg_catalog.split_part($1, ':', 2)::pg_catalog.tid",
        columns.iter().enumerate().map(|(i, c)| format!("{} = ${}", c.bidx, i + 2)).collect::<Vec<_>>().join(", ")
    );
    let owner = owner::owner_of(tbl)?;
    with_role(owner, || {
        Spi::connect_mut(|client| {
            let table = client.select(&select, None, &[]).map_err(|e| ShredError::KeyStore(e.to_string()))?;
            let mut rows = Vec::new();
            for r in table {
                let ctid: Option<String> = r.get(1).map_err(|e| ShredError::KeyStore(e.to_string()))?;
                let subj: Option<Vec<u8>> = r.get::<&[u8]>(2).map_err(|e| ShredError::KeyStore(e.to_string()))?.map(|b| b.to_vec());
                let mut values = Vec::new();
                for i in 0..columns.len() {
                    // the envelope's text form (shred.sealed output), parsed back here
                    let v: Option<String> = r.get(i + 3).map_err(|e| ShredError::KeyStore(e.to_string()))?;
                    values.push(v.map(|t| envelope::from_text_any(&t)).transpose()?);
                }
                rows.push((ctid, subj, values));
            }
            let mut updated = 0i64;
            for (ctid, subj, values) in rows {
                let (Some(ctid), Some(subj)) = (ctid, subj) else { continue };
                let mut subject = prefix.clone();
                subject.extend_from_slice(&subj);
                let mut args: Vec<Option<pg_sys::Datum>> = vec![Some(row::varlena_datum(ctid.as_bytes()))];
                let mut types = vec![pg_sys::TEXTOID];
                for (c, v) in columns.iter().zip(&values) {
                    types.push(pg_sys::BYTEAOID);
                    let token = match v {
                        None => None,
                        Some(sealed) => match row::open(sealed, &subject, &c.context, c.typ)? {
                            None => None,
                            Some(datum) => {
                                // SAFETY: a value of c.typ just opened.
                                let text = unsafe { row::output(c.typ, datum) };
                                let (key_id, dek) = store::get_or_create(&crate::keys::subject::Subject::new(&subject)?, 0)?;
                                Some(row::varlena_datum(&row::index_value(&dek, key_id, &c.context, &text, c.rule)?))
                            }
                        },
                    };
                    args.push(token);
                }
                let datums: Vec<pgrx::datum::DatumWithOid> = args
                    .iter()
                    .zip(&types)
                    // SAFETY: each datum is of the type paired with it.
                    .map(|(d, t)| unsafe { pgrx::datum::DatumWithOid::new(*d, *t) })
                    .collect();
                client.update(&update, None, &datums).map_err(|e| ShredError::KeyStore(e.to_string()))?;
                updated += 1;
            }
            Ok(updated)
        })
    })
}
