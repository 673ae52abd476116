# shellcheck shell=bash
# Shared by scripts/*.sh and bench/*.sh (sourced, not run).

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

# Prints protoc's version (e.g. `libprotoc 3.21.12`) if `${PROTOC:-protoc}` compiles a file that
# imports google/protobuf/descriptor.proto, as etcd's .proto files do (the well-known types come
# with libprotobuf-dev, not protobuf-compiler); otherwise prints why and fails. Only
# scripts/regen-etcd-proto.sh needs this; scripts/install-deps.sh reports it as optional.
protoc_with_well_known_types() {
  local protoc="${PROTOC:-protoc}" dir out version rc=0
  if ! version=$("$protoc" --version 2>&1); then
    echo "cannot run $protoc: $version"
    return 1
  fi
  dir=$(mktemp -d)
  printf '%s\n' 'syntax = "proto3";' 'import "google/protobuf/descriptor.proto";' \
    'message Check { google.protobuf.FileOptions options = 1; }' >"$dir/check.proto"
  if ! out=$("$protoc" --proto_path="$dir" --descriptor_set_out=/dev/null "$dir/check.proto" 2>&1); then
    echo "$version cannot compile an import of google/protobuf/descriptor.proto: $out"
    rc=1
  fi
  rm -rf "$dir"
  [ "$rc" -eq 0 ] && echo "$version"
  return "$rc"
}
