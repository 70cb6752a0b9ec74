//! pg_shred on a Citus 13.2.2 cluster (a coordinator and two workers on PostgreSQL 15, started
//! by `scripts/test-citus`, which exports `PG_SHRED_CITUS_HOST` (the socket directory of all
//! three) and `PG_SHRED_CITUS_PORTS` (coordinator, worker 1, worker 2)). Every node preloads
//! `citus,pg_shred` with the same root key; Citus is created in the database `postgres` of each.
//!
//! These tests record what works today and what does not (issue "Scale out on Citus"): the key
//! store is the coordinator's own `shred.*` tables. Seals and erasures run on the coordinator;
//! one that Citus pushes down to a worker is refused there (0A000), so no worker ever holds a
//! DEK; a value opens only where the coordinator evaluates `shred.open`, and a query that opens
//! values on a worker fails with 42704, never a silent NULL. Each
//! test starts from a fresh `CREATE EXTENSION pg_shred` on the coordinator; run them on one
//! thread.

mod common;

use common::{message, one, rows, sqlstate, try_rows};
use postgres::{Client, NoTls};

const NOT_IN_KEY_STORE: &str = "pg_shred: the sealed value's key is not in this key store";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run these tests through scripts/test-citus"))
}

/// The ports of the coordinator (0) and the workers (1, 2).
fn port(node: usize) -> String {
    env("PG_SHRED_CITUS_PORTS").split(',').nth(node).unwrap_or_else(|| panic!("no node {node} in PG_SHRED_CITUS_PORTS")).to_string()
}

fn node(n: usize) -> Client {
    let dsn = format!("host={} port={} user=postgres dbname=postgres", env("PG_SHRED_CITUS_HOST"), port(n));
    Client::connect(&dsn, NoTls).unwrap_or_else(|e| panic!("connect to node {n}: {e}"))
}

const WORKERS: [usize; 2] = [1, 2];

/// Drops pg_shred on the coordinator and, through Citus, on the workers, whatever DEKs they
/// hold: a plain SET of shred.allow_drop_with_keys stays on the coordinator (see
/// protect_distributed_table), SET LOCAL reaches the workers' transactions with
/// citus.propagate_set_commands = 'local'. One statement a query: sent as one multi-statement
/// query, the DROP fails on the workers (XX000 "operation is not allowed on this node").
fn drop_extension(c: &mut Client) -> Result<(), postgres::Error> {
    for sql in [
        "BEGIN",
        "SET LOCAL citus.propagate_set_commands = 'local'",
        "SET LOCAL shred.allow_drop_with_keys = on",
        "DROP EXTENSION IF EXISTS pg_shred CASCADE",
        "COMMIT",
    ] {
        if let Err(e) = c.batch_execute(sql) {
            c.batch_execute("ROLLBACK")?;
            return Err(e);
        }
    }
    Ok(())
}

/// The coordinator, with pg_shred created anew (the drop and the creation reach the workers
/// too) and the tables of earlier tests gone.
fn fresh() -> Client {
    let mut c = node(0);
    c.batch_execute("DROP TABLE IF EXISTS dist, ref, customer CASCADE").expect("drop the tables");
    drop_extension(&mut c).expect("drop pg_shred");
    c.batch_execute("CREATE EXTENSION pg_shred")
    .expect("fresh pg_shred on the coordinator");
    c
}

/// A table `dist` hash-distributed on `id` over the two workers, with `n` values sealed on
/// the coordinator (subjects s1..sn, plaintexts v1..vn, context 'ctx').
fn dist_table(c: &mut Client, n: i32) {
    c.batch_execute(
        "CREATE TABLE dist (id bigint PRIMARY KEY, subject text, v shred.sealed);
         SELECT create_distributed_table('dist', 'id')",
    )
    .unwrap();
    c.execute("INSERT INTO dist SELECT i, 's' || i, shred.seal('s' || i, 'v' || i, 'ctx') FROM generate_series(1, $1) i", &[&n]).unwrap();
}

/// Which node holds the shard of `dist` for `id`.
fn shard_port(c: &mut Client, id: i64) -> String {
    one(c, &format!("SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = get_shard_id_for_distribution_column('dist', {id})"))
}

/// CREATE EXTENSION pg_shred on the coordinator reaches both workers (Citus propagates it):
/// each worker has the extension, the schema and its own, empty, local key store: the shred.*
/// tables are not Citus tables on any node.
#[test]
fn create_extension_propagates_to_workers() {
    let mut c = fresh();
    for w in WORKERS {
        let mut wc = node(w);
        assert_eq!(one(&mut wc, "SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'"), one(&mut c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'"));
        assert_eq!(one(&mut wc, "SELECT to_regclass('shred.subject_key') IS NOT NULL AND to_regclass('shred.erasure_log') IS NOT NULL"), "t");
        assert_eq!(one(&mut wc, "SELECT count(*) FROM shred.subject_key"), "0");
        assert_eq!(one(&mut wc, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shred.%'"), "0", "worker {w}");
    }
    assert_eq!(one(&mut c, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shred.%'"), "0");
}

/// shred.seal in INSERTs into a distributed table runs on the coordinator (one row, several
/// rows, INSERT ... SELECT from generate_series): the DEKs are created in the coordinator's key
/// store only, the workers' stay empty.
#[test]
fn seal_on_coordinator_into_distributed_table() {
    let mut c = fresh();
    dist_table(&mut c, 0);
    c.batch_execute(
        "INSERT INTO dist VALUES (1, 's1', shred.seal('s1', 'v1', 'ctx'));
         INSERT INTO dist VALUES (2, 's2', shred.seal('s2', 'v2', 'ctx')), (3, 's3', shred.seal('s3', 'v3', 'ctx'));
         INSERT INTO dist SELECT i, 's' || i, shred.seal('s' || i, 'v' || i, 'ctx') FROM generate_series(4, 10) i",
    )
    .unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM dist"), "10");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key"), "10");
    // The values went to both workers.
    assert_eq!(one(&mut c, "SELECT count(DISTINCT nodeport) FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid) WHERE s.logicalrelid = 'dist'::regclass"), "2");
    for w in WORKERS {
        assert_eq!(one(&mut node(w), "SELECT count(*) FROM shred.subject_key"), "0", "worker {w}");
    }
}

/// shred.open (and shred.is_erased) pushed down to a worker, in a router query by id and in a
/// multi-shard query, raises 42704 "the sealed value's key is not in this key store" (the
/// worker's key store has no DEK and no erasure record): never a silent NULL.
#[test]
fn open_pushed_down_to_workers_raises_42704() {
    let mut c = fresh();
    dist_table(&mut c, 10);
    for sql in [
        "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 1",
        "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 2",
        "SELECT id, shred.open(v, 'ctx') FROM dist ORDER BY id",
        "SELECT count(*) FROM dist WHERE shred.open(v, 'ctx') IS NULL",
        "SELECT id, shred.is_erased(v) FROM dist ORDER BY id",
        "SELECT shred.open((SELECT v FROM dist WHERE id = 1), 'ctx')",
    ] {
        let r = try_rows(&mut c, sql);
        assert!(r.is_err(), "{sql}: {r:?}");
        let e = r.unwrap_err();
        assert_eq!(e.code().map(|s| s.code()), Some("42704"), "{sql}: {e}");
        assert_eq!(e.as_db_error().unwrap().message(), NOT_IN_KEY_STORE, "{sql}");
        // The error names the worker that raised it.
        let context = e.as_db_error().unwrap().where_().unwrap_or("").to_string();
        assert!(context.contains("while executing command on"), "{sql}: {context}");
    }
    // A router query goes to the one worker holding the row's shard.
    let w = shard_port(&mut c, 1);
    let e = try_rows(&mut c, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 1").unwrap_err();
    assert!(e.as_db_error().unwrap().where_().unwrap().contains(&format!(":{w}")), "{e:?}");
}

/// Values read into the coordinator first (a MATERIALIZED CTE over several shards: Citus fetches
/// it as an intermediate result) open there: the workaround today. After shred.erase on the coordinator
/// (which returns true and records the erasure in the coordinator's log only) the erased
/// subject's value opens as NULL there and the others still open; pushed down, every value
/// still raises 42704.
#[test]
fn open_on_coordinator_and_erase() {
    let mut c = fresh();
    dist_table(&mut c, 5);
    let opened = "WITH x AS MATERIALIZED (SELECT id, v FROM dist) SELECT id, shred.open(v, 'ctx'), shred.is_erased(v) FROM x ORDER BY id";
    assert_eq!(rows(&mut c, opened), ["1 | v1 | f", "2 | v2 | f", "3 | v3 | f", "4 | v4 | f", "5 | v5 | f"]);
    assert_eq!(one(&mut c, "SELECT shred.erase('s2')"), "t");
    // A new session, as after COMMIT anywhere.
    let mut c = node(0);
    assert_eq!(rows(&mut c, opened), ["1 | v1 | f", "2 | ∅ | t", "3 | v3 | f", "4 | v4 | f", "5 | v5 | f"]);
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.erasure_log"), "1");
    for w in WORKERS {
        assert_eq!(one(&mut node(w), "SELECT count(*) FROM shred.erasure_log"), "0", "worker {w}");
    }
    // A MATERIALIZED CTE of a router query is pushed down whole: no workaround there.
    let router_cte = "WITH x AS MATERIALIZED (SELECT v FROM dist WHERE id = 3) SELECT shred.open(v, 'ctx') FROM x";
    assert_eq!(sqlstate(try_rows(&mut c, router_cte)), "42704");
    // Pushed down, the erased value and the others alike raise 42704.
    assert_eq!(sqlstate(try_rows(&mut c, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 2")), "42704");
    assert_eq!(sqlstate(try_rows(&mut c, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 3")), "42704");
}

/// A reference table has a placement on the coordinator (it is in Citus' metadata through
/// citus_set_coordinator_host), and Citus reads it there: shred.open over a reference table
/// opens, also after an erasure (NULL). Joined with a distributed table, the query is pushed
/// down to the workers and raises 42704.
#[test]
fn reference_table_opens_on_coordinator() {
    let mut c = fresh();
    c.batch_execute(
        "CREATE TABLE ref (id bigint PRIMARY KEY, v shred.sealed);
         SELECT create_reference_table('ref');
         INSERT INTO ref VALUES (1, shred.seal('r1', 'ref one', 'ctx')), (2, shred.seal('r2', 'ref two', 'ctx'))",
    )
    .unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key"), "2");
    assert_eq!(rows(&mut c, "SELECT id, shred.open(v, 'ctx') FROM ref ORDER BY id"), ["1 | ref one", "2 | ref two"]);
    assert_eq!(one(&mut c, "SELECT shred.open(v, 'ctx') FROM ref WHERE id = 2"), "ref two");
    assert_eq!(one(&mut c, "SELECT shred.erase('r1')"), "t");
    assert_eq!(rows(&mut c, "SELECT id, shred.open(v, 'ctx'), shred.is_erased(v) FROM ref ORDER BY id"), ["1 | ∅ | t", "2 | ref two | f"]);
    dist_table(&mut c, 2);
    let r = try_rows(&mut c, "SELECT d.id, shred.open(r.v, 'ctx') FROM dist d JOIN ref r USING (id) ORDER BY 1");
    assert_eq!(sqlstate(r), "42704");
}

/// The key table made a reference table, with citus.enable_unsafe_triggers (refused without).
/// `erase_before`: erase s3 first, which creates the reserved audit DEK (pg_shred:audit) while
/// the key table is still a local table.
fn subject_key_referenced(erase_before: bool) -> Client {
    let mut c = fresh();
    dist_table(&mut c, 3);
    if erase_before {
        assert_eq!(one(&mut c, "SELECT shred.erase('s3')"), "t");
        assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject = 'pg_shred:audit'"), "1");
    }
    let e = c.batch_execute("SELECT create_reference_table('shred.subject_key')").unwrap_err();
    assert_eq!(e.code().map(|s| s.code()), Some("XX000"), "{e}");
    assert_eq!(e.as_db_error().unwrap().message(), "cannot distribute relation \"subject_key\" because it has triggers");
    c.batch_execute("SET citus.enable_unsafe_triggers = on; SELECT create_reference_table('shred.subject_key')").unwrap();
    // A reference table (partition method none, replication model two-phase); the view
    // citus_tables does not list it.
    assert_eq!(one(&mut c, "SELECT partmethod::text || repmodel::text FROM pg_dist_partition WHERE logicalrelid = 'shred.subject_key'::regclass"), "nt");
    node(0)
}

const OPEN_ON_COORDINATOR: &str = "WITH x AS MATERIALIZED (SELECT id, v FROM dist) SELECT id, shred.open(v, 'ctx'), shred.is_erased(v) FROM x ORDER BY id";

/// create_reference_table('shred.subject_key') is refused (the key table has a trigger: XX000);
/// with citus.enable_unsafe_triggers it is done, and there is no way back (undistribute_table:
/// XX000 "cannot alter table because an extension depends on it"). pg_shred keeps probing the
/// node's own table of that name (the coordinator's shell table, whose heap still holds the
/// copied rows; the workers' empty tables), not the reference table's shard, while its SQL
/// statements go through Citus: a first seal, and an erasure in a database that never erased
/// before (it creates the audit DEK), fail with 0A000 "could not create distributed plan"
/// (pg_shred's SQL functions with parameters); values pushed down still raise 42704.
#[test]
fn subject_key_as_reference_table() {
    let mut c = subject_key_referenced(false);
    // The workers see the reference table through SQL (Citus reads the local placement)...
    for w in WORKERS {
        assert_eq!(one(&mut node(w), "SELECT count(*) FROM shred.subject_key"), "3", "worker {w}");
    }
    // ... but pg_shred's own probes there find nothing.
    assert_eq!(sqlstate(try_rows(&mut c, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 1")), "42704");
    for sql in ["SELECT shred.seal('new', 'x', 'ctx')", "SELECT shred.erase('s2')"] {
        let e = try_rows(&mut c, sql).unwrap_err();
        assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{sql}: {e}");
        assert_eq!(e.as_db_error().unwrap().message(), "could not create distributed plan", "{sql}");
    }
    // The coordinator still opens from its shell table's heap.
    assert_eq!(rows(&mut c, OPEN_ON_COORDINATOR), ["1 | v1 | f", "2 | v2 | f", "3 | v3 | f"]);
    let e = c.batch_execute("SELECT undistribute_table('shred.subject_key')").unwrap_err();
    assert_eq!(e.as_db_error().unwrap().message(), "cannot alter table because an extension depends on it");
}

/// The same with the audit DEK created before: shred.erase succeeds (deletes the DEK from the
/// reference table's shards, records the erasure), and the erased value must not open any
/// more. Today it still opens on the coordinator, from the stale heap of the table Citus made
/// its shell (is_erased false): never make pg_shred's tables Citus tables (docs/citus.md).
#[test]
#[ignore = "issue 'Scale out on Citus': a key table made a reference table by hand keeps a stale local copy on the coordinator"]
fn subject_key_as_reference_table_erase_in_force() {
    let mut c = subject_key_referenced(true);
    assert_eq!(rows(&mut c, OPEN_ON_COORDINATOR), ["1 | v1 | f", "2 | v2 | f", "3 | ∅ | t"]);
    assert_eq!(one(&mut c, "SELECT shred.erase('s2')"), "t");
    let mut c = node(0);
    assert_eq!(rows(&mut c, OPEN_ON_COORDINATOR), ["1 | v1 | f", "2 | ∅ | t", "3 | ∅ | t"]);
}

/// shred.protect on a distributed table is refused, and changes nothing:
///   - with a searchable column: its UPDATE filling the row tokens calls shred.blind_token,
///     which is VOLATILE (Citus: 0A000);
///   - without one: Citus propagates its `ALTER TABLE ... TYPE shred.sealed USING
///     shred.seal(...)` to the shards, where each worker would seal under DEKs of its own local
///     key store, which the coordinator's erasures would never reach; pg_shred refuses to write
///     its key store in a statement Citus runs on a worker (0A000), so the ALTER fails on the
///     workers and the whole protect() rolls back: no worker holds a DEK.
#[test]
fn protect_distributed_table_is_refused() {
    let mut c = fresh();
    c.batch_execute(
        "CREATE TABLE customer (id bigint PRIMARY KEY, name text, email text, country text);
         SELECT create_distributed_table('customer', 'id');
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', 'UK'), (2, 'Bob', 'bob@example.org', 'FR')",
    )
    .unwrap();
    let r = c.batch_execute("SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], searchable => ARRAY['email'], subject_prefix => 'customer:')");
    let e = r.unwrap_err();
    assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{e}");
    assert_eq!(e.as_db_error().unwrap().message(), "functions used in UPDATE queries on distributed tables must not be VOLATILE");
    let email_type = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'customer'::regclass AND attname = 'email'";
    assert_eq!(one(&mut c, email_type), "text");

    let e = c.batch_execute("SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], subject_prefix => 'customer:')").unwrap_err();
    assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{e}");
    assert_eq!(e.as_db_error().unwrap().message(), "pg_shred: the key store cannot be written in a statement Citus runs on a worker");
    assert_eq!(one(&mut c, email_type), "text");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'customer:%'"), "0");
    for w in WORKERS {
        assert_eq!(one(&mut node(w), "SELECT count(*) FROM shred.subject_key"), "0", "worker {w}");
    }
    assert_eq!(rows(&mut c, "SELECT id, name FROM customer ORDER BY id"), ["1 | Ada", "2 | Bob"]);
    c.batch_execute("DROP TABLE customer").unwrap();
    drop_extension(&mut c).unwrap();
}

/// A seal or an erasure that Citus pushes down to a worker (evaluated per row of a shard) is
/// refused there (0A000), never done against the worker's empty key store: no DEK made on a
/// worker, no erasure reported done that did not happen.
#[test]
fn key_store_writes_pushed_down_are_refused() {
    let mut c = fresh();
    dist_table(&mut c, 3);
    for sql in [
        "SELECT shred.seal(subject, 'again', 'ctx') FROM dist WHERE id = 1",
        "SELECT shred.erase('s' || id) FROM dist WHERE id = 2",
    ] {
        let e = try_rows(&mut c, sql).unwrap_err();
        assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{sql}: {e}");
        assert_eq!(e.as_db_error().unwrap().message(), "pg_shred: the key store cannot be written in a statement Citus runs on a worker", "{sql}");
    }
    for w in WORKERS {
        assert_eq!(one(&mut node(w), "SELECT count(*) FROM shred.subject_key"), "0", "worker {w}");
    }
    // The same erasure on the coordinator works, and is in force for values it opens.
    assert_eq!(one(&mut c, "SELECT shred.erase('s2')"), "t");
    assert_eq!(rows(&mut c, "WITH x AS MATERIALIZED (SELECT id, v FROM dist) SELECT id, shred.open(v, 'ctx') FROM x ORDER BY id"), ["1 | v1", "2 | ∅", "3 | v3"]);
}

/// A table protected first and distributed afterwards: create_distributed_table succeeds (the
/// view stays local to the coordinator, with a warning), writes through the view seal on the
/// coordinator, but reads through the view are pushed down and raise 42704.
#[test]
fn protect_then_distribute() {
    let mut c = fresh();
    c.batch_execute(
        "CREATE TABLE customer (id bigint PRIMARY KEY, name text, email text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org');
         SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], searchable => ARRAY['email'], subject_prefix => 'customer:');
         SELECT create_distributed_table('customer', 'id');
         INSERT INTO customer_plain VALUES (2, 'Bob', 'bob@example.org')",
    )
    .unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM customer"), "2");
    // The DEKs of both subjects (and the blind-index context key) are on the coordinator.
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'customer:%'"), "2");
    assert_eq!(message(try_rows(&mut c, "SELECT name FROM customer_plain WHERE id = 1")), NOT_IN_KEY_STORE);
    assert_eq!(sqlstate(try_rows(&mut c, "SELECT * FROM customer_plain ORDER BY id")), "42704");
    assert_eq!(one(&mut c, "SELECT shred.erase('customer:1')"), "t");
}
