#!/usr/bin/env bash
# Install the package scripts/package built for the major in PG_SHRED_PG (15 default) and try it
# on a fresh cluster: the .deb with `apt install ./….deb` into the distribution's PostgreSQL
# (when postgresql-NN comes from apt), else the archive's install.sh into the portable build of
# scripts/setup. Every pg_shred file is removed from the installation first, so only what the
# package installs is tried. Checks: CREATE EXTENSION, seal/open/erase across sessions and
# commits, the install script of 0.1.0 and the update to the current version, and, for the
# .deb, that removing the package removes its files. Prints one cargo-style result line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
die() { echo "package test: $*" >&2; exit 1; }

major=$PG_SHRED_PG
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb=target/package/postgresql-$major-pg-shred_${version}_amd64.deb
tarball=target/package/pg_shred-$version-pg$major-linux-x86_64.tar.gz
lib_dir=$("$PG_CONFIG" --pkglibdir)
ext_dir=$("$PG_CONFIG" --sharedir)/extension

rm -f "$lib_dir/pg_shred.so" "$ext_dir"/pg_shred.control "$ext_dir"/pg_shred--*.sql
if [[ $PG_CONFIG == /usr/lib/postgresql/* ]]; then
    [ -f "$deb" ] || die "$deb is missing: run scripts/package first"
    kind=deb
    # --reinstall: the package may still be installed by a run that stopped before removing it
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "./$deb" >/dev/null
    dpkg-query -W -f='${Status} ${Version}\n' "postgresql-$major-pg-shred" | grep -q "install ok installed $version" \
        || die "apt did not install postgresql-$major-pg-shred $version"
else
    [ -f "$tarball" ] || die "$tarball is missing: run scripts/package first"
    kind=archive
    unpacked=$(mktemp -d "${TMPDIR:-/tmp}/pg_shred_pkg.XXXXXX")
    tar --no-same-owner -xzf "$tarball" -C "$unpacked"
    "$unpacked"/pg_shred-*/install.sh "$PG_CONFIG" >/dev/null || { rm -rf "$unpacked"; die "install.sh failed"; }
    rm -rf "$unpacked"
fi
[ -f "$lib_dir/pg_shred.so" ] && [ -f "$ext_dir/pg_shred--$version.sql" ] && [ -f "$ext_dir/pg_shred--0.1.0.sql" ] \
    || die "the $kind did not install the library and the install scripts"

dir=${TMPDIR:-/tmp}/pg_shred_package_test
cluster_start "$dir" 55437
psql_() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
psql_ -d postgres -c "CREATE DATABASE pkg" -c "CREATE DATABASE pkg_old"
got=$(psql_ -d pkg <<'SQL'
CREATE EXTENSION pg_shred;
CREATE TABLE t (id int, v shred.sealed);
INSERT INTO t VALUES (1, shred.seal('s:1', 'alpha', 't.v')), (2, shred.seal('s:2', 'beta', 't.v'));
SELECT string_agg(coalesce(shred.open(v, 't.v'), 'NULL'), ',' ORDER BY id) FROM t;
SQL
)
[ "$got" = "alpha,beta" ] || die "seal/open gave '$got'"
psql_ -d pkg -c "BEGIN" -c "SELECT shred.erase('s:1')" -c "COMMIT" >/dev/null
got=$(psql_ -d pkg -c "SELECT string_agg(coalesce(shred.open(v, 't.v'), 'NULL') || '/' || shred.is_erased(v), ',' ORDER BY id) FROM t")
[ "$got" = "NULL/true,beta/false" ] || die "after the erasure, a new session read '$got'"
got=$(psql_ -d pkg_old -c "CREATE EXTENSION pg_shred VERSION '0.1.0'" -c "ALTER EXTENSION pg_shred UPDATE" \
      -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'")
[ "$got" = "$version" ] || die "0.1.0 updated to '$got', not $version"
cluster_stop

passed=4
if [ "$kind" = deb ]; then
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q "postgresql-$major-pg-shred" >/dev/null
    [ ! -e "$lib_dir/pg_shred.so" ] && [ ! -e "$ext_dir/pg_shred--$version.sql" ] || die "removing the package left its files"
    passed=5
fi
echo "package test ($kind, PostgreSQL $major): installed, sealed/opened, erased, updated from 0.1.0$([ "$kind" = deb ] && echo ", removed")"
echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
