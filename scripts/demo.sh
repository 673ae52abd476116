#!/usr/bin/env bash
# The pgkeel demo: a 3-node cluster (3 etcd, 3 pgkeel agents, 3 PostgreSQL 15) on 127.0.0.1.
#   scripts/demo.sh start    installs deps, builds (debug, for speed), starts, prints `pgkeelctl list`
#   scripts/demo.sh status   prints `pgkeelctl list`
#   scripts/demo.sh stop     kills exactly the demo's processes and removes its directory
# Options after the command go to pgkeel-demo (e.g. `--dir /tmp/pgkeel-demo`; default `.demo`).
# Ports: PostgreSQL 15432-15434, REST API 8008-8010, etcd 12379/12381/12383 (peers 12380/12382/12384).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cmd="${1:-}"
case "$cmd" in
  start | stop | status) shift ;;
  *)
    echo "usage: scripts/demo.sh start|stop|status [--dir DIR]" >&2
    exit 2
    ;;
esac

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
target=$(cargo_target_dir)
if [ "$cmd" = start ]; then
  scripts/install-deps.sh
  # Debug build: about half the build time of --release, and fast enough for a demo.
  cargo build -p pgkeel -p pgkeel-testkit --bins
fi

if [ ! -x "$target/debug/pgkeel-demo" ]; then
  echo "demo.sh: $target/debug/pgkeel-demo is not built; run: scripts/demo.sh start" >&2
  exit 1
fi
export PGKEEL_BIN="$target/debug/pgkeel"
export PGKEELCTL_BIN="$target/debug/pgkeelctl"
exec "$target/debug/pgkeel-demo" "$cmd" "$@"
