#!/usr/bin/env bash
# Regenerates crates/pgkeel-etcd-proto/src/generated/*.rs (etcd's KV, Watch, Lease and Auth gRPC
# clients and messages) from the vendored .proto files in crates/pgkeel-etcd-proto/proto/.
#
# The only step of the project that needs protoc: protobuf-compiler plus libprotobuf-dev (the
# well-known types etcd's files import). A plain `cargo build` compiles the committed files.
# Run it after changing the .proto files or bumping tonic-prost-build / prost-build in Cargo.lock,
# and commit the result; crates/pgkeel-etcd-proto-gen/tests/committed_is_fresh.rs fails until then.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if ! version=$(protoc_with_well_known_types); then
  echo "regen-etcd-proto: $version" >&2
  echo "regen-etcd-proto: install: apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev" >&2
  exit 1
fi
echo "regen-etcd-proto: using $version"
cargo run --quiet -p pgkeel-etcd-proto-gen
git status --short -- crates/pgkeel-etcd-proto/src/generated
