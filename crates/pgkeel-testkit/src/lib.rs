//! Dev-only test kit: real etcd, PostgreSQL and pgkeel agents on loopback, killed by PID on drop.
//!
//! # Layout
//! * [`mod@eventually`]: bounded polling (`eventually(timeout, interval, || ...)`), never a bare sleep.
//! * [`etcd`]: [`etcd::EtcdCluster`], a real etcd 3.4 cluster on 127.0.0.1.
//! * [`ports`]: free loopback ports that are never handed out twice in one process.
//! * [`procs`]: PID helpers: signals, `postmaster.pid`, ownership checks, RSS.
//! * [`nodeconf`]: renders one Patroni-style YAML config per node.
//! * [`cluster`]: [`cluster::PgkeelCluster`], a whole test cluster (etcd + agents + PostgreSQL).
//! * [`flood`]: a REST connection flood with a health checker beside it.
//! * [`chaos`]: the seeded fault campaign (writers, nemesis, checker of acknowledged writes).
//! * [`patroni`]: Patroni's own `patronictl`, the reference client.
//! * [`shape`]: compares a REST document with Patroni's example by fields and JSON types.
//! * [`snapshot`]: normalises `pgkeelctl list` output so it can be compared with a snapshot.
//!
//! Binaries: `pgkeel-demo` (the README demo cluster), `pgkeel-bench-bootstrap` (bootstrap timing
//! and agent RSS), `pgkeel-bench-failover` (write gaps) and `pgkeel-bench-flood` (`/health` under a
//! REST flood), `pgkeel-bench-chaos` (the fault campaign). All use the same [`cluster::PgkeelCluster`] as the end-to-end tests.

pub mod bench;
pub mod chaos;
pub mod cluster;
pub mod etcd;
pub mod eventually;
pub mod flood;
pub mod nodeconf;
pub mod patroni;
pub mod ports;
pub mod procs;
pub mod shape;
pub mod snapshot;
pub mod writer;

pub use cluster::{BasePorts, ClusterOptions, NodeInfo, PgkeelCluster, require_tools, wait};
pub use eventually::eventually;
