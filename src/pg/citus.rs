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

/// While alive, the statements Citus sends to other nodes on this backend's behalf run there
/// with `search_path = pg_catalog, pg_temp`, and Citus serialises modifications of replicated
/// tables (`citus.all_modifications_commutative = off`). Dropped, the caller's values of those
/// settings and of `citus.propagate_set_commands` are set back.
///
/// Why: Citus sends a key store write to every node as SQL text, in which pg_catalog's
/// functions and types are named without their schema, and it starts each remote transaction
/// with the `SET LOCAL`s the caller propagated (`citus.propagate_set_commands = 'local'`). The
/// connections run as the key store owner (pg_shred writes with its rights). Without this, a
/// caller's `SET LOCAL search_path` (or a schema named like the owner, first on the workers'
/// default path) would make a function or type of the caller's run there with the owner's
/// rights. PostgreSQL's own `SET` statements are the only way to reach those connections: they
/// are sent (`SET LOCAL`, after the caller's), so the last one wins on every node. Nothing
/// happens in a database without Citus. Costs one `SET LOCAL` sent to the transaction's
/// connections to other nodes on entry, and one on exit; pins nest (the outermost one acts),
/// so a caller running several statements (an erasure) pins once around them.
pub struct PinnedRemoteSettings {
    restore: Option<Restore>,
}

impl PinnedRemoteSettings {
    /// Pin them when `remote` (statements may reach other nodes), else do nothing. (A `SET`
    /// is sent to every connection of the transaction at once: in the middle of a statement
    /// that streams rows to the workers, such as `INSERT … SELECT` into a distributed table,
    /// it fails, so it is sent only when needed.)
    pub fn pin(remote: bool) -> Result<Self, ShredError> {
        if !remote || !installed() || PINNED.with(|p| p.get()) {
            return Ok(Self { restore: None });
        }
        let path = setting(c"search_path");
        let restore = Restore {
            search_path: format!(
                "SET LOCAL search_path = {}",
                search_path_sql(&path).ok_or(ShredError::Internal("a search_path pg_shred cannot restore"))?
            ),
            commutative: std::ffi::CString::new(setting(c"citus.all_modifications_commutative")).unwrap_or_default(),
            propagate: std::ffi::CString::new(setting(c"citus.propagate_set_commands")).unwrap_or_default(),
        };
        // Settings of this backend alone (Citus reads them here): no round trip. Only the
        // search_path goes to the other nodes, as a SET statement Citus propagates.
        set_local(c"citus.propagate_set_commands", c"local");
        set_local(c"citus.all_modifications_commutative", c"off");
        Spi::run("SET LOCAL search_path = pg_catalog, pg_temp")
            .map_err(|e| ShredError::KeyStore(format!("pinning the search_path on the other nodes: {e}")))?;
        PINNED.with(|p| p.set(true));
        Ok(Self { restore: Some(restore) })
    }
}

thread_local! {
    /// Whether a [`PinnedRemoteSettings`] is alive: a pin inside it (a key store statement of
    /// an erasure that pins as a whole) does nothing.
    static PINNED: Cell<bool> = const { Cell::new(false) };
}

/// The caller's values, set back when [`PinnedRemoteSettings`] is dropped.
struct Restore {
    search_path: String,
    commutative: std::ffi::CString,
    propagate: std::ffi::CString,
}

impl Drop for PinnedRemoteSettings {
    fn drop(&mut self) {
        // While an ERROR unwinds, the (sub)transaction's abort undoes the SETs, on every node.
        let Some(restore) = self.restore.take() else { return };
        PINNED.with(|p| p.set(false));
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = Spi::run(&restore.search_path) {
            ShredError::KeyStore(format!("restoring the search_path on the other nodes: {e}")).report();
        }
        set_local(c"citus.all_modifications_commutative", &restore.commutative);
        set_local(c"citus.propagate_set_commands", &restore.propagate);
    }
}

/// `SET LOCAL name = value` in this backend only (as PostgreSQL's code sets a GUC; Citus does
/// not see it as a statement to propagate).
fn set_local(name: &CStr, value: &CStr) {
    // SAFETY: sets a GUC for the rest of the transaction; PGC_SUSET applies it whatever the
    // current role may set, as PostgreSQL's own code does.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            0,
            false,
        );
    }
}

/// A setting's current value ("" when it does not exist).
fn setting(name: &CStr) -> String {
    // SAFETY: a GUC lookup inside a transaction; NULL when missing.
    unsafe {
        let v = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        if v.is_null() { String::new() } else { CStr::from_ptr(v).to_string_lossy().into_owned() }
    }
}

/// A `search_path` value (its canonical text, as PostgreSQL stores it) as the list to write
/// after `SET search_path =`, or `None` when it is not a plain list of identifiers (then it is
/// not rebuilt into SQL).
fn search_path_sql(value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return Some("''".into());
    }
    let mut out = Vec::new();
    let mut rest = value.trim();
    loop {
        let (item, after) = if let Some(quoted) = rest.strip_prefix('"') {
            // a quoted identifier: up to the closing quote, "" inside
            let mut end = None;
            let bytes = quoted.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'"' {
                    if bytes.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    end = Some(i);
                    break;
                }
                i += 1;
            }
            let end = end?;
            (&rest[..end + 2], &quoted[end + 1..])
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let item = rest[..end].trim_end();
            if item.is_empty() || !item.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                return None;
            }
            (item, &rest[end..])
        };
        out.push(item.to_string());
        let after = after.trim_start();
        if after.is_empty() {
            return Some(out.join(", "));
        }
        rest = after.strip_prefix(',')?.trim_start();
    }
}
