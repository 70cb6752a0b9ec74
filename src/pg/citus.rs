//! What pg_shred needs to know about Citus, the distributed PostgreSQL engine: nothing of
//! Citus is linked or called; only what a backend can see of its connection and of Citus's
//! catalog tables.
//!
//! On a Citus cluster the key store's tables are reference tables (`shred.distribute_key_store()`,
//! see docs/citus.md): every node holds a full copy of each, its *placement*, a table named
//! `shred.<table>_<shard id>` with indexes `<index>_<shard id>`. pg_shred reads the node's own
//! placement directly ([`reference_shard`]), so a value opens wherever Citus evaluates
//! `shred.open`, and writes through the table itself, which Citus replicates to every
//! placement in the same distributed transaction (two-phase commit).

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::spi::Spi;

use crate::error::ShredError;

/// Whether this backend serves a connection Citus opened to run part of a distributed
/// statement on this node (Citus names those connections `citus_internal gpid=…`).
pub fn internal_connection() -> bool {
    // SAFETY: plain read of the backend's application_name setting (NULL or a C string).
    unsafe {
        let name = pg_sys::application_name;
        !name.is_null() && CStr::from_ptr(name).to_bytes().starts_with(b"citus_internal")
    }
}

/// Whether Citus is installed in this database (its catalog table `pg_dist_partition` exists):
/// a syscache lookup.
pub fn installed() -> bool {
    // SAFETY: syscache lookup inside a transaction; InvalidOid when missing.
    unsafe {
        pg_sys::get_relname_relid(c"pg_dist_partition".as_ptr(), pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE))
            != pg_sys::InvalidOid
    }
}

/// Whether this node is a Citus worker: Citus is installed and the node's group
/// (`pg_dist_local_group`) is not the coordinator's (0). One query of Citus's catalog per
/// transaction at most (a node joins a cluster between transactions); asked before key store
/// writes, never per value.
pub fn on_worker() -> Result<bool, ShredError> {
    thread_local! {
        /// (transaction, its answer).
        static KNOWN: Cell<(pg_sys::LocalTransactionId, bool)> = const { Cell::new((0, false)) };
    }
    if !installed() {
        return Ok(false);
    }
    let xact = super::compat::local_transaction_id();
    let (at, answer) = KNOWN.with(|k| k.get());
    if at == xact && xact != 0 {
        return Ok(answer);
    }
    let group = Spi::get_one::<i32>("SELECT groupid FROM pg_catalog.pg_dist_local_group")
        .map_err(|e| ShredError::KeyStore(format!("reading Citus's catalog: {e}")))?;
    let answer = group.is_some_and(|g| g != 0);
    KNOWN.with(|k| k.set((xact, answer)));
    Ok(answer)
}

/// The shard id of `relid` when Citus made it a reference table (one shard, a placement on
/// every node): this node's rows are then in `<relation>_<shard id>`. `None` for a table Citus
/// does not manage (or without Citus in this database). Errors for a table Citus manages
/// otherwise (hash-distributed, or a Citus local table): its rows are not all on every node.
///
/// One query of Citus's catalog, `pg_dist_partition` and `pg_dist_shard` (readable by every
/// role), when the catalog exists; callers resolve it once per backend, not per value.
pub fn reference_shard(relid: pg_sys::Oid, name: &CStr) -> Result<Option<i64>, ShredError> {
    if !installed() {
        return Ok(None);
    }
    let row: Option<(String, i64)> = Spi::connect(|client| {
        let rows = client.select(
            "SELECT p.partmethod::pg_catalog.text OPERATOR(pg_catalog.||) p.repmodel::pg_catalog.text, s.shardid \
             FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_dist_shard s \
               ON s.logicalrelid OPERATOR(pg_catalog.=) p.logicalrelid \
             WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1 \
             ORDER BY s.shardid LIMIT 2",
            None,
            &[relid.into()],
        )?;
        let mut found = None;
        let mut shards = 0;
        for row in rows {
            shards += 1;
            found = Some((row.get::<String>(1)?.unwrap_or_default(), row.get::<i64>(2)?.unwrap_or_default()));
        }
        Ok::<_, pgrx::spi::SpiError>(if shards > 1 { found.map(|(_, s)| ("many".to_string(), s)) } else { found })
    })
    .map_err(|e| ShredError::KeyStore(format!("reading Citus's catalog: {e}")))?;
    match row {
        None => Ok(None),
        // partmethod 'n' (none) and repmodel 't' (two-phase): a reference table.
        Some((kind, shard)) if kind == "nt" => Ok(Some(shard)),
        Some(_) => Err(ShredError::CitusTable(name.to_string_lossy().into_owned())),
    }
}
