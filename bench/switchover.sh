#!/usr/bin/env bash
# Write unavailability during a planned switchover; see bench/README.md.
# Usage: bench/switchover.sh [--rounds N] [--ttl S] [--loop-wait S] [--retry-timeout S]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
run_release_bench pgkeel-bench-switchover "$@"
