#!/usr/bin/env bash
# Checks what pgkeel's build, tests and demo need by running it, installs the Debian packages of
# whatever fails, and checks again. One line per check:
#   install-deps: ok   etcd 3.4.23 (/usr/bin/etcd)
#
#   scripts/install-deps.sh           check; install what is missing (as root); re-check
#   scripts/install-deps.sh --check   check only: installs nothing, exit 1 naming what is missing
#
# Required (checked by what it does):
#   * PostgreSQL 15: initdb, pg_ctl, postgres, pg_rewind, pg_controldata, pg_basebackup and psql in
#     /usr/lib/postgresql/15/bin (pgkeel_testkit::nodeconf::PG_BIN_DIR) each report major version 15;
#   * etcd and etcdctl ($PGKEEL_ETCD_BIN / $PGKEEL_ETCDCTL_BIN, default /usr/bin/etcd and
#     /usr/bin/etcdctl, as pgkeel_testkit::etcd reads them) report version 3.4 or newer;
#   * the `postgres` OS user exists (the tests and the demo run PostgreSQL as it);
#   * cargo is at least the workspace's rust-version (not installable from Debian: use rustup).
#   * Patroni's own patronictl 4.1 (the reference client the end-to-end tests drive a pgkeel cluster
#     with), in a Python venv at $PGKEEL_PATRONI_VENV (default /opt/pgkeel/patroni-venv, as
#     pgkeel_testkit::patroni reads it), checked by `patronictl version`; installed with pip from
#     the Python package registry (python3 with its venv module comes from Debian's python3-venv).
# Optional (reported, never installed): cargo-nextest (scripts/test.sh falls back to cargo test);
# protoc with the well-known types, needed only by scripts/regen-etcd-proto.sh: a plain
# `cargo build` needs no protoc, because the etcd gRPC code is generated once and committed.
#
# Idempotent: `apt-get update` runs at most once. It never starts or stops a distro service;
# pgkeel's tests and demo use their own ports (never 5432 or 2379/2380).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  "") ;;
  *)
    echo "usage: scripts/install-deps.sh [--check]" >&2
    exit 2
    ;;
esac

# Keep these in step with crates/pgkeel-testkit (nodeconf::PG_BIN_DIR, etcd::etcd_bin/etcdctl_bin).
pg_bin_dir=/usr/lib/postgresql/15/bin
etcd_bin="${PGKEEL_ETCD_BIN:-/usr/bin/etcd}"
etcdctl_bin="${PGKEEL_ETCDCTL_BIN:-/usr/bin/etcdctl}"
patroni_venv="${PGKEEL_PATRONI_VENV:-/opt/pgkeel/patroni-venv}"
patroni_spec='patroni[etcd3]>=4.1,<4.2'
rust_version=$(sed -n 's/^rust-version = "\([0-9.]*\)"/\1/p' Cargo.toml)

missing=()  # names of the failed checks
packages=() # Debian packages that provide them
manual=()   # failed checks no package can fix

ok() { printf 'install-deps: ok   %s\n' "$*"; }
note() { printf 'install-deps: note %s\n' "$*"; }
# fail NAME PACKAGE|- WHY...
fail() {
  local name=$1 pkg=$2
  shift 2
  missing+=("$name")
  if [ "$pkg" = - ]; then
    manual+=("$name")
    printf 'install-deps: FAIL %s: %s\n' "$name" "$*"
  else
    [[ " ${packages[*]} " == *" $pkg "* ]] || packages+=("$pkg")
    printf 'install-deps: FAIL %s: %s (Debian package %s)\n' "$name" "$*" "$pkg"
  fi
}

# Whether version $1 (x.y[.z]) is at least $2 (x.y).
at_least() {
  local have_major have_minor want_major want_minor
  IFS=. read -r have_major have_minor _ <<<"$1."
  IFS=. read -r want_major want_minor _ <<<"$2."
  [ -n "$have_major" ] && [ -n "$have_minor" ] || return 1
  ((have_major > want_major || (have_major == want_major && have_minor >= want_minor)))
}

# check_pg TOOL PACKAGE: runs TOOL --version from the PostgreSQL 15 bin dir.
check_pg() {
  local tool=$1 pkg=$2 path="$pg_bin_dir/$1" out version
  if [ ! -x "$path" ]; then
    fail "$tool" "$pkg" "$path not found"
    return
  fi
  if ! out=$("$path" --version 2>&1); then
    fail "$tool" "$pkg" "\`$path --version\` failed: $out"
    return
  fi
  version=$(sed -n 's/.*(PostgreSQL) \([0-9][0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
  if [ "${version%%.*}" != 15 ]; then
    fail "$tool" "$pkg" "\`$path --version\` says \"$out\", expected PostgreSQL 15"
    return
  fi
  ok "$tool $version ($path)"
}

# check_etcd NAME PATH PACKAGE PATTERN ARGS...: runs PATH ARGS and reads the version after PATTERN.
check_etcd() {
  local name=$1 path=$2 pkg=$3 pattern=$4 out version
  shift 4
  if [ ! -x "$path" ]; then
    fail "$name" "$pkg" "$path not found"
    return
  fi
  if ! out=$(ETCDCTL_API=3 "$path" "$@" 2>&1); then
    fail "$name" "$pkg" "\`$path $*\` failed: $out"
    return
  fi
  version=$(sed -n "s/^$pattern *\([0-9][0-9.]*\).*/\1/p" <<<"$out" | head -n 1)
  if ! at_least "$version" 3.4; then
    fail "$name" "$pkg" "\`$path $*\` says \"${out%%$'\n'*}\", expected 3.4 or newer"
    return
  fi
  ok "$name $version ($path)"
}

check_postgres_user() {
  local entry
  if entry=$(getent passwd postgres); then
    ok "OS user postgres (uid $(cut -d: -f3 <<<"$entry"))"
  else
    fail "postgres-user" postgresql-common "no OS user \`postgres\` (the tests run PostgreSQL as it); if postgresql-common is installed: adduser --system --group --home /var/lib/postgresql postgres"
  fi
}

check_cargo() {
  local out version
  if ! out=$(cargo --version 2>&1); then
    fail cargo - "\`cargo --version\` failed: $out; install Rust $rust_version or newer with rustup"
    return
  fi
  version=$(sed -n 's/^cargo \([0-9][0-9.]*\).*/\1/p' <<<"$out")
  if ! at_least "$version" "$rust_version"; then
    fail cargo - "\`cargo --version\` says \"$out\", the workspace needs $rust_version or newer (rustup update)"
    return
  fi
  ok "cargo $version ($(command -v cargo))"
}

# python3 with a working venv module (ensurepip), to hold patronictl.
check_python_venv() {
  local out
  if ! out=$(python3 -c 'import venv, ensurepip; print("ok")' 2>&1); then
    fail python3-venv python3-venv "\`python3 -c 'import venv, ensurepip'\` failed: ${out##*$'\n'}"
    return
  fi
  ok "python3 venv ($(command -v python3))"
}

# Patroni's patronictl 4.1 in $patroni_venv. Sets patronictl_missing instead of failing: pip, not
# apt, installs it, after the Debian packages (python3-venv) are in place.
patronictl_missing=false
check_patronictl() {
  local out
  if [ ! -x "$patroni_venv/bin/patronictl" ]; then
    note "Patroni's patronictl is not installed in $patroni_venv"
    patronictl_missing=true
  elif out=$("$patroni_venv/bin/patronictl" version 2>&1) && [[ "$out" == "patronictl version 4.1."* ]]; then
    ok "${out%%$'\n'*} ($patroni_venv/bin/patronictl)"
    patronictl_missing=false
  else
    note "$patroni_venv/bin/patronictl is not patronictl 4.1 (\`patronictl version\`: ${out%%$'\n'*})"
    patronictl_missing=true
  fi
}

install_patronictl() {
  echo "install-deps: installing $patroni_spec and psycopg2-binary into $patroni_venv"
  mkdir -p "$(dirname "$patroni_venv")"
  python3 -m venv "$patroni_venv"
  "$patroni_venv/bin/pip" install --quiet "$patroni_spec" psycopg2-binary
  check_patronictl
  if $patronictl_missing; then
    echo "install-deps: patronictl still missing after installing it into $patroni_venv" >&2
    exit 1
  fi
}

check_optional() {
  local out
  if out=$(cargo nextest --version 2>/dev/null); then
    ok "${out%%$'\n'*} (optional)"
  else
    note "cargo-nextest not installed (optional: scripts/test.sh falls back to cargo test; cargo install cargo-nextest --locked)"
  fi
  if out=$(protoc_with_well_known_types 2>&1); then
    ok "$out with the well-known types (optional: only scripts/regen-etcd-proto.sh needs it)"
  else
    note "no protoc with the well-known types ($out); only scripts/regen-etcd-proto.sh needs it (apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev)"
  fi
}

run_checks() {
  missing=()
  packages=()
  manual=()
  check_pg initdb postgresql-15
  check_pg pg_ctl postgresql-15
  check_pg postgres postgresql-15
  check_pg pg_rewind postgresql-15
  check_pg pg_controldata postgresql-15
  check_pg pg_basebackup postgresql-client-15
  check_pg psql postgresql-client-15
  check_etcd etcd "$etcd_bin" etcd-server "etcd Version:" --version
  check_etcd etcdctl "$etcdctl_bin" etcd-client "etcdctl version:" version
  check_postgres_user
  check_cargo
  check_python_venv
  check_patronictl
}

run_checks
check_optional
if [ "${#missing[@]}" -eq 0 ] && ! $patronictl_missing; then
  echo "install-deps: all prerequisites present"
  exit 0
fi
if $check_only; then
  $patronictl_missing && missing+=(patronictl)
  echo "install-deps: missing: ${missing[*]}" >&2
  exit 1
fi
if [ "${#missing[@]}" -eq 0 ]; then
  install_patronictl
  echo "install-deps: all prerequisites present"
  exit 0
fi
if [ "${#packages[@]}" -eq 0 ]; then
  echo "install-deps: missing: ${missing[*]}; no Debian package provides it (see the FAIL lines)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing: ${missing[*]}; run this script as root (or: sudo $0) to install ${packages[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d would stop services from starting, but it is global state we do not own; Debian's
# postinst may start its own cluster on 5432 / etcd on 2379, which pgkeel never uses.
apt-get install -y -qq --no-install-recommends "${packages[@]}"

echo "install-deps: checking again"
run_checks
if [ "${#missing[@]}" -ne 0 ]; then
  echo "install-deps: still missing after installing: ${missing[*]} (see the FAIL lines)" >&2
  exit 1
fi
$patronictl_missing && install_patronictl
echo "install-deps: all prerequisites present"
