//! What the agent observed about its local PostgreSQL, and the small value types around it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A WAL position (absolute byte offset), printed as PostgreSQL does: `0/40004E8`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for Lsn {
    type Err = String;

    /// Parses `X/Y` (hex halves) as PostgreSQL prints a `pg_lsn`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an LSN: expected X/Y in hex"))?;
        let hi = u64::from_str_radix(hi.trim(), 16)
            .map_err(|_| format!("{s:?} is not an LSN: bad high half"))?;
        let lo = u64::from_str_radix(lo.trim(), 16)
            .map_err(|_| format!("{s:?} is not an LSN: bad low half"))?;
        if hi > 0xFFFF_FFFF || lo > 0xFFFF_FFFF {
            return Err(format!("{s:?} is not an LSN: a half exceeds 32 bits"));
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

/// The kind of a replication slot (`pg_replication_slots.slot_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotType {
    /// A physical slot (a standby's).
    Physical,
    /// A logical slot (or any other kind): never dropped by the member-slot policy.
    Logical,
}

/// One replication slot of the local server, as the agent observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSlot {
    /// `slot_name`.
    pub name: String,
    /// `slot_type`.
    pub slot_type: SlotType,
    /// A walsender uses it right now.
    pub active: bool,
    /// Oldest WAL it retains (`None` until reserved).
    pub restart_lsn: Option<Lsn>,
}

/// State of the data directory, as far as the agent can tell without starting PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataDir {
    /// Missing or empty: this node needs bootstrap or a clone.
    Empty,
    /// Exists but cannot be read (permissions, I/O error); the text says why.
    Inaccessible(String),
    /// An initialized cluster with this system identifier (from `pg_controldata`).
    Initialized {
        /// `Database system identifier`, digits.
        sysid: String,
    },
}

/// What role the running server plays, from `pg_is_in_recovery()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerRole {
    /// Accepts writes.
    Primary,
    /// In recovery (standby).
    Replica,
}

/// A parameter whose new value PostgreSQL read from its configuration files but applies only
/// after a restart (`pg_settings.pending_restart`), in Patroni's `pending_restart_reason` terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRestart {
    /// The GUC's name.
    pub name: String,
    /// The value the server runs with.
    pub old_value: String,
    /// The value in the configuration files.
    pub new_value: String,
}

/// One walsender of the local primary (`pg_stat_replication`), as the agent observed it: what
/// the primary needs to choose synchronous standbys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationConnection {
    /// `application_name`: the member name of a standby pgkeel or Patroni configured.
    pub application_name: String,
    /// `state` (`streaming`, `catchup`, ...).
    pub state: String,
    /// `sync_state` (`async`, `potential`, `sync`, `quorum`).
    pub sync_state: String,
    /// `write_lsn`.
    pub write_lsn: Option<Lsn>,
    /// `flush_lsn`.
    pub flush_lsn: Option<Lsn>,
    /// `replay_lsn`.
    pub replay_lsn: Option<Lsn>,
}

impl ReplicationConnection {
    /// The position that counts for commits under `synchronous_commit` (Patroni's sort
    /// column): `replay_lsn` for `remote_apply`, `write_lsn` for `remote_write`, else
    /// `flush_lsn`.
    pub fn position_for(&self, synchronous_commit: Option<&str>) -> Option<Lsn> {
        match synchronous_commit {
            Some("remote_apply") => self.replay_lsn,
            Some("remote_write") => self.write_lsn,
            _ => self.flush_lsn,
        }
    }
}

/// One observation of the local PostgreSQL server, taken at the start of an HA cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPostgres {
    /// The data directory's state.
    pub data_dir: DataDir,
    /// A postmaster process for this data directory is alive.
    pub running: bool,
    /// The server answered a query (false while starting, in crash recovery, or stopped).
    pub accepting_connections: bool,
    /// Primary or replica, when the server answered.
    pub role: Option<ServerRole>,
    /// Current timeline, when known.
    pub timeline: Option<u32>,
    /// Primary: `pg_current_wal_lsn()`; replica: `max(receive, replay)`.
    pub wal_position: Option<Lsn>,
    /// Replica: last WAL position received from upstream.
    pub receive_lsn: Option<Lsn>,
    /// Replica: last WAL position replayed.
    pub replay_lsn: Option<Lsn>,
    /// Replica: the WAL receiver is streaming.
    pub streaming: bool,
    /// Replica: a WAL receiver process exists (any state: starting, streaming, stopping...).
    /// Until it is gone, WAL may still arrive even when the recovery settings name no upstream.
    #[serde(default)]
    pub wal_receiver: bool,
    /// Member name this server is configured to follow (from the recovery settings pgkeel wrote).
    pub following: Option<String>,
    /// `Database cluster state` from `pg_controldata` (`in production`, `shut down`, ...).
    pub cluster_state: Option<String>,
    /// Server version as an integer (150004), when known.
    pub server_version: Option<u32>,
    /// Stopped server: where its WAL ends as far as `pg_controldata` tells (`Latest checkpoint
    /// location`, or `Minimum recovery ending location` for a replica), used to decide whether a
    /// former primary diverged from the new leader's timeline.
    pub checkpoint_lsn: Option<Lsn>,
    /// Parameters changed in the configuration files that need a restart to take effect.
    #[serde(default)]
    pub pending_restart: Vec<PendingRestart>,
    /// `pg_postmaster_start_time()` of the running server (ISO 8601): tells a scheduled
    /// restart that the server restarted meanwhile.
    #[serde(default)]
    pub postmaster_start_time: Option<String>,
    /// Running primary: its walsenders (`pg_stat_replication`); empty otherwise.
    #[serde(default)]
    pub replication: Vec<ReplicationConnection>,
    /// Running server: `synchronous_standby_names` as it runs with it.
    #[serde(default)]
    pub synchronous_standby_names: Option<String>,
    /// Running server: `synchronous_commit`.
    #[serde(default)]
    pub synchronous_commit: Option<String>,
}

impl PendingRestart {
    /// Patroni's `pending_restart_reason`: `{"<guc>": {"old_value": .., "new_value": ..}}`.
    pub fn reasons(
        pending: &[PendingRestart],
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        pending
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    serde_json::json!({"old_value": p.old_value, "new_value": p.new_value}),
                )
            })
            .collect()
    }
}

impl LocalPostgres {
    /// An observation of a node with no data directory and nothing running.
    pub fn empty() -> Self {
        LocalPostgres {
            data_dir: DataDir::Empty,
            running: false,
            accepting_connections: false,
            role: None,
            timeline: None,
            wal_position: None,
            receive_lsn: None,
            replay_lsn: None,
            streaming: false,
            wal_receiver: false,
            following: None,
            cluster_state: None,
            server_version: None,
            checkpoint_lsn: None,
            pending_restart: Vec::new(),
            postmaster_start_time: None,
            replication: Vec::new(),
            synchronous_standby_names: None,
            synchronous_commit: None,
        }
    }

    /// The server is up and accepting writes.
    pub fn is_running_primary(&self) -> bool {
        self.running && self.role == Some(ServerRole::Primary)
    }

    /// The server is up and in recovery.
    pub fn is_running_replica(&self) -> bool {
        self.running && self.role == Some(ServerRole::Replica)
    }

    /// `pg_controldata` says this data directory was last running as a primary
    /// (`in production`, or a clean primary shutdown `shut down`).
    pub fn was_primary_per_controldata(&self) -> bool {
        matches!(
            self.cluster_state.as_deref(),
            Some("in production") | Some("shut down")
        )
    }

    /// The system identifier of the data directory, if initialized.
    pub fn sysid(&self) -> Option<&str> {
        match &self.data_dir {
            DataDir::Initialized { sysid } => Some(sysid),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_prints_and_parses_like_postgres() {
        let lsn: Lsn = "0/40004E8".parse().unwrap();
        assert_eq!(lsn.0, 0x40004E8);
        assert_eq!(lsn.to_string(), "0/40004E8");
        assert_eq!(Lsn(0x1_0000_0010).to_string(), "1/10");
        assert!("garbage".parse::<Lsn>().is_err());
        assert!("1/ZZ".parse::<Lsn>().is_err());
    }
}
