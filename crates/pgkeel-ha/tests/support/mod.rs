//! Builders shared by the rule tests: a cluster written the way Patroni writes it (parsed by
//! the real codec), local PostgreSQL observations, and the `Observation` around them.
#![allow(dead_code)] // each test binary uses a different subset

use pgkeel_ha::cluster::Cluster;
use pgkeel_ha::ha::HaMemory;
use pgkeel_ha::ha::{LeaseView, Outcome, PeerStatus, TaskKind};
use pgkeel_ha::keys::KeyLayout;
use pgkeel_ha::keys::codec::{RawKv, parse_cluster};
use pgkeel_ha::pg::{DataDir, LocalPostgres, Lsn, ServerRole};
use pgkeel_ha::time::MonoTime;
use pgkeel_ha::{Ha, HaConfig, Observation};
use serde_json::{Map, Value, json};

/// The system identifier every test cluster uses.
pub const SYSID: &str = "7277694203142172922";
/// "Now" in every observation unless a test says otherwise.
pub const NOW: u64 = 1_000_000;
/// The wall clock in every observation unless a test says otherwise: 2026-12-02T15:00:00Z.
pub const WALL_NOW_MS: i64 = 1_796_223_600_000;
/// Default TTL (Patroni's 30 s): the fencing margin is 3 s.
pub const TTL_MS: u64 = 30_000;

/// The lease id a node's agent holds in these tests (n1 -> 101, n2 -> 102, ...).
pub fn lease_of(name: &str) -> i64 {
    100 + name
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse::<i64>()
        .unwrap_or(0)
}

/// A node with default settings.
pub fn ha(name: &str) -> Ha {
    Ha::with_memory(HaConfig::named(name), running_since_a_while())
}

/// The memory of a node past its first cycle: its first callback ran (see
/// `rules_callbacks.rs` for the first cycle itself), so the rules' own actions are asserted
/// without the one-off `on_start`.
pub fn running_since_a_while() -> HaMemory {
    HaMemory {
        callback_called: true,
        ..HaMemory::default()
    }
}

/// A node with adjusted settings.
pub fn ha_with(name: &str, f: impl FnOnce(&mut HaConfig)) -> Ha {
    let mut c = HaConfig::named(name);
    f(&mut c);
    Ha::with_memory(c, running_since_a_while())
}

/// One member's JSON, as Patroni's `touch_member` writes it.
#[derive(Clone)]
pub struct MemberSpec {
    json: Map<String, Value>,
    lease: i64,
}

impl MemberSpec {
    /// A running replica on timeline 1 at LSN 100.
    pub fn new(name: &str) -> MemberSpec {
        let n = name.trim_start_matches(|c: char| !c.is_ascii_digit());
        let v = json!({
            "conn_url": format!("postgres://10.0.0.{n}:5432/postgres"),
            "api_url": format!("http://10.0.0.{n}:8008/patroni"),
            "state": "running",
            "role": "replica",
            "version": "4.1.4",
            "xlog_location": 100,
            "timeline": 1,
        });
        MemberSpec {
            json: v.as_object().cloned().unwrap_or_default(),
            lease: lease_of(name),
        }
    }
    pub fn primary(mut self) -> Self {
        self.json.insert("role".into(), json!("primary"));
        self
    }
    pub fn state(mut self, s: &str) -> Self {
        self.json.insert("state".into(), json!(s));
        self
    }
    pub fn lsn(mut self, l: u64) -> Self {
        self.json.insert("xlog_location".into(), json!(l));
        self
    }
    pub fn timeline(mut self, t: u32) -> Self {
        self.json.insert("timeline".into(), json!(t));
        self
    }
    pub fn tag(mut self, k: &str, v: Value) -> Self {
        let tags = self
            .json
            .entry("tags")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(t) = tags.as_object_mut() {
            t.insert(k.into(), v);
        }
        self
    }
    pub fn no_conn_url(mut self) -> Self {
        self.json.remove("conn_url");
        self
    }
}

/// Builds a `Cluster` from raw Patroni-format keys through `keys::codec::parse_cluster`.
#[derive(Clone, Default)]
pub struct ClusterBuilder {
    kvs: Vec<(String, String, i64)>,
}

impl ClusterBuilder {
    /// No keys at all (a fresh cluster).
    pub fn new() -> Self {
        ClusterBuilder::default()
    }
    /// An initialized cluster: `initialize` = SYSID, `config` = {}, `history` = [].
    pub fn initialized() -> Self {
        ClusterBuilder::new()
            .initialize(SYSID)
            .raw("config", "{}", 0)
            .raw("history", "[]", 0)
    }
    pub fn raw(mut self, rel: &str, value: &str, lease: i64) -> Self {
        self.kvs.retain(|(k, _, _)| k != rel);
        self.kvs.push((rel.to_string(), value.to_string(), lease));
        self
    }
    pub fn without(mut self, rel: &str) -> Self {
        self.kvs.retain(|(k, _, _)| k != rel);
        self
    }
    pub fn initialize(self, v: &str) -> Self {
        self.raw("initialize", v, 0)
    }
    /// `leader` = name, on that node's test lease.
    pub fn leader(self, name: &str) -> Self {
        self.leader_on(name, lease_of(name))
    }
    pub fn leader_on(self, name: &str, lease: i64) -> Self {
        self.raw("leader", name, lease)
    }
    pub fn member(self, name: &str, f: impl FnOnce(MemberSpec) -> MemberSpec) -> Self {
        let m = f(MemberSpec::new(name));
        let lease = m.lease;
        self.raw(
            &format!("members/{name}"),
            &Value::Object(m.json).to_string(),
            lease,
        )
    }
    /// `n1` running primary leader, `n2` and `n3` running replicas.
    pub fn three_nodes_led_by(self, leader: &str) -> Self {
        let mut b = self.leader(leader);
        for n in ["n1", "n2", "n3"] {
            b = if n == leader {
                b.member(n, |m| m.primary())
            } else {
                b.member(n, |m| m)
            };
        }
        b
    }
    pub fn config(self, v: Value) -> Self {
        self.raw("config", &v.to_string(), 0)
    }
    pub fn history(self, v: Value) -> Self {
        self.raw("history", &v.to_string(), 0)
    }
    /// `failover` as Patroni's `manual_failover` writes it (only the fields given).
    pub fn failover(self, leader: Option<&str>, member: Option<&str>, at: Option<&str>) -> Self {
        let v = pgkeel_ha::keys::codec::encode_failover(leader, member, at);
        self.raw("failover", &v, 0)
    }
    pub fn optime(self, o: u64) -> Self {
        self.raw("status", &json!({ "optime": o }).to_string(), 0)
    }
    pub fn build(&self) -> Cluster {
        let c = self.build_with_garbage();
        assert!(
            c.unreadable.is_empty(),
            "test cluster has garbage: {:?}",
            c.unreadable
        );
        c
    }
    /// Like `build`, for tests that write garbage on purpose (forged or unreadable keys).
    pub fn build_with_garbage(&self) -> Cluster {
        let layout = KeyLayout::new("/service", "batman");
        let keys: Vec<String> = self
            .kvs
            .iter()
            .map(|(k, _, _)| format!("/service/batman/{k}"))
            .collect();
        let raw: Vec<RawKv<'_>> = self
            .kvs
            .iter()
            .zip(&keys)
            .enumerate()
            .map(|(i, ((_, v, lease), key))| RawKv {
                key,
                value: v.as_bytes(),
                mod_revision: i as i64 + 1,
                lease: *lease,
            })
            .collect();
        parse_cluster(&layout, &raw)
    }
}

/// A running primary on timeline 1 at LSN 100.
pub fn local_primary() -> LocalPostgres {
    LocalPostgres {
        data_dir: DataDir::Initialized {
            sysid: SYSID.into(),
        },
        running: true,
        accepting_connections: true,
        role: Some(ServerRole::Primary),
        timeline: Some(1),
        wal_position: Some(Lsn(100)),
        receive_lsn: None,
        replay_lsn: None,
        streaming: false,
        wal_receiver: false,
        following: None,
        cluster_state: Some("in production".into()),
        server_version: Some(170_000),
        checkpoint_lsn: None,
        pending_restart: Vec::new(),
        postmaster_start_time: None,
        replication: Vec::new(),
        synchronous_standby_names: None,
        synchronous_commit: None,
    }
}

/// A running, streaming replica of `leader` on timeline 1 at LSN 100.
pub fn local_replica_of(leader: &str) -> LocalPostgres {
    LocalPostgres {
        role: Some(ServerRole::Replica),
        receive_lsn: Some(Lsn(100)),
        replay_lsn: Some(Lsn(100)),
        streaming: true,
        wal_receiver: true,
        following: Some(leader.into()),
        cluster_state: Some("in archive recovery".into()),
        ..local_primary()
    }
}

/// A stopped, initialized data directory; `cluster_state` as `pg_controldata` reports it.
pub fn local_stopped(cluster_state: &str, timeline: u32, checkpoint: u64) -> LocalPostgres {
    LocalPostgres {
        running: false,
        accepting_connections: false,
        role: None,
        timeline: Some(timeline),
        wal_position: None,
        receive_lsn: None,
        replay_lsn: None,
        streaming: false,
        following: None,
        cluster_state: Some(cluster_state.into()),
        checkpoint_lsn: Some(Lsn(checkpoint)),
        ..local_primary()
    }
}

/// Builder for an `Observation`. Defaults: now = NOW, the node's lease valid for a full TTL,
/// an empty cluster, an empty data directory.
pub struct ObsBuilder {
    obs: Observation,
}

pub fn obs() -> ObsBuilder {
    ObsBuilder {
        obs: Observation {
            now: MonoTime(NOW),
            wall_ms: WALL_NOW_MS,
            dcs: Ok(Cluster::default()),
            lease: None,
            local: LocalPostgres::empty(),
            task: None,
            outcomes: vec![],
            peers: None,
            requests: vec![],
            slots: None,
        },
    }
}

impl ObsBuilder {
    /// The lease of `name`'s agent (see `lease_of`), valid `valid_for_ms` past now.
    pub fn lease(mut self, name: &str, valid_for_ms: u64) -> Self {
        self.obs.lease = Some(LeaseView {
            id: lease_of(name),
            valid_until: MonoTime(NOW + valid_for_ms),
        });
        self
    }
    /// The lease of `name`, renewed just now (valid for a full TTL).
    pub fn fresh_lease(self, name: &str) -> Self {
        self.lease(name, TTL_MS)
    }
    pub fn lease_raw(mut self, id: i64, valid_until: u64) -> Self {
        self.obs.lease = Some(LeaseView {
            id,
            valid_until: MonoTime(valid_until),
        });
        self
    }
    pub fn now(mut self, ms: u64) -> Self {
        self.obs.now = MonoTime(ms);
        self
    }
    /// The wall clock, `ms` past [`WALL_NOW_MS`] (negative: before it).
    pub fn wall_offset(mut self, ms: i64) -> Self {
        self.obs.wall_ms = WALL_NOW_MS + ms;
        self
    }
    pub fn cluster(mut self, c: ClusterBuilder) -> Self {
        self.obs.dcs = Ok(c.build());
        self
    }
    /// A cluster with forged or unreadable keys (see `ClusterBuilder::build_with_garbage`).
    pub fn cluster_with_garbage(mut self, c: ClusterBuilder) -> Self {
        self.obs.dcs = Ok(c.build_with_garbage());
        self
    }
    pub fn dcs_err(mut self, e: &str) -> Self {
        self.obs.dcs = Err(pgkeel_ha::ha::DcsUnavailable::Unreachable(e.into()));
        self
    }
    pub fn local(mut self, l: LocalPostgres) -> Self {
        self.obs.local = l;
        self
    }
    pub fn task(mut self, t: TaskKind) -> Self {
        self.obs.task = Some(t);
        self
    }
    pub fn outcome(mut self, o: Outcome) -> Self {
        self.obs.outcomes.push(o);
        self
    }
    pub fn peers(mut self, p: Vec<PeerStatus>) -> Self {
        self.obs.peers = Some(p);
        self
    }
    pub fn request(mut self, id: u64, kind: pgkeel_ha::ha::RequestKind) -> Self {
        self.obs.requests.push(pgkeel_ha::ha::Request { id, kind });
        self
    }
    /// The local slots the agent listed.
    pub fn slots(mut self, s: Vec<pgkeel_ha::pg::LocalSlot>) -> Self {
        self.obs.slots = Some(s);
        self
    }
    pub fn build(self) -> Observation {
        self.obs
    }
}

/// A reachable peer in recovery at this LSN, default priority.
pub fn peer(name: &str, lsn: u64) -> PeerStatus {
    PeerStatus {
        detached: false,
        timeline: None,
        name: name.into(),
        reachable: true,
        in_recovery: true,
        lsn,
        nofailover: false,
        failover_priority: 1,
    }
}

/// Asserts both the exact actions and the status message of a decision.
#[track_caller]
pub fn assert_decision(d: &pgkeel_ha::Decision, actions: &[pgkeel_ha::Action], status: &str) {
    assert_eq!(d.actions, actions, "actions (status was {:?})", d.status);
    assert_eq!(d.status, status);
}
