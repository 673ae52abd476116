#!/usr/bin/env bash
# Write unavailability on primary host loss and on a PostgreSQL crash; see bench/README.md.
# Usage: bench/failover.sh [--rounds N] [--profile fast|patroni-defaults] [--ttl S] [--loop-wait S]
#                          [--retry-timeout S] [--scenario both|host-loss|pg-crash] [--logs]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
cargo build --release -p pgkeel -p pgkeel-testkit --bins
target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target="${target:-${CARGO_TARGET_DIR:-target}}/release"
export PGKEEL_BIN="$target/pgkeel"
export PGKEELCTL_BIN="$target/pgkeelctl"
exec "$target/pgkeel-bench-failover" "$@"
