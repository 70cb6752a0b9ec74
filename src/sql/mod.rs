//! The SQL surface: thin `#[pg_extern]` wrappers over [`crate::crypto`] and [`crate::keys`].
//!
//! Every function here is declared by hand in `sql/pg_shred--*.sql` (hence `sql = false`), so
//! the SQL names, defaults, volatility, strictness and parallel labels are in one reviewed
//! file. Arguments of type `text` and `shred.sealed` arrive as raw varlena bytes.

mod protect;
mod purposes;
mod receipts;
mod retention;
mod tokens;
mod typed;
mod varlena;

use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

use crate::crypto::envelope;
use crate::crypto::typed::PlainType;
use crate::error::{Input, OrReport, ShredError};
use crate::keys::subject::Subject;
use crate::purposes::Purpose;
use crate::keys::{root, store};
use crate::pg::encoding::{server_to_utf8, utf8_to_server};
use varlena::Varlena;

// ---------------------------------------------------------------------------------------------
// Type I/O of shred.sealed
// ---------------------------------------------------------------------------------------------

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn sealed_in(input: &CStr) -> Vec<u8> {
    let text = input
        .to_str()
        .map_err(|_| ShredError::BadInput(Input::Text, crate::crypto::CryptoError::MalformedEnvelope("it is not ASCII")));
    let text = text.or_report();
    envelope::from_text_any(text).map_err(|e| ShredError::BadInput(Input::Text, e)).or_report()
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn sealed_out(value: &[u8]) -> CString {
    // base64 output never contains a zero byte.
    CString::new(envelope::to_text(value))
        .unwrap_or_else(|_| ShredError::Internal("the text form of an envelope contains a zero byte").report())
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn sealed_recv(buf: Internal) -> Vec<u8> {
    let Some(datum) = Internal::unwrap(buf) else {
        ShredError::Internal("shred.sealed_recv was called without a buffer").report()
    };
    // SAFETY: PostgreSQL passes a StringInfo to a type's receive function.
    let bytes = unsafe {
        let si = datum.cast_mut_ptr::<pg_sys::StringInfoData>();
        let (cursor, len) = ((*si).cursor as usize, (*si).len as usize);
        let data = std::slice::from_raw_parts((*si).data.cast::<u8>(), len);
        let rest = data.get(cursor..).unwrap_or(&[]).to_vec();
        (*si).cursor = (*si).len;
        rest
    };
    envelope::parse_any(&bytes).map_err(|e| ShredError::BadInput(Input::Binary, e)).or_report();
    bytes
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn sealed_send(value: &[u8]) -> Vec<u8> {
    value.to_vec()
}

// ---------------------------------------------------------------------------------------------
// seal / open / erase
// ---------------------------------------------------------------------------------------------

fn required<'a>(value: Option<&'a [u8]>, what: &'static str) -> &'a [u8] {
    value.unwrap_or_else(|| ShredError::NullArgument(what).report())
}

/// A subject argument: not NULL, then checked once ([`Subject::new`]).
fn subject_arg(value: Option<&[u8]>) -> Subject<'_> {
    Subject::new(required(value, "subject")).or_report()
}

/// A purpose argument: NULL for the subject's default DEK, else a defined purpose (42704
/// otherwise), resolved once.
fn purpose_arg(value: Option<&[u8]>) -> Option<Purpose> {
    value.map(|name| crate::purposes::resolve(name).or_report())
}

/// The key id and DEK that seal a plaintext of `len` bytes for `subject` and `purpose` (created
/// on first use; for a purpose that requires consent, only under a confirmed one). The size is
/// checked first (and again by the core), so an oversized value never creates a DEK.
fn sealing_key(subject: &Subject<'_>, purpose: Option<&Purpose>, len: usize) -> (i64, std::rc::Rc<crate::crypto::keys::DataKey>) {
    if len > envelope::MAX_PLAINTEXT_LEN {
        ShredError::Crypto(crate::crypto::CryptoError::PlaintextTooLarge { len, max: envelope::MAX_PLAINTEXT_LEN })
            .report();
    }
    root::require_root_key().or_report();
    crate::purposes::sealing_key(subject, purpose).or_report()
}

/// Seal `plaintext` (already in its stored form: UTF-8 for text) for `subject` and `purpose`,
/// straight into the result's memory.
fn seal_bytes(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Varlena> {
    let subject = subject_arg(subject);
    let context = server_to_utf8(required(context, "context"), "context").or_report();
    let purpose = purpose_arg(purpose);
    let plaintext = plaintext?;
    let (key_id, dek) = sealing_key(&subject, purpose.as_ref(), plaintext.len());
    let mut out = Varlena::alloc(envelope::sealed_len(plaintext.len()));
    envelope::seal_into(&dek, key_id as u64, &context, plaintext, out.data_mut()).or_report();
    Some(out)
}

/// `shred.seal(subject, plaintext text, context)` before 0.6.0.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_text(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_text_for(subject, plaintext, context, None)
}

/// `shred.seal(subject, plaintext text, context, purpose)`, 0.6.0 on.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_text_for(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Varlena> {
    let utf8 = plaintext.map(|p| server_to_utf8(p, "plaintext").or_report());
    seal_bytes(subject, utf8.as_deref(), context, purpose)
}

/// `shred.seal(subject, plaintext bytea, context)` before 0.6.0.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_bytea(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    seal_bytes(subject, plaintext, context, None)
}

/// `shred.seal(subject, plaintext bytea, context, purpose)`, 0.6.0 on.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn seal_bytea_for(subject: Option<&[u8]>, plaintext: Option<&[u8]>, context: Option<&[u8]>, purpose: Option<&[u8]>) -> Option<Varlena> {
    seal_bytes(subject, plaintext, context, purpose)
}

/// Open an envelope straight into the result's memory: `None` when its DEK no longer exists.
/// `wanted` is the type the caller opens it as: an untyped (v1) envelope opens as text or
/// bytea; a typed (v2) one only as the type it records.
fn open_bytes(value: Option<&[u8]>, context: Option<&[u8]>, wanted: PlainType) -> Option<Varlena> {
    let context = server_to_utf8(required(context, "context"), "context").or_report();
    let value = value?;
    root::require_root_key().or_report();
    let env = envelope::parse_any(value).or_report();
    typed::check_type(&env, wanted);
    let dek = store::dek_by_id(env.key_id() as i64).or_report()?;
    let mut out = Varlena::alloc(env.plaintext_len());
    envelope::open_into(&dek, &env, &context, out.data_mut()).or_report();
    Some(out)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_text(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    let out = open_bytes(value, context, PlainType::Text)?;
    match utf8_to_server(out.data()).or_report() {
        std::borrow::Cow::Borrowed(_) => Some(out),
        std::borrow::Cow::Owned(converted) => {
            let mut text = Varlena::alloc(converted.len());
            text.data_mut().copy_from_slice(&converted);
            Some(text)
        }
    }
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn open_bytea(value: Option<&[u8]>, context: Option<&[u8]>) -> Option<Varlena> {
    open_bytes(value, context, PlainType::Bytea)
}

#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn erase(subject: Option<&[u8]>) -> bool {
    let subject = subject_arg(subject);
    store::verify_root_key().or_report();
    crate::erasure::erase_subject(&subject).or_report()
}

/// `shred.replay_erasures(key_ids bigint[]) -> bigint`: erase again, in a restored older
/// backup, the DEKs erased since it was taken (their key ids, from a newer erasure log).
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn replay_erasures(fcinfo: pg_sys::FunctionCallInfo) -> i64 {
    // SAFETY: argument 0 of a function declared (bigint[]), checked for NULL first (0.4.0 on; a
    // STRICT declaration before it never passes one).
    let key_ids = unsafe {
        if pgrx::fcinfo::pg_arg_is_null(fcinfo, 0) {
            ShredError::NullArgument("key_ids").report();
        }
        pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0)
    };
    store::verify_root_key().or_report();
    crate::erasure::replay_erasures(key_ids).or_report()
}

/// `shred.erased_at(subject text) -> timestamptz`: when the subject was last erased, from the
/// erasure log (matched by keyed digest); NULL when it has no record.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn erased_at(subject: &[u8]) -> Option<pgrx::datum::TimestampWithTimeZone> {
    let subject = subject_arg(Some(subject));
    root::require_root_key().or_report();
    let datum = store::last_erasure(&subject).or_report()?;
    // SAFETY: a timestamptz datum read from the erasure log.
    unsafe { pgrx::datum::TimestampWithTimeZone::from_datum(datum, false) }
}

/// The elements of the `text[]` argument 0 of a function called with `fcinfo`, each checked
/// like the subject of `shred.erase(text)` as it is taken (NULL array or element: 22004). Lazy:
/// a caller that works in slices never holds the converted subjects of the whole array.
fn subjects_arg<'a>(fcinfo: pg_sys::FunctionCallInfo) -> impl Iterator<Item = Subject<'a>> {
    // SAFETY: argument 0 of a function declared (text[]), checked for NULL first; the array is
    // detoasted and deconstructed in the call's memory context, alive for this call.
    let (elems, nulls, n) = unsafe {
        if pgrx::fcinfo::pg_arg_is_null(fcinfo, 0) {
            ShredError::NullArgument("subjects").report();
        }
        let raw = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0);
        let array = pg_sys::pg_detoast_datum(raw.cast_mut_ptr()).cast::<pg_sys::ArrayType>();
        let (mut elems, mut nulls, mut n) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
        pg_sys::deconstruct_array(
            array,
            pg_sys::TEXTOID,
            -1,
            false,
            pg_sys::TYPALIGN_INT as std::ffi::c_char,
            &mut elems,
            &mut nulls,
            &mut n,
        );
        (elems, nulls, n as usize)
    };
    (0..n).map(move |i| {
        // SAFETY: i < n, the length deconstruct_array gave; the elements are text datums.
        subject_arg(unsafe { if *nulls.add(i) { None } else { <&[u8]>::from_datum(*elems.add(i), false) } })
    })
}

/// `shred.erase(subjects text[])`: erase many data subjects, one DELETE per slice of
/// [`store::ERASE_SLICE`].
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn erase_many(fcinfo: pg_sys::FunctionCallInfo) -> i64 {
    let subjects = subjects_arg(fcinfo);
    store::verify_root_key().or_report();
    crate::erasure::erase_subjects(subjects).or_report()
}

/// `shred.create_keys(subjects text[]) -> bigint`: create the missing DEKs of many subjects
/// set-based; returns how many were created.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn create_keys(fcinfo: pg_sys::FunctionCallInfo) -> i64 {
    let subjects: Vec<Subject<'_>> = subjects_arg(fcinfo).collect();
    root::require_root_key().or_report();
    store::create_keys(&subjects).or_report()
}

#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn is_erased(value: &[u8]) -> bool {
    let env = envelope::parse_any(value).or_report();
    match store::key_state(env.key_id() as i64).or_report() {
        Some(live) => !live,
        None => ShredError::UnknownKey.report(),
    }
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn key_id(value: &[u8]) -> i64 {
    envelope::parse_any(value).or_report().key_id() as i64
}

/// Statement trigger on `shred.subject_key` (DELETE, UPDATE, TRUNCATE): drops this backend's
/// cached DEKs now and registers an invalidation that reaches every other backend at COMMIT.
#[pg_trigger(sql = false)]
fn subject_key_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, PgTriggerError> {
    crate::keys::cache::flush_for_trigger();
    crate::keys::cache::invalidate_at_commit(trigger.relid()?);
    Ok(None)
}

/// Event trigger (ddl_command_start: DROP EXTENSION, DROP SCHEMA, DROP OWNED): refuse, while
/// DEKs exist and unless `shred.allow_drop_with_keys` is on, every drop that takes the key store
/// with it: `DROP EXTENSION pg_shred`; `DROP SCHEMA` of `shred` or of the schema the extension
/// was created in (`CASCADE` drops the extension); `DROP OWNED BY` a role owning the extension,
/// its key table, or either schema. Such a drop would erase every data subject at once.
#[pg_extern(sql = false)]
fn refuse_drop_with_keys(fcinfo: pg_sys::FunctionCallInfo) -> Option<i32> {
    // SAFETY: called by the event trigger manager, whose context is an EventTriggerData; the
    // parse tree and its lists are only read.
    let target = unsafe {
        let ctx = (*fcinfo).context;
        if ctx.is_null() || (*ctx).type_ != pg_sys::NodeTag::T_EventTriggerData {
            return None;
        }
        drop_target((*ctx.cast::<pg_sys::EventTriggerData>()).parsetree)
    };
    let reaches_key_store = match target {
        DropTarget::Nothing => false,
        DropTarget::Extensions(names) => names.iter().any(|n| n == b"pg_shred"),
        DropTarget::Schemas(names) => store::schemas_hold_key_store(&names).or_report(),
        DropTarget::OwnedBy(roles) => store::owns_key_store(&roles).or_report(),
    };
    if !reaches_key_store || crate::gucs::ALLOW_DROP_WITH_KEYS.get() {
        return None;
    }
    let n = store::key_count().or_report();
    if n > 0 {
        ShredError::DropWithKeys(n).report();
    }
    None
}

/// What a DROP statement names.
enum DropTarget {
    Nothing,
    /// `DROP EXTENSION` of these.
    Extensions(Vec<Vec<u8>>),
    /// `DROP SCHEMA` of these.
    Schemas(Vec<Vec<u8>>),
    /// `DROP OWNED BY` these roles (OIDs; roles that do not exist are left out).
    OwnedBy(Vec<i64>),
}

/// # Safety
/// `tree` is NULL or a parse tree node.
unsafe fn drop_target(tree: *mut pg_sys::Node) -> DropTarget {
    unsafe {
        if tree.is_null() {
            return DropTarget::Nothing;
        }
        let cells = |list: *mut pg_sys::List| {
            if list.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts((*list).elements, (*list).length as usize)
            }
        };
        match (*tree).type_ {
            pg_sys::NodeTag::T_DropStmt => {
                let stmt = tree.cast::<pg_sys::DropStmt>();
                let names = cells((*stmt).objects)
                    .iter()
                    .map(|cell| cell.ptr_value.cast::<pg_sys::Node>())
                    .filter(|node| !node.is_null() && (**node).type_ == pg_sys::NodeTag::T_String)
                    .map(|node| CStr::from_ptr((*node.cast::<pg_sys::String>()).sval).to_bytes().to_vec())
                    .collect();
                match (*stmt).removeType {
                    pg_sys::ObjectType::OBJECT_EXTENSION => DropTarget::Extensions(names),
                    pg_sys::ObjectType::OBJECT_SCHEMA => DropTarget::Schemas(names),
                    _ => DropTarget::Nothing,
                }
            }
            pg_sys::NodeTag::T_DropOwnedStmt => {
                let stmt = tree.cast::<pg_sys::DropOwnedStmt>();
                let roles = cells((*stmt).roles)
                    .iter()
                    .map(|cell| pg_sys::get_rolespec_oid(cell.ptr_value.cast::<pg_sys::RoleSpec>(), true))
                    .filter(|oid| *oid != pg_sys::InvalidOid)
                    .map(|oid| u32::from(oid) as i64)
                    .collect();
                DropTarget::OwnedBy(roles)
            }
            _ => DropTarget::Nothing,
        }
    }
}

/// Number of DEKs cached in this backend (for tests and monitoring).
#[pg_extern(volatile, strict, parallel_restricted, sql = false)]
fn key_cache_entries() -> i64 {
    crate::keys::cache::entries() as i64
}

// ---------------------------------------------------------------------------------------------
// Root-key management
// ---------------------------------------------------------------------------------------------

/// One step of `CALL shred.rotate_root_key()`: rewrap up to `batch_size` DEKs under the
/// keyring's newest root-key version. Reports progress as a NOTICE (counts only). Returns
/// whether the procedure should commit and call it again (false once done, and always inside
/// a transaction block, where one call rewraps everything).
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn rewrap_batch(batch_size: i32) -> bool {
    let step = store::rewrap_batch(batch_size as i64).or_report();
    if step.rewrapped > 0 {
        pgrx::notice!(
            "pg_shred: rewrapped {} DEKs under root-key version {}; {} left",
            step.rewrapped,
            step.target,
            step.remaining
        );
    }
    if !step.done {
        return true;
    }
    if step.unreachable.is_empty() {
        pgrx::notice!("pg_shred: every DEK is wrapped under root-key version {}", step.target);
    }
    for (version, deks) in &step.unreachable {
        pgrx::warning!(
            "pg_shred: {deks} DEKs are still wrapped under root-key version {version}, which is not in the keyring; put it back and call shred.rotate_root_key() again"
        );
    }
    false
}

#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn retire_root_key(version: i32) -> bool {
    store::retire_version(version).or_report()
}

/// The keyring of this backend: one row per root-key version, with whether its key matches
/// the registered key-check value (NULL when not registered). When no keyring can be loaded,
/// a WARNING says why and no row is returned, so the status view stays readable.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn keyring() -> TableIterator<'static, (name!(version, i32), name!(key_matches, Option<bool>))> {
    let rows = match store::keyring_status() {
        Ok(rows) => rows,
        Err(e) => {
            e.warn();
            Vec::new()
        }
    };
    TableIterator::new(rows)
}
