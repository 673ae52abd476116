#!/usr/bin/env bash
# The seeded fault campaign per replication mode; see bench/README.md.
# Usage: bench/chaos.sh [--mode on|quorum|off|all] [--faults N] [--seed S] [--writers W]
#                       [--ttl S] [--loop-wait S] [--retry-timeout S] [--settle-bound S]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
run_release_bench pgkeel-bench-chaos "$@"
