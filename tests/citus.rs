//! pg_shred on a Citus 13.2.2 cluster (a coordinator and two workers on PostgreSQL 15, started
//! by `scripts/test-citus`, which exports `PG_SHRED_CITUS_HOST` (the socket directory of all
//! three) and `PG_SHRED_CITUS_PORTS` (coordinator, worker 1, worker 2)). Every node preloads
//! `citus,pg_shred` with the same root key; Citus is created in the database `postgres` of each.
//!
//! Two setups are tested:
//! - **Key store distributed** (`SELECT shred.distribute_key_store()` on the coordinator, the
//!   documented setup): its tables are Citus reference tables, every node reads its own copy,
//!   so values open wherever Citus evaluates `shred.open` (a router query on the worker holding
//!   the row, a multi-shard query on every worker), and an erasure commits on every node
//!   together (two-phase commit) and invalidates every node's DEK caches at COMMIT.
//! - **Key store on the coordinator only** (before that call): seals and erasures run on the
//!   coordinator; a value opened on a worker raises 42704, never a silent NULL.
//! Key store writes that Citus pushes down to a worker are refused in both (0A000). Each test
//! starts from a fresh `CREATE EXTENSION pg_shred` on the coordinator; run them on one thread.
//! Worker 3 (the fourth port) runs outside the cluster until `worker_added_after_keys_exist`
//! adds it, and leaves again (once per cluster).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{message, one, rows, sqlstate, try_rows};
use postgres::{Client, NoTls};

const WORKER_WRITE: &str = "pg_shred: the key store is written on the Citus coordinator only";
const NOT_IN_KEY_STORE: &str = "pg_shred: the sealed value's key is not in this key store";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run these tests through scripts/test-citus"))
}

/// The ports of the coordinator (0) and the workers (1, 2; 3 outside the cluster).
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
    leave_worker3(&mut c);
    c.batch_execute("DROP TABLE IF EXISTS dist, ref, customer, account, typed CASCADE").expect("drop the tables");
    drop_extension(&mut c).expect("drop pg_shred");
    c.batch_execute("CREATE EXTENSION pg_shred")
    .expect("fresh pg_shred on the coordinator");
    c
}

/// [`fresh`], with the key store distributed (the documented setup): its three tables become
/// Citus reference tables.
fn fresh_distributed() -> Client {
    let mut c = fresh();
    assert_eq!(one(&mut c, "SELECT shred.distribute_key_store()"), "3");
    c
}

/// Worker 3 out of the cluster (a test that added it may have failed before removing it).
/// Citus leaves pg_shred on it, with the metadata of the tables it had: worker 3 is added once
/// per cluster (scripts/test-citus starts it anew).
fn leave_worker3(c: &mut Client) {
    let (dir, p) = (env("PG_SHRED_CITUS_HOST"), port(3));
    if one(c, &format!("SELECT count(*) FROM pg_dist_node WHERE nodeport = {p}")) != "0" {
        c.batch_execute(&format!("SELECT citus_remove_node('{dir}', {p})")).expect("remove worker 3");
    }
}

/// A coordinator session whose NOTICEs (the commands Citus sends, with
/// citus.log_remote_commands: "issuing <command> | on server <user>@<host>:<port> ...") are
/// collected.
fn logged() -> (Client, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut config: postgres::Config = format!("host={} port={} user=postgres dbname=postgres", env("PG_SHRED_CITUS_HOST"), port(0)).parse().unwrap();
    config.notice_callback(move |n| sink.lock().unwrap().push(format!("{} | {}", n.message(), n.detail().unwrap_or(""))));
    (config.connect(NoTls).unwrap(), seen)
}

/// `sql`'s single value on every node of the cluster (coordinator, workers 1 and 2).
fn on_every_node(sql: &str) -> Vec<String> {
    (0..3).map(|n| one(&mut node(n), sql)).collect()
}

/// A table `dist` hash-distributed on `id` over the two workers, with `n` values sealed on
/// the coordinator (subjects s1..sn, whose DEKs are made first, plaintexts v1..vn, context
/// 'ctx').
fn dist_table(c: &mut Client, n: i32) {
    c.batch_execute(
        "CREATE TABLE dist (id bigint PRIMARY KEY, subject text, v shred.sealed);
         SELECT create_distributed_table('dist', 'id')",
    )
    .unwrap();
    // The DEKs first: with the key store distributed, a first seal writes the key store's
    // reference tables, which Citus cannot do while it streams the INSERT's rows to the shards.
    c.execute("SELECT shred.create_keys(ARRAY(SELECT 's' || i FROM generate_series(1, $1) i))", &[&n]).unwrap();
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
        // On a Citus cluster, the hint names the setup that is missing.
        assert!(e.as_db_error().unwrap().hint().unwrap_or("").contains("shred.distribute_key_store()"), "{sql}: {e:?}");
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
    assert_eq!(e.as_db_error().unwrap().message(), WORKER_WRITE);
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
        assert_eq!(e.as_db_error().unwrap().message(), WORKER_WRITE, "{sql}");
    }
    for w in WORKERS {
        assert_eq!(one(&mut node(w), "SELECT count(*) FROM shred.subject_key"), "0", "worker {w}");
    }
    // The same erasure on the coordinator works, and is in force for values it opens.
    assert_eq!(one(&mut c, "SELECT shred.erase('s2')"), "t");
    assert_eq!(rows(&mut c, "WITH x AS MATERIALIZED (SELECT id, v FROM dist) SELECT id, shred.open(v, 'ctx') FROM x ORDER BY id"), ["1 | v1", "2 | ∅", "3 | v3"]);
}

/// `customer` (one row) protected with a searchable column, then distributed.
const PROTECTED_THEN_DISTRIBUTED: &str = "CREATE TABLE customer (id bigint PRIMARY KEY, name text, email text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org');
         SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], searchable => ARRAY['email'], subject_prefix => 'customer:');
         SELECT create_distributed_table('customer', 'id');";

/// A table protected first and distributed afterwards: create_distributed_table succeeds (the
/// view stays local to the coordinator, with a warning), writes through the view seal on the
/// coordinator, but reads through the view are pushed down and raise 42704.
#[test]
fn protect_then_distribute() {
    let mut c = fresh();
    c.batch_execute(PROTECTED_THEN_DISTRIBUTED).unwrap();
    c.batch_execute("INSERT INTO customer_plain VALUES (2, 'Bob', 'bob@example.org')").unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM customer"), "2");
    // The DEKs of both subjects (and the blind-index context key) are on the coordinator.
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'customer:%'"), "2");
    assert_eq!(message(try_rows(&mut c, "SELECT name FROM customer_plain WHERE id = 1")), NOT_IN_KEY_STORE);
    assert_eq!(sqlstate(try_rows(&mut c, "SELECT * FROM customer_plain ORDER BY id")), "42704");
    assert_eq!(one(&mut c, "SELECT shred.erase('customer:1')"), "t");
}

// ---------------------------------------------------------------------------------------------
// The key store distributed: shred.distribute_key_store()
// ---------------------------------------------------------------------------------------------

/// shred.distribute_key_store() on the coordinator makes the three tables an opening reads
/// reference tables, with the DEKs sealed before it copied to every node, and removes the
/// coordinator's former local rows (Citus leaves them on disk, unseen). Run again, it does
/// nothing; on a worker it is refused. pg_shred's other tables stay the coordinator's own.
#[test]
fn distribute_key_store_copies_the_key_store_to_every_node() {
    let mut c = fresh();
    dist_table(&mut c, 3);
    assert_eq!(one(&mut c, "SELECT shred.erase('s3')"), "t");
    // Before: the coordinator's alone (3 DEKs and the audit DEK, one erasure record).
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key"), ["3", "0", "0"]);
    let e = try_rows(&mut node(1), "SELECT shred.distribute_key_store()").unwrap_err();
    assert_eq!(e.code().map(|s| s.code()), Some("55000"), "{e}");
    assert_eq!(e.as_db_error().unwrap().message(), "pg_shred: the key store is distributed from the coordinator");
    let local_bytes = one(&mut c, "SELECT pg_relation_size('shred.subject_key')");
    assert_ne!(local_bytes, "0");

    // In a transaction, which goes on without Citus's unsafe-triggers setting.
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.distribute_key_store()"), "3");
    assert_eq!(one(&mut c, "SELECT current_setting('citus.enable_unsafe_triggers')"), "off");
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(
        rows(&mut c, "SELECT logicalrelid::text || ' ' || partmethod::text || repmodel::text FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shred.%' ORDER BY 1"),
        ["shred.erasure_log nt", "shred.root_key_version nt", "shred.subject_key nt"]
    );
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key"), ["3", "3", "3"]);
    assert_eq!(on_every_node("SELECT count(*) FROM shred.erasure_log"), ["1", "1", "1"]);
    assert_eq!(on_every_node("SELECT count(*) FROM shred.root_key_version"), ["1", "1", "1"]);
    // The coordinator's table is Citus's shell now; its former heap is emptied.
    assert_eq!(one(&mut c, "SELECT pg_relation_size('shred.subject_key')"), "0");
    assert_eq!(one(&mut c, "SELECT pg_relation_size('shred.erasure_log')"), "0");
    assert_eq!(one(&mut c, "SELECT shred.distribute_key_store()"), "0");
    // Values sealed before open on the workers, the erased one as erased.
    assert_eq!(rows(&mut c, "SELECT id, shred.open(v, 'ctx'), shred.is_erased(v) FROM dist ORDER BY id"), ["1 | v1 | f", "2 | v2 | f", "3 | ∅ | t"]);
}

/// With the key store distributed, values open wherever Citus evaluates shred.open: a router
/// query by id on the worker holding the row, a multi-shard query on both workers, typed values,
/// values of a purpose DEK, pseudonyms and blind indexes equal to the coordinator's. A subject new to the
/// key store, sealed in a statement pushed down to a worker, is still refused there (0A000),
/// and one with a DEK seals there (a read of the key store).
#[test]
fn values_open_on_every_worker() {
    let mut c = fresh_distributed();
    dist_table(&mut c, 10);
    for id in 1..=10i64 {
        let sql = format!("SELECT shred.open(v, 'ctx') FROM dist WHERE id = {id}");
        assert_eq!(one(&mut c, &sql), format!("v{id}"), "row {id} on the worker at port {}", shard_port(&mut c, id));
    }
    assert_eq!(one(&mut c, "SELECT string_agg(shred.open(v, 'ctx'), ',' ORDER BY id) FROM dist"), "v1,v2,v3,v4,v5,v6,v7,v8,v9,v10");
    assert_eq!(one(&mut c, "SELECT count(*) FROM dist WHERE shred.is_erased(v)"), "0");
    // Pseudonyms computed on a worker are the coordinator's.
    for id in [1i64, 2] {
        assert_eq!(
            one(&mut c, &format!("SELECT shred.pseudonym(subject, 'p') FROM dist WHERE id = {id}")),
            one(&mut c, &format!("SELECT shred.pseudonym('s{id}', 'p')")),
        );
    }
    // Typed values, and blind indexes (the context key is a DEK too) computed on a worker
    // equal to the coordinator's.
    c.batch_execute(
        "CREATE TABLE typed (id bigint PRIMARY KEY, n shred.sealed, j shred.sealed);
         SELECT create_distributed_table('typed', 'id');
         INSERT INTO typed VALUES (1, shred.seal('s1', 42::bigint, 'n'), shred.seal('s1', '{\"a\": 1}'::jsonb, 'j')),
                                  (2, shred.seal('s2', 7::bigint, 'n'), shred.seal('s2', '[2]'::jsonb, 'j'));
         SELECT shred.blind_token('s1', 'x@example.org', 'dist.email', 'email')",
    )
    .unwrap();
    assert_eq!(rows(&mut c, "SELECT id, shred.open_bigint(n, 'n') + 1, shred.open_jsonb(j, 'j') FROM typed ORDER BY id"), ["1 | 43 | {\"a\": 1}", "2 | 8 | [2]"]);
    assert_eq!(one(&mut c, "SELECT shred.open_bigint(n, 'n') FROM typed WHERE id = 2"), "7");
    assert_eq!(
        one(&mut c, "SELECT string_agg(shred.blind_index(subject || '@Example.org', 'dist.email', 'email')::text, ',' ORDER BY id) FROM dist WHERE id <= 3"),
        one(&mut c, "SELECT string_agg(shred.blind_index('s' || i || '@example.org', 'dist.email', 'email')::text, ',' ORDER BY i) FROM generate_series(1, 3) i"),
    );
    c.batch_execute("DROP TABLE typed").unwrap();
    // A purpose DEK.
    c.batch_execute(
        "SELECT shred.define_purpose('billing', 'invoices', requires_consent => false);
         INSERT INTO dist VALUES (11, 's1', shred.seal('s1', 'invoice', 'ctx', 'billing'))",
    )
    .unwrap();
    assert_eq!(one(&mut c, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 11"), "invoice");
    // Sealing on a worker: a subject with a DEK seals (and opens back); a new one is refused.
    assert_eq!(one(&mut c, "SELECT shred.open(shred.seal(subject, 'again', 'ctx'), 'ctx') FROM dist WHERE id = 2"), "again");
    let e = try_rows(&mut c, "SELECT shred.seal('new:' || subject, 'x', 'ctx') FROM dist WHERE id = 2").unwrap_err();
    assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{e}");
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'new:%'"), ["0", "0", "0"]);
    // shred.create_keys on the coordinator first: then the same INSERT ... SELECT seals on
    // the coordinator with DEKs every node has.
    c.batch_execute(
        "SELECT shred.create_keys(ARRAY(SELECT 'n' || i FROM generate_series(1, 20) i));
         INSERT INTO dist SELECT 100 + i, 'n' || i, shred.seal('n' || i, 'w' || i, 'ctx') FROM generate_series(1, 20) i",
    )
    .unwrap();
    assert_eq!(one(&mut c, "SELECT string_agg(shred.open(v, 'ctx'), ',' ORDER BY id) FROM dist WHERE id > 100 AND id <= 104"), "w1,w2,w3,w4");
    // A value of another key store raises 42704 on a worker too.
    // (Key id, bytes 2 to 9 of the envelope, replaced by one this key store never held: one
    // drawn since 0.4.0, and one below 2^52, which the key store's sequence could have handed
    // out before 0.4.0.)
    for (id, key_id) in [(98, "0020000000000001"), (99, "000fffffffffffff")] {
        c.batch_execute(&format!(
            "INSERT INTO dist SELECT {id}, 'x', ('shred1:' || encode(overlay(decode(substr(v::text, 8), 'base64') PLACING '\\x{key_id}'::bytea FROM 2 FOR 8), 'base64'))::shred.sealed
               FROM dist WHERE id = 1"
        ))
        .unwrap();
        assert_eq!(message(try_rows(&mut c, &format!("SELECT shred.open(v, 'ctx') FROM dist WHERE id = {id}"))), NOT_IN_KEY_STORE, "key id {key_id}");
    }
}

/// An erasure on the coordinator commits on every node together (Citus prepares the
/// transaction on each worker and commits it there: PREPARE TRANSACTION / COMMIT PREPARED), and
/// at COMMIT the workers' DEK caches forget the DEK: a session whose worker connections opened
/// the value just before (warm caches) reads it as erased at once, also inside a transaction
/// that began before the erasure. A ROLLBACK, a savepoint rolled back, or an ERROR later in the
/// erasing transaction, erases nothing anywhere.
#[test]
fn erasure_commits_on_every_node_and_reaches_warm_caches() {
    let mut c = fresh_distributed();
    dist_table(&mut c, 10);
    let all = "SELECT string_agg(coalesce(shred.open(v, 'ctx'), '-'), ',' ORDER BY id) FROM dist";
    let mut a = node(0);
    // Warm the DEK caches of a's connections to both workers.
    assert_eq!(one(&mut a, all), "v1,v2,v3,v4,v5,v6,v7,v8,v9,v10");
    for id in 1..=10 {
        one(&mut a, &format!("SELECT shred.open(v, 'ctx') FROM dist WHERE id = {id}"));
    }
    let row2 = "SELECT coalesce(shred.open(v, 'ctx'), '-') || ' ' || shred.is_erased(v) FROM dist WHERE id = 2";

    // ROLLBACK: nothing erased on any node.
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.erase('s2')"), "t");
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(one(&mut a, row2), "v2 false");
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject = 's2'"), ["1", "1", "1"]);

    // An ERROR after the erasure, in the same transaction.
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.erase('s2')"), "t");
    assert!(c.batch_execute("SELECT 1 / 0").is_err());
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(one(&mut a, row2), "v2 false");

    // COMMIT, through two-phase commit on both workers.
    let (mut l, notices) = logged();
    l.batch_execute("SET citus.log_remote_commands = on").unwrap();
    assert_eq!(one(&mut l, "SELECT shred.erase('s2')"), "t");
    let sent = notices.lock().unwrap().clone();
    for w in [1, 2] {
        let p = port(w);
        assert!(sent.iter().any(|n| n.contains("issuing PREPARE TRANSACTION") && n.contains(&format!(":{p} "))), "no PREPARE on worker {w}: {sent:?}");
        assert!(sent.iter().any(|n| n.contains("issuing COMMIT PREPARED") && n.contains(&format!(":{p} "))), "no COMMIT PREPARED on worker {w}: {sent:?}");
    }
    assert_eq!(one(&mut a, row2), "- true");
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject = 's2'"), ["0", "0", "0"]);
    assert_eq!(on_every_node("SELECT count(*) FROM shred.erasure_log"), ["1", "1", "1"]);
    assert_eq!(on_every_node("SELECT count(*) FROM pg_prepared_xacts"), ["0", "0", "0"]);

    // Inside a transaction of a's that began before the erasure.
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(one(&mut a, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 3"), "v3");
    assert_eq!(one(&mut c, "SELECT shred.erase('s3')"), "t");
    assert_eq!(one(&mut a, "SELECT coalesce(shred.open(v, 'ctx'), '-') FROM dist WHERE id = 3"), "-");
    a.batch_execute("COMMIT").unwrap();

    // In the erasing transaction, the workers read the erased value as erased (its erasure
    // record is written before the erasing call returns, for every node to find).
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.erase('s10')"), "t");
    assert_eq!(one(&mut c, "SELECT coalesce(shred.open(v, 'ctx'), '-') || ' ' || shred.is_erased(v) FROM dist WHERE id = 10"), "- true");
    assert_eq!(one(&mut c, "SELECT string_agg(coalesce(shred.open(v, 'ctx'), '-'), ',' ORDER BY id) FROM dist WHERE id IN (9, 10)"), "v9,-");
    c.batch_execute("COMMIT").unwrap();

    // A savepoint rolled back takes its erasure back on every node.
    c.batch_execute("BEGIN; SAVEPOINT before_erase").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.erase('s8')"), "t");
    c.batch_execute("ROLLBACK TO SAVEPOINT before_erase; COMMIT").unwrap();
    assert_eq!(one(&mut a, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 8"), "v8");
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject = 's8'"), ["1", "1", "1"]);

    // An array spanning both workers' shards.
    assert_eq!(one(&mut c, "SELECT shred.erase(ARRAY['s4', 's5', 's6', 's7'])"), "4");
    assert_eq!(one(&mut a, all), "v1,-,-,-,-,-,-,v8,v9,-");
    assert_eq!(on_every_node("SELECT count(*) FROM shred.erasure_log"), ["7", "7", "7"]);
}

/// A session connected to a worker itself (Citus lets it write reference tables) cannot write
/// the key store either: an erasure there would not see the coordinator's legal holds (nor
/// end its consents or delete its blind-index terms), so it is refused (0A000), as are first
/// seals and shred.create_keys; the held subject's DEK stays on every node. Opening works.
#[test]
fn key_store_writes_on_a_worker_are_refused() {
    let mut c = fresh_distributed();
    dist_table(&mut c, 2);
    assert_eq!(one(&mut c, "SELECT shred.hold('s1', 'litigation') > 0"), "t");
    let v1 = one(&mut c, "SELECT v::text FROM dist WHERE id = 1");
    let mut w = node(1);
    for sql in ["SELECT shred.erase('s1')", "SELECT shred.erase(ARRAY['s1', 's2'])", "SELECT shred.seal('new', 'x', 'ctx')", "SELECT shred.create_keys(ARRAY['new'])"] {
        let e = try_rows(&mut w, sql).unwrap_err();
        assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{sql}: {e}");
        assert_eq!(e.as_db_error().unwrap().message(), WORKER_WRITE, "{sql}");
    }
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject IN ('s1', 's2', 'new')"), ["2", "2", "2"]);
    assert_eq!(one(&mut w, &format!("SELECT shred.open('{v1}', 'ctx')")), "v1");
    // On the coordinator, the hold is in force.
    assert_eq!(sqlstate(try_rows(&mut c, "SELECT shred.erase('s1')")), "55006");
}

/// Two coordinator sessions seal for the same new subject at once: the second waits for the
/// first (the key table's unique index, on every node), takes its DEK, and both values open on
/// every node; one DEK for the subject everywhere.
#[test]
fn concurrent_first_seals_of_one_subject() {
    let mut c = fresh_distributed();
    let mut a = node(0);
    let mut b = node(0);
    a.batch_execute("BEGIN").unwrap();
    let va = one(&mut a, "SELECT shred.seal('race', 'from a', 'ctx')::text");
    let waiter = std::thread::spawn(move || {
        b.batch_execute("BEGIN").unwrap();
        let vb = one(&mut b, "SELECT shred.seal('race', 'from b', 'ctx')::text");
        b.batch_execute("COMMIT").unwrap();
        vb
    });
    let start = Instant::now();
    // b waits on a lock on some node (its own, or a worker serving its connection).
    while on_every_node("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").iter().all(|n| n == "0") {
        assert!(start.elapsed() < Duration::from_secs(20), "the second seal never waited");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.batch_execute("COMMIT").unwrap();
    let vb = waiter.join().unwrap();
    assert_eq!(one(&mut c, &format!("SELECT shred.key_id('{va}') = shred.key_id('{vb}')")), "t");
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject = 'race'"), ["1", "1", "1"]);
    for n in 0..3 {
        assert_eq!(one(&mut node(n), &format!("SELECT shred.open('{va}', 'ctx') || '/' || shred.open('{vb}', 'ctx')")), "from a/from b", "node {n}");
    }
}

/// A worker added after keys exist: Citus propagates pg_shred to it, and it opens values once
/// Citus has copied the reference tables to it (replicate_reference_tables(), or a shard
/// moved there); before that it raises 55000, never reads a value as erased.
#[test]
fn worker_added_after_keys_exist() {
    let mut c = fresh_distributed();
    dist_table(&mut c, 4);
    assert_eq!(one(&mut c, "SELECT shred.erase('s4')"), "t");
    let (v1, v4) = (one(&mut c, "SELECT v::text FROM dist WHERE id = 1"), one(&mut c, "SELECT v::text FROM dist WHERE id = 4"));
    let (dir, p) = (env("PG_SHRED_CITUS_HOST"), port(3));
    assert_eq!(one(&mut node(3), "SELECT count(*) FROM pg_extension WHERE extname = 'pg_shred'"), "0", "worker 3 was in the cluster before: run the tests on a new cluster (scripts/test-citus)");
    c.batch_execute(&format!("SELECT citus_add_node('{dir}', {p})")).unwrap();
    let mut w = node(3);
    assert_eq!(one(&mut w, "SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'"), one(&mut c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'"));
    let open = format!("SELECT shred.open('{v1}', 'ctx') || ' ' || shred.is_erased('{v4}')");
    if one(&mut c, &format!("SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE n.nodeport = {p}")) == "0" {
        let e = try_rows(&mut w, &open).unwrap_err();
        assert_eq!(e.code().map(|s| s.code()), Some("55000"), "{e}");
        assert!(e.as_db_error().unwrap().message().starts_with("pg_shred: this node holds no copy of the key store table shred."), "{e}");
        c.batch_execute("SELECT replicate_reference_tables('block_writes')").unwrap();
    }
    let mut w = node(3);
    assert_eq!(one(&mut w, &open), "v1 true");
    // A shard of dist moved to the new worker: the router query runs there.
    let shard = one(&mut c, "SELECT get_shard_id_for_distribution_column('dist', 1)");
    let from = shard_port(&mut c, 1);
    c.batch_execute(&format!("SELECT citus_move_shard_placement({shard}, '{dir}', {from}, '{dir}', {p}, shard_transfer_mode => 'block_writes')")).unwrap();
    assert_eq!(shard_port(&mut c, 1), p);
    assert_eq!(one(&mut c, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 1"), "v1");
    // Erased on the new worker too.
    assert_eq!(one(&mut c, "SELECT shred.erase('s1')"), "t");
    assert_eq!(one(&mut c, "SELECT shred.is_erased(v) FROM dist WHERE id = 1"), "t");
    c.batch_execute("DROP TABLE dist").unwrap();
    leave_worker3(&mut c);
}

/// Protected tables with the key store distributed, protected before and after
/// create_distributed_table (after: the DEKs of the rows' subjects made first with
/// shred.create_keys, committed, since protect seals the rows on the workers holding them):
/// reads through the plaintext view open on the workers, writes through it insert (sealing on the coordinator), lookups by a searchable column find the
/// row, an erasure shows as erased, shred.check() counts it, and shred.export_subject and
/// shred.subject_footprint read the distributed tables. A hand-written lookup in a query
/// routed to one shard is refused (the blind-index terms are the coordinator's). Citus refuses UPDATE and
/// DELETE through a view over a distributed table (docs/citus.md).
#[test]
fn protected_tables_on_the_cluster() {
    let mut c = fresh_distributed();
    c.batch_execute(PROTECTED_THEN_DISTRIBUTED).unwrap();
    c.batch_execute(
        "INSERT INTO customer_plain VALUES (2, 'Bob', 'bob@example.org'), (3, 'Cy', 'cy@example.org');
         CREATE TABLE account (id bigint PRIMARY KEY, holder text);
         SELECT create_distributed_table('account', 'id');
         INSERT INTO account VALUES (1, 'Ann'), (2, 'Ben');
         SELECT shred.create_keys(ARRAY(SELECT 'account:' || id FROM account))",
    )
    .unwrap();
    c.batch_execute(
        "SELECT shred.protect('account', 'id', ARRAY['holder'], subject_prefix => 'account:');
         INSERT INTO account_plain VALUES (3, 'Cat')",
    )
    .unwrap();
    assert_eq!(rows(&mut c, "SELECT id, name, email FROM customer_plain ORDER BY id"), ["1 | Ada | ada@example.org", "2 | Bob | bob@example.org", "3 | Cy | cy@example.org"]);
    assert_eq!(one(&mut c, "SELECT name FROM customer_plain WHERE id = 3"), "Cy");
    assert_eq!(one(&mut c, "SELECT id FROM customer_plain WHERE email = 'bob@example.org'"), "2");
    assert_eq!(rows(&mut c, "SELECT id, holder FROM account_plain ORDER BY id"), ["1 | Ann", "2 | Ben", "3 | Cat"]);
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'account:%'"), ["3", "3", "3"]);
    assert_eq!(one(&mut c, "SELECT shred.erase(ARRAY['customer:2', 'account:1'])"), "2");
    assert_eq!(rows(&mut c, "SELECT id, coalesce(name, '-') FROM customer_plain ORDER BY id"), ["1 | Ada", "2 | -", "3 | Cy"]);
    assert_eq!(one(&mut c, "SELECT coalesce(holder, '-') FROM account_plain WHERE id = 1"), "-");
    assert_eq!(rows(&mut c, "SELECT relation || '.' || column_name || ' ' || problem || ' ' || value_count FROM shred.check() ORDER BY 1"), ["account.holder erased 1", "customer.email erased 1", "customer.name erased 1"]);
    // Right of access: the subject's rows of distributed protected tables, read as their owner.
    let export = one(&mut c, "SELECT shred.export_subject('customer:3')::text");
    assert!(export.contains("cy@example.org") && export.contains("\"Cy\""), "{export}");
    assert_eq!(one(&mut c, "SELECT string_agg(relation || '.' || column_name || ' ' || value_count, ',' ORDER BY 1) FROM shred.subject_footprint('customer:3')"), "customer.email 1,customer.name 1");
    // A lookup by the searchable column through the view, also with the distribution column:
    // the view looks the row tokens up on the coordinator. Written by hand in a query routed to
    // one shard, Citus runs shred.blind_match on the worker, which holds none of the
    // coordinator's blind-index terms: refused, never "no row".
    assert_eq!(one(&mut c, "SELECT id FROM customer_plain WHERE id = 3 AND email = 'cy@example.org'"), "3");
    let routed = "SELECT id FROM customer WHERE id = 3 AND email_bidx IN (SELECT shred.blind_match('cy@example.org', 'customer.email'))";
    let e = try_rows(&mut c, routed).unwrap_err();
    assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{e}");
    assert_eq!(e.as_db_error().unwrap().message(), "pg_shred: blind-index lookups run on the Citus coordinator only");
    assert_eq!(one(&mut c, "SELECT id FROM customer WHERE email_bidx IN (SELECT shred.blind_match('cy@example.org', 'customer.email'))"), "3");
    assert!(c.batch_execute("UPDATE customer_plain SET name = 'Cyrus' WHERE id = 3").is_err());
    assert!(c.batch_execute("DELETE FROM account_plain WHERE id = 3").is_err());
    c.batch_execute("DROP TABLE customer, account CASCADE").unwrap();
}

/// Sets `shred.root_key_command` (and clears `shred.root_key_file`) on every node of the
/// cluster by ALTER SYSTEM and a reload; dropped, it restores every node's root key file.
struct ClusterKeyring;

impl ClusterKeyring {
    /// A keyring of version 1 (the cluster's root key, in the socket directory's root.key) and
    /// version 2 (`v2`, base64), or (`only_v2`) of version 2 alone.
    fn set(v2: &str, only_v2: bool) -> ClusterKeyring {
        let dir = env("PG_SHRED_CITUS_HOST");
        let command = if only_v2 {
            format!("printf '2:%s\\n' '{v2}'")
        } else {
            format!("printf '1:%s\\n2:%s\\n' \"$(cat {dir}/root.key)\" '{v2}'")
        };
        for n in 0..3 {
            let mut x = node(n);
            x.batch_execute("ALTER SYSTEM SET shred.root_key_file = ''").unwrap();
            x.batch_execute(&format!("ALTER SYSTEM SET shred.root_key_command = '{}'", command.replace('\'', "''"))).unwrap();
            x.batch_execute("SELECT pg_reload_conf()").unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        ClusterKeyring
    }
}

impl Drop for ClusterKeyring {
    fn drop(&mut self) {
        for n in 0..3 {
            let mut x = node(n);
            for sql in ["ALTER SYSTEM RESET shred.root_key_file", "ALTER SYSTEM RESET shred.root_key_command", "SELECT pg_reload_conf()"] {
                let _ = x.batch_execute(sql);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Root-key rotation on the cluster: with version 2 in every node's keyring, CALL
/// shred.rotate_root_key() on the coordinator rewraps every DEK, and the rewrapped DEKs and the
/// new version reach every node's copy; version 1 retired and gone from every keyring, the
/// workers still open every value (they unwrap under version 2).
#[test]
fn root_key_rotation_on_the_cluster() {
    use base64::Engine;
    let mut c = fresh_distributed();
    dist_table(&mut c, 6);
    let v2 = base64::engine::general_purpose::STANDARD.encode(common::random_key());
    let all = "SELECT string_agg(coalesce(shred.open(v, 'ctx'), '-'), ',' ORDER BY id) FROM dist";
    {
        let _keyring = ClusterKeyring::set(&v2, false);
        let mut c = node(0);
        c.batch_execute("CALL shred.rotate_root_key()").unwrap();
        assert_eq!(on_every_node("SELECT string_agg(DISTINCT root_key_version::text, ',') FROM shred.subject_key"), ["2", "2", "2"]);
        assert_eq!(on_every_node("SELECT string_agg(version::text, ',' ORDER BY version) FROM shred.root_key_version"), ["1,2", "1,2", "1,2"]);
        assert_eq!(one(&mut c, all), "v1,v2,v3,v4,v5,v6");
        assert_eq!(one(&mut c, "SELECT shred.retire_root_key(1)"), "t");
        drop(_keyring);
        let _keyring = ClusterKeyring::set(&v2, true);
        let mut c = node(0);
        assert_eq!(one(&mut c, all), "v1,v2,v3,v4,v5,v6");
        for id in 1..=6 {
            assert_eq!(one(&mut c, &format!("SELECT shred.open(v, 'ctx') FROM dist WHERE id = {id}")), format!("v{id}"));
        }
        assert_eq!(one(&mut c, "SELECT shred.erase('s1')"), "t");
        assert_eq!(one(&mut c, all), "-,v2,v3,v4,v5,v6");
    }
    // The cluster's root key file again; every DEK is wrapped under version 2, which it lacks:
    // pg_shred fails closed (F0000), on the coordinator and on the workers.
    assert_eq!(sqlstate(try_rows(&mut node(0), all)), "F0000");
    assert_eq!(sqlstate(try_rows(&mut node(0), "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 2")), "F0000");
}

/// Sessions opening a subject in a loop, through both router and multi-shard queries, while
/// another session erases it: once the erasure's COMMIT has returned, no query issued after it
/// opens the value again on any worker (no lookup in flight puts the DEK back into a cache).
#[test]
fn opens_in_a_loop_never_see_a_committed_erasure() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut c = fresh_distributed();
    dist_table(&mut c, 10);
    let erased = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = ["SELECT coalesce(shred.open(v, 'ctx'), '-') FROM dist WHERE id = 9", "SELECT string_agg(coalesce(shred.open(v, 'ctx'), '-'), ',' ORDER BY id) FROM dist WHERE id IN (8, 9, 10)"]
        .into_iter()
        .cycle()
        .take(4)
        .map(|sql| {
            let erased = erased.clone();
            std::thread::spawn(move || {
                let mut r = node(0);
                let (mut before, mut after) = (0, 0);
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline {
                    let was_erased = erased.load(Ordering::SeqCst);
                    let got = one(&mut r, sql);
                    if was_erased {
                        assert!(got == "-" || got == "v8,-,v10", "opened after the erasure committed: {got}");
                        after += 1;
                    } else {
                        before += 1;
                    }
                }
                (before, after)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(one(&mut c, "SELECT shred.erase('s9')"), "t");
    erased.store(true, Ordering::SeqCst);
    for r in readers {
        let (before, after) = r.join().unwrap();
        assert!(before > 0 && after > 0, "the readers ran before and after the erasure ({before}, {after})");
    }
}

/// Roles with the documented grants (Citus creates the roles and the grants on every node): an
/// application role seals for new subjects (the key store written through Citus with the key
/// store owner's rights) and opens on the workers; a DPO role with shred_eraser erases; without
/// shred_reader the DPO cannot open, on the workers either (42501).
#[test]
fn application_roles_on_the_cluster() {
    let mut c = fresh_distributed();
    c.batch_execute(
        "DROP ROLE IF EXISTS citus_app, citus_dpo;
         CREATE ROLE citus_app LOGIN;
         CREATE ROLE citus_dpo LOGIN;
         GRANT shred_reader, shred_writer TO citus_app;
         GRANT shred_eraser TO citus_dpo;
         CREATE TABLE dist (id bigint PRIMARY KEY, subject text, v shred.sealed);
         SELECT create_distributed_table('dist', 'id');
         GRANT SELECT, INSERT ON dist TO citus_app;
         GRANT SELECT ON dist TO citus_dpo",
    )
    .unwrap();
    let connect = |user: &str| {
        Client::connect(&format!("host={} port={} user={user} dbname=postgres", env("PG_SHRED_CITUS_HOST"), port(0)), NoTls).unwrap()
    };
    let mut app = connect("citus_app");
    app.batch_execute("INSERT INTO dist VALUES (1, 's1', shred.seal('s1', 'v1', 'ctx')); INSERT INTO dist VALUES (2, 's2', shred.seal('s2', 'v2', 'ctx'))").unwrap();
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key"), ["2", "2", "2"]);
    assert_eq!(one(&mut app, "SELECT string_agg(shred.open(v, 'ctx'), ',' ORDER BY id) FROM dist"), "v1,v2");
    assert_eq!(one(&mut app, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 2"), "v2");
    let mut dpo = connect("citus_dpo");
    assert_eq!(one(&mut dpo, "SELECT shred.erase('s1')"), "t");
    assert_eq!(one(&mut app, "SELECT coalesce(shred.open(v, 'ctx'), '-') FROM dist WHERE id = 1"), "-");
    assert_eq!(sqlstate(try_rows(&mut dpo, "SELECT shred.open(v, 'ctx') FROM dist WHERE id = 2")), "42501");
    assert_eq!(sqlstate(try_rows(&mut app, "SELECT shred.erase('s2')")), "42501");
    drop((app, dpo));
    c.batch_execute("DROP TABLE dist; DROP ROLE citus_app, citus_dpo").unwrap();
}

/// Hostile search paths reach none of the statements pg_shred has Citus send to other nodes
/// (which run there as the key store owner, or the owner of a protected table): a role with a
/// schema of its own, holding a domain `text` and `bytea` and functions `unnest` whose code
/// raises "pwned by <role>", propagates `SET LOCAL search_path` to every node (also with local
/// execution off, so the coordinator's own part goes remote too), and a schema named like the
/// key store owner, first on the nodes' default path, holds the same `unnest`s. First seals,
/// shred.create_keys, erasures of one subject and of an array all run without any of that
/// code, reach every node, and leave the caller's settings as they were.
#[test]
fn hostile_search_paths_do_not_reach_other_nodes() {
    let mut c = fresh_distributed();
    c.batch_execute(
        "DROP SCHEMA IF EXISTS atk_s, postgres CASCADE;
         DROP ROLE IF EXISTS citus_atk;
         CREATE ROLE citus_atk LOGIN;
         GRANT shred_reader, shred_writer, shred_eraser TO citus_atk;
         GRANT CREATE ON DATABASE postgres TO citus_atk",
    )
    .unwrap();
    let mut atk = Client::connect(&format!("host={} port={} user=citus_atk dbname=postgres", env("PG_SHRED_CITUS_HOST"), port(0)), NoTls).unwrap();
    let pwn = |schema: &str| {
        format!(
            "CREATE SCHEMA {schema};
             CREATE FUNCTION {schema}.pwn(v anyelement) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'pwned by %', current_user; END $$;
             CREATE DOMAIN {schema}.text AS pg_catalog.text CHECK ({schema}.pwn(VALUE));
             CREATE DOMAIN {schema}.bytea AS pg_catalog.bytea CHECK ({schema}.pwn(VALUE));
             CREATE FUNCTION {schema}.unnest(a pg_catalog.text[]) RETURNS SETOF pg_catalog.text LANGUAGE plpgsql AS $$ BEGIN PERFORM {schema}.pwn(a); END $$;
             CREATE FUNCTION {schema}.unnest(a pg_catalog.int8[]) RETURNS SETOF pg_catalog.int8 LANGUAGE plpgsql AS $$ BEGIN PERFORM {schema}.pwn(a); END $$;
             CREATE FUNCTION {schema}.unnest(a pg_catalog.bytea[]) RETURNS SETOF pg_catalog.bytea LANGUAGE plpgsql AS $$ BEGIN PERFORM {schema}.pwn(a); END $$;"
        )
    };
    atk.batch_execute(&pwn("atk_s")).unwrap();
    atk.batch_execute(&pwn("postgres")).unwrap();
    // Citus created the schemas and their objects on the workers too.
    assert_eq!(on_every_node("SELECT count(*) FROM pg_proc WHERE proname = 'unnest' AND pronamespace::regnamespace::text IN ('atk_s', 'postgres')"), ["6", "6", "6"]);
    for local_execution in ["on", "off"] {
        let n = if local_execution == "on" { 1 } else { 2 };
        atk.batch_execute(&format!(
            "BEGIN;
             SET LOCAL citus.enable_local_execution = {local_execution};
             SET LOCAL citus.propagate_set_commands = 'local';
             SET LOCAL search_path = atk_s, pg_catalog, public"
        ))
        .unwrap();
        for sql in [
            format!("SELECT shred.seal('atk{n}', 'x') IS NOT NULL"),
            format!("SELECT shred.create_keys(ARRAY['atk{n}a', 'atk{n}b'])"),
            format!("SELECT shred.erase(ARRAY['atk{n}a', 'atk{n}b'])"),
            format!("SELECT shred.erase('atk{n}')"),
        ] {
            if let Err(e) = atk.batch_execute(&sql) {
                panic!("{sql} (local execution {local_execution}): {e:?}");
            }
        }
        assert_eq!(one(&mut atk, "SELECT current_setting('search_path') || ' ' || current_setting('citus.propagate_set_commands')"), "atk_s, pg_catalog, public local");
        atk.batch_execute("COMMIT").unwrap();
    }
    assert_eq!(on_every_node("SELECT count(*) FROM shred.erasure_log"), ["6", "6", "6"]);
    assert_eq!(on_every_node("SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'atk%'"), ["0", "0", "0"]);
    drop(atk);
    c.batch_execute("DROP SCHEMA atk_s, postgres CASCADE; REVOKE CREATE ON DATABASE postgres FROM citus_atk; DROP ROLE citus_atk").unwrap();
}
