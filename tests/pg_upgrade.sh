#!/usr/bin/env bash
# A database with pg_shred moved from one PostgreSQL major to a newer one with pg_upgrade
# (default: 17 to 18; PG_SHRED_UPGRADE_FROM and PG_SHRED_UPGRADE_TO choose): sealed and typed
# values, a protected table with a searchable column, and an erased subject are sealed on the
# old major; on the new one every envelope and row token is the same, every value opens to what
# it was, the erased subject stays erased, lookups through the blind index work, and new values
# are sealed, opened and erased. pg_shred must be installed for both majors (scripts/test for
# each does it). Both clusters run as the postgres OS user on Unix sockets in a throwaway
# directory, with the same root key. Prints one cargo-style result line.
# (Not 15 by default: Debian 12's PostgreSQL 15.20 writes an attribute option, pg_attver, on
# every column, which pg_upgrade to 18.6 cannot restore, whatever the database holds.)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
die() { echo "pg_upgrade test: $*" >&2; exit 1; }

from=${PG_SHRED_UPGRADE_FROM:-17}
to=${PG_SHRED_UPGRADE_TO:-18}
old_bin=$("$(pg_config_for "$from")" --bindir) || die "no PostgreSQL $from (PG_SHRED_PG=$from scripts/setup)"
new_bin=$("$(pg_config_for "$to")" --bindir) || die "no PostgreSQL $to (PG_SHRED_PG=$to scripts/setup)"
for major in "$from" "$to"; do
    [ -f "$("$(pg_config_for "$major")" --pkglibdir)/pg_shred.so" ] || die "pg_shred is not installed for PostgreSQL $major"
done

dir=${TMPDIR:-/tmp}/pg_shred_pg_upgrade
port=55439
cluster_dir "$dir" || die "cannot make $dir"
# Both clusters share the directory (socket, port) and the root key.
new_cluster() { cluster_init "$1" "$dir/$2" "$dir" "$port" "$dir/root.key" || die "initdb $2 failed"; }
running_bin= running_name=
start() { server_start "$1" "$dir/$2" "$dir/$2.log" || die "cannot start $2"; running_bin=$1 running_name=$2; }
stop() { as_pg_user "$1/pg_ctl" -D "$dir/$2" -m fast -w stop >/dev/null; running_bin= running_name=; }
trap '[ -z "$running_name" ] || stop "$running_bin" "$running_name"' EXIT
psql_() { "$new_bin/psql" -h "$dir" -p "$port" -U postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# The state every check compares: envelopes and row tokens as stored, values as opened,
# erasure flags, a lookup through the blind index and the subjects' footprints.
STATE_SQL="
SELECT string_agg(id || ' ' || concat_ws(' ', name::text, email::text, email_bidx::text), E'\n' ORDER BY id) FROM customer;
SELECT string_agg(id || ' ' || coalesce(name, '∅') || ' ' || coalesce(email, '∅') || ' ' || coalesce(score::text, '∅'), E'\n' ORDER BY id) FROM customer_plain;
SELECT string_agg(id || ' ' || shred.is_erased(email), ',' ORDER BY id) FROM customer;
SELECT string_agg(id::text, ',' ORDER BY id) FROM customer
 WHERE email_bidx IN (SELECT shred.blind_match(' Ada@Example.org', 'customer.email', 'email'));
SELECT string_agg(n || ' ' || coalesce(shred.open_bigint(v, 'n')::text, '∅'), ',' ORDER BY n) FROM amounts;
SELECT coalesce(string_agg(column_name || ' ' || problem || ' ' || value_count, ',' ORDER BY column_name, problem), 'none') FROM shred.check();"

new_cluster "$old_bin" old
start "$old_bin" old
psql_ -d postgres -c "CREATE DATABASE app"
psql_ -d app >/dev/null <<'SQL'
CREATE EXTENSION pg_shred;
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, email text, score bigint);
INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', 9007199254740993), (2, 'Bob', 'bob@example.org', -1),
                            (3, 'Zoë', NULL, NULL);
SELECT shred.protect('customer', 'id', ARRAY['name', 'email', 'score'], searchable => ARRAY['email'],
                     subject_prefix => 'customer:', normalization => 'email');
CREATE TABLE amounts (n int PRIMARY KEY, v shred.sealed);
INSERT INTO amounts SELECT g, shred.seal('customer:' || g, (g * 1000000000000)::bigint, 'n') FROM generate_series(1, 3) g;
BEGIN;
SELECT shred.erase('customer:2');
COMMIT;
SQL
before=$(psql_ -d app -c "$STATE_SQL")
stop "$old_bin" old

new_cluster "$new_bin" new
(cd "$dir" && as_pg_user "${NO_BACKTRACE[@]}" "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" -d "$dir/old" -D "$dir/new" \
    -p "$port" -P "$port" -s "$dir" -U postgres >"$dir/pg_upgrade.log" 2>&1) \
    || { tail -n 40 "$dir/pg_upgrade.log"; find "$dir/new" -name '*.log' -path '*pg_upgrade_output.d*' -exec tail -n 20 {} +; die "pg_upgrade failed"; }
start "$new_bin" new
after=$(psql_ -d app -c "$STATE_SQL")
[ "$before" = "$after" ] || die "$(printf 'the state differs after pg_upgrade\n--- PostgreSQL %s\n%s\n--- PostgreSQL %s\n%s' "$from" "$before" "$to" "$after")"
# Beyond the envelopes and row tokens (the first three lines), the state must be what was sealed.
expected='1 Ada ada@example.org 9007199254740993
2 ∅ ∅ ∅
3 Zoë ∅ ∅
1 false,2 true
1
1 1000000000000,2 ∅,3 3000000000000
email erased 1,name erased 1,score erased 1'
[ "$(tail -n +4 <<<"$after")" = "$expected" ] || die "$(printf 'the state is not what was sealed:\n%s' "$after")"
got=$(psql_ -d app <<'SQL'
SELECT extversion FROM pg_extension WHERE extname = 'pg_shred';
INSERT INTO customer_plain VALUES (4, 'Dan', 'dan@example.org', 4);
BEGIN;
SELECT shred.erase('customer:1');
COMMIT;
SELECT string_agg(id || ' ' || coalesce(email, '∅'), ',' ORDER BY id) FROM customer_plain;
SQL
)
[ "$got" = "$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
t
1 ∅,2 ∅,3 ∅,4 dan@example.org" ] || die "after pg_upgrade, writes and erasure gave: $got"
stop "$new_bin" new
echo "pg_upgrade $from -> $to: envelopes, row tokens, opened values, erasures and lookups unchanged; new writes and erasures work"
echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
