#!/usr/bin/env bash
# Install the package scripts/package built for the major in PG_SHRED_PG (15 default) and try it
# on a fresh cluster: the .deb with `apt install ./….deb` into the distribution's PostgreSQL
# (when postgresql-NN comes from apt), else the archive's install.sh into the portable build of
# scripts/setup. Every pg_shred file is removed from the installation first, so only what the
# package installs is tried. Checks: CREATE EXTENSION, seal/open/erase across sessions and
# commits, the erasure's receipt verified by the installed pg-shred-verify (and a changed copy
# refused), the install script of 0.1.0 and the update to the current version, and, for the
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

bin_dir=$("$PG_CONFIG" --bindir)

rm -f "$lib_dir/pg_shred.so" "$bin_dir/pg-shred-verify" "$ext_dir"/pg_shred.control "$ext_dir"/pg_shred--*.sql
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
    && [ -x "$bin_dir/pg-shred-verify" ] || die "the $kind did not install the library, the verifier and the install scripts"

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
# The erasure's signed receipt, checked by the installed offline verifier.
psql_ -d pkg -c "SELECT shred.erasure_receipt('s:1')" >"$dir/receipt.json"
key=$(psql_ -d pkg -c "SELECT shred.receipt_public_key()")
"$bin_dir/pg-shred-verify" --public-key "$key" "$dir/receipt.json" >/dev/null || die "pg-shred-verify refused a receipt"
sed 's/s:1/s:2/; s/"erasures"/"erasureS"/' "$dir/receipt.json" >"$dir/tampered.json"
if "$bin_dir/pg-shred-verify" --public-key "$key" "$dir/tampered.json" >/dev/null 2>&1; then die "pg-shred-verify accepted a changed receipt"; fi
got=$(psql_ -d pkg_old -c "CREATE EXTENSION pg_shred VERSION '0.1.0'" -c "ALTER EXTENSION pg_shred UPDATE" \
      -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_shred'")
[ "$got" = "$version" ] || die "0.1.0 updated to '$got', not $version"
cluster_stop

passed=5
if [ "$kind" = deb ]; then
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q "postgresql-$major-pg-shred" >/dev/null
    [ ! -e "$lib_dir/pg_shred.so" ] && [ ! -e "$bin_dir/pg-shred-verify" ] && [ ! -e "$ext_dir/pg_shred--$version.sql" ] \
        || die "removing the package left its files"
    passed=6
fi
echo "package test ($kind, PostgreSQL $major): installed, sealed/opened, erased, receipt verified offline, updated from 0.1.0$([ "$kind" = deb ] && echo ", removed")"
echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
