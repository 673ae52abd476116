//! The typed DCS snapshot: one immutable view of `/<namespace>/<scope>/` per HA cycle.
//!
//! Built by `keys::codec::parse_cluster` from raw key/values. Every part written by another node
//! is parsed leniently: a garbage value becomes an `Unreadable` entry (and, for a member, a member
//! marked unhealthy), never a panic or an error that stops the agent.

mod global_config;
mod history;

pub use global_config::{
    BOOL_KEYS, ConfigRejected, GlobalConfig, INT_KEYS, IntKey, MAX_LAG_BYTES, MAX_SECONDS,
    MAX_SYNC_NODES, MIN_LOOP_WAIT, MIN_RETRY_TIMEOUT, MIN_TTL, PG_BOOL_KEYS, QUOTE_LIMIT, SyncMode,
    Timeouts, bool_value,
};
pub use history::{HistoryEntry, merge_timeline_history, parse_timeline_history_file};

use crate::pg::Lsn;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The holder of the leader key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Member name stored in the key.
    pub name: String,
    /// etcd lease the key is attached to (0: none).
    pub lease: i64,
    /// The key's mod_revision.
    pub mod_revision: i64,
}

/// One `members/<name>` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Member {
    /// Member name (the last path segment of the key).
    pub name: String,
    /// `postgres://host:port/postgres`.
    pub conn_url: Option<String>,
    /// `http://host:port/patroni`.
    pub api_url: Option<String>,
    /// PostgreSQL state (`running`, `starting`, `stopped`, `crashed`, ...).
    pub state: String,
    /// `primary`, `replica`, `standby_leader`, `demoted`, `uninitialized` (`master` read as `primary`).
    pub role: String,
    /// Agent version, dotted integers.
    pub version: Option<String>,
    /// Primary: current WAL LSN; replica: max(receive, replay).
    pub xlog_location: Option<u64>,
    /// Replica: received LSN.
    pub receive_lsn: Option<u64>,
    /// Replica: replayed LSN.
    pub replay_lsn: Option<u64>,
    /// Replica: `streaming` or `in archive recovery`.
    pub replication_state: Option<String>,
    /// Current timeline.
    pub timeline: Option<u32>,
    /// Published tags.
    pub tags: BTreeMap<String, Value>,
    /// A restart is needed to apply settings.
    pub pending_restart: bool,
    /// Why, as published: `{"<guc>": {"old_value": .., "new_value": ..}}`.
    pub pending_restart_reason: BTreeMap<String, Value>,
    /// A restart the member has scheduled, as published (`schedule`, filters).
    pub scheduled_restart: Option<serde_json::Map<String, Value>>,
    /// The lease the key is attached to.
    pub lease: i64,
    /// The key's mod_revision.
    pub mod_revision: i64,
    /// Set when the value could not be parsed; such a member counts as unhealthy.
    pub unreadable: Option<String>,
}

impl Member {
    /// True if the member must never be promoted (`nofailover` tag, or `failover_priority <= 0`).
    pub fn nofailover(&self) -> bool {
        forbids_failover(
            self.tags.get("nofailover"),
            self.tags.get("failover_priority"),
        )
    }

    /// `failover_priority` tag, default 1.
    pub fn failover_priority(&self) -> i64 {
        failover_priority(self.tags.get("failover_priority"))
    }

    /// True if the member must never be a synchronous standby (`nosync` tag, or
    /// `sync_priority <= 0`), as Patroni's `Tags.nosync`.
    pub fn nosync(&self) -> bool {
        forbids_failover(self.tags.get("nosync"), self.tags.get("sync_priority"))
    }

    /// `sync_priority` tag (default 1; 0 when tagged `nosync`): higher is chosen first.
    pub fn sync_priority(&self) -> i64 {
        if tag_is_true(self.tags.get("nosync")) {
            0
        } else {
            failover_priority(self.tags.get("sync_priority"))
        }
    }

    /// True if the member is tagged `clonefrom`.
    pub fn clonefrom(&self) -> bool {
        tag_is_true(self.tags.get("clonefrom"))
    }

    /// True if the member is tagged `nostream`: it does not stream WAL, so nobody keeps a slot
    /// for it.
    pub fn nostream(&self) -> bool {
        tag_is_true(self.tags.get("nostream"))
    }

    /// The `replicatefrom` tag: the member this one wants to stream from (cascading).
    pub fn replicatefrom(&self) -> Option<&str> {
        self.tags
            .get("replicatefrom")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// True if the member is tagged `noloadbalance`.
    pub fn noloadbalance(&self) -> bool {
        tag_is_true(self.tags.get("noloadbalance"))
    }

    /// The best WAL position this member reported.
    pub fn lsn(&self) -> Option<Lsn> {
        [self.xlog_location, self.receive_lsn, self.replay_lsn]
            .into_iter()
            .flatten()
            .max()
            .map(Lsn)
    }

    /// `(host, port)` from `conn_url` (`postgres://host:port/db`), port default 5432.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let url = self.conn_url.as_deref()?;
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))?;
        let authority = rest.split('/').next()?;
        let authority = authority.rsplit('@').next()?;
        split_host_port(authority)
    }

    /// True when the value was readable and the member says PostgreSQL is running.
    pub fn is_running(&self) -> bool {
        self.unreadable.is_none() && self.state == "running"
    }
}

/// Splits `host:port` (or `[v6]:port`, or a bare host) into parts; port defaults to 5432.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 5432,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None if !s.is_empty() => Some((s.to_string(), 5432)),
        None => None,
    }
}

/// Whether the `nofailover` and `failover_priority` tags forbid promoting a node: `nofailover`
/// true, or a priority of 0 or less. One reading for member keys and peers' `/patroni` tags.
pub fn forbids_failover(nofailover: Option<&Value>, priority: Option<&Value>) -> bool {
    tag_is_true(nofailover) || matches!(priority.and_then(value_as_i64), Some(p) if p <= 0)
}

/// `failover_priority` of a member whose tags do not set it (Patroni's default). One value for
/// member keys, peers' `/patroni` documents and the agent's local configuration.
pub const DEFAULT_FAILOVER_PRIORITY: i64 = 1;

/// The `failover_priority` tag (an integer or a string holding one), default
/// [`DEFAULT_FAILOVER_PRIORITY`].
pub fn failover_priority(priority: Option<&Value>) -> i64 {
    priority
        .and_then(value_as_i64)
        .unwrap_or(DEFAULT_FAILOVER_PRIORITY)
}

/// Whether a tag value reads as true the way Patroni reads `nofailover`, `noloadbalance` and
/// `clonefrom`: JSON true, a non-zero number, or "true"/"yes"/"on" in any case. Shared by the
/// core and the REST API's health checks so both read a tag alike.
pub fn tag_is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on"),
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The `status` key: the leader's last known WAL position and slot positions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Absolute LSN the leader last reported.
    pub optime: Option<u64>,
    /// Slot name to LSN.
    pub slots: BTreeMap<String, u64>,
    /// Member slots to keep.
    pub retain_slots: Vec<String>,
}

/// The `failover` key: a requested switchover or failover.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failover {
    /// The leader to move away from.
    pub leader: Option<String>,
    /// The member to move to (`member` in the key, `candidate` in the REST body).
    pub member: Option<String>,
    /// ISO 8601 time, with zone.
    pub scheduled_at: Option<String>,
    /// The key's mod_revision (for CAS).
    pub mod_revision: i64,
}

/// The `sync` key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncState {
    /// Primary that wrote it.
    pub leader: Option<String>,
    /// Quorum (quorum mode).
    pub quorum: Option<i64>,
    /// Synchronous standbys, sorted.
    pub sync_standby: Vec<String>,
    /// The key's mod_revision.
    pub mod_revision: i64,
}

impl SyncState {
    /// `name` is listed as a synchronous standby (Patroni's `SyncState.matches`).
    pub fn lists(&self, name: &str) -> bool {
        self.sync_standby.iter().any(|s| s == name)
    }

    /// `name` is the primary that wrote the key or one of its synchronous standbys: the
    /// members that have every acknowledged commit (Patroni's `SyncState.members`).
    pub fn includes(&self, name: &str) -> bool {
        self.leader.as_deref() == Some(name) || self.lists(name)
    }
}

/// The `config` key: the dynamic configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterConfig {
    /// The JSON object.
    pub data: Map<String, Value>,
    /// The key's mod_revision (for CAS edits).
    pub mod_revision: i64,
}

/// A key whose value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Full key path.
    pub key: String,
    /// What was wrong.
    pub reason: String,
}

/// One consistent view of the cluster's keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cluster {
    /// `initialize`: `None` absent, `Some("")` bootstrap in progress, else the system identifier.
    pub initialize: Option<String>,
    /// `config`.
    pub config: Option<ClusterConfig>,
    /// `leader`.
    pub leader: Option<Leader>,
    /// `members/*`, sorted by name.
    pub members: Vec<Member>,
    /// `status` (or legacy `optime/leader`).
    pub status: Status,
    /// `history`: `None` when the key is absent.
    pub history: Option<Vec<HistoryEntry>>,
    /// `failover`, when it holds a request.
    pub failover: Option<Failover>,
    /// `sync`.
    pub sync: Option<SyncState>,
    /// Keys that could not be parsed (logged by the agent, otherwise ignored).
    pub unreadable: Vec<Unreadable>,
}

impl Cluster {
    /// The member with this name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The member `name` streams from: its `replicatefrom` when that is another running member,
    /// else `leader`. One answer for the node choosing its upstream and for the nodes keeping
    /// slots for it, so a slot waits wherever a replica connects (and falls back with it).
    pub fn upstream_of<'a>(
        &'a self,
        name: &str,
        replicatefrom: Option<&'a str>,
        leader: &'a str,
    ) -> &'a str {
        match replicatefrom {
            Some(r) if r != name && self.member(r).is_some_and(Member::is_running) => r,
            _ => leader,
        }
    }

    /// The members that stream from `me` when `leader` leads (see [`Cluster::upstream_of`]),
    /// leaving out unreadable keys and `nostream` members: the physical slots `me` keeps.
    pub fn downstream_of(&self, me: &str, leader: &str) -> Vec<&Member> {
        self.others(me)
            .filter(|m| !m.nostream())
            .filter(|m| self.upstream_of(&m.name, m.replicatefrom(), leader) == me)
            .collect()
    }

    /// The members other than `me` whose keys parse: a key that does not is nobody's member
    /// (it gets no slot, and its slot name protects nothing).
    pub fn others<'a>(&'a self, me: &str) -> impl Iterator<Item = &'a Member> + 'a {
        let me = me.to_string();
        self.members
            .iter()
            .filter(move |m| m.name != me && m.unreadable.is_none())
    }

    /// The member holding the leader key, if it has a member entry.
    pub fn leader_member(&self) -> Option<&Member> {
        self.leader.as_ref().and_then(|l| self.member(&l.name))
    }

    /// Name of the leader, if any.
    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }

    /// The highest WAL position a readable member publishes in its member key. Only keys
    /// attached to a lease count: every agent (pgkeel's and Patroni's) writes its member key on
    /// its lease, so a key without one was written by something else, and a forged position in
    /// it must not make a forged `status` optime believable (see [`Cluster::plausible_optime`]).
    pub fn highest_member_lsn(&self) -> Option<u64> {
        self.members
            .iter()
            .filter(|m| m.unreadable.is_none() && m.lease != 0)
            .filter_map(|m| m.lsn().map(|l| l.0))
            .max()
    }

    /// `status.optime`, believed only up to the highest position a member ever published
    /// (`highest_seen`, or the members of this snapshot): the leader writes `status` from the
    /// position it also publishes in its member key, so an optime beyond every member's own
    /// position was never real (`status {"optime": 18446744073709551615}` made every replica
    /// lag by 2^64 bytes and blocked failover). Such an optime is unknown, not lag.
    pub fn plausible_optime(&self, highest_seen: Option<u64>) -> Option<u64> {
        let bound = self.highest_member_lsn().max(highest_seen)?;
        self.status.optime.filter(|o| *o <= bound)
    }

    /// True when `initialize` holds a valid system identifier (Patroni's `sysid_valid`).
    pub fn is_initialized(&self) -> bool {
        self.initialize.as_deref().is_some_and(sysid_valid)
    }

    /// The cluster timeline as Patroni computes it: last history entry + 1, `[]` gives 1,
    /// an absent key gives 0 (unknown).
    pub fn timeline(&self) -> u32 {
        match &self.history {
            None => 0,
            Some(h) => h.last().map(|e| e.timeline.saturating_add(1)).unwrap_or(1),
        }
    }
}

/// Patroni's `sysid_valid`: at least 10 characters, all digits.
pub fn sysid_valid(s: &str) -> bool {
    s.len() >= 10 && s.chars().all(|c| c.is_ascii_digit())
}
