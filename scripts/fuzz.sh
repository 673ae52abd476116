#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for a bounded time with libFuzzer through
# cargo-fuzz, starting from the seeds in fuzz/seeds/<target>. A crash fails the run and leaves
# the input in fuzz/artifacts/<target>/ (reproduce: cargo fuzz run <target> <file>).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] (default 20; FUZZ_SECONDS works too)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-${FUZZ_SECONDS:-20}}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (about 2 minutes)"
  cargo install cargo-fuzz --locked
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in dcs_keys dynamic_config config_file; do
  echo "fuzz: $target for ${seconds}s"
  mkdir -p "$work/$target"
  # No sanitizer: the code is safe Rust (unsafe_code is forbidden), so what is looked for is
  # panics, overflows (debug assertions are on) and unbounded memory, not memory errors.
  if ! cargo fuzz run --sanitizer none --debug-assertions "$target" "$work/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$work/$target.log" 2>&1; then
    tail -n 60 "$work/$target.log"
    echo "fuzz: $target FAILED (input in fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ +DONE' "$work/$target.log" || true
done
