//! The INSTEAD OF INSERT OR UPDATE trigger of every plaintext view (`shred.protected_view_write`):
//! seals protected columns and computes row tokens of searchable ones, then writes the table.
//! A column kept for a purpose is sealed, and its row token and blind-index term keyed, under
//! the row subject's DEK of that purpose (created only under a confirmed consent when the
//! purpose requires one: a non-NULL value for a subject without it is refused, 55000), so that
//! erasing the purpose erases the column for the subject; the others use the default DEK.
//!
//! Invariant: per view and backend, the table's statements are built once from the catalog
//! (fixed SQL, every identifier quoted, names resolved under a pinned `search_path`) and kept
//! as saved plans; a row costs no catalog query, no SQL text and no planning. Any relcache
//! invalidation of the view or its table (ALTER TABLE, refresh_view, a rename) marks the
//! writer stale, and the next row builds it again. Plans are freed only outside invalidation
//! callbacks and never while a row of the view is being written.
//!
//! The table is written with the rights of the role that wrote the view (as PostgreSQL's own
//! view updates do): it needs INSERT/UPDATE on the table, and EXECUTE on `shred.seal` (the
//! `shred_writer` role) to seal. DELETE through the view is PostgreSQL's own (the view is
//! simple, so automatically updatable) and never opens a value.

use std::ffi::CString;
use std::rc::Rc;

use pgrx::pg_sys;

use super::catalog_text;
use super::plans::PlanCache;
use super::row;
use crate::crypto::blind::Normalization;
use crate::error::{OrReport, ShredError};
use crate::keys::spi::{run, Arg, Mode, Plan, TablePlan};
use crate::purposes::Purpose;

struct Protected {
    context: Vec<u8>,
    /// The normalisation of a searchable column (it has a row-token column).
    searchable: Option<Normalization>,
    /// The purpose the column is kept for (`None`: the subject's default DEK), resolved when
    /// the writer is built: its values are sealed, and its row tokens and blind-index terms
    /// keyed, under the row subject's DEK of that purpose.
    purpose: Option<Purpose>,
}

struct Column {
    /// 0-based position in the view's row.
    at: usize,
    /// The view column's type (the table column's original type when protected).
    typ: pg_sys::Oid,
    protected: Option<Protected>,
    /// Part of the table's primary key: rows are matched by it on UPDATE.
    key: bool,
    /// GENERATED ALWAYS AS IDENTITY: written by INSERT only (with OVERRIDING SYSTEM VALUE).
    identity_always: bool,
}

struct Writer {
    prefix: Vec<u8>,
    /// The subject column's position in the view's row, and its type.
    subject: (usize, pg_sys::Oid),
    /// Columns written by INSERT, in view order (generated columns are never written).
    columns: Vec<Column>,
    insert: TablePlan,
    update: TablePlan,
    /// `shred.seal(text, text, text, text)` (`(text, text, text)` before 0.6.0): EXECUTE on it
    /// is the right to seal.
    seal_fn: pg_sys::Oid,
}

thread_local! {
    static WRITERS: PlanCache<Writer> = PlanCache::new();
}

/// Columns of a protected table's view, with what the writer needs, read under the latest
/// snapshot (as the relcache is): a transaction whose snapshot is older than a committed
/// `shred.set_purpose` still seals for the new purpose. A column's purpose id is read from the
/// row's JSON, where it is missing (NULL) under a schema older than 0.6.0, whose catalog has no
/// `purpose_id`: one statement for every schema.
static VIEW_COLUMNS: Plan = Plan::new(
    c"SELECT t.relation::pg_catalog.oid::pg_catalog.int8, t.subject_prefix,
             pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
             pg_catalog.quote_ident(n.nspname),
             va.attnum::pg_catalog.int4, pg_catalog.quote_ident(ba.attname), va.atttypid::pg_catalog.int8, ba.atttypid::pg_catalog.int8,
             pc.context, pc.normalization, pg_catalog.quote_ident(pc.blind_index_column),
             ba.attgenerated OPERATOR(pg_catalog.<>) '', ba.attidentity OPERATOR(pg_catalog.=) 'a',
             ba.attname OPERATOR(pg_catalog.=) t.subject_column,
             EXISTS (SELECT FROM pg_catalog.pg_index i
                      WHERE i.indrelid OPERATOR(pg_catalog.=) t.relation AND i.indisprimary
                        AND ba.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[])),
             COALESCE(pg_catalog.to_regprocedure('shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text)'),
                                 pg_catalog.to_regprocedure('shred.seal(pg_catalog.text, pg_catalog.text, pg_catalog.text)'))::pg_catalog.oid::pg_catalog.int8,
             'shred.sealed'::pg_catalog.regtype::pg_catalog.oid::pg_catalog.int8,
             (pg_catalog.to_jsonb(pc) OPERATOR(pg_catalog.->>) 'purpose_id')::pg_catalog.int4
        FROM shred.protected_table t
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relation
        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
        JOIN pg_catalog.pg_attribute va ON va.attrelid OPERATOR(pg_catalog.=) t.view
             AND va.attnum OPERATOR(pg_catalog.>) 0 AND NOT va.attisdropped
        JOIN pg_catalog.pg_attribute ba ON ba.attrelid OPERATOR(pg_catalog.=) t.relation
             AND ba.attname OPERATOR(pg_catalog.=) va.attname AND ba.attnum OPERATOR(pg_catalog.>) 0 AND NOT ba.attisdropped
        LEFT JOIN shred.protected_column pc ON pc.relation OPERATOR(pg_catalog.=) t.relation
             AND pc.column_name OPERATOR(pg_catalog.=) ba.attname
       WHERE t.view OPERATOR(pg_catalog.=) $1::pg_catalog.oid
       ORDER BY va.attnum",
    &[pg_sys::INT8OID],
);


impl Writer {
    /// The writer of `view`, and the relations it is built from (the table, the view).
    fn build(view: pg_sys::Oid) -> Result<(Writer, [pg_sys::Oid; 2]), ShredError> {
        struct Col {
            column: Column,
            name: String,
            base_type: pg_sys::Oid,
            generated: bool,
            subject: bool,
            bidx: Option<String>,
        }
        let (mut table, mut seal_fn, mut sealed) = (pg_sys::InvalidOid, pg_sys::InvalidOid, pg_sys::InvalidOid);
        let (mut prefix, mut qualified, mut schema) = (Vec::new(), String::new(), String::new());
        let cols = run(&VIEW_COLUMNS, &[Arg::Int8(u32::from(view) as i64)], Mode::ReadLatest, 0, |rows| {
            let mut cols = Vec::new();
            for r in rows {
                table = pg_sys::Oid::from(r.int8(1).unwrap_or(0) as u32);
                seal_fn = pg_sys::Oid::from(r.int8(16).unwrap_or(0) as u32);
                sealed = pg_sys::Oid::from(r.int8(17).unwrap_or(0) as u32);
                prefix = r.bytes(2).unwrap_or_default();
                qualified = catalog_text(r.bytes(3))?;
                schema = catalog_text(r.bytes(4))?;
                let protected = match r.bytes(9) {
                    None => None,
                    Some(context) => Some(Protected {
                        context,
                        searchable: match r.bytes(11) {
                            None => None,
                            Some(_) => Some(
                                Normalization::from_name(&r.bytes(10).unwrap_or_default())
                                    .ok_or(ShredError::Internal("a blind index without normalisation"))?,
                            ),
                        },
                        purpose: r.int4(18).map(crate::purposes::by_id).transpose()?,
                    }),
                };
                cols.push(Col {
                    column: Column {
                        at: (r.int4(5).unwrap_or(1) - 1) as usize,
                        typ: pg_sys::Oid::from(r.int8(7).unwrap_or(0) as u32),
                        protected,
                        key: r.bool(15).unwrap_or(false),
                        identity_always: r.bool(13).unwrap_or(false),
                    },
                    name: catalog_text(r.bytes(6))?,
                    base_type: pg_sys::Oid::from(r.int8(8).unwrap_or(0) as u32),
                    generated: r.bool(12).unwrap_or(false),
                    subject: r.bool(14).unwrap_or(false),
                    bidx: r.bytes(11).map(|b| String::from_utf8_lossy(&b).into_owned()),
                });
            }
            Ok(cols)
        })?;
        let subject = cols
            .iter()
            .find(|c| c.subject)
            .map(|c| (c.column.at, c.column.typ))
            .ok_or_else(|| ShredError::NotReady("this view is not the plaintext view of a protected table".into()))?;
        let keys: Vec<&Col> = cols.iter().filter(|c| c.column.key && !c.generated).collect();
        if keys.is_empty() {
            return Err(ShredError::NotReady("the protected table has no primary key".into()));
        }
        // INSERT: every non-generated column (+ row tokens), values as parameters.
        let (mut names, mut types, mut params) = (Vec::new(), Vec::new(), Vec::new());
        // UPDATE: SET items; a protected column keeps its envelope (and row token) when $keep.
        let (mut sets, mut utypes) = (Vec::new(), Vec::new());
        let mut overriding = "";
        for c in cols.iter().filter(|c| !c.generated) {
            let value_type = if c.column.protected.is_some() { sealed } else { c.base_type };
            names.push(c.name.clone());
            types.push(value_type);
            params.push(format!("${}", types.len()));
            if c.column.identity_always {
                overriding = " OVERRIDING SYSTEM VALUE";
            }
            if let (Some(_), Some(bidx)) = (&c.column.protected, &c.bidx) {
                names.push(bidx.clone());
                types.push(pg_sys::BYTEAOID);
                params.push(format!("${}", types.len()));
            }
            if c.column.identity_always {
                continue;
            }
            if c.column.protected.is_some() {
                utypes.push(pg_sys::BOOLOID);
                let keep = utypes.len();
                utypes.push(sealed);
                sets.push(format!("{0} = CASE WHEN ${keep} THEN {0} ELSE ${1} END", c.name, utypes.len()));
                if let Some(bidx) = &c.bidx {
                    utypes.push(pg_sys::BYTEAOID);
                    sets.push(format!("{0} = CASE WHEN ${keep} THEN {0} ELSE ${1} END", bidx, utypes.len()));
                }
            } else {
                utypes.push(c.base_type);
                sets.push(format!("{} = ${}", c.name, utypes.len()));
            }
        }
        let mut wheres = Vec::new();
        for k in &keys {
            utypes.push(k.base_type);
            wheres.push(format!("{} OPERATOR(pg_catalog.=) ${}", k.name, utypes.len()));
        }
        let insert_sql = format!(
            "INSERT INTO {qualified} ({}){overriding} VALUES ({})",
            names.join(", "),
            params.join(", ")
        );
        let update_sql = format!("UPDATE {qualified} SET {} WHERE {}", sets.join(", "), wheres.join(" AND "));
        // Every name is qualified (the table, the key columns' `=`; parameters have their
        // columns' types), so no search_path in force when PostgreSQL replans can change them.
        let path = CString::new(format!("pg_catalog, {schema}, pg_temp")).map_err(|_| ShredError::Internal("schema name"))?;
        let sql = |s: String| CString::new(s).map_err(|_| ShredError::Internal("a statement with a zero byte"));
        let insert = TablePlan::prepare(&sql(insert_sql)?, &types, &path)?;
        let update = TablePlan::prepare(&sql(update_sql)?, &utypes, &path)?;
        let key_at: Vec<usize> = keys.iter().map(|k| k.column.at).collect();
        let mut columns: Vec<Column> = Vec::new();
        for c in cols.into_iter().filter(|c| !c.generated) {
            let mut column = c.column;
            column.key = key_at.contains(&column.at);
            if c.bidx.is_none() {
                if let Some(p) = &mut column.protected {
                    p.searchable = None;
                }
            }
            columns.push(column);
        }
        Ok((Writer { prefix, subject, columns, insert, update, seal_fn }, [table, view]))
    }
}

/// The writer of `view`, built on first use or after an invalidation.
fn writer(view: pg_sys::Oid) -> Result<Rc<Writer>, ShredError> {
    WRITERS.with(|w| w.get(view, || Writer::build(view)))
}

/// A relcache invalidation of `relid` (see [`super::plans`]).
pub fn invalidate(relid: pg_sys::Oid) {
    WRITERS.with(|w| w.invalidate(relid));
}

/// Whether the current role may seal (EXECUTE on `shred.seal(text, text, text)`, which
/// `shred_writer` has): the view's trigger seals in Rust, so it checks what the SQL function
/// call would have checked. One ACL check, no lookup by name.
fn may_seal(w: &Writer) -> bool {
    // SAFETY: an ACL check inside a transaction.
    w.seal_fn != pg_sys::InvalidOid
        && unsafe { crate::pg::compat::function_allows(w.seal_fn, pg_sys::GetUserId(), pg_sys::ACL_EXECUTE as pg_sys::AclMode) }
}

/// One deformed row of the view.
struct Values {
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

impl Values {
    /// # Safety
    /// `tuple` must be a row of `desc`.
    unsafe fn deform(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> Values {
        let n = unsafe { (*desc).natts } as usize;
        let mut values = vec![pg_sys::Datum::from(0usize); n];
        let mut nulls = vec![false; n];
        unsafe { pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr()) };
        Values { values, nulls }
    }

    fn get(&self, at: usize) -> Option<pg_sys::Datum> {
        if self.nulls.get(at).copied().unwrap_or(true) {
            None
        } else {
            self.values.get(at).copied()
        }
    }
}

/// The data subject of a row (`subject_prefix || subject_column`), checked like any subject.
fn subject_of(w: &Writer, row: &Values) -> Result<Vec<u8>, ShredError> {
    let Some(datum) = row.get(w.subject.0) else { return Err(ShredError::NullArgument("subject column")) };
    let mut subject = w.prefix.clone();
    // SAFETY: a non-NULL value of the subject column's type.
    subject.extend_from_slice(&unsafe { row::output(w.subject.1, datum) });
    crate::keys::subject::Subject::new(&subject)?;
    Ok(subject)
}

/// Whether two non-NULL-or-NULL values of one column are the same (byte-identical datums).
fn same(a: Option<pg_sys::Datum>, b: Option<pg_sys::Datum>, typ: pg_sys::Oid) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            // SAFETY: type facts of a built-in type; both values are of it. Protected types
            // are passed by value or are varlenas.
            unsafe {
                let (mut len, mut byval) = (0i16, false);
                pg_sys::get_typlenbyval(typ, &mut len, &mut byval);
                if byval {
                    x == y
                } else {
                    len == -1 && row::varlena_bytes(x) == row::varlena_bytes(y)
                }
            }
        }
        _ => false,
    }
}

/// The body of `shred.protected_view_write()` (see the module documentation): the row to
/// report as written, or `None` when an UPDATE found no row.
///
/// # Safety
/// `fcinfo` of a trigger call (its context is checked).
pub unsafe fn write_row(fcinfo: pg_sys::FunctionCallInfo) -> Option<pg_sys::Datum> {
    // SAFETY: called by the trigger manager with a TriggerData context, checked first; tuples
    // and the view's descriptor are valid for this call.
    unsafe {
        let ctx = (*fcinfo).context;
        if ctx.is_null() || (*ctx).type_ != pg_sys::NodeTag::T_TriggerData {
            ShredError::TriggerProtocol("shred.protected_view_write() is a trigger function").report();
        }
        let td = ctx.cast::<pg_sys::TriggerData>();
        let event = (*td).tg_event;
        let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
        if event & pg_sys::TRIGGER_EVENT_INSTEAD == 0 || event & pg_sys::TRIGGER_EVENT_ROW == 0 {
            ShredError::TriggerProtocol("shred.protected_view_write() must be an INSTEAD OF ... FOR EACH ROW trigger").report();
        }
        let rel = (*td).tg_relation;
        let desc = (*rel).rd_att;
        let w = writer((*rel).rd_id).or_report();
        match op {
            pg_sys::TRIGGER_EVENT_INSERT => {
                let new = Values::deform((*td).tg_trigtuple, desc);
                insert(&w, &new).or_report();
                Some(pg_sys::Datum::from((*td).tg_trigtuple))
            }
            pg_sys::TRIGGER_EVENT_UPDATE => {
                let old = Values::deform((*td).tg_trigtuple, desc);
                let new = Values::deform((*td).tg_newtuple, desc);
                if update(&w, &old, &new).or_report() {
                    Some(pg_sys::Datum::from((*td).tg_newtuple))
                } else {
                    None
                }
            }
            _ => ShredError::TriggerProtocol("DELETE through a plaintext view does not use its trigger").report(),
        }
    }
}

/// The DEKs that seal a row of `subject`: one per purpose its columns are kept for (id 0: the
/// default DEK), each looked up (or created) once per row, on first use. For a purpose that
/// requires consent, a DEK is created only under the subject's confirmed consent
/// ([`crate::purposes::sealing_key`]): a value for a subject without one is refused (55000).
struct RowKey<'a> {
    subject: &'a [u8],
    keys: Vec<(i32, (i64, Rc<crate::crypto::keys::DataKey>))>,
}

impl RowKey<'_> {
    fn get(&mut self, purpose: Option<&Purpose>) -> Result<(i64, Rc<crate::crypto::keys::DataKey>), ShredError> {
        let id = purpose.map_or(0, |p| p.id);
        if let Some((_, key)) = self.keys.iter().find(|(i, _)| *i == id) {
            return Ok(key.clone());
        }
        crate::keys::root::require_root_key()?;
        let key = crate::purposes::sealing_key(&crate::keys::subject::Subject::new(self.subject)?, purpose)?;
        self.keys.push((id, key.clone()));
        Ok(key)
    }
}

/// Seal `datum` of `c` and compute its row token (for a searchable column), under the DEK of
/// the column's purpose.
fn seal_column(c: &Column, p: &Protected, datum: pg_sys::Datum, key: &mut RowKey<'_>) -> Result<(pg_sys::Datum, Option<pg_sys::Datum>), ShredError> {
    let (key_id, dek) = key.get(p.purpose.as_ref())?;
    // SAFETY: a non-NULL value of the view column's type.
    let sealed = unsafe { row::seal(&dek, key_id, key.subject, &p.context, datum, c.typ)? };
    let token = match p.searchable {
        None => None,
        Some(rule) => {
            // SAFETY: as above; the text form is what `::text` gives.
            let text = unsafe { row::output(c.typ, datum) };
            Some(row::varlena_datum(&row::index_value(&dek, key_id, &p.context, &text, rule)?))
        }
    };
    Ok((row::varlena_datum(&sealed), token))
}

fn insert(w: &Writer, new: &Values) -> Result<(), ShredError> {
    let subject = subject_of(w, new)?;
    let mut key = RowKey { subject: &subject, keys: Vec::new() };
    let (mut values, mut nulls) = (Vec::new(), Vec::new());
    if w.columns.iter().any(|c| c.protected.is_some() && new.get(c.at).is_some()) && !may_seal(w) {
        return Err(ShredError::NotOwner("permission denied to seal values: writing a protected table's view needs shred_writer".into()));
    }
    for c in &w.columns {
        let v = new.get(c.at);
        match (&c.protected, v) {
            (None, _) => {
                values.push(v.unwrap_or(pg_sys::Datum::from(0usize)));
                nulls.push(v.is_none());
            }
            (Some(p), None) => {
                values.push(pg_sys::Datum::from(0usize));
                nulls.push(true);
                if p.searchable.is_some() {
                    values.push(pg_sys::Datum::from(0usize));
                    nulls.push(true);
                }
            }
            (Some(p), Some(d)) => {
                let (sealed, token) = seal_column(c, p, d, &mut key)?;
                values.push(sealed);
                nulls.push(false);
                if p.searchable.is_some() {
                    values.push(token.unwrap_or(pg_sys::Datum::from(0usize)));
                    nulls.push(token.is_none());
                }
            }
        }
    }
    w.insert.execute(&mut values, &nulls)?;
    Ok(())
}

fn update(w: &Writer, old: &Values, new: &Values) -> Result<bool, ShredError> {
    let subject = subject_of(w, new)?;
    let same_subject = subject_of(w, old).map(|s| s == subject).unwrap_or(false);
    let mut key = RowKey { subject: &subject, keys: Vec::new() };
    let (mut values, mut nulls) = (Vec::new(), Vec::new());
    let mut checked = false;
    // PostgreSQL refuses to change a GENERATED ALWAYS identity column; so does the view (the
    // table would keep the old value while the protected values are sealed for the new one).
    if w.columns.iter().any(|c| c.identity_always && !same(old.get(c.at), new.get(c.at), c.typ)) {
        return Err(ShredError::GeneratedAlways);
    }
    for c in w.columns.iter().filter(|c| !c.identity_always) {
        let v = new.get(c.at);
        match &c.protected {
            None => {
                values.push(v.unwrap_or(pg_sys::Datum::from(0usize)));
                nulls.push(v.is_none());
            }
            Some(p) => {
                // An unchanged value keeps its stored envelope (and row token), so an erased
                // value or its tombstone is never sealed again under a new DEK.
                let keep = same_subject && same(old.get(c.at), v, c.typ);
                values.push(pg_sys::Datum::from(keep));
                nulls.push(false);
                let (sealed, token) = match (keep, v) {
                    (false, Some(d)) => {
                        if !checked && !may_seal(w) {
                            return Err(ShredError::NotOwner("permission denied to seal values: writing a protected table's view needs shred_writer".into()));
                        }
                        checked = true;
                        let (s, t) = seal_column(c, p, d, &mut key)?;
                        (Some(s), t)
                    }
                    _ => (None, None),
                };
                values.push(sealed.unwrap_or(pg_sys::Datum::from(0usize)));
                nulls.push(sealed.is_none());
                if p.searchable.is_some() {
                    values.push(token.unwrap_or(pg_sys::Datum::from(0usize)));
                    nulls.push(token.is_none());
                }
            }
        }
    }
    for c in w.columns.iter().filter(|c| c.key) {
        let v = old.get(c.at);
        values.push(v.unwrap_or(pg_sys::Datum::from(0usize)));
        nulls.push(v.is_none());
    }
    Ok(w.update.execute(&mut values, &nulls)? > 0)
}
