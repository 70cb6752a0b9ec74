//! A varlena (`text`, `bytea`, `shred.sealed`) allocated once in the current memory context and
//! filled in place: seal and open write their output straight into the value they return.

use std::ptr::NonNull;

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::pg_sys;

/// A palloc'd varlena with a 4-byte header, returned to PostgreSQL as is.
pub struct Varlena {
    ptr: NonNull<pg_sys::varlena>,
    len: usize,
}

impl Varlena {
    /// Allocate a varlena for `len` data bytes (zeroed) in the current memory context.
    /// `len` is at most the envelope maximum (64 MiB + 37), far below the 1 GB varlena limit.
    pub fn alloc(len: usize) -> Self {
        let total = pg_sys::VARHDRSZ + len;
        // SAFETY: palloc0 raises an ERROR instead of returning NULL; the header is set before
        // the value is used.
        unsafe {
            let raw = pg_sys::palloc0(total).cast::<pg_sys::varlena>();
            pgrx::set_varsize_4b(raw, total as i32);
            Varlena { ptr: NonNull::new_unchecked(raw), len }
        }
    }

    pub fn data(&self) -> &[u8] {
        // SAFETY: the allocation holds the header followed by `len` bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(pg_sys::VARHDRSZ), self.len) }
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `self` is the only handle.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>().add(pg_sys::VARHDRSZ), self.len)
        }
    }
}

// SAFETY: returns the pointer of a valid varlena in the function's memory context.
unsafe impl BoxRet for Varlena {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(pg_sys::Datum::from(self.ptr.as_ptr())) }
    }
}

// The SQL type is declared by hand in sql/pg_shred--*.sql (text, bytea or shred.sealed).
pgrx::impl_sql_translatable!(Varlena, "bytea");

/// A datum built by the callee (of the type its SQL declaration returns: a polymorphic result,
/// or a trigger's row), returned to PostgreSQL as is.
pub struct RawDatum(pub pg_sys::Datum);

// SAFETY: returns a datum valid in the function's memory context.
unsafe impl BoxRet for RawDatum {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

// The SQL declarations are written by hand in sql/protect.sql.
pgrx::impl_sql_translatable!(RawDatum, "anyelement");
