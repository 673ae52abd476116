#!/usr/bin/env bash
# Bootstrap time and agent RSS of a fresh 3-node cluster; see bench/README.md.
# Usage: bench/bootstrap.sh [--runs N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
cargo build --release -p pgkeel -p pgkeel-testkit --bins
target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target="${target:-${CARGO_TARGET_DIR:-target}}/release"
export PGKEEL_BIN="$target/pgkeel"
export PGKEELCTL_BIN="$target/pgkeelctl"
exec "$target/pgkeel-bench-bootstrap" "$@"
