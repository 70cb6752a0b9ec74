//! The data subject's rights over protected tables: export (access, portability), footprint,
//! and the integrity check.
//!
//! Invariant: no code of a table's owner runs with the caller's rights. Reading a table can run
//! its owner's code (the planner evaluates index predicates, index and statistics expressions;
//! `to_jsonb` uses casts to json of the owner's types), so every statement that reads a
//! protected table runs as the table's owner, security-restricted, with a pinned `search_path`
//! ([`spi::with_role`]), as PostgreSQL runs VACUUM or REFRESH MATERIALIZED VIEW. It returns
//! only text: row JSON and envelopes. Opening them runs as the caller, in statements that read
//! no table (export) or in Rust (footprint, check). The caller must have SELECT on the table
//! (otherwise it is skipped with a NOTICE), and a table with row-level security is skipped
//! with a WARNING (`shred.protect` refuses them).
//!
//! Statements are built once per table and backend from the catalog and kept as saved plans
//! ([`super::plans`]).

use std::ffi::{CStr, CString};
use std::rc::Rc;

use pgrx::prelude::*;

use super::catalog_text;
use super::plans::PlanCache;
use super::row;
use crate::crypto::envelope;
use crate::error::ShredError;
use crate::keys::spi::{run, with_role, with_search_path, Arg, Mode, Plan, TablePlan};
use crate::keys::store;
use crate::pg::compat;

struct Column {
    /// The column's name (a key of the row's JSON).
    name: String,
    context: Vec<u8>,
    /// The type it is opened as (text, bytea, int4, int8, numeric, date, timestamptz, jsonb).
    kind: pg_sys::Oid,
}

struct Reader {
    owner: pg_sys::Oid,
    /// The subject column's type: the type of the subject-value parameter.
    subject_type: pg_sys::Oid,
    columns: Vec<Column>,
    /// (as the owner) `to_jsonb` of the rows of one subject ($1 subject column value, $2 subject).
    rows_json: TablePlan,
    /// (as the caller) one row's JSON ($1) of subject $2 as the view shows it: protected
    /// columns opened, row-token columns left out. Reads no table.
    open_json: TablePlan,
    /// (as the owner) the envelopes (text form) of the protected columns of one subject's rows.
    rows_sealed: TablePlan,
    /// (as the owner) every row's subject and envelopes.
    all_sealed: TablePlan,
}

thread_local! {
    static READERS: PlanCache<Reader> = PlanCache::new();
}

/// A relcache invalidation of `relid` (see [`super::plans`]).
pub fn invalidate(relid: pg_sys::Oid) {
    READERS.with(|r| r.invalidate(relid));
}

/// One row per protected column of a table, with what the reader needs.
static COLUMNS: Plan = Plan::new(
    c"SELECT c.relowner::pg_catalog.int8, t.view::pg_catalog.oid::pg_catalog.int8,
             shred._qualified(t.relation), pg_catalog.quote_literal(t.subject_prefix), pg_catalog.quote_ident(t.subject_column),
             sa.atttypid::pg_catalog.int8,
             pc.column_name::pg_catalog.text, pg_catalog.quote_ident(pc.column_name), pc.context,
             shred._kind_oid(pc.plain_type)::pg_catalog.int8,
             shred._open_sql(pc, pg_catalog.format('($1::pg_catalog.jsonb OPERATOR(pg_catalog.->>) %L)::shred.sealed', pc.column_name), '$2'),
             pc.blind_index_column::pg_catalog.text
        FROM shred.protected_table t
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relation
        JOIN pg_catalog.pg_attribute sa ON sa.attrelid OPERATOR(pg_catalog.=) t.relation
             AND sa.attname OPERATOR(pg_catalog.=) t.subject_column AND NOT sa.attisdropped
        JOIN shred.protected_column pc ON pc.relation OPERATOR(pg_catalog.=) t.relation
       WHERE t.relation OPERATOR(pg_catalog.=) $1::pg_catalog.oid
       ORDER BY pc.column_name",
    &[pg_sys::INT8OID],
);



/// A SQL string literal of `s`.
fn literal(s: &str) -> Result<String, ShredError> {
    let c = CString::new(s).map_err(|_| ShredError::Internal("a zero byte in a literal"))?;
    // SAFETY: quote_literal_cstr returns a palloc'd, quoted copy.
    Ok(unsafe { CStr::from_ptr(pg_sys::quote_literal_cstr(c.as_ptr())) }.to_string_lossy().into_owned())
}

fn prepare(sql: String, types: &[pg_sys::Oid]) -> Result<TablePlan, ShredError> {
    let sql = CString::new(sql).map_err(|_| ShredError::Internal("a statement with a zero byte"))?;
    TablePlan::prepare(&sql, types, c"pg_catalog, pg_temp")
}

impl Reader {
    fn build(table: pg_sys::Oid) -> Result<(Reader, [pg_sys::Oid; 2]), ShredError> {
        let (mut owner, mut view) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        let (mut qualified, mut prefix, mut subject, mut subject_type) = (String::new(), String::new(), String::new(), pg_sys::InvalidOid);
        let (mut columns, mut quoted, mut openers, mut dropped) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        run(&COLUMNS, &[Arg::Int8(u32::from(table) as i64)], Mode::Write, 0, |rows| {
            for r in rows {
                owner = pg_sys::Oid::from(r.int8(1).unwrap_or(0) as u32);
                view = pg_sys::Oid::from(r.int8(2).unwrap_or(0) as u32);
                qualified = catalog_text(r.bytes(3))?;
                prefix = catalog_text(r.bytes(4))?;
                subject = catalog_text(r.bytes(5))?;
                subject_type = pg_sys::Oid::from(r.int8(6).unwrap_or(0) as u32);
                let name = catalog_text(r.bytes(7))?;
                quoted.push(catalog_text(r.bytes(8))?);
                openers.push(catalog_text(r.bytes(11))?);
                dropped.push(name.clone());
                if let Some(bidx) = r.bytes(12) {
                    dropped.push(catalog_text(Some(bidx))?);
                }
                columns.push(Column {
                    name,
                    context: r.bytes(9).unwrap_or_default(),
                    kind: pg_sys::Oid::from(r.int8(10).unwrap_or(0) as u32),
                });
            }
            Ok(())
        })?;
        if columns.is_empty() {
            return Err(ShredError::NotFound("the table is not protected".into()));
        }
        let subject_sql = format!("({prefix} OPERATOR(pg_catalog.||) b.{subject}::pg_catalog.text)");
        // $1: the subject column's value, a parameter of the column's own type (no cast whose
        // name the caller's search_path could resolve); $2: the subject.
        let filter = format!("b.{subject} OPERATOR(pg_catalog.=) $1 AND {subject_sql} OPERATOR(pg_catalog.=) $2");
        let sealed: Vec<String> = quoted.iter().map(|q| format!("b.{q}::pg_catalog.text")).collect();
        let rows_json = prepare(
            format!("SELECT pg_catalog.to_jsonb(b)::pg_catalog.text FROM {qualified} b WHERE {filter}"),
            &[subject_type, pg_sys::TEXTOID],
        )?;
        let rows_sealed = prepare(
            format!("SELECT {} FROM {qualified} b WHERE {filter}", sealed.join(", ")),
            &[subject_type, pg_sys::TEXTOID],
        )?;
        let all_sealed = prepare(format!("SELECT {subject_sql}, {} FROM {qualified} b", sealed.join(", ")), &[])?;
        // The row's JSON is $1; the opener expressions read a column c as ($1 ->> 'c') and the
        // subject as $2 (shred._open_sql with no row alias).
        let pairs: Vec<String> = columns
            .iter()
            .zip(&openers)
            .map(|(c, open)| Ok(format!("{}, {open}", literal(&c.name)?)))
            .collect::<Result<_, ShredError>>()?;
        let dropped_sql = format!(
            "ARRAY[{}]::pg_catalog.text[]",
            dropped.iter().map(|d| literal(d)).collect::<Result<Vec<_>, _>>()?.join(", ")
        );
        let mut object = format!("($1::pg_catalog.jsonb OPERATOR(pg_catalog.-) {dropped_sql})");
        for chunk in pairs.chunks(50) {
            object = format!("{object} OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object({})", chunk.join(", "));
        }
        let open_json = prepare(format!("SELECT ({object})::pg_catalog.text"), &[pg_sys::TEXTOID, pg_sys::TEXTOID])?;
        Ok((Reader { owner, subject_type, columns, rows_json, open_json, rows_sealed, all_sealed }, [table, view]))
    }
}

/// The qualified name and reader of protected table `tbl`, or `None` (with a NOTICE or WARNING
/// saying why) when the caller may not read it or reading it could run its owner's code.
fn reader(tbl: pg_sys::Oid) -> Result<Option<(String, Rc<Reader>)>, ShredError> {
    // SAFETY: catalog lookups and an ACL check inside a transaction.
    let (name, select, rls) = unsafe {
        let name = pg_sys::get_rel_name(tbl);
        let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(tbl));
        if name.is_null() || schema.is_null() {
            return Ok(None);
        }
        let name = format!("{}.{}", CStr::from_ptr(schema).to_string_lossy(), CStr::from_ptr(name).to_string_lossy());
        // what reading the table would need: USAGE on its schema and SELECT on it
        let select = compat::namespace_allows(pg_sys::get_rel_namespace(tbl), pg_sys::GetUserId(), pg_sys::ACL_USAGE as pg_sys::AclMode)
            && pg_sys::pg_class_aclcheck(tbl, pg_sys::GetUserId(), pg_sys::ACL_SELECT as pg_sys::AclMode)
                == pg_sys::AclResult::ACLCHECK_OK;
        let rel = pg_sys::RelationIdGetRelation(tbl);
        let rls = !rel.is_null() && (*(*rel).rd_rel).relrowsecurity;
        if !rel.is_null() {
            pg_sys::RelationClose(rel);
        }
        (name, select, rls)
    };
    if !select {
        pgrx::notice!("pg_shred: skipped table {name}: permission denied");
        return Ok(None);
    }
    if rls {
        pgrx::warning!("pg_shred: skipped table {name}: row-level security is enabled on it (its policies are its owner's code)");
        return Ok(None);
    }
    READERS.with(|r| r.get(tbl, || Reader::build(tbl))).map(|r| Some((name, r)))
}

fn text_datum(s: &[u8]) -> pg_sys::Datum {
    row::varlena_datum(s)
}

/// Column `i` of every row, as text (NULL as `None`).
fn texts(rows: &[crate::keys::spi::Row], width: usize) -> Vec<Vec<Option<Vec<u8>>>> {
    rows.iter().map(|r| (1..=width as i32).map(|i| r.bytes(i)).collect()).collect()
}

/// Run `read` (statements over table `name` as its owner) in a subtransaction: an ERROR that
/// the owner's code raises there (a cast, an index expression) skips this table with a
/// WARNING naming it and the SQLSTATE, instead of failing the request for every table. The
/// owner's message is not repeated: it could hold anything.
fn skipping_errors<R>(name: &str, read: impl FnOnce() -> Result<R, ShredError>) -> Result<Option<R>, ShredError> {
    match crate::pg::subxact::attempt(read, |_| true) {
        Ok(result) => result.map(Some),
        Err(code) => {
            let sqlstate = crate::pg::subxact::sqlstate(code);
            pgrx::warning!("pg_shred: skipped table {name}: reading it as its owner raised an error ({sqlstate})");
            Ok(None)
        }
    }
}

/// The rows of `subject` (whose subject column value is `key`) in `tbl` as its view shows them,
/// as a JSON array; `None` when it has none or the table was skipped.
pub fn export(tbl: pg_sys::Oid, key: &[u8], subject: &[u8]) -> Result<Option<String>, ShredError> {
    let Some((name, r)) = reader(tbl)? else { return Ok(None) };
    // A subject that is no value of the subject column's type has no row here.
    let Some(key) = row::input(r.subject_type, key) else { return Ok(None) };
    let mut args = [key, text_datum(subject)];
    let read = || with_role(r.owner, || r.rows_json.query(&mut args, &[false, false], |rows| Ok(texts(rows, 1))));
    let Some(rows) = skipping_errors(&name, read)? else { return Ok(None) };
    let mut objects = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(Some(json)) = row.into_iter().next() else { continue };
        let mut args = [text_datum(&json), text_datum(subject)];
        // as the caller, but with the search_path the statement was prepared under
        let opened = with_search_path(|| r.open_json.query(&mut args, &[false, false], |rows| Ok(rows.first().and_then(|x| x.bytes(1)))))?;
        objects.push(catalog_text(opened)?);
    }
    Ok((!objects.is_empty()).then(|| format!("[{}]", objects.join(", "))))
}

/// Per protected column of `tbl`: (column, rows of `subject`, non-NULL values, whether any is
/// erased). Empty when it holds no row of the subject or was skipped.
pub fn footprint(tbl: pg_sys::Oid, key: &[u8], subject: &[u8]) -> Result<Vec<(String, i64, i64, bool)>, ShredError> {
    let Some((name, r)) = reader(tbl)? else { return Ok(Vec::new()) };
    let Some(key) = row::input(r.subject_type, key) else { return Ok(Vec::new()) };
    let mut args = [key, text_datum(subject)];
    let width = r.columns.len();
    let read = || with_role(r.owner, || r.rows_sealed.query(&mut args, &[false, false], |rows| Ok(texts(rows, width))));
    let Some(rows) = skipping_errors(&name, read)? else { return Ok(Vec::new()) };
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(width);
    for (i, c) in r.columns.iter().enumerate() {
        let (mut values, mut erased) = (0i64, false);
        for row in &rows {
            if let Some(Some(sealed)) = row.get(i) {
                values += 1;
                let bytes = envelope::from_text_any(&String::from_utf8_lossy(sealed))?;
                erased |= store::key_state(envelope::parse_any(&bytes)?.key_id() as i64)? == Some(false);
            }
        }
        out.push((c.name.clone(), rows.len() as i64, values, erased));
    }
    Ok(out)
}

/// Rows of a protected table checked per set-wise read of their DEKs, at the most.
const CHECK_CHUNK: usize = 10_000;

/// Per protected column of `tbl`: (column, problem, count) for values that do not open, whose
/// DEK is missing without an erasure record, and that are erased.
pub fn check(tbl: pg_sys::Oid) -> Result<Vec<(String, &'static str, i64)>, ShredError> {
    let Some((name, r)) = reader(tbl)? else { return Ok(Vec::new()) };
    let width = r.columns.len() + 1;
    let read = || with_role(r.owner, || r.all_sealed.query(&mut [], &[], |rows| Ok(texts(rows, width))));
    let Some(rows) = skipping_errors(&name, read)? else { return Ok(Vec::new()) };
    // Per column: values that do not open, whose DEK is unknown, that are erased.
    let mut counts = vec![(0i64, 0i64, 0i64); r.columns.len()];
    // Rows in chunks whose DEKs the cache holds at once, each chunk's DEKs read set-wise first.
    let chunk = (store::prefetch_room() / r.columns.len().max(1)).clamp(1, CHECK_CHUNK);
    for rows in rows.chunks(chunk) {
        let ids: Vec<i64> = rows
            .iter()
            .flat_map(|row| row.iter().skip(1).flatten())
            .filter_map(|sealed| envelope::from_text_any(&String::from_utf8_lossy(sealed)).ok())
            .filter_map(|bytes| envelope::parse_any(&bytes).ok().map(|e| e.key_id() as i64))
            .collect();
        store::prefetch(&ids)?;
        for (i, c) in r.columns.iter().enumerate() {
            let (bad, unknown, erased) = &mut counts[i];
            for row in rows {
                let Some(Some(sealed)) = row.get(i + 1) else { continue };
                let subject = row.first().cloned().flatten();
                let Ok(bytes) = envelope::from_text_any(&String::from_utf8_lossy(sealed)) else {
                    *bad += 1;
                    continue;
                };
                match row::check(&bytes, subject.as_deref(), &c.context, c.kind)? {
                    row::Status::Opens => {}
                    row::Status::DoesNotOpen => *bad += 1,
                    row::Status::Erased => *erased += 1,
                    row::Status::Unknown => *unknown += 1,
                }
            }
        }
    }
    let mut out = Vec::new();
    for (c, &(bad, unknown, erased)) in r.columns.iter().zip(&counts) {
        for (problem, n) in [("does not open", bad), ("DEK missing (not erased)", unknown), ("erased", erased)] {
            if n > 0 {
                out.push((c.name.clone(), problem, n));
            }
        }
    }
    Ok(out)
}
