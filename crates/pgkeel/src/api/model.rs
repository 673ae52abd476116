//! JSON documents of the REST API, shared by the server (`api`) and `pgkeelctl` (`ctl`).
//!
//! Field names, order and omission rules follow Patroni 4.1 (`patroni/api.py`
//! `get_postgresql_status`/`_write_status_response`, `patroni/utils.py` `cluster_as_json`), so
//! Patroni peers, HAProxy checks and scripts parse what pgkeel serves. This module only builds
//! and describes documents; it performs no I/O.

use pgkeel_ha::cluster::{Cluster, Member};
use pgkeel_ha::pg::Lsn;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `GET /patroni` (and the body of every health check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatroniStatus {
    /// PostgreSQL state (`running`, `stopped`, `starting`, ...; `unknown` when a running server
    /// did not answer).
    pub state: String,
    /// `"2024-08-28 19:39:26.352526+00:00"`, when PostgreSQL answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmaster_start_time: Option<String>,
    /// `primary`, `replica`, or the local role (`standby_leader`, `demoted`, `uninitialized`).
    pub role: String,
    /// Server version as an integer (`160004`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<u32>,
    /// WAL positions (absolute byte offsets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlog: Option<Xlog>,
    /// Current timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// Replica: `streaming` or `in archive recovery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    /// Replica: listed in `/sync` (synchronous mode). Present only when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_standby: Option<bool>,
    /// Replica: quorum standby (quorum mode). Present only when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_standby: Option<bool>,
    /// pgkeel's own field (Patroni has none): present (true) on a replica that streams from
    /// nobody, so its WAL position cannot grow until its agent points it at a leader. Quorum
    /// commit counts a member's vote in the leader race only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detached: Option<bool>,
    /// Primary: `pg_stat_replication` rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Vec<ReplicationRow>>,
    /// Present (true) in maintenance mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
    /// Present (true) when nobody holds the leader key or the DCS view is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_unlocked: Option<bool>,
    /// Unix time (s) of the last successful DCS round trip; 0 if never.
    #[serde(default)]
    pub dcs_last_seen: u64,
    /// The node's tags, omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Value>,
    /// `Database system identifier`, when the data directory is initialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_system_identifier: Option<String>,
    /// Present (true) when a changed parameter waits for a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    /// `{"<guc>": {"old_value": .., "new_value": ..}}`, omitted when nothing is pending.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_restart_reason: BTreeMap<String, Value>,
    /// Agent identity.
    pub patroni: PatroniInfo,
    /// The restart this node has scheduled: `schedule` and the request's filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_restart: Option<Map<String, Value>>,
}

/// `xlog` in [`PatroniStatus`]: the primary and replica shapes differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Xlog {
    /// Primary: `{"location": N}`.
    Primary {
        /// `pg_current_wal_lsn()`.
        location: u64,
    },
    /// Replica: received/replayed positions.
    Replica {
        /// Last received LSN (falls back to the replayed one when nothing was received).
        received_location: u64,
        /// Last replayed LSN.
        replayed_location: u64,
        /// `pg_last_xact_replay_timestamp()`; `null` when unknown.
        replayed_timestamp: Option<String>,
        /// Replay is paused.
        paused: bool,
    },
}

impl Xlog {
    /// The replayed location of a replica; 0 for a primary (as Patroni's health checks read it).
    pub fn replayed_location(&self) -> u64 {
        match self {
            Xlog::Replica {
                replayed_location, ..
            } => *replayed_location,
            Xlog::Primary { .. } => 0,
        }
    }

    /// The received location of a replica; 0 for a primary.
    pub fn received_location(&self) -> u64 {
        match self {
            Xlog::Replica {
                received_location, ..
            } => *received_location,
            Xlog::Primary { .. } => 0,
        }
    }
}

/// One `pg_stat_replication` row in [`PatroniStatus::replication`].
pub use crate::postgres::ReplicationRow;

/// `patroni` in [`PatroniStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatroniInfo {
    /// Agent version, dotted integers.
    pub version: String,
    /// Cluster name.
    pub scope: String,
    /// Member name.
    pub name: String,
}

/// `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterJson {
    /// Members sorted by name.
    pub members: Vec<ClusterMember>,
    /// Present (true) in maintenance mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
    /// A scheduled switchover, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_switchover: Option<ScheduledSwitchover>,
    /// Cluster name.
    #[serde(default)]
    pub scope: String,
}

/// `scheduled_switchover` in [`ClusterJson`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledSwitchover {
    /// ISO 8601 time.
    pub at: String,
    /// The leader to move away from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A lag in bytes, or `"unknown"` when the member did not report its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Lag {
    /// Bytes behind the leader's last known optime (0 when ahead).
    Bytes(u64),
    /// `"unknown"`.
    Text(String),
}

/// One member of [`ClusterJson`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// Member name.
    pub name: String,
    /// `leader`, `standby_leader`, `sync_standby`, `quorum_standby` or `replica`.
    pub role: String,
    /// Non-leaders: `replication_state` when set, else the PostgreSQL state.
    pub state: String,
    /// REST API URL (`null` when unknown).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Host from `conn_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port from `conn_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Timeline the member reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// Present (true) when a restart is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    /// Why, as the member published it; omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_restart_reason: BTreeMap<String, Value>,
    /// The member's scheduled restart as it published it (`schedule`, filters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_restart: Option<Map<String, Value>>,
    /// Tags, omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Value>,
    /// Non-leaders: received LSN (`0/4000060`) or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_lsn: Option<String>,
    /// Non-leaders: bytes the received LSN is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_lag: Option<Lag>,
    /// Non-leaders: replayed LSN or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<String>,
    /// Non-leaders: bytes the replayed LSN is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_lag: Option<Lag>,
    /// Non-leaders: the member's WAL position or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
    /// Non-leaders: bytes the position is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<Lag>,
}

/// True when the dynamic configuration describes a standby cluster.
pub fn is_standby_cluster(cluster: &Cluster) -> bool {
    cluster
        .config
        .as_ref()
        .and_then(|c| c.data.get("standby_cluster"))
        .is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
}

/// True when the dynamic configuration has `pause: true`.
pub fn is_paused(cluster: &Cluster) -> bool {
    cluster
        .config
        .as_ref()
        .map(|c| pgkeel_ha::cluster::GlobalConfig::from_map(&c.data).pause)
        .unwrap_or(false)
}

/// Synchronous-replication role of `name`: `Some("sync_standby")`/`Some("quorum_standby")` when
/// synchronous mode is on and `/sync` lists it.
pub fn sync_role(cluster: &Cluster, name: &str) -> Option<&'static str> {
    use pgkeel_ha::cluster::{GlobalConfig, SyncMode};
    let mode = GlobalConfig::from_map(&cluster.config.as_ref()?.data).synchronous_mode;
    let listed = cluster.sync.as_ref().is_some_and(|s| s.lists(name));
    match (listed, mode) {
        (false, _) | (_, SyncMode::Off) => None,
        (true, SyncMode::Quorum) => Some("quorum_standby"),
        (true, SyncMode::On) => Some("sync_standby"),
    }
}

fn lsn_and_lag(lsn: Option<u64>, optime: u64) -> (String, Lag) {
    match lsn {
        Some(l) => (Lsn(l).to_string(), Lag::Bytes(optime.saturating_sub(l))),
        None => ("unknown".into(), Lag::Text("unknown".into())),
    }
}

fn member_json(cluster: &Cluster, m: &Member, optime: u64) -> ClusterMember {
    let is_leader = cluster.leader_name() == Some(m.name.as_str());
    let role = if is_leader {
        if is_standby_cluster(cluster) {
            "standby_leader"
        } else {
            "leader"
        }
    } else {
        sync_role(cluster, &m.name).unwrap_or("replica")
    };
    let state = match (&m.replication_state, role) {
        (Some(rs), r) if r != "leader" && !rs.is_empty() => rs.clone(),
        _ => m.state.clone(),
    };
    let (host, port) = match m.host_port() {
        Some((h, p)) if !h.is_empty() => (Some(h), Some(p)),
        _ => (None, None),
    };
    let mut out = ClusterMember {
        name: m.name.clone(),
        role: role.to_string(),
        state,
        api_url: m.api_url.clone(),
        host,
        port,
        timeline: m.timeline,
        pending_restart: m.pending_restart.then_some(true),
        pending_restart_reason: m.pending_restart_reason.clone(),
        scheduled_restart: m.scheduled_restart.clone(),
        tags: m.tags.clone(),
        receive_lsn: None,
        receive_lag: None,
        replay_lsn: None,
        replay_lag: None,
        lsn: None,
        lag: None,
    };
    if !is_leader {
        let (l, g) = lsn_and_lag(m.receive_lsn, optime);
        out.receive_lsn = Some(l);
        out.receive_lag = Some(g);
        let (l, g) = lsn_and_lag(m.replay_lsn, optime);
        out.replay_lsn = Some(l);
        out.replay_lag = Some(g);
        let (l, g) = lsn_and_lag(m.xlog_location.or_else(|| m.lsn().map(|l| l.0)), optime);
        out.lsn = Some(l);
        out.lag = Some(g);
    }
    out
}

/// Patroni's `cluster_as_json` plus `scope`: the `/cluster` document, also what `pgkeelctl list`
/// renders.
pub fn cluster_json(cluster: &Cluster, scope: &str) -> ClusterJson {
    let optime = cluster.status.optime.unwrap_or(0);
    let mut members: Vec<ClusterMember> = cluster
        .members
        .iter()
        .map(|m| member_json(cluster, m, optime))
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let scheduled_switchover = cluster.failover.as_ref().and_then(|f| {
        Some(ScheduledSwitchover {
            at: f.scheduled_at.clone()?,
            from: f.leader.clone(),
            to: f.member.clone(),
        })
    });
    ClusterJson {
        members,
        pause: is_paused(cluster).then_some(true),
        scheduled_switchover,
        scope: scope.to_string(),
    }
}

/// The `/history` document: Patroni's list of `[timeline, lsn, reason, timestamp, new_leader]`.
pub fn history_json(cluster: &Cluster) -> Value {
    Value::Array(
        cluster
            .history
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_json())
            .collect(),
    )
}
