//! The agent's last published state: what the REST API answers from.
//!
//! The HA loop publishes a new `NodeStatus` after every cycle (and the lease task updates the
//! lease deadline); API handlers only read it, so health checks never block on PostgreSQL or
//! the DCS.

use pgkeel_ha::cluster::{Cluster, GlobalConfig};
use pgkeel_ha::ha::{PgState, Role};
use pgkeel_ha::pg::LocalPostgres;
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

/// Everything the REST API and the member key need about this node, as of the last cycle.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// Member name.
    pub name: String,
    /// Cluster name.
    pub scope: String,
    /// PostgreSQL's state as the core decided it.
    pub state: PgState,
    /// The node's role as the core decided it.
    pub role: Role,
    /// The last local PostgreSQL observation.
    pub postgres: LocalPostgres,
    /// `postmaster_start_time` as PostgreSQL prints it, when running.
    pub postmaster_start_time: Option<String>,
    /// `pg_stat_replication` on a primary.
    pub replication: Vec<crate::postgres::ReplicationRow>,
    /// `pg_last_xact_replay_timestamp()` on a replica.
    pub replayed_timestamp: Option<String>,
    /// Replay is paused on a replica.
    pub replay_paused: bool,
    /// Replica: `latest_end_lsn` from `pg_stat_wal_receiver`.
    pub latest_end_lsn: Option<u64>,
    /// The node holds the leader key and its lease is valid until this instant.
    pub leader_until: Option<Instant>,
    /// Last successful DCS view.
    pub cluster: Option<Cluster>,
    /// When the DCS last answered.
    pub dcs_last_seen: Option<SystemTime>,
    /// Effective dynamic configuration.
    pub global: GlobalConfig,
    /// Published tags.
    pub tags: BTreeMap<String, serde_json::Value>,
    /// When the current HA cycle is due to have finished (for `/liveness`).
    pub next_cycle_due: Instant,
    /// The last cycle's status message.
    pub last_message: String,
    /// Agent version, dotted integers.
    pub version: String,
    /// The restart scheduled on this node, if any (the core's memory).
    pub scheduled_restart: Option<pgkeel_ha::ha::ScheduledRestart>,
}

impl NodeStatus {
    /// Holds the leader key with a valid lease right now.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.leader_until.is_some_and(|u| now < u)
    }
}
