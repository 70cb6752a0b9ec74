//! Proving an erasure: signed erasure receipts and the residue check (what copies of an erased
//! DEK remain until the erasure horizon), declared in `sql/receipts.sql`.

pub mod receipts;
