//! A seeded, deterministic simulator of three pgkeel nodes: each node is a real `Ha` core driven
//! by a model agent (the agent contract: ordered actions, first failure skips the rest, restep
//! with outcomes, background tasks, a lease kept alive on its own task), a model PostgreSQL and a
//! model etcd (leases with TTL on virtual time, create-if-absent, CAS). Faults are injected from
//! the seed. After every 100 ms tick the invariants in [`Sim::check_safety`] are checked; after
//! the faults stop, [`Sim::converged`] must hold within a bound derived from the timing model.
//!
//! Everything is deterministic: a tiny splitmix64 PRNG, `BTreeMap` only, virtual time only.
#![allow(dead_code)] // the simulation tests use different parts

use pgkeel_ha::cluster::{
    Cluster, ClusterConfig, Failover, GlobalConfig, HistoryEntry, Leader, Member, Status, SyncState,
};
use pgkeel_ha::ha::{
    Action, Cycle, FailureCause, LeaseView, Next, Outcome, PeerStatus, Ran, StopMode, TaskKind,
};
use pgkeel_ha::pg::{DataDir, LocalPostgres, Lsn, ReplicationConnection, ServerRole};
use pgkeel_ha::sync::{SsnKind, StandbyNames};
use pgkeel_ha::time::MonoTime;
use pgkeel_ha::{Ha, HaConfig, Observation};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The wall clock at simulated time 0 (2026-12-02T15:00:00Z): scheduled switchovers are
/// written as times on it.
pub const SIM_EPOCH_WALL_MS: i64 = 1_796_223_600_000;

/// Virtual clock resolution.
pub const TICK_MS: u64 = 100;
/// WAL bytes a writable primary produces per tick.
const WRITES_PER_TICK: u64 = 16;

/// splitmix64: tiny, good enough, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// Timing and fault settings of one run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Lease TTL, seconds (`ttl` in the dynamic config).
    pub ttl_s: u64,
    /// Seconds between HA cycles.
    pub loop_wait_s: u64,
    /// Number of fault steps after the bootstrap.
    pub faults: usize,
    /// Sim variant that ignores the fencing stops (must be caught by invariant (a)).
    pub break_fencing: bool,
    /// In about half the seeds an operator raises `ttl` in `/config` by [`TTL_CHANGE_S`] for a
    /// while. Each node's agent takes its lease TTL and fencing wake-up from its core's view of
    /// the dynamic config, as the real agent does, so a core that judged its lease by another
    /// TTL (the local `bootstrap.dcs` while the DCS is cut off) would fence at the wrong time.
    /// Drawn from a second generator, so a seed's other faults are the same with or without it.
    pub ttl_changes: bool,
    /// In about a third of the seeds one node's agent goes blind for a while (out of file
    /// descriptors): its probe sees an inaccessible data directory and no answer from
    /// PostgreSQL (a postmaster it knows still counts as running), and every action that needs
    /// a new file fails except stopping by signal. Drawn from the second generator too.
    pub blindness: bool,
    /// In about half the seeds an operator asks one or two nodes for a restart
    /// (`POST /restart`) at random moments: the request waits in the node's queue until its
    /// core answers, and the restart task stops PostgreSQL at once and starts it again in its
    /// role when it ends. Drawn from the second generator too.
    pub restart_requests: bool,
    /// In about a third of the seeds one node's agent is shut down (SIGTERM) at a random
    /// moment and started again a while later, from a generator of its own (the other
    /// schedules of a seed are unchanged).
    pub shutdowns: bool,
    /// In about half the seeds an operator pauses the cluster (`pause: true` in `/config`,
    /// what `patronictl pause` writes) for a while and resumes it (the key removed), from a
    /// generator of its own. See [`Sim::check_safety`] for what is checked while paused.
    pub pauses: bool,
    /// Sim variant whose core-facing agent releases the key the moment it cannot see its data
    /// directory (the behaviour before the hostile-input fix): invariant (a4) must catch it.
    pub release_when_blind: bool,
    /// In about half the seeds an operator asks for a switchover (`POST /switchover`,
    /// `patronictl switchover`): the `failover` key is written naming the current leader (or,
    /// now and then, another node) and a candidate, sometimes scheduled a few seconds ahead,
    /// sometimes as a failover without leader. From a generator of its own.
    pub switchovers: bool,
    /// In about half the seeds the cluster runs `synchronous_mode: on` (half of those strict),
    /// drawn from a generator of its own: the primaries' commits are acknowledged only once
    /// the standbys `synchronous_standby_names` names have them, and invariant (a5) checks that
    /// no acknowledged commit is missing from any later primary.
    pub sync_modes: bool,
    /// Sim variant whose primaries acknowledge commits without waiting for the standbys the
    /// parameter names (a core that trusted the `sync` key before the parameter took effect):
    /// invariant (a5) must catch the loss.
    pub break_sync_acks: bool,
    /// Record a human-readable trace.
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            ttl_s: 5,
            loop_wait_s: 1,
            faults: 3,
            break_fencing: false,
            ttl_changes: true,
            blindness: true,
            restart_requests: true,
            shutdowns: true,
            pauses: true,
            release_when_blind: false,
            switchovers: true,
            sync_modes: true,
            break_sync_acks: false,
            trace: false,
        }
    }
}

impl SimConfig {
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_s * 1000
    }
    pub fn loop_wait_ms(&self) -> u64 {
        self.loop_wait_s * 1000
    }
    /// Time allowed for bootstrap from three empty data directories.
    pub fn bootstrap_ms(&self) -> u64 {
        4 * self.ttl_ms() + 10 * self.loop_wait_ms()
    }
    /// The longest `ttl` of the run (a lease granted during a ttl change lasts this long).
    pub fn max_ttl_ms(&self) -> u64 {
        (self.ttl_s + if self.ttl_changes { TTL_CHANGE_S } else { 0 }) * 1000
    }
    /// The healing bound: the dead leader's lease runs out (ttl), a race and a promotion
    /// (2 loop_waits), the former primary's rewind or a wiped node's clone, then its start
    /// (each a task of at most `MAX_TASK_TICKS`, noticed at the next cycle), plus slack.
    pub fn heal_ms(&self) -> u64 {
        self.max_ttl_ms() + 8 * self.loop_wait_ms() + 3 * MAX_TASK_TICKS * TICK_MS
    }
    fn dynamic(&self) -> Map<String, Value> {
        let v = json!({"ttl": self.ttl_s, "loop_wait": self.loop_wait_s, "retry_timeout": 1,
                       "postgresql": {"use_pg_rewind": true}});
        v.as_object().cloned().unwrap_or_default()
    }
}

const MAX_TASK_TICKS: u64 = 12;
/// How much a ttl change raises `ttl` (see [`SimConfig::ttl_changes`]).
pub const TTL_CHANGE_S: u64 = 3;

// ---------------------------------------------------------------------------------------------
// Model etcd
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SimLease {
    expires: u64,
    /// The leader key was attached to this lease at some point.
    held_leader: bool,
}

/// The model DCS: one truth, read by nodes possibly late (see `Node::stale_ms`).
#[derive(Debug, Clone, Default)]
pub struct Dcs {
    leases: BTreeMap<i64, SimLease>,
    next_lease: i64,
    rev: i64,
    initialize: Option<String>,
    config: Option<Map<String, Value>>,
    config_rev: i64,
    /// (name, lease, mod_revision)
    leader: Option<(String, i64, i64)>,
    members: BTreeMap<String, Member>,
    optime: Option<u64>,
    history: Option<Vec<HistoryEntry>>,
    /// `failover`.
    failover: Option<Failover>,
    /// `sync`.
    sync: Option<SyncState>,
}

impl Dcs {
    fn live(&self, lease: i64, now: u64) -> bool {
        self.leases.get(&lease).is_some_and(|l| l.expires > now)
    }
    fn expire(&mut self, now: u64) {
        self.leases.retain(|_, l| l.expires > now);
        let leases = &self.leases;
        if self
            .leader
            .as_ref()
            .is_some_and(|(_, l, _)| !leases.contains_key(l))
        {
            self.leader = None;
        }
        self.members.retain(|_, m| leases.contains_key(&m.lease));
    }
    fn grant(&mut self, now: u64, ttl_ms: u64) -> i64 {
        self.next_lease += 1;
        self.leases.insert(
            self.next_lease,
            SimLease {
                expires: now + ttl_ms,
                held_leader: false,
            },
        );
        self.next_lease
    }
    fn put_leader(&mut self, name: &str, lease: i64) {
        self.rev += 1;
        self.leader = Some((name.to_string(), lease, self.rev));
        if let Some(l) = self.leases.get_mut(&lease) {
            l.held_leader = true;
        }
    }
    fn snapshot(&self) -> Cluster {
        Cluster {
            initialize: self.initialize.clone(),
            config: self.config.as_ref().map(|data| ClusterConfig {
                data: data.clone(),
                mod_revision: self.config_rev,
            }),
            leader: self.leader.as_ref().map(|(name, lease, rev)| Leader {
                name: name.clone(),
                lease: *lease,
                mod_revision: *rev,
            }),
            members: self.members.values().cloned().collect(),
            status: Status {
                optime: self.optime,
                ..Status::default()
            },
            history: self.history.clone(),
            failover: self.failover.clone(),
            sync: self.sync.clone(),
            ..Cluster::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A stretch of WAL written by one primary: globally unique `epoch` (so two primaries that
/// both picked timeline 2 are told apart), its timeline number and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seg {
    epoch: u64,
    tl: u32,
    start: u64,
}

#[derive(Debug, Clone)]
struct Data {
    sysid: String,
    segs: Vec<Seg>,
    lsn: u64,
    /// `Database cluster state` from pg_controldata.
    state: &'static str,
    /// `synchronous_standby_names` as `ALTER SYSTEM` left it in `postgresql.auto.conf` (which a
    /// clone or a rewind copies from its source); empty: none.
    ssn: String,
}

impl Data {
    fn tl(&self) -> u32 {
        self.segs.last().map(|s| s.tl).unwrap_or(1)
    }
    fn epoch_at(&self, x: u64) -> u64 {
        self.segs
            .iter()
            .rev()
            .find(|s| s.start <= x)
            .map(|s| s.epoch)
            .unwrap_or(0)
    }
    /// This WAL is a prefix of `up`'s: same bytes up to `self.lsn`.
    fn is_prefix_of(&self, up: &Data) -> bool {
        if self.sysid != up.sysid || self.lsn > up.lsn {
            return false;
        }
        self.segs
            .iter()
            .chain(up.segs.iter())
            .map(|s| s.start)
            .filter(|x| *x < self.lsn)
            .all(|x| self.epoch_at(x) == up.epoch_at(x))
    }
    fn history(&self) -> Vec<HistoryEntry> {
        self.segs
            .windows(2)
            .map(|w| HistoryEntry {
                timeline: w[0].tl,
                lsn: w[1].start,
                reason: "no recovery target specified".into(),
                timestamp: None,
                new_leader: None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
struct Pg {
    data: Option<Data>,
    running: bool,
    role: Option<ServerRole>,
    following: Option<String>,
    /// The upstream its WAL receiver is connected to: it follows `following` one tick late
    /// (PostgreSQL applies recovery settings asynchronously after a reload, and the receiver
    /// may still take WAL from the old upstream meanwhile); none while the server is down.
    receiver: Option<String>,
    streaming: bool,
}

impl Pg {
    fn writable(&self) -> bool {
        self.running && self.role == Some(ServerRole::Primary)
    }
    fn stop(&mut self, mode: StopMode) {
        if !self.running {
            return;
        }
        let primary = self.role == Some(ServerRole::Primary);
        if let Some(d) = &mut self.data {
            d.state = match (primary, mode) {
                (true, StopMode::Immediate) => "in production",
                (true, StopMode::Fast) => "shut down",
                (false, StopMode::Immediate) => "in archive recovery",
                (false, StopMode::Fast) => "shut down in recovery",
            };
        }
        self.running = false;
        self.role = None;
        self.streaming = false;
        self.receiver = None;
    }
    fn lsn(&self) -> u64 {
        self.data.as_ref().map(|d| d.lsn).unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes and the agent model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Up,
    Crashed,
    Frozen,
    Fatal,
    /// The agent ended after a shutdown; it is started again when the fault ends.
    Exited,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    cfg: HaConfig,
    ha: Ha,
    /// `ha.global_config(None)` after the core's last step: the timing the agent goes by.
    gc: GlobalConfig,
    pg: Pg,
    agent: Agent,
    lease: Option<LeaseView>,
    next_keepalive: u64,
    next_cycle: u64,
    /// The fencing wake-up already ran for this lease deadline.
    woke_for: u64,
    /// The shutdown fault ended before the agent had exited: it starts again once it has.
    restart_after_exit: bool,
    task: Option<(TaskKind, u64)>,
    pending: Vec<Outcome>,
    /// Requests not answered yet by the node's core.
    requests: Vec<pgkeel_ha::ha::Request>,
    dcs_cut: bool,
    /// Out of file descriptors (see [`SimConfig::blindness`]).
    blind: bool,
    stale_ms: u64,
    view: Option<(u64, Cluster)>,
    last_status: String,
    /// Its agent exited in pause and left PostgreSQL running, as Patroni does: the server is
    /// the operator's until an agent of this node has seen it again (see `check_safety`).
    left_by_pause: bool,
}

/// A fault the schedule applies to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Agent and PostgreSQL die; the agent restarts with fresh memory.
    Crash,
    /// The agent (HA loop and lease task) stops; PostgreSQL keeps running.
    Freeze,
    /// The node cannot reach the DCS (reads and writes fail, keep-alives too).
    DcsCut,
    /// PostgreSQL alone crashes.
    PgCrash,
    /// The node's DCS reads are stale by a few ticks.
    Delay,
    /// `ttl` in `/config` is raised by [`TTL_CHANGE_S`] (cluster-wide; the node is ignored).
    TtlChange,
    /// The node's agent cannot open files (see [`SimConfig::blindness`]).
    Blind,
    /// An operator asks the node for a restart (see [`SimConfig::restart_requests`]).
    RestartRequest,
    /// The node's agent is shut down (SIGTERM), and started again when the fault ends.
    Shutdown,
    /// The cluster is paused (cluster-wide; the node is ignored), resumed when the fault ends.
    Pause,
    /// An operator writes the `failover` key (see [`SimConfig::switchovers`]); `stale_ms`
    /// of the event encodes its shape.
    Switchover,
}

#[derive(Debug, Clone)]
struct Event {
    at: u64,
    node: usize,
    fault: Fault,
    start: bool,
    stale_ms: u64,
}

impl Node {
    /// A stopped agent starts again with fresh memory (systemd's restart); its first cycle
    /// and keep-alive are due at `at`.
    fn start_again(&mut self, at: u64) {
        self.agent = Agent::Up;
        self.restart_after_exit = false;
        self.ha = Ha::new(self.cfg.clone());
        self.gc = self.ha.global_config(None);
        self.requests.clear();
        self.next_cycle = at;
        self.next_keepalive = at;
    }
}

/// One simulated cluster.
pub struct Sim {
    pub cfg: SimConfig,
    pub seed: u64,
    pub now: u64,
    rng: Rng,
    dcs: Dcs,
    nodes: Vec<Node>,
    events: Vec<Event>,
    next_epoch: u64,
    max_tl: u32,
    pub trace: Vec<String>,
    /// The first invariant violation.
    pub violation: Option<String>,
    /// End of the last fault: healing starts here.
    pub faults_end: u64,
    /// Cycles run by a core that saw the cluster paused (the pause checks had work to do).
    pub paused_cycles: u64,
    /// PostgreSQL deaths (a crash of the server or of the whole node) while paused.
    pub paused_crashes: u64,
    /// `Some(strict)` when this seed runs `synchronous_mode: on` (see [`SimConfig::sync_modes`]).
    pub sync_mode: Option<bool>,
    /// A synchronous seed runs `synchronous_mode: quorum` (ANY k) rather than `on` (half of them).
    pub quorum_mode: bool,
    /// Its `synchronous_node_count` (2 in about a quarter of the synchronous seeds).
    pub sync_node_count: u64,
    /// Acknowledged commits: per WAL epoch, the highest position acknowledged to a client.
    acked: BTreeMap<u64, u64>,
    /// Which nodes ran a writable primary at the last safety check.
    writable_before: Vec<bool>,
    /// Asynchronous seeds: acknowledged WAL bytes a later primary did not have (allowed there,
    /// reported by the campaign; (a5) in synchronous seeds).
    pub lost_ack_bytes: u64,
}

impl Sim {
    pub fn new(seed: u64, cfg: SimConfig) -> Sim {
        let mut rng = Rng::new(seed);
        let (sync_mode, quorum_mode, sync_node_count) = {
            let mut r = Rng::new(seed ^ 0x5e7c_0d1e_5a11);
            let mode = (cfg.sync_modes && r.chance(50)).then(|| r.chance(50));
            let quorum = mode.is_some() && r.chance(50);
            let count = if mode.is_some() && r.chance(25) { 2 } else { 1 };
            (mode, quorum, count)
        };
        let mut dynamic = cfg.dynamic();
        if let Some(strict) = sync_mode {
            let mode = if quorum_mode {
                Value::String("quorum".into())
            } else {
                Value::Bool(true)
            };
            dynamic.insert("synchronous_mode".into(), mode);
            dynamic.insert("synchronous_mode_strict".into(), Value::Bool(strict));
            if sync_node_count > 1 {
                dynamic.insert(
                    "synchronous_node_count".into(),
                    Value::from(sync_node_count),
                );
            }
        }
        let nodes = (1..=3)
            .map(|i| {
                let name = format!("n{i}");
                let mut hc = HaConfig::named(&name);
                hc.bootstrap_dcs = dynamic.clone();
                hc.failover_priority = rng.range(1, 2) as i64;
                // A rewind fails when its source goes away; re-clone instead of waiting for an operator.
                hc.remove_data_directory_on_rewind_failure = true;
                let phase = rng.below(cfg.loop_wait_ms() / TICK_MS) * TICK_MS;
                Node {
                    ha: Ha::new(hc.clone()),
                    gc: GlobalConfig::from_map(&hc.bootstrap_dcs),
                    name,
                    cfg: hc,
                    pg: Pg::default(),
                    agent: Agent::Up,
                    lease: None,
                    next_keepalive: 0,
                    next_cycle: phase,
                    woke_for: 0,
                    restart_after_exit: false,
                    task: None,
                    pending: vec![],
                    requests: vec![],
                    dcs_cut: false,
                    blind: false,
                    stale_ms: 0,
                    view: None,
                    last_status: String::new(),
                    left_by_pause: false,
                }
            })
            .collect();
        let mut sim = Sim {
            seed,
            now: 0,
            rng,
            dcs: Dcs::default(),
            nodes,
            events: vec![],
            next_epoch: 0,
            max_tl: 1,
            trace: vec![],
            violation: None,
            faults_end: 0,
            paused_cycles: 0,
            paused_crashes: 0,
            sync_mode,
            quorum_mode,
            sync_node_count,
            acked: BTreeMap::new(),
            writable_before: Vec::new(),
            lost_ack_bytes: 0,
            cfg,
        };
        sim.schedule_faults();
        sim
    }

    fn schedule_faults(&mut self) {
        let ttl = self.cfg.ttl_ms();
        let mut t = self.cfg.bootstrap_ms() + TICK_MS;
        let mut end = t;
        for _ in 0..self.cfg.faults {
            let node = self.rng.below(3) as usize;
            let fault = match self.rng.below(5) {
                0 => Fault::Crash,
                1 => Fault::Freeze,
                2 => Fault::DcsCut,
                3 => Fault::PgCrash,
                _ => Fault::Delay,
            };
            // Shorter or longer than the TTL, on tick boundaries.
            let dur = self.rng.range(5, 2 * ttl / TICK_MS + 10) * TICK_MS;
            let stale_ms = self.rng.range(2, 8) * TICK_MS;
            self.events.push(Event {
                at: t,
                node,
                fault,
                start: true,
                stale_ms,
            });
            self.events.push(Event {
                at: t + dur,
                node,
                fault,
                start: false,
                stale_ms,
            });
            end = end.max(t + dur);
            // The next fault may overlap this one.
            t += self.rng.range(1, dur / TICK_MS + 10) * TICK_MS;
        }
        let mut extra = Rng::new(self.seed ^ 0x0077_16c4_a9e5);
        if self.cfg.ttl_changes && extra.chance(50) {
            let first = self.cfg.bootstrap_ms() / TICK_MS;
            let at = extra.range(first, end / TICK_MS) * TICK_MS;
            let dur = extra.range(5, 3 * ttl / TICK_MS) * TICK_MS;
            for (at, start) in [(at, true), (at + dur, false)] {
                self.events.push(Event {
                    at,
                    node: 0,
                    fault: Fault::TtlChange,
                    start,
                    stale_ms: 0,
                });
            }
            end = end.max(at + dur);
        }
        if self.cfg.blindness && extra.chance(33) {
            let first = self.cfg.bootstrap_ms() / TICK_MS;
            let at = extra.range(first, end / TICK_MS) * TICK_MS;
            let dur = extra.range(5, 2 * ttl / TICK_MS + 10) * TICK_MS;
            let node = extra.below(3) as usize;
            for (at, start) in [(at, true), (at + dur, false)] {
                self.events.push(Event {
                    at,
                    node,
                    fault: Fault::Blind,
                    start,
                    stale_ms: 0,
                });
            }
            end = end.max(at + dur);
        }
        if self.cfg.restart_requests && extra.chance(50) {
            let first = self.cfg.bootstrap_ms() / TICK_MS;
            for _ in 0..extra.range(1, 2) {
                let at = extra.range(first, end / TICK_MS + 1) * TICK_MS;
                self.events.push(Event {
                    at,
                    node: extra.below(3) as usize,
                    fault: Fault::RestartRequest,
                    start: true,
                    stale_ms: 0,
                });
            }
        }
        let mut third = Rng::new(self.seed ^ 0x5d0c_7e11_0f3a);
        if self.cfg.shutdowns && third.chance(33) {
            let first = self.cfg.bootstrap_ms() / TICK_MS;
            let at = third.range(first, end / TICK_MS + 1) * TICK_MS;
            let dur = third.range(5, 2 * ttl / TICK_MS + 10) * TICK_MS;
            let node = third.below(3) as usize;
            for (at, start) in [(at, true), (at + dur, false)] {
                self.events.push(Event {
                    at,
                    node,
                    fault: Fault::Shutdown,
                    start,
                    stale_ms: 0,
                });
            }
            end = end.max(at + dur);
        }
        let mut fourth = Rng::new(self.seed ^ 0x0a05_e9a4_3c21);
        if self.cfg.pauses && fourth.chance(50) {
            let first = self.cfg.bootstrap_ms() / TICK_MS;
            let at = fourth.range(first, end / TICK_MS + 1) * TICK_MS;
            let dur = fourth.range(5, 3 * ttl / TICK_MS + 10) * TICK_MS;
            for (at, start) in [(at, true), (at + dur, false)] {
                self.events.push(Event {
                    at,
                    node: 0,
                    fault: Fault::Pause,
                    start,
                    stale_ms: 0,
                });
            }
            end = end.max(at + dur);
        }
        let mut fifth = Rng::new(self.seed ^ 0x5717_c40e_7a11);
        if self.cfg.switchovers && fifth.chance(50) {
            let first = self.cfg.bootstrap_ms() / TICK_MS;
            for _ in 0..fifth.range(1, 2) {
                let at = fifth.range(first, end / TICK_MS + 1) * TICK_MS;
                // The shape: which leader, which candidate, when (see `apply`).
                let shape = fifth.next_u64() | 1;
                self.events.push(Event {
                    at,
                    node: fifth.below(3) as usize,
                    fault: Fault::Switchover,
                    start: true,
                    stale_ms: shape,
                });
            }
        }
        self.faults_end = end;
        self.events.sort_by_key(|e| (e.at, !e.start));
    }

    fn log(&mut self, f: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("{:>7.1}s {}", self.now as f64 / 1000.0, f());
            self.trace.push(line);
        }
    }

    fn violate(&mut self, what: String) {
        self.log(|| format!("VIOLATION: {what}"));
        if self.violation.is_none() {
            self.violation = Some(what);
        }
    }

    /// Runs bootstrap, faults and healing; `Err` carries the first violation.
    pub fn run(&mut self) -> Result<(), String> {
        // Faults may start at the tick that ends the bootstrap time: check before that tick.
        let boot_end = self.cfg.bootstrap_ms();
        while self.now.saturating_add(TICK_MS) < boot_end {
            self.tick();
        }
        if let Err(e) = self.converged() {
            self.violate(format!("(c) not converged after bootstrap: {e}"));
        }
        let end = self.faults_end + self.cfg.heal_ms();
        let stable_from = end - 2 * self.cfg.loop_wait_ms();
        while self.now < end && self.violation.is_none() {
            self.tick();
            if self.now >= stable_from
                && let Err(e) = self.converged()
            {
                self.violate(format!(
                    "(c) not converged {} ms after the last fault ended: {e}",
                    self.now - self.faults_end
                ));
            }
        }
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    /// One tick: faults, lease expiry, WAL, tasks, agents (random order), invariants.
    pub fn tick(&mut self) {
        self.now += TICK_MS;
        let now = self.now;
        while self.events.first().is_some_and(|e| e.at <= now) {
            let e = self.events.remove(0);
            self.apply(e);
        }
        self.dcs.expire(now);
        self.replicate();
        self.acknowledge();
        self.reconnect_receivers();
        for i in 0..3 {
            if self.nodes[i].task.as_ref().is_some_and(|(_, t)| *t <= now) {
                self.finish_task(i);
            }
        }
        let mut order = [0usize, 1, 2];
        for k in (1..3).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            order.swap(k, j);
        }
        for i in order {
            if self.nodes[i].agent != Agent::Up {
                continue;
            }
            let lease_first = self.rng.chance(50);
            if lease_first {
                self.lease_task(i);
            }
            self.maybe_cycle(i);
            if !lease_first {
                self.lease_task(i);
            }
        }
        self.check_safety();
    }

    fn apply(&mut self, e: Event) {
        let i = e.node;
        self.log(|| {
            format!(
                "FAULT {} {:?} on n{}",
                if e.start { "start" } else { "end" },
                e.fault,
                i + 1
            )
        });
        let now = self.now;
        let paused = self.paused();
        let n = &mut self.nodes[i];
        if paused && e.start && matches!(e.fault, Fault::Crash | Fault::PgCrash) && n.pg.running {
            self.paused_crashes += 1;
        }
        match (e.fault, e.start) {
            (Fault::Crash, true) => {
                if n.agent == Agent::Fatal {
                    return;
                }
                n.agent = Agent::Crashed;
                n.pg.stop(StopMode::Immediate);
                n.task = None;
                n.pending.clear();
                n.requests.clear();
                n.lease = None;
                n.view = None;
            }
            (Fault::Crash, false) => {
                if n.agent == Agent::Crashed {
                    n.agent = Agent::Up;
                    n.ha = Ha::new(n.cfg.clone());
                    n.gc = n.ha.global_config(None);
                    n.next_cycle = now;
                    n.next_keepalive = now;
                }
            }
            (Fault::Freeze, true) => {
                if n.agent == Agent::Up {
                    n.agent = Agent::Frozen;
                }
            }
            (Fault::Freeze, false) => {
                if n.agent == Agent::Frozen {
                    n.agent = Agent::Up;
                    n.next_cycle = n.next_cycle.min(now);
                    n.next_keepalive = n.next_keepalive.min(now);
                }
            }
            (Fault::DcsCut, s) => n.dcs_cut = s,
            (Fault::PgCrash, true) => {
                n.pg.stop(StopMode::Immediate);
                if matches!(n.task, Some((TaskKind::Start { .. }, _))) {
                    let (kind, _) = n.task.take().expect("checked");
                    n.pending.push(Outcome::TaskFinished {
                        kind,
                        ok: false,
                        message: "postgres crashed while starting".into(),
                        cause: FailureCause::Local,
                    });
                }
            }
            (Fault::PgCrash, false) => {}
            (Fault::Delay, true) => n.stale_ms = e.stale_ms,
            (Fault::Delay, false) => n.stale_ms = 0,
            (Fault::Blind, start) => n.blind = start,
            (Fault::RestartRequest, _) => {
                if n.agent != Agent::Fatal {
                    let id = n.requests.iter().map(|r| r.id).max().unwrap_or(0) + 1;
                    n.requests.push(pgkeel_ha::ha::Request {
                        id,
                        kind: pgkeel_ha::ha::RequestKind::Restart(Default::default()),
                    });
                }
            }
            (Fault::Shutdown, true) => {
                if n.agent == Agent::Up || n.agent == Agent::Frozen {
                    let id = n.requests.iter().map(|r| r.id).max().unwrap_or(0) + 1;
                    n.requests.push(pgkeel_ha::ha::Request {
                        id,
                        kind: pgkeel_ha::ha::RequestKind::Shutdown,
                    });
                }
            }
            (Fault::Shutdown, false) => {
                if n.agent == Agent::Exited {
                    n.start_again(now);
                } else {
                    n.restart_after_exit = true;
                }
            }
            (Fault::Pause, start) => {
                if let Some(c) = &mut self.dcs.config {
                    if start {
                        c.insert("pause".into(), json!(true));
                    } else {
                        c.remove("pause");
                    }
                    self.dcs.config_rev += 1;
                }
            }
            (Fault::Switchover, _) => {
                // `node` is the candidate; the shape picks the rest.
                let shape = e.stale_ms;
                let candidate = Some(format!("n{}", i + 1)).filter(|_| !shape.is_multiple_of(7));
                let leader = match shape % 5 {
                    0 => None,                                      // a manual failover
                    1 => Some(format!("n{}", (shape / 5) % 3 + 1)), // maybe not the leader
                    _ => self.dcs.leader.as_ref().map(|(n, _, _)| n.clone()),
                };
                // In synchronous seeds the operator declines patronictl's `Are you sure you
                // want to failover to the asynchronous node?`: a failover without a leader goes
                // only to a member the `sync` key lists (to another, it may lose acknowledged
                // commits, which the operator then accepted).
                let asynchronous = |c: &Option<String>| {
                    c.as_ref()
                        .is_none_or(|c| !self.dcs.sync.as_ref().is_some_and(|s| s.includes(c)))
                };
                // In quorum mode no single member is known to have every acknowledged commit:
                // the operator declines every failover without a leader.
                let quorum_failover = self.quorum_mode && leader.is_none();
                if self.sync_mode.is_some()
                    && leader.is_none()
                    && (asynchronous(&candidate) || quorum_failover)
                {
                    return;
                }
                let scheduled_at = shape.is_multiple_of(3).then(|| {
                    let in_ms = ((shape / 3) % 80) * TICK_MS;
                    iso_at(SIM_EPOCH_WALL_MS + (now + in_ms) as i64)
                });
                self.dcs.rev += 1;
                self.dcs.failover = Some(Failover {
                    leader,
                    member: candidate,
                    scheduled_at,
                    mod_revision: self.dcs.rev,
                });
            }
            (Fault::TtlChange, start) => {
                let ttl = self.cfg.ttl_s + if start { TTL_CHANGE_S } else { 0 };
                if let Some(c) = &mut self.dcs.config {
                    c.insert("ttl".into(), json!(ttl));
                    self.dcs.config_rev += 1;
                }
            }
        }
    }

    /// The cluster is paused in the DCS right now.
    fn paused(&self) -> bool {
        self.dcs
            .config
            .as_ref()
            .is_some_and(|c| c.get("pause") == Some(&json!(true)))
    }

    /// Invariant (p): a core that sees the cluster paused never promotes, demotes, starts,
    /// stops or restarts PostgreSQL on its own. Exceptions, as Patroni: the restart a request
    /// asked for, the stop of a server whose data directory cannot be read (Patroni stops it
    /// in pause too; it must not take writes without the agent seeing it), and the removal of
    /// what a failed clone left; the start of a switchover's old primary as a replica.
    fn check_pause(&mut self, i: usize, obs: &Observation, d: &pgkeel_ha::Decision) {
        if !self.nodes[i].gc.pause {
            return;
        }
        self.paused_cycles += 1;
        let requested = d
            .answers
            .iter()
            .any(|(_, a)| matches!(a, pgkeel_ha::ha::Answer::Accepted(_)));
        let blind = matches!(obs.local.data_dir, DataDir::Inaccessible(_));
        // A switchover or manual failover in the `failover` key is an operator's request too
        // (Patroni honours one to a named candidate in pause): its demotion and promotion.
        let by_key = obs.dcs.as_ref().is_ok_and(|c| c.failover.is_some());
        // A clone that began before the pause and failed leaves a half-copied directory that
        // never ran: removing it is the task's cleanup, not a change of a server's state.
        let failed_clone = obs.outcomes.iter().any(|o| {
            matches!(
                o,
                Outcome::TaskFinished {
                    kind: TaskKind::Clone { .. },
                    ok: false,
                    ..
                }
            )
        });
        // The old primary of a hand-over starts as a replica of the new leader at once (Patroni
        // does so inside the graceful demotion), though the new leader cleared the key.
        let handed_over = self.nodes[i].ha.memory().start_after_demotion;
        let own = d.actions.iter().find(|a| match a {
            Action::StartTask(TaskKind::Restart { .. }) => !requested,
            Action::StartTask(TaskKind::Start {
                as_primary: false, ..
            }) => !handed_over,
            Action::Stop(_) => !blind && !by_key,
            Action::Promote => !by_key,
            Action::RemoveDataDir => !failed_clone,
            Action::StartTask(_) | Action::MoveDataDirAside => true,
            _ => false,
        });
        if let Some(a) = own {
            let name = self.nodes[i].name.clone();
            self.violate(format!(
                "(p) {name} did {a:?} on its own while paused: {}",
                d.status
            ));
        }
    }

    /// Primaries write; streaming replicas copy their upstream's WAL one tick late.
    fn replicate(&mut self) {
        let before: Vec<Option<Data>> = self.nodes.iter().map(|n| n.pg.data.clone()).collect();
        let running: Vec<bool> = self.nodes.iter().map(|n| n.pg.running).collect();
        for i in 0..3 {
            let upstream = self.nodes[i]
                .pg
                .receiver
                .as_deref()
                .and_then(|f| self.nodes_index(f))
                .filter(|j| *j != i && running[*j]);
            let n = &mut self.nodes[i];
            if n.pg.writable() {
                if let Some(d) = &mut n.pg.data {
                    d.lsn += WRITES_PER_TICK;
                }
                continue;
            }
            n.pg.streaming = false;
            if !(n.pg.running && n.pg.role == Some(ServerRole::Replica)) {
                continue;
            }
            let Some(up) = upstream.and_then(|j| before[j].clone()) else {
                continue;
            };
            let n = &mut self.nodes[i];
            let Some(d) = &mut n.pg.data else { continue };
            if d.is_prefix_of(&up) {
                n.pg.streaming = true;
                d.segs = up.segs.clone();
                d.lsn = up.lsn;
            }
        }
    }

    /// The WAL receivers pick up the recovery settings written meanwhile (after this tick's
    /// copy and acknowledgements: a receiver told to stop may still confirm what it took).
    fn reconnect_receivers(&mut self) {
        for n in &mut self.nodes {
            n.pg.receiver = if n.pg.running && n.pg.role == Some(ServerRole::Replica) {
                n.pg.following.clone()
            } else {
                None
            };
        }
    }

    /// The standbys streaming from node `i` (its `pg_stat_replication`): `sync` when its
    /// `synchronous_standby_names` names them, their position the WAL they have.
    fn walsenders(&self, i: usize) -> Vec<ReplicationConnection> {
        let parsed = self.nodes[i]
            .pg
            .data
            .as_ref()
            .and_then(|d| StandbyNames::parse(&d.ssn).ok())
            .unwrap_or_default();
        let listed_state = if parsed.kind == SsnKind::Quorum {
            "quorum"
        } else {
            "sync"
        };
        let named = parsed.members;
        let me = self.nodes[i].name.clone();
        self.nodes
            .iter()
            .filter(|n| n.pg.streaming && n.pg.receiver.as_deref() == Some(me.as_str()))
            .map(|n| {
                let lsn = Some(Lsn(n.pg.lsn()));
                ReplicationConnection {
                    application_name: n.name.clone(),
                    state: "streaming".into(),
                    sync_state: if named.contains(&n.name) {
                        listed_state.into()
                    } else {
                        "async".into()
                    },
                    write_lsn: lsn,
                    flush_lsn: lsn,
                    replay_lsn: lsn,
                }
            })
            .collect()
    }

    /// What the clients of each writable primary have been told is committed: everything it
    /// wrote when its `synchronous_standby_names` is empty, else what all the standbys it names
    /// have (none named but a value set, as strict mode's placeholder: nothing more).
    fn acknowledge(&mut self) {
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if !n.pg.writable() {
                continue;
            }
            let Some(d) = n.pg.data.as_ref() else {
                continue;
            };
            let upto = if d.ssn.is_empty() || self.cfg.break_sync_acks {
                Some(d.lsn)
            } else {
                let parsed = StandbyNames::parse(&d.ssn).unwrap_or_default();
                let senders = self.walsenders(i);
                let position = |name: &String| {
                    senders
                        .iter()
                        .find(|w| &w.application_name == name)
                        .and_then(|w| w.flush_lsn)
                        .map(|l| l.0)
                };
                if parsed.kind == SsnKind::Quorum {
                    // ANY k: the k-th best position among the named standbys that stream.
                    let mut have: Vec<u64> = parsed.members.iter().filter_map(position).collect();
                    have.sort_unstable_by(|a, b| b.cmp(a));
                    let k = usize::try_from(parsed.num).unwrap_or(usize::MAX);
                    if k == 0 {
                        None
                    } else {
                        have.get(k - 1).copied()
                    }
                } else {
                    let named = parsed.members;
                    let have: Vec<u64> = named
                        .iter()
                        .map(|name| {
                            senders
                                .iter()
                                .find(|w| &w.application_name == name)
                                .and_then(|w| w.flush_lsn)
                                .map(|l| l.0)
                        })
                        .collect::<Option<Vec<u64>>>()
                        .unwrap_or_default();
                    if named.is_empty() || have.is_empty() {
                        None
                    } else {
                        have.into_iter().min()
                    }
                }
            };
            if let Some(x) = upto.filter(|x| *x > 0) {
                let epoch = d.epoch_at(x - 1);
                let e = self.acked.entry(epoch).or_insert(0);
                *e = (*e).max(x);
            }
        }
    }

    fn nodes_index(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n')
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|i| (1..=3).contains(i))
            .map(|i| i - 1)
    }

    fn new_epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    fn finish_task(&mut self, i: usize) {
        let Some((kind, _)) = self.nodes[i].task.take() else {
            return;
        };
        let source = |s: &Sim, from: &str| -> Option<Data> {
            let j = s.nodes_index(from)?;
            let n = &s.nodes[j];
            if n.pg.running {
                n.pg.data.clone()
            } else {
                None
            }
        };
        let res: Result<(), String> = match &kind {
            TaskKind::Bootstrap => {
                let epoch = self.new_epoch();
                let n = &mut self.nodes[i];
                n.pg = Pg {
                    data: Some(Data {
                        sysid: format!("700000000000000000{}", i + 1),
                        segs: vec![Seg {
                            epoch,
                            tl: 1,
                            start: 0,
                        }],
                        lsn: 1,
                        state: "in production",
                        ssn: String::new(),
                    }),
                    running: true,
                    role: Some(ServerRole::Primary),
                    following: None,
                    receiver: None,
                    streaming: false,
                };
                Ok(())
            }
            TaskKind::Clone { from } => match source(self, from) {
                Some(mut d) => {
                    d.state = "in archive recovery";
                    let n = &mut self.nodes[i];
                    n.pg.data = Some(d);
                    Ok(())
                }
                None => Err(format!("{from} is not running")),
            },
            TaskKind::Rewind { from } => match (source(self, from), &self.nodes[i].pg.data) {
                (Some(mut d), Some(mine)) if d.sysid == mine.sysid => {
                    d.state = "in archive recovery";
                    self.nodes[i].pg.data = Some(d);
                    Ok(())
                }
                _ => Err(format!("could not connect to {from}")),
            },
            // The simulator sends no requests yet; a restart would end like a start.
            TaskKind::Start { as_primary, follow } | TaskKind::Restart { as_primary, follow } => {
                let n = &mut self.nodes[i];
                match &mut n.pg.data {
                    None => Err("no data directory".into()),
                    Some(d) => {
                        d.state = if *as_primary {
                            "in production"
                        } else {
                            "in archive recovery"
                        };
                        n.pg.running = true;
                        n.pg.role = Some(if *as_primary {
                            ServerRole::Primary
                        } else {
                            ServerRole::Replica
                        });
                        n.pg.following = if *as_primary { None } else { follow.clone() };
                        Ok(())
                    }
                }
            }
        };
        self.log(|| format!("n{} task {kind} finished: {res:?}", i + 1));
        let (ok, message) = match res {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e),
        };
        self.nodes[i].pending.push(Outcome::TaskFinished {
            kind,
            ok,
            message,
            cause: FailureCause::Local,
        });
    }

    /// The lease task: keep-alive every TTL/3 (a fresh lease if the old one is gone), with the
    /// TTL of the node's view of the dynamic config.
    fn lease_task(&mut self, i: usize) {
        let now = self.now;
        let ttl = self.nodes[i].gc.ttl_ms();
        if now < self.nodes[i].next_keepalive || self.nodes[i].dcs_cut {
            return;
        }
        self.nodes[i].next_keepalive = now + (ttl / 3 / TICK_MS).max(1) * TICK_MS;
        let id = match self.nodes[i].lease {
            Some(l) if self.dcs.live(l.id, now) => {
                if let Some(sl) = self.dcs.leases.get_mut(&l.id) {
                    sl.expires = now + ttl;
                }
                l.id
            }
            _ => {
                let id = self.dcs.grant(now, ttl);
                self.log(|| format!("n{} granted lease {id}", i + 1));
                id
            }
        };
        self.nodes[i].lease = Some(LeaseView {
            id,
            valid_until: MonoTime(now + ttl),
        });
    }

    fn maybe_cycle(&mut self, i: usize) {
        let now = self.now;
        let n = &self.nodes[i];
        // The agent also wakes at its lease deadline minus the fencing margin: without that
        // wake-up a primary cut off from the DCS could outlive its lease by up to loop_wait.
        let deadline = n
            .lease
            .map(|l| l.valid_until.0.saturating_sub(n.gc.fencing_margin_ms()))
            .unwrap_or(u64::MAX);
        let fence_wake = deadline <= now && n.woke_for != deadline;
        if now < n.next_cycle && !fence_wake {
            return;
        }
        // Only a deadline already reached is used up: a cycle that ran before it leaves the
        // wake-up pending, as the real agent sleeps until min(next cycle, fencing deadline).
        if deadline <= now {
            self.nodes[i].woke_for = deadline;
        }
        self.nodes[i].next_cycle = now + self.cfg.loop_wait_ms();
        self.cycle(i);
    }

    fn observe(
        &mut self,
        i: usize,
        outcomes: Vec<Outcome>,
        peers: Option<Vec<PeerStatus>>,
    ) -> Observation {
        let now = self.now;
        let dcs = if self.nodes[i].dcs_cut {
            Err(pgkeel_ha::ha::DcsUnavailable::Unreachable(
                "etcd: connection refused".to_string(),
            ))
        } else {
            let stale = self.nodes[i].stale_ms;
            match &self.nodes[i].view {
                Some((at, c)) if stale > 0 && now - at < stale => Ok(c.clone()),
                _ => {
                    let c = self.dcs.snapshot();
                    self.nodes[i].view = Some((now, c.clone()));
                    Ok(c)
                }
            }
        };
        let n = &self.nodes[i];
        let pg = &n.pg;
        let local = LocalPostgres {
            data_dir: match &pg.data {
                None => DataDir::Empty,
                Some(d) => DataDir::Initialized {
                    sysid: d.sysid.clone(),
                },
            },
            running: pg.running,
            accepting_connections: pg.running,
            role: pg.role,
            timeline: pg.data.as_ref().map(Data::tl),
            wal_position: pg.running.then(|| Lsn(pg.lsn())),
            receive_lsn: (pg.role == Some(ServerRole::Replica)).then(|| Lsn(pg.lsn())),
            replay_lsn: (pg.role == Some(ServerRole::Replica)).then(|| Lsn(pg.lsn())),
            streaming: pg.streaming,
            wal_receiver: pg.receiver.is_some(),
            following: pg.following.clone(),
            cluster_state: pg.data.as_ref().map(|d| d.state.to_string()),
            server_version: Some(170_000),
            checkpoint_lsn: pg.data.as_ref().map(|d| Lsn(d.lsn)),
            pending_restart: Vec::new(),
            postmaster_start_time: None,
            replication: if pg.writable() {
                self.walsenders(i)
            } else {
                Vec::new()
            },
            synchronous_standby_names: pg
                .running
                .then(|| pg.data.as_ref().map(|d| d.ssn.clone()).unwrap_or_default()),
            synchronous_commit: None,
        };
        let local = if n.blind {
            LocalPostgres {
                data_dir: DataDir::Inaccessible("Too many open files (os error 24)".into()),
                accepting_connections: false,
                role: None,
                wal_position: None,
                receive_lsn: None,
                replay_lsn: None,
                streaming: false,
                following: None,
                cluster_state: None,
                checkpoint_lsn: None,
                ..local
            }
        } else {
            local
        };
        Observation {
            now: MonoTime(now),
            wall_ms: SIM_EPOCH_WALL_MS.saturating_add(i64::try_from(now).unwrap_or(i64::MAX)),
            dcs,
            lease: n.lease,
            local,
            task: n.task.as_ref().map(|(k, _)| k.clone()),
            outcomes,
            peers,
            requests: self.nodes[i].requests.clone(),
            slots: None,
        }
    }

    /// One HA cycle under the agent contract: the core's own [`Cycle`], the driver the agent
    /// runs, so this model cannot drift from it.
    fn cycle(&mut self, i: usize) {
        let mut cycle = Cycle::new(std::mem::take(&mut self.nodes[i].pending));
        loop {
            match cycle.next_move() {
                Next::Step => {
                    let (outcomes, peers) = cycle.take_inputs();
                    let obs = self.observe(i, outcomes, peers);
                    if self.cfg.release_when_blind
                        && matches!(obs.local.data_dir, DataDir::Inaccessible(_))
                        && self
                            .dcs
                            .leader
                            .as_ref()
                            .is_some_and(|(n, _, _)| *n == self.nodes[i].name)
                    {
                        // The old rule: "data directory is not accessible" -> ReleaseLeader.
                        let _ = self.execute(i, &Action::ReleaseLeader);
                    }
                    let d = self.nodes[i].ha.step(&obs);
                    // Answered requests leave the queue (the API's caller has its answer).
                    self.nodes[i]
                        .requests
                        .retain(|r| !d.answers.iter().any(|(id, _)| *id == r.id));
                    if !d.answers.is_empty() {
                        self.log(|| format!("n{} answers {:?}", i + 1, d.answers));
                    }
                    self.nodes[i].gc = self.nodes[i].ha.global_config(None);
                    self.check_pause(i, &obs, &d);
                    if obs.local.role.is_some() {
                        self.nodes[i].left_by_pause = false;
                    }
                    self.log(|| format!("n{} {:?} -> {}", i + 1, d.actions, d.status));
                    self.nodes[i].last_status = d.status.clone();
                    if let Some(at) = d.wake_at {
                        // The agent sleeps no longer than the core asked (a scheduled switchover).
                        let at = at.0.div_ceil(TICK_MS) * TICK_MS;
                        self.nodes[i].next_cycle =
                            self.nodes[i].next_cycle.min(at.max(self.now + TICK_MS));
                    }
                    cycle.decided(d);
                }
                Next::Run(a) => {
                    let fencing_stop = matches!(a, Action::Stop(_))
                        && cycle.decision().is_some_and(|d| d.status.contains("demot"));
                    if self.cfg.break_fencing && fencing_stop {
                        // The broken variant: fencing stops are ignored.
                        cycle.report(Ran::Done);
                        continue;
                    }
                    let ran = match self.execute(i, &a) {
                        Ok(Some(Outcome::TaskFinished { .. })) | Ok(None) => Ran::Done,
                        Ok(Some(o)) => Ran::Outcome(o),
                        Err(e) => {
                            self.log(|| format!("n{} action {a:?} failed: {e}", i + 1));
                            Ran::Failed(e)
                        }
                    };
                    let ran = if a == Action::ProbePeers && ran == Ran::Done {
                        Ran::Peers(self.probe(i))
                    } else {
                        ran
                    };
                    cycle.report(ran);
                    if self.nodes[i].agent != Agent::Up {
                        return; // Fatal or Exit
                    }
                }
                Next::Exit => return,
                Next::Finished => break,
            }
        }
        self.nodes[i].pending.extend(cycle.carry());
        let node_state = cycle.decision().map(|d| d.node);
        self.touch_member(i, node_state);
    }

    fn probe(&self, i: usize) -> Vec<PeerStatus> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| PeerStatus {
                detached: n.pg.role == Some(ServerRole::Replica)
                    && n.pg.following.is_none()
                    && n.pg.receiver.is_none(),
                name: n.name.clone(),
                reachable: n.agent == Agent::Up && n.pg.running,
                in_recovery: n.pg.role != Some(ServerRole::Primary),
                lsn: n.pg.lsn(),
                timeline: n.pg.data.as_ref().map(Data::tl),
                nofailover: n.cfg.nofailover,
                failover_priority: n.cfg.failover_priority,
            })
            .collect()
    }

    fn touch_member(&mut self, i: usize, state: Option<pgkeel_ha::ha::NodeState>) {
        let now = self.now;
        let n = &self.nodes[i];
        let (Some(state), Some(lease)) = (state, n.lease) else {
            return;
        };
        if n.dcs_cut || !self.dcs.live(lease.id, now) {
            return;
        }
        let k = i + 1;
        let m = Member {
            name: n.name.clone(),
            conn_url: Some(format!("postgres://10.0.0.{k}:5432/postgres")),
            api_url: Some(format!("http://10.0.0.{k}:8008/patroni")),
            state: state.state.to_string(),
            role: state.role.to_string(),
            version: Some("4.1.4".into()),
            xlog_location: n.pg.running.then(|| n.pg.lsn()),
            timeline: n.pg.data.as_ref().map(Data::tl),
            lease: lease.id,
            ..Member::default()
        };
        self.dcs.members.insert(n.name.clone(), m);
    }

    fn execute(&mut self, i: usize, a: &Action) -> Result<Option<Outcome>, String> {
        let now = self.now;
        let name = self.nodes[i].name.clone();
        let needs_dcs = !matches!(
            a,
            Action::StartTask(_)
                | Action::Promote
                | Action::Stop(_)
                | Action::Follow { .. }
                | Action::StopStreaming
                | Action::ReloadConfig { .. }
                | Action::RemoveDataDir
                | Action::MoveDataDirAside
                | Action::Callback { .. }
                | Action::ProbePeers
                | Action::Fatal { .. }
                | Action::Exit
                | Action::SyncSlots { .. }
                | Action::CreateSlot { .. }
                | Action::DropSlot { .. }
                | Action::CheckUniqueName { .. }
                | Action::DuplicateName
                | Action::Checkpoint
                | Action::SetSynchronousStandbyNames { .. }
                | Action::CancelTask
        );
        if needs_dcs && self.nodes[i].dcs_cut {
            return Err("etcd: connection refused".into());
        }
        // Out of file descriptors: the open etcd channel and signals still work, nothing that
        // needs a new file, process or connection does.
        let needs_files = matches!(
            a,
            Action::StartTask(_)
                | Action::Promote
                | Action::Follow { .. }
                | Action::StopStreaming
                | Action::ReloadConfig { .. }
                | Action::RemoveDataDir
                | Action::MoveDataDirAside
                | Action::ProbePeers
                | Action::SyncSlots { .. }
                | Action::CreateSlot { .. }
                | Action::DropSlot { .. }
                | Action::SetSynchronousStandbyNames { .. }
        );
        if needs_files && self.nodes[i].blind {
            return Err("Too many open files (os error 24)".into());
        }
        let lease = self.nodes[i].lease.map(|l| l.id);
        let live_lease = lease.filter(|l| self.dcs.live(*l, now));
        let holds = |dcs: &Dcs| dcs.leader.as_ref().is_some_and(|(n, _, _)| *n == name);
        match a {
            Action::RaceInitialize => {
                let won = self.dcs.initialize.is_none();
                if won {
                    self.dcs.initialize = Some(String::new());
                }
                Ok(Some(Outcome::InitializeRace { won }))
            }
            Action::WriteInitialize { sysid, create_only } => {
                if !create_only || self.dcs.initialize.is_none() {
                    self.dcs.initialize = Some(sysid.clone());
                }
                Ok(None)
            }
            Action::DeleteInitialize => {
                self.dcs.initialize = None;
                Ok(None)
            }
            Action::WriteConfig => {
                if self.dcs.config.is_none() {
                    self.dcs.config = Some(self.nodes[i].cfg.bootstrap_dcs.clone());
                }
                Ok(None)
            }
            Action::AcquireLeader => {
                let l = live_lease.ok_or("etcdserver: requested lease not found")?;
                if self.dcs.leader.is_some() {
                    return Ok(Some(Outcome::LeaderAcquired { won: false }));
                }
                self.dcs.put_leader(&name, l);
                Ok(Some(Outcome::LeaderAcquired { won: true }))
            }
            Action::DeleteStaleLeader { mod_revision, .. } => {
                if self
                    .dcs
                    .leader
                    .as_ref()
                    .is_some_and(|(_, _, rev)| rev == mod_revision)
                {
                    self.dcs.leader = None;
                }
                Ok(None)
            }
            Action::TakeLeader => {
                let l = live_lease.ok_or("etcdserver: requested lease not found")?;
                self.dcs.put_leader(&name, l);
                Ok(None)
            }
            Action::RefreshLeader => {
                let ok = match live_lease {
                    Some(l) if holds(&self.dcs) => {
                        self.dcs.put_leader(&name, l);
                        true
                    }
                    _ => false,
                };
                Ok(Some(Outcome::LeaderRefreshed { ok }))
            }
            Action::ReleaseLeader => {
                if holds(&self.dcs) {
                    if self.nodes[i].pg.writable() {
                        self.violate(format!(
                            "(a4) {name} released the leader key while its primary accepts writes"
                        ));
                    }
                    self.dcs.leader = None;
                }
                Ok(None)
            }
            Action::StartTask(kind) => {
                if self.nodes[i].task.is_some() {
                    return Err("a task is already running".into());
                }
                let ticks = match kind {
                    TaskKind::Bootstrap => 10,
                    TaskKind::Clone { .. } => MAX_TASK_TICKS - 4,
                    TaskKind::Start { .. } | TaskKind::Restart { .. } => self.rng.range(2, 5),
                    TaskKind::Rewind { .. } => 6,
                };
                if matches!(kind, TaskKind::Restart { .. }) {
                    // The restart's first step: a fast stop, at once.
                    self.nodes[i].pg.stop(StopMode::Fast);
                }
                self.nodes[i].task = Some((kind.clone(), now + ticks * TICK_MS));
                Ok(None)
            }
            Action::Promote => {
                // Invariant (b): promotion only while the DCS leader key names this node on its
                // live lease.
                let ok = match (&self.dcs.leader, live_lease) {
                    (Some((n, l, _)), Some(mine)) => *n == name && *l == mine,
                    _ => false,
                };
                if !ok {
                    self.violate(format!(
                        "(b) {name} promoted while the leader key is {:?} and its lease is {:?}",
                        self.dcs.leader, lease
                    ));
                }
                let epoch = self.new_epoch();
                // PostgreSQL picks the newest timeline it can find + 1; with a shared WAL archive
                // that is the newest one any node created (without one, two nodes can both pick
                // the same number: see docs/ha-rules.md, "Known gaps").
                let max_tl = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.pg.data.as_ref().map(Data::tl))
                    .max()
                    .unwrap_or(1)
                    .max(self.max_tl);
                self.max_tl = max_tl + 1;
                let pg = &mut self.nodes[i].pg;
                if !(pg.running && pg.role == Some(ServerRole::Replica)) {
                    return Err("not running as a replica".into());
                }
                let d = pg.data.as_mut().ok_or("no data")?;
                d.segs.push(Seg {
                    epoch,
                    tl: max_tl + 1,
                    start: d.lsn,
                });
                d.lsn += 1; // end-of-recovery checkpoint
                d.state = "in production";
                pg.role = Some(ServerRole::Primary);
                pg.following = None;
                pg.receiver = None;
                pg.streaming = false;
                Ok(None)
            }
            Action::Stop(mode) => {
                self.nodes[i].pg.stop(*mode);
                if let Some((kind @ TaskKind::Start { .. }, _)) = self.nodes[i].task.clone() {
                    self.nodes[i].task = None;
                    self.nodes[i].pending.push(Outcome::TaskFinished {
                        kind,
                        ok: false,
                        message: "cancelled by stop".into(),
                        cause: FailureCause::Local,
                    });
                }
                Ok(None)
            }
            Action::Follow { leader } => {
                let pg = &mut self.nodes[i].pg;
                if !pg.running {
                    return Err("postgres is not running".into());
                }
                pg.following = Some(leader.clone());
                Ok(None)
            }
            Action::StopStreaming => {
                let pg = &mut self.nodes[i].pg;
                if !pg.running {
                    return Err("postgres is not running".into());
                }
                // The receiver stops at the next tick, after taking what it still gets.
                pg.following = None;
                Ok(None)
            }
            Action::ReloadConfig { .. } => {
                if !self.nodes[i].pg.running {
                    return Err("cannot reload: postgres is not running".into());
                }
                Ok(None)
            }
            Action::SyncSlots { .. }
            | Action::CreateSlot { .. }
            | Action::DropSlot { .. }
            | Action::Callback { .. }
            | Action::ProbePeers
            | Action::Checkpoint => Ok(None),
            // The simulator sends no reinitialize requests; a cancel ends the task as failed.
            Action::CancelTask => {
                if let Some((kind, _)) = self.nodes[i].task.take() {
                    self.nodes[i].pending.push(Outcome::TaskFinished {
                        kind,
                        ok: false,
                        message: "cancelled".into(),
                        cause: FailureCause::Source,
                    });
                }
                Ok(None)
            }
            // ALTER SYSTEM needs a running server; it persists in the data directory.
            Action::SetSynchronousStandbyNames { value } => {
                let pg = &mut self.nodes[i].pg;
                match (&mut pg.data, pg.running) {
                    (Some(d), true) => {
                        d.ssn = value.clone().unwrap_or_default();
                        Ok(None)
                    }
                    _ => Err("PostgreSQL is not running".into()),
                }
            }
            Action::WriteSync {
                leader,
                sync_standby,
                quorum,
                expected,
            } => {
                let current = self.dcs.sync.as_ref().map(|s| s.mod_revision);
                if current != *expected {
                    return Err("Synchronous replication key updated by someone else".into());
                }
                self.dcs.rev += 1;
                let mut standbys = sync_standby.clone();
                standbys.sort();
                self.dcs.sync = Some(SyncState {
                    leader: Some(leader.clone()),
                    quorum: Some(*quorum),
                    sync_standby: standbys,
                    mod_revision: self.dcs.rev,
                });
                Ok(None)
            }
            Action::DeleteSync { mod_revision } => {
                if self.dcs.sync.as_ref().map(|s| s.mod_revision) != Some(*mod_revision) {
                    return Err("Synchronous replication key updated by someone else".into());
                }
                self.dcs.sync = None;
                Ok(None)
            }
            Action::WriteShutdownPosition => {
                if let Some(d) = &self.nodes[i].pg.data
                    && d.state == "shut down"
                {
                    self.dcs.optime = Some(d.lsn);
                }
                Ok(None)
            }
            Action::ClearFailover { mod_revision } => {
                let current = self.dcs.failover.as_ref().map(|f| f.mod_revision);
                if current == Some(*mod_revision) {
                    // `{}`: parsed as no request.
                    self.dcs.failover = None;
                }
                Ok(None)
            }
            Action::WriteStatus => {
                self.dcs.optime = Some(self.nodes[i].pg.lsn());
                Ok(None)
            }
            Action::UpdateHistory => {
                if let Some(d) = &self.nodes[i].pg.data {
                    self.dcs.history = Some(d.history());
                }
                Ok(None)
            }
            Action::RemoveDataDir | Action::MoveDataDirAside => {
                let pg = &mut self.nodes[i].pg;
                pg.stop(StopMode::Immediate);
                pg.data = None;
                Ok(None)
            }
            Action::RevokeLease => {
                if let Some(l) = lease {
                    let held = self.dcs.leader.as_ref().is_some_and(|(_, kl, _)| *kl == l);
                    if held && self.nodes[i].pg.writable() {
                        self.violate(format!(
                            "(a4) {name} revoked the leader key's lease while its primary accepts writes"
                        ));
                    }
                    self.dcs.leases.remove(&l);
                    self.dcs.expire(now);
                }
                Ok(None)
            }
            Action::Exit => {
                // The process ends: its lease keeper, tasks and queue with it.
                let n = &mut self.nodes[i];
                n.left_by_pause = n.gc.pause && n.pg.running;
                n.agent = Agent::Exited;
                n.lease = None;
                n.task = None;
                n.pending.clear();
                n.requests.clear();
                n.view = None;
                if n.restart_after_exit {
                    n.start_again(now + TICK_MS);
                }
                Ok(None)
            }
            // The simulated nodes leave the start check and the member key to the model
            // (`HaConfig::named`: no member identity, no check); should the core still ask:
            Action::CheckUniqueName { .. } => Ok(Some(Outcome::UniqueNameChecked { taken: false })),
            Action::WriteMember(_) => Ok(None),
            Action::DuplicateName => {
                self.violate(format!("{name} exited: duplicate name"));
                self.nodes[i].agent = Agent::Fatal;
                Ok(None)
            }
            Action::Fatal { message, .. } => {
                self.violate(format!("{name} exited: FATAL {message}"));
                self.nodes[i].agent = Agent::Fatal;
                self.nodes[i].pg.stop(StopMode::Immediate);
                Ok(None)
            }
        }
    }

    /// Safety invariants, checked after every tick.
    ///
    /// (a) No split brain. Precisely, at every instant both hold:
    ///   (a1) at most one node's PostgreSQL accepts writes among the nodes whose agent is
    ///        running (not frozen). A frozen agent cannot fence its PostgreSQL (that needs a
    ///        watchdog, out of scope); it is excluded until it runs again, and its first cycle
    ///        runs in the tick it thaws, before this check.
    ///   (a2) at most one node is a running primary whose current lease is unexpired in the
    ///        DCS and carried the leader key at some point during its life: two nodes that
    ///        could both believe they hold a valid leader lease never both accept writes.
    ///
    /// (b) is checked when `Promote` executes (see `execute`), (p) after every step of a core
    /// that sees the cluster paused (see `check_pause`).
    ///
    /// Pause: Patroni gives up fencing in maintenance mode (the operator is in charge), so a
    /// primary whose core's last view of `/config` says paused (possibly stale: a core cut off
    /// from the DCS keeps believing it after the resume) is left out of (a1) and (a3). (a2)
    /// still holds everywhere: nothing is promoted in pause, and a paused primary keeps a lease
    /// only while it holds the key. An agent shut down in pause leaves its PostgreSQL running
    /// (Patroni's "When Patroni is stopped, it does not try to stop the Postgres instance"):
    /// that server is the operator's, and it is left out of (a1) and (a3) too until an agent of
    /// that node has seen it (a fresh agent that cannot read its data directory does not know
    /// the postmaster; found by the simulator). Outside those cases every invariant applies
    /// unchanged, and (c) must hold within the healing bound after the resume.
    pub fn check_safety(&mut self) {
        let now = self.now;
        let writable_live: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.pg.writable() && n.agent == Agent::Up && !n.gc.pause && !n.left_by_pause)
            .map(|n| n.name.clone())
            .collect();
        if writable_live.len() > 1 {
            self.violate(format!(
                "(a1) two primaries accept writes with running agents: {writable_live:?}"
            ));
        }
        let lease_backed: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| {
                n.pg.writable()
                    && n.lease.is_some_and(|l| {
                        self.dcs.live(l.id, now)
                            && self.dcs.leases.get(&l.id).is_some_and(|s| s.held_leader)
                    })
            })
            .map(|n| n.name.clone())
            .collect();
        if lease_backed.len() > 1 {
            self.violate(format!(
                "(a2) two primaries on live leases that carried the leader key: {lease_backed:?}"
            ));
        }
        // The agent promises to stop writes by its fencing deadline (lease end minus the
        // fencing margin of the dynamic config it goes by); the margin is what makes the stop
        // finish before another node can win the lease. A running agent's primary past that
        // deadline (one tick of slack for the wake-up) means core and agent disagree on it.
        let late: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| {
                n.pg.writable()
                    && n.agent == Agent::Up
                    && !n.gc.pause
                    && !n.left_by_pause
                    && !n.ha.memory().bootstrapping
                    && n.lease.is_some_and(|l| {
                        now > l.valid_until.0.saturating_sub(n.gc.fencing_margin_ms()) + TICK_MS
                    })
            })
            .map(|n| n.name.clone())
            .collect();
        if !late.is_empty() {
            self.violate(format!(
                "(a3) a primary accepts writes past its agent's fencing deadline: {late:?}"
            ));
        }
        // (a5) Every commit acknowledged so far is in the WAL of a node the moment it becomes a
        // primary (promoted, or started as one). Synchronous seeds must never lose one;
        // asynchronous ones count what they lost. (A primary that goes on running after
        // another was promoted is invariant (a1)'s business.)
        let writable: Vec<bool> = self.nodes.iter().map(|n| n.pg.writable()).collect();
        let became: Vec<usize> = (0..writable.len())
            .filter(|&i| writable[i] && !self.writable_before.get(i).copied().unwrap_or(false))
            .collect();
        self.writable_before = writable;
        let mut lost = Vec::new();
        for n in became.into_iter().map(|i| &self.nodes[i]) {
            let Some(d) = n.pg.data.as_ref() else {
                continue;
            };
            for (&epoch, &upto) in &self.acked {
                if !(d.lsn >= upto && d.epoch_at(upto - 1) == epoch) {
                    lost.push((n.name.clone(), epoch, upto));
                }
            }
        }
        for (name, epoch, upto) in lost {
            if self.sync_mode.is_some() {
                self.violate(format!(
                    "(a5) {name} runs as a primary without the acknowledged commits of WAL epoch {epoch} up to {upto}"
                ));
            } else {
                let written_by_epoch = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.pg.data.as_ref())
                    .filter_map(|d| d.segs.iter().find(|s| s.epoch == epoch).map(|s| s.start))
                    .min()
                    .unwrap_or(0);
                self.lost_ack_bytes += upto.saturating_sub(written_by_epoch);
                self.acked.remove(&epoch);
            }
        }
    }

    /// (c) Exactly one primary holds the leader key on its live lease; every other node runs
    /// as a replica following it and streams from it.
    pub fn converged(&self) -> Result<(), String> {
        let now = self.now;
        let primaries: Vec<&Node> = self.nodes.iter().filter(|n| n.pg.writable()).collect();
        let [p] = primaries.as_slice() else {
            return Err(format!(
                "{} primaries: {:?}",
                primaries.len(),
                self.describe()
            ));
        };
        let holds = match (&self.dcs.leader, p.lease) {
            (Some((name, l, _)), Some(mine)) => {
                *name == p.name && *l == mine.id && self.dcs.live(*l, now)
            }
            _ => false,
        };
        if !holds {
            return Err(format!(
                "primary {} does not hold the leader key ({:?})",
                p.name, self.dcs.leader
            ));
        }
        for n in self.nodes.iter().filter(|n| n.name != p.name) {
            let ok = n.agent == Agent::Up
                && n.pg.running
                && n.pg.role == Some(ServerRole::Replica)
                && n.pg.following.as_deref() == Some(p.name.as_str())
                && n.pg.streaming;
            if !ok {
                return Err(format!(
                    "{} does not follow {}: {:?}",
                    n.name,
                    p.name,
                    self.describe()
                ));
            }
        }
        Ok(())
    }

    /// A one-line state summary per node.
    pub fn describe(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "{}: agent={:?} pg={} role={:?} follow={:?} streaming={} tl={:?} lsn={} task={:?} status={:?}",
                    n.name,
                    n.agent,
                    if n.pg.running { "up" } else { "down" },
                    n.pg.role,
                    n.pg.following,
                    n.pg.streaming,
                    n.pg.data.as_ref().map(Data::tl),
                    n.pg.lsn(),
                    n.task.as_ref().map(|(k, _)| k.to_string()),
                    n.last_status
                )
            })
            .collect()
    }

    /// Test hook: force a node's PostgreSQL into a running primary on a fresh lease that
    /// carried the leader key (to prove the checker catches a split brain).
    pub fn force_primary_with_keyed_lease(&mut self, i: usize) {
        let now = self.now;
        let ttl = self.cfg.ttl_ms();
        let id = self.dcs.grant(now, ttl);
        let name = self.nodes[i].name.clone();
        self.dcs.put_leader(&name, id);
        let n = &mut self.nodes[i];
        n.lease = Some(LeaseView {
            id,
            valid_until: MonoTime(now + ttl),
        });
        n.pg.running = true;
        n.pg.role = Some(ServerRole::Primary);
        if n.pg.data.is_none() {
            n.pg.data = Some(Data {
                sysid: "7000000000000000001".into(),
                segs: vec![Seg {
                    epoch: 0,
                    tl: 1,
                    start: 0,
                }],
                lsn: 1,
                state: "in production",
                ssn: String::new(),
            });
        }
    }
}

/// `ms` since the Unix epoch as Patroni writes `scheduled_at` (`2026-12-02T15:00:05+00:00`).
fn iso_at(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[test]
fn sim_times_read_back_through_the_cores_parser() {
    for ms in [
        SIM_EPOCH_WALL_MS,
        SIM_EPOCH_WALL_MS + 86_399_999,
        951_782_400_000,
    ] {
        assert_eq!(
            pgkeel_ha::time::parse_iso8601_ms(&iso_at(ms)),
            Some(ms),
            "{}",
            iso_at(ms)
        );
    }
}
