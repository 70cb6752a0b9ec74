//! Running a step in an internal subtransaction, as PL/pgSQL's exception blocks do: begin, run,
//! then release it, or roll it back when the step raised an ERROR, restoring the memory context
//! and resource owner either way. The subtransaction is always closed before an error travels
//! on, so an enclosing exception block (PL/pgSQL's, or another of these) finds its own
//! subtransaction current.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgSqlErrorCode;

/// Run `step` in a subtransaction. `Ok` with its result when it completed (the subtransaction
/// is released: its work stays); `Err` with the SQLSTATE of the ERROR it raised (rolled back:
/// nothing of it stays) when `caught` accepts that SQLSTATE. Any other ERROR (and a Rust panic)
/// is raised again after the rollback. The error's message is dropped: it could hold anything.
pub fn attempt<R>(step: impl FnOnce() -> R, caught: impl Fn(PgSqlErrorCode) -> bool) -> Result<R, PgSqlErrorCode> {
    // SAFETY: PostgreSQL's protocol for internal subtransactions; the memory context and
    // resource owner current before it are restored on both paths.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let step = std::panic::AssertUnwindSafe(step);
        let outcome: Result<R, CaughtError> =
            pgrx::PgTryBuilder::new(move || Ok(step())).catch_others(Err).catch_rust_panic(Err).execute();
        match outcome {
            Ok(result) => {
                pg_sys::ReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(context);
                pg_sys::CurrentResourceOwner = owner;
                Ok(result)
            }
            Err(error) => {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(context);
                pg_sys::CurrentResourceOwner = owner;
                match &error {
                    CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) if caught(r.sql_error_code()) => {
                        Err(r.sql_error_code())
                    }
                    _ => error.rethrow(),
                }
            }
        }
    }
}

/// The five characters of a SQLSTATE (PostgreSQL packs them six bits each).
pub fn sqlstate(code: PgSqlErrorCode) -> String {
    let code = code as i64;
    (0..5).map(|i| char::from((((code >> (6 * i)) & 0x3F) as u8) + b'0')).collect()
}
