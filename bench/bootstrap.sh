#!/usr/bin/env bash
# Bootstrap time and agent RSS of a fresh 3-node cluster; see bench/README.md.
# Usage: bench/bootstrap.sh [--runs N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
run_release_bench pgkeel-bench-bootstrap "$@"
