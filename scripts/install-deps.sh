#!/usr/bin/env bash
# Installs what pgkeel's build, tests and demo need, and nothing else: PostgreSQL 15, etcd (server and
# etcdctl) and protoc (for etcd-client's build script). Idempotent: only missing packages are installed,
# and `apt-get update` runs at most once per invocation. It never starts or stops a distro service;
# pgkeel's tests and demo use their own ports (never 5432 or 2379/2380), so a running distro
# PostgreSQL or etcd does not collide with them.
set -euo pipefail

packages=(postgresql-15 etcd-server etcd-client protobuf-compiler)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all present (${packages[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run this script as root (or: sudo $0)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d would stop services from starting, but it is global state we do not own; Debian's
# postinst may start its own cluster on 5432 / etcd on 2379, which pgkeel never uses.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
