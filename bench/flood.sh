#!/usr/bin/env bash
# /health latency while a flood of idle connections hits the leader's REST port; see bench/README.md.
# Usage: bench/flood.sh [--rounds N] [--seconds S] [--connections N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
run_release_bench pgkeel-bench-flood "$@"
