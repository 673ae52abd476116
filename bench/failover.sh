#!/usr/bin/env bash
# Write unavailability on primary host loss and on a PostgreSQL crash; see bench/README.md.
# Usage: bench/failover.sh [--rounds N] [--profile fast|patroni-defaults] [--ttl S] [--loop-wait S]
#                          [--retry-timeout S] [--scenario both|host-loss|pg-crash]
#                          [--sync off|on|quorum] [--logs]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
run_release_bench pgkeel-bench-failover "$@"
