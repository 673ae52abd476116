# shellcheck shell=bash
# Shared by scripts/demo.sh and bench/*.sh (sourced, not run).

# Where cargo puts binaries: honours CARGO_TARGET_DIR and .cargo/config.
cargo_target_dir() {
  local dir
  dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  echo "${dir:-${CARGO_TARGET_DIR:-target}}"
}

# Installs what is missing, builds the release binaries, and execs benchmark binary $1 with the
# remaining arguments, pointing it at the freshly built agent and CLI.
run_release_bench() {
  local bench="$1" release
  shift
  scripts/install-deps.sh
  cargo build --release -p pgkeel -p pgkeel-testkit --bins
  release="$(cargo_target_dir)/release"
  export PGKEEL_BIN="$release/pgkeel"
  export PGKEELCTL_BIN="$release/pgkeelctl"
  exec "$release/$bench" "$@"
}
