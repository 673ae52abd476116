#!/usr/bin/env bash
# Everything CI runs (`.ci/run` execs this): deps, formatting, lints, build, all tests (unit,
# simulation and end-to-end), benches compile, the advisory check when cargo-deny is available,
# and a bounded fuzzing run of each fuzz target.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (all targets)"
cargo build --workspace --all-targets

step "tests (unit, simulation, end-to-end)"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  echo "cargo-nextest not found; falling back to cargo test (no per-test timeouts)"
  cargo test --workspace --no-fail-fast -- --test-threads=1
fi

step "doc tests and docs"
cargo test --workspace --doc
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

if compgen -G "crates/*/benches/*.rs" >/dev/null; then
  step "benches compile"
  cargo bench --workspace --no-run
fi

step "advisories"
if ! command -v cargo-deny >/dev/null 2>&1 && [ -n "${CI:-}" ]; then
  echo "installing cargo-deny (about 2 minutes)"
  cargo install cargo-deny --locked
fi
if command -v cargo-deny >/dev/null 2>&1; then
  cargo deny --offline check licenses bans sources
  if [ -x ../shared/tools/check-advisories ]; then
    ../shared/tools/check-advisories
  else
    echo "note: ../shared/tools/check-advisories not found; advisories not checked"
  fi
else
  echo "note: cargo-deny is not installed; skipping licenses/bans/advisories (cargo install cargo-deny --locked)"
fi

step "fuzzing (bounded)"
scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
if command -v cargo-deny >/dev/null 2>&1 && [ -x ../shared/tools/check-advisories ]; then
  (cd fuzz && cargo fetch --quiet && ../../shared/tools/check-advisories)
fi

step "all checks passed"
