# Shared shell functions of pg_shred's scripts. Source it; do not run it.
#
# Servers run as the `postgres` OS user (PostgreSQL refuses to run as root), on a Unix socket
# in a throwaway directory, and are stopped when the calling script exits, even on failure.

# The PostgreSQL major to build for and test against (scripts/setup installs it).
PG_SHRED_PG=${PG_SHRED_PG:-15}
case $PG_SHRED_PG in
    15 | 16 | 17 | 18) ;;
    *) echo "PG_SHRED_PG=$PG_SHRED_PG: pg_shred supports PostgreSQL 15, 16, 17 and 18" >&2; exit 1 ;;
esac
export PG_SHRED_PG
# Where scripts/setup unpacks a portable PostgreSQL when apt has no packages of the major.
PG_SHRED_PG_ROOT=${PG_SHRED_PG_ROOT:-/opt/pg_shred}

# pg_config_for MAJOR: the pg_config of that major, the distribution's if installed, else the
# portable one of scripts/setup (which may not exist yet).
pg_config_for() {
    if [ -x "/usr/lib/postgresql/$1/bin/pg_config" ] && [ -f "/usr/lib/postgresql/$1/bin/postgres" ]; then
        echo "/usr/lib/postgresql/$1/bin/pg_config"
    else
        echo "$PG_SHRED_PG_ROOT/postgresql-$1/pg/bin/pg_config"
    fi
}

PG_CONFIG=${PG_CONFIG:-$(pg_config_for "$PG_SHRED_PG")}
if [ -x "$PG_CONFIG" ] && ! "$PG_CONFIG" --version | grep -q "^PostgreSQL $PG_SHRED_PG\."; then
    echo "PG_CONFIG=$PG_CONFIG is $("$PG_CONFIG" --version), not PostgreSQL $PG_SHRED_PG (PG_SHRED_PG)" >&2
    exit 1
fi
PG_BIN=${PG_BIN:-$("$PG_CONFIG" --bindir 2>/dev/null || echo "/usr/lib/postgresql/$PG_SHRED_PG/bin")}
PG_OS_USER=${PG_OS_USER:-postgres}
# The cargo features of the major: pgrx's bindings are generated for one major at a time.
PG_SHRED_FEATURES=(--no-default-features --features "pg$PG_SHRED_PG")

as_pg_user() {
    if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@"; else runuser -u "$PG_OS_USER" -- "$@"; fi
}

# No Rust backtraces in a server's environment (pg_ctl, pg_upgrade): they would reach clients
# in error details.
NO_BACKTRACE=(env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE)

# cluster_dir DIR: a new directory DIR (mode 0700, owned by the postgres user) with a fresh root
# key DIR/root.key (mode 0600, 32 random bytes, base64). Fails if DIR appears again between its
# removal and its creation (another user's), also when called as `... || ...`.
cluster_dir() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    mkdir -m 700 "$dir" || return 1
    chown "$PG_OS_USER" "$dir" 2>/dev/null || true
    as_pg_user sh -c "umask 077; head -c 32 /dev/urandom | base64 > '$dir/root.key'" || return 1
}

# cluster_init BINDIR DATA SOCKETDIR PORT KEYFILE [extra postgresql.conf lines...]
# initdb of DATA with the programs of BINDIR, listening only on SOCKETDIR/.s.PGSQL.PORT, with
# pg_shred preloaded and KEYFILE as its root key. Data checksums off on every major (18 turns them
# on by default): clusters of all majors alike, and pg_upgrade between them possible.
cluster_init() {
    local bindir=$1 data=$2 socket=$3 port=$4 key=$5 opts=()
    shift 5
    # The help text read whole first: `initdb --help | grep -q` under pipefail fails whenever
    # grep stops reading before initdb has written everything (SIGPIPE).
    local help
    help=$("$bindir/initdb" --help)
    if [[ $help == *--no-data-checksums* ]]; then opts+=(--no-data-checksums); fi
    as_pg_user "$bindir/initdb" -D "$data" -A trust -U postgres --encoding UTF8 --locale C.UTF-8 "${opts[@]}" >"$data.initdb.log" 2>&1 \
        || { cat "$data.initdb.log"; return 1; }
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$socket'"
        echo "port = $port"
        echo "fsync = off"
        echo "shared_preload_libraries = 'pg_shred'"
        echo "shred.root_key_file = '$key'"
        for line in "$@"; do echo "$line"; done
    } >>"$data/postgresql.conf"
}

# server_start BINDIR DATA LOG: start the cluster DATA as the postgres user.
server_start() {
    as_pg_user "${NO_BACKTRACE[@]}" "$1/pg_ctl" -D "$2" -l "$3" -w -t 60 start >/dev/null || { cat "$3"; return 1; }
}

# cluster_start DIR PORT [extra postgresql.conf lines...]
# A new cluster_dir DIR and, in DIR/data, a cluster (cluster_init) of the major under test,
# started. Exports PGHOST, PGPORT, PGUSER for the client tools. Stops the server at exit.
cluster_start() {
    local dir=$1 port=$2; shift 2
    cluster_dir "$dir" || return 1
    cluster_init "$PG_BIN" "$dir/data" "$dir" "$port" "$dir/root.key" "$@" || return 1
    CLUSTER_DIR=$dir
    trap cluster_stop EXIT
    server_start "$PG_BIN" "$dir/data" "$dir/server.log" || return 1
    export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# postgresql.conf lines of the integration test server: log everything (the tests then scan
# the log for secrets), track every statement in pg_stat_statements, allow PREPARE TRANSACTION.
# The retention worker stays idle there: its visits would hold connections to the databases the
# tests drop and copy (tests/retention.rs runs it on a cluster of its own).
PG_SHRED_TEST_SERVER_CONF=(
    "log_statement = all"
    "log_min_messages = debug5"
    "shared_preload_libraries = 'pg_shred, pg_stat_statements'"
    "pg_stat_statements.track = all"
    "max_prepared_transactions = 4"
    "shred.retention_naptime = 0"
)

cluster_stop() {
    if [ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/data/postmaster.pid" ]; then
        as_pg_user "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

# Build the extension and install it into the PostgreSQL of PG_CONFIG, with the install scripts
# of earlier releases (cargo pgrx installs the current one and the upgrade scripts), so that
# CREATE EXTENSION pg_shred VERSION '0.1.0' followed by ALTER EXTENSION ... UPDATE works.
install_extension() {
    cargo pgrx install --pg-config "$PG_CONFIG" "$@"
    install_update_scripts "$("$PG_CONFIG" --sharedir)/extension"
}

# install_update_scripts DIR: the install scripts of earlier releases and every update script.
install_update_scripts() {
    local ext_dir=$1
    for script in sql/pg_shred--*.sql; do
        install -m 644 "$script" "$ext_dir/"
    done
    # The 0.2.0 -> 0.3.0 upgrade: its three parts, in the order a fresh install runs them.
    cat sql/upgrade/0.2.0--0.3.0-before.sql sql/protect.sql sql/upgrade/0.2.0--0.3.0-after.sql \
        >"$ext_dir/pg_shred--0.2.0--0.3.0.sql"
    chmod 644 "$ext_dir/pg_shred--0.2.0--0.3.0.sql"
    # 0.3.0 -> 0.4.0: the key store's changes.
    install -m 644 sql/key_store.sql "$ext_dir/pg_shred--0.3.0--0.4.0.sql"
    # 0.4.0 -> 0.5.0: PostgreSQL 16, 17 and 18.
    install -m 644 sql/postgres_majors.sql "$ext_dir/pg_shred--0.4.0--0.5.0.sql"
    # 0.5.0 -> 0.6.0: purposes, consent, protected columns kept for a purpose, erasure
    # receipts, retention and legal holds, in the order a fresh install runs them.
    cat sql/purposes.sql sql/consent.sql sql/protect_purposes.sql sql/receipts.sql sql/retention.sql >"$ext_dir/pg_shred--0.5.0--0.6.0.sql"
    chmod 644 "$ext_dir/pg_shred--0.5.0--0.6.0.sql"
    # 0.6.0 -> 0.7.0: the key store on a Citus cluster.
    install -m 644 sql/citus.sql "$ext_dir/pg_shred--0.6.0--0.7.0.sql"
}
