//! `Ha::step`: from one observation to one decision. The rule order follows Patroni's
//! `_run_cycle` (patroni-reference.md §2); each situation lives in `rules/`.
//!
//! Safety rules that hold in every path:
//! * a running primary that cannot prove it holds the leader key on a valid lease stops
//!   accepting writes (fencing), before anything else is considered;
//! * promotion happens only after this node's create-if-absent on `leader` succeeded, or while
//!   the key already names this node on a valid lease;
//! * a data directory that may have diverged from the leader is never started as a replica
//!   without pg_rewind (or a re-clone).

mod cycle;
mod member;
mod peer;
mod rules;
mod types;

pub use cycle::{Cycle, Next, Ran};
pub use member::MemberIdentity;
pub use types::*;

use crate::cluster::{Cluster, DEFAULT_FAILOVER_PRIORITY, GlobalConfig};
use crate::pg::ServerRole;
use crate::time::MonoTime;
use serde_json::{Map, Value};

/// What Patroni's `run_cycle` puts before a cycle's status while the cluster is paused.
pub const PAUSE_PREFIX: &str = "PAUSE: ";

/// Static, per-node settings of the HA core (from the local config).
#[derive(Debug, Clone, PartialEq)]
pub struct HaConfig {
    /// This node's member name.
    pub name: String,
    /// Never promote this node.
    pub nofailover: bool,
    /// Preference among equally advanced candidates (higher wins).
    pub failover_priority: i64,
    /// Stream from this member instead of the leader.
    pub replicatefrom: Option<String>,
    /// `bootstrap.dcs`: the dynamic config used until `/config` exists.
    pub bootstrap_dcs: Map<String, Value>,
    /// Local `postgresql.use_pg_rewind` (the dynamic value, when set, wins).
    pub use_pg_rewind: bool,
    /// Wipe and re-clone when pg_rewind fails.
    pub remove_data_directory_on_rewind_failure: bool,
    /// Wipe and re-clone when the timeline diverged and rewind is off.
    pub remove_data_directory_on_diverged_timelines: bool,
    /// What the member key says of this node; `None`: the core decides no member key writes
    /// (the simulator writes its own).
    pub member: Option<MemberIdentity>,
    /// Start with Patroni's `ensure_unique_name`: the first cycle only checks that no live
    /// agent answers at the address of a member key of this name (`rules/unique_name.rs`).
    pub check_unique_name: bool,
}

impl HaConfig {
    /// A config with defaults for this member name (tests and simulations).
    pub fn named(name: &str) -> HaConfig {
        HaConfig {
            name: name.to_string(),
            nofailover: false,
            failover_priority: DEFAULT_FAILOVER_PRIORITY,
            replicatefrom: None,
            bootstrap_dcs: Map::new(),
            use_pg_rewind: true,
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: false,
            member: None,
            check_unique_name: false,
        }
    }
}

/// How far a shutdown got: each stage is decided on a fresh observation of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownStage {
    /// A synchronous standby asked the primary (its member key tagged `nosync`) to name
    /// another standby before it stops, so commits do not wait for it; it waits at most
    /// `2 * loop_wait` from `since`.
    LeavingSync {
        /// When it asked.
        since: MonoTime,
    },
    /// PostgreSQL is being stopped; it ran in this role when the shutdown began (for
    /// `on_stop`), or did not run.
    Stopping {
        /// Its role then, `None` when it was not running.
        was_running: Option<Role>,
        /// This node held the leader key then: its shutdown position goes into `status`.
        leader: bool,
    },
    /// PostgreSQL is down; the leader key and the lease are being given up.
    Releasing,
}

/// What a node remembers between cycles. Each field says why it must be remembered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HaMemory {
    /// A callback (on_start, on_stop, on_restart, on_role_change) has run since the agent
    /// started (Patroni's `cb_called`); until then the first healthy cycle runs `on_start`.
    pub callback_called: bool,
    /// The `postgresql` part of `/config` changed and the running server has not been given
    /// the new settings yet (see `rules/reload.rs`).
    pub config_reload_pending: bool,
    /// That reload was asked for by the agent's own reload (SIGHUP, `POST /reload`): the
    /// server is reloaded even when its files come out unchanged, as in Patroni.
    pub config_reload_asked: bool,
    /// The restart request being carried out (answered `Done` when its task ends).
    pub restart_request: Option<u64>,
    /// When that request's `timeout` runs out: if its task still runs then, the request is
    /// answered `restart failed` (Patroni's `restart(timeout)` returning false).
    pub restart_deadline: Option<MonoTime>,
    /// The primary's requested (or scheduled) restart outlasted its `timeout` while this node
    /// holds the key: as Patroni's start timeout, it gives the key up once a failover is
    /// possible (see `rules/restart_timeout.rs`).
    pub restart_timed_out: bool,
    /// A restart asked for a later time (`POST /restart` with `schedule`), until it runs, is
    /// cancelled or goes stale (see `rules/scheduled_restart.rs`).
    pub scheduled_restart: Option<ScheduledRestart>,
    /// How far a shutdown got (see `rules/shutdown.rs`).
    pub shutdown: Option<ShutdownStage>,
    /// This node last started the server read-only (as a standby, `standby.signal` written),
    /// and has not promoted it since: while such a server starts (running, not answering yet)
    /// it cannot take writes, even if it was a primary before (`last_role`), so the fencing
    /// rule leaves the start alone instead of stopping it.
    pub started_read_only: bool,
    /// The role PostgreSQL had the last time it was seen running: a primary that crashed is
    /// restarted in place, a former primary must be checked for divergence before following.
    pub last_role: Option<ServerRole>,
    /// PostgreSQL was running (or started by us) and has not been stopped by us: if it is gone
    /// now, it crashed.
    pub expect_running: bool,
    /// When the in-place restart of a crashed primary began (bounded by `primary_start_timeout`).
    pub primary_restart_since: Option<MonoTime>,
    /// This node won `initialize` and is bootstrapping; its primary runs before it holds a key.
    pub bootstrapping: bool,
    /// initdb finished; the leader key, `initialize` and `config` still have to be written.
    pub post_bootstrap_pending: bool,
    /// pg_rewind failed and the config forbids wiping: stay stopped until an operator acts.
    pub rewind_failed: bool,
    /// The local data directory was checked against the current leader and does not need rewind.
    pub divergence_checked_for: Option<String>,
    /// Since when this node waits for the leader (name, timeline) to publish the `history`
    /// entry of the local timeline: a new leader writes it right after its promotion, so a
    /// history without it is first taken as not written yet, for at most a TTL, instead of as
    /// proof of divergence (a switchover's old primary was rewound needlessly that way).
    pub history_wait: Option<(String, u32, MonoTime)>,
    /// Since when this stalled replica has seen the leader (name, timeline) on an older
    /// timeline than its own: a new primary's reported timeline lags its promotion until the
    /// checkpoint that follows it, so only a TTL of it counts as proof of divergence.
    pub timeline_ahead_wait: Option<(String, u32, MonoTime)>,
    /// This node stopped its primary to hand over (a switchover or manual failover) and starts
    /// it again as a replica of the new leader even in pause: Patroni's graceful `demote()`
    /// starts the follower in the same call, so pause never leaves the old primary down.
    pub start_after_demotion: bool,
    /// The leader seen last cycle (to log leader changes).
    pub last_leader: Option<String>,
    /// The timeline this node's replica last streamed on. Once the WAL receiver stops (the
    /// primary died), PostgreSQL can only report the last restartpoint's timeline, which may be
    /// older; without this a healthy replica looked diverged after a second failover.
    pub streamed_timeline: Option<u32>,
    /// The last non-empty `/config` seen in the DCS. While the DCS does not answer, the timing
    /// (and with it the fencing margin) stays the cluster's, the same the agent schedules its
    /// wake-ups by, not the local `bootstrap.dcs`.
    pub dynamic_config: Option<Map<String, Value>>,
    /// The highest WAL position any readable member has published, over every snapshot seen.
    /// `status.optime` beyond it was never a real position (a forged 2^64 made every replica
    /// lag and none promote); it must survive the leader's member key, which expires with the
    /// leader key, so that a lagging replica still sees its lag after the leader died.
    pub highest_member_lsn: Option<u64>,
    /// Since when the current `leader` key (by mod_revision) names no member while attached to a
    /// lease: after `ttl` it is stale and removed (the core has no clock of its own).
    pub leader_without_member_since: Option<(i64, MonoTime)>,
    /// The leader key (its mod_revision) this node gave up in a graceful demotion. A snapshot
    /// that still shows that very key was read before the release (Patroni resets its cluster
    /// view after releasing): acting on it would start the old primary as the leader again.
    pub released_key: Option<i64>,
    /// `dynamic_config` as read. A key the DCS later holds garbage for keeps its value from
    /// here (the last good one) instead of falling back to the default.
    pub dynamic_global: Option<GlobalConfig>,
    /// The member key as last written (fed back by `Outcome::MemberWritten`): a write that
    /// would change nothing, or only WAL positions within `loop_wait`, is not decided again.
    pub published_member: Option<Box<MemberUpdate>>,
    /// The start check for a duplicate member name is done (see `rules/unique_name.rs`).
    pub unique_name_checked: bool,
    /// New recovery settings that need a restart were written while the cluster was paused
    /// (the leader they follow): pause restarts nothing, so the restart waits for the resume.
    pub deferred_restart: Option<String>,
    /// What the primary knows about its synchronous standbys (see [`crate::sync::SyncTracker`]).
    pub sync: crate::sync::SyncTracker,
    /// The user's own `synchronous_standby_names` is in effect: nothing was set for synchronous
    /// mode since it was restored (see `rules/sync_replication.rs`).
    pub sync_names_restored: bool,
    /// The "commits will be delayed" warning of strict mode was logged and still holds.
    pub strict_sync_warned: bool,
    /// This synchronous standby is shutting down and asks to be released: its member key
    /// carries `nosync: true, sync_priority: 0` (Patroni's `_disable_sync`).
    pub leaving_sync: bool,
}

/// The HA state machine of one node: pure, deterministic, replayable.
#[derive(Debug, Clone)]
pub struct Ha {
    cfg: HaConfig,
    mem: HaMemory,
    /// Answers collected during the current step (moved into its [`Decision`]).
    answers: Vec<(u64, Answer)>,
    /// The level of the current step's status (a rule raises it; moved into its [`Decision`]).
    level: StatusLevel,
    /// Log lines collected during the current step ([`Decision::notes`]).
    notes: Vec<String>,
    /// The earliest wake-up a rule asked for during the current step ([`Decision::wake_at`]).
    wake_at: Option<MonoTime>,
}

impl Ha {
    /// A fresh node.
    pub fn new(cfg: HaConfig) -> Ha {
        Ha {
            cfg,
            mem: HaMemory::default(),
            answers: Vec::new(),
            level: StatusLevel::Info,
            notes: Vec::new(),
            wake_at: None,
        }
    }

    /// New local settings for a running node (SIGHUP, `POST /reload`): tags, `nofailover`,
    /// `failover_priority`, `replicatefrom` and what the member key says take effect from the
    /// next step; what the node remembers is kept.
    pub fn reconfigure(&mut self, cfg: HaConfig) {
        self.cfg = cfg;
    }

    /// The local PostgreSQL settings were read again (SIGHUP, `POST /reload`), or could not be:
    /// the running server gets them as it gets a changed `/config` (`rules/reload.rs`: the
    /// files rewritten by the next cycle that finds it running, then `on_reload`), and is
    /// reloaded whether they changed or not (a file it includes may have been edited by hand).
    pub fn reload_postgres_config(&mut self) {
        self.mem.config_reload_pending = true;
        self.mem.config_reload_asked = true;
    }

    /// A node that resumes with this memory: tests that start a node in the middle of its life
    /// (one that has run its first callback, say) rather than at its first cycle.
    pub fn with_memory(cfg: HaConfig, mem: HaMemory) -> Ha {
        Ha {
            mem,
            ..Ha::new(cfg)
        }
    }

    /// The static settings.
    pub fn config(&self) -> &HaConfig {
        &self.cfg
    }

    /// What the node remembers (for tests, logs and the simulator).
    pub fn memory(&self) -> &HaMemory {
        &self.mem
    }

    /// Effective dynamic configuration for a snapshot: its `/config`; without one (no snapshot,
    /// or no key yet) the last `/config` this node saw; else the local `bootstrap.dcs`.
    /// A bad key in a new `/config` keeps the value it had in the last one read.
    pub fn global_config(&self, cluster: Option<&Cluster>) -> GlobalConfig {
        let remembered = self
            .mem
            .dynamic_config
            .as_ref()
            .zip(self.mem.dynamic_global.as_ref());
        match (cluster.and_then(|c| c.config.as_ref()), remembered) {
            (Some(c), Some((data, gc))) if !c.data.is_empty() => {
                if *data == c.data {
                    gc.clone()
                } else {
                    GlobalConfig::from_map_over(&c.data, gc)
                }
            }
            (Some(c), None) if !c.data.is_empty() => GlobalConfig::from_map(&c.data),
            (_, Some((_, gc))) => gc.clone(),
            (_, None) => GlobalConfig::from_map(&self.cfg.bootstrap_dcs),
        }
    }

    /// Seeds the remembered `/config` (Patroni's `patroni.dynamic.json` cache, read at start
    /// before the DCS has answered). A `/config` seen later replaces it.
    pub fn remember_dynamic_config(&mut self, config: Map<String, Value>) {
        if !config.is_empty() {
            self.mem.dynamic_global = Some(GlobalConfig::from_map(&config));
            self.mem.dynamic_config = Some(config);
        }
    }

    /// Decides what this node does next. Same memory + observation gives the same decision.
    pub fn step(&mut self, obs: &Observation) -> Decision {
        self.answers.clear();
        self.level = StatusLevel::Info;
        for o in &obs.outcomes {
            if let Outcome::MemberWritten(update) = o {
                self.mem.published_member = Some(update.clone());
            }
        }
        self.notes.clear();
        self.wake_at = None;
        if let Ok(cluster) = &obs.dcs
            && let Some(config) = &cluster.config
            && !config.data.is_empty()
            && self.mem.dynamic_config.as_ref() != Some(&config.data)
        {
            if self
                .mem
                .dynamic_config
                .as_ref()
                .is_some_and(|seen| seen.get("postgresql") != config.data.get("postgresql"))
            {
                self.mem.config_reload_pending = true;
            }
            self.mem.dynamic_global = Some(self.global_config(Some(cluster)));
            self.mem.dynamic_config = Some(config.data.clone());
        }
        if let Ok(cluster) = &obs.dcs
            && let Some(lsn) = cluster.highest_member_lsn()
        {
            self.mem.highest_member_lsn = Some(lsn.max(self.mem.highest_member_lsn.unwrap_or(0)));
        }
        // "Checked against this leader" holds only while it stays the leader: after another
        // leader in between, the same name leads a newer timeline (found by the simulator: a
        // replica rewound from n1 followed n1 again, with diverged WAL, after n2 had led).
        if let Ok(c) = &obs.dcs
            && let Some(leader) = c.leader_name()
            && self
                .mem
                .divergence_checked_for
                .as_deref()
                .is_some_and(|checked| checked != leader)
        {
            self.mem.divergence_checked_for = None;
        }
        if obs.local.running {
            if let Some(role) = obs.local.role {
                self.mem.last_role = Some(role);
                // Seen writable (promoted by anyone): no longer known to be read-only.
                if role == ServerRole::Primary {
                    self.mem.started_read_only = false;
                }
            }
            self.mem.expect_running = true;
            if obs.local.is_running_replica() && obs.local.streaming {
                self.mem.streamed_timeline = obs.local.timeline.max(self.mem.streamed_timeline);
            }
            if obs.local.is_running_primary() {
                self.mem.streamed_timeline = None;
                // Its WAL leads now: a check made against some leader before is void.
                self.mem.divergence_checked_for = None;
            }
        }
        let mut verdict = self.decide(obs);
        self.reload_on_config_change(obs, &mut verdict);
        self.first_callback(obs, &mut verdict);
        let rules::Verdict {
            actions,
            mut status,
            restep,
        } = verdict;
        // Patroni's run_cycle prefixes every cycle's status in maintenance mode (a shutdown is
        // not a cycle: its message stays as Patroni logs it).
        let paused = self.global_config(obs.dcs.as_ref().ok()).pause;
        if paused && !obs.requests.iter().any(|r| r.kind == RequestKind::Shutdown) {
            status.insert_str(0, PAUSE_PREFIX);
        }
        for a in &actions {
            match a {
                Action::Stop(_) | Action::RemoveDataDir | Action::MoveDataDirAside => {
                    self.mem.expect_running = false;
                }
                Action::StartTask(TaskKind::Start { .. })
                | Action::StartTask(TaskKind::Bootstrap)
                | Action::StartTask(TaskKind::Restart { .. })
                | Action::StartTask(TaskKind::Clone { .. }) => self.mem.expect_running = true,
                _ => {}
            }
            // What this node last started the server as (see `HaMemory::started_read_only`).
            match a {
                Action::StartTask(
                    TaskKind::Start { as_primary, .. } | TaskKind::Restart { as_primary, .. },
                ) => self.mem.started_read_only = !*as_primary,
                // Both end by starting the server as a standby of their source (the campaign
                // found a rewound former primary, caught starting before it answered, stopped as
                // a primary: the rewind then counted as failed and the node stayed down).
                Action::StartTask(TaskKind::Rewind { .. } | TaskKind::Clone { .. }) => {
                    self.mem.started_read_only = true;
                }
                Action::Promote | Action::StartTask(TaskKind::Bootstrap) => {
                    self.mem.started_read_only = false;
                }
                _ => {}
            }
        }
        if let Ok(c) = &obs.dcs {
            self.mem.last_leader = c.leader_name().map(str::to_string);
        }
        let node = self.node_state(obs, paused);
        Decision {
            actions,
            status,
            restep,
            node,
            answers: std::mem::take(&mut self.answers),
            member: self.member_update(obs, node),
            level: self.level,
            wake_at: self.wake_at.take(),
            notes: std::mem::take(&mut self.notes),
        }
    }

    /// The state and role to publish. In pause a server that is down is `stopped`, never
    /// `crashed` (nobody will restart it), and one that runs is `running` even before it
    /// accepts connections (Patroni's `handle_starting_instance` in pause).
    fn node_state(&self, obs: &Observation, paused: bool) -> NodeState {
        let role_of = |r: Option<ServerRole>| match r {
            Some(ServerRole::Primary) => Role::Primary,
            Some(ServerRole::Replica) => Role::Replica,
            None => Role::Uninitialized,
        };
        let (state, role) = match &obs.task {
            Some(TaskKind::Bootstrap) => (PgState::InitializingNewCluster, Role::Uninitialized),
            Some(TaskKind::Clone { .. }) => (PgState::CreatingReplica, Role::Uninitialized),
            Some(TaskKind::Start { as_primary, .. }) => {
                (PgState::Starting, Role::running_as(*as_primary))
            }
            Some(TaskKind::Rewind { .. }) => (PgState::Stopped, Role::Replica),
            Some(TaskKind::Restart { as_primary, .. }) => {
                (PgState::Restarting, Role::running_as(*as_primary))
            }
            None if obs.local.running && obs.local.accepting_connections => (
                PgState::Running,
                role_of(obs.local.role.or(self.mem.last_role)),
            ),
            None if obs.local.running && paused => (PgState::Running, role_of(self.mem.last_role)),
            None if obs.local.running => (PgState::Starting, role_of(self.mem.last_role)),
            None if self.mem.expect_running && !paused => {
                (PgState::Crashed, role_of(self.mem.last_role))
            }
            None => (PgState::Stopped, role_of(self.mem.last_role)),
        };
        NodeState { state, role }
    }

    /// Records one of Patroni's log lines for this step (see [`Decision::notes`]).
    pub(crate) fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// Records a warning line for this step.
    pub(crate) fn warn(&mut self, line: impl AsRef<str>) {
        self.notes.push(format!("{WARNING_NOTE}{}", line.as_ref()));
    }

    /// Asks the agent to cycle again no later than `at`.
    pub(crate) fn wake_no_later_than(&mut self, at: MonoTime) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    pub(crate) fn outcome_task_finished(
        &self,
        obs: &Observation,
    ) -> Option<(TaskKind, bool, String, FailureCause)> {
        obs.outcomes.iter().find_map(|o| match o {
            Outcome::TaskFinished {
                kind,
                ok,
                message,
                cause,
            } => Some((kind.clone(), *ok, message.clone(), *cause)),
            _ => None,
        })
    }
}
