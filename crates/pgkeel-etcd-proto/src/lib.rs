//! The etcd v3 gRPC API as Rust types and tonic clients, for `pgkeel::dcs::etcd`.
//!
//! Exists so that `cargo build` of pgkeel needs no `protoc`: the code in `src/generated/` was
//! generated once from the `.proto` files in `proto/` (etcd's own, vendored unchanged) by
//! `scripts/regen-etcd-proto.sh`, and is committed. Each generated file's header records the
//! protoc, tonic-prost-build and prost-build versions and the source revision of the `.proto`
//! files; `crates/pgkeel-etcd-proto-gen/tests/committed_is_fresh.rs` checks that the committed code
//! equals a fresh generation wherever protoc is installed.
//!
//! Only clients are generated (no servers), and only for the services pgkeel uses: `KV`, `Watch`,
//! `Lease` and `Auth`. All messages of the three packages are generated.
//!
//! # Layout
//! * [`mvccpb`]: `KeyValue` and watch `Event`.
//! * [`authpb`]: users, roles and permissions (referenced by `etcdserverpb`).
//! * [`etcdserverpb`]: requests, responses and the `kv_client`, `watch_client`, `lease_client` and
//!   `auth_client` modules.

#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    reason = "generated code: the documentation is etcd's own proto comments"
)]

pub mod mvccpb {
    //! etcd's MVCC key-value and event types.
    include!("generated/mvccpb.rs");
}

pub mod authpb {
    //! etcd's auth user, role and permission types.
    include!("generated/authpb.rs");
}

pub mod etcdserverpb {
    //! etcd's v3 RPC messages and the KV, Watch, Lease and Auth clients.
    include!("generated/etcdserverpb.rs");
}
