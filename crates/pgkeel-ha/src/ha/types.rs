//! The inputs and outputs of one HA step: what the agent observed, what it must do.

use crate::cluster::Cluster;
use crate::keys::codec::MemberData;
use crate::pg::{LocalPostgres, LocalSlot};
use crate::time::MonoTime;
use std::fmt;

/// This node's lease as the agent's keep-alive task last confirmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    /// The etcd lease id.
    pub id: i64,
    /// Monotonic instant before which etcd cannot have expired the lease: the send time of the
    /// last successful keep-alive plus the TTL etcd granted.
    pub valid_until: MonoTime,
}

/// A long-running operation the agent runs in the background while cycles go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// initdb, configure, start, create roles, post_bootstrap.
    Bootstrap,
    /// pg_basebackup from this member, then configure as its replica.
    Clone {
        /// Source member.
        from: String,
    },
    /// Start PostgreSQL and wait until it accepts connections.
    Start {
        /// Start without recovery settings (a crashed primary restarting in place).
        as_primary: bool,
        /// Member to follow when starting as a replica.
        follow: Option<String>,
    },
    /// pg_rewind from this member.
    Rewind {
        /// Source member.
        from: String,
    },
    /// Stop PostgreSQL (fast) and start it again in the same role: a restart someone asked
    /// for (`POST /restart`, `patronictl restart`).
    Restart {
        /// It runs as a primary (start without recovery settings).
        as_primary: bool,
        /// Member to follow when it runs as a replica.
        follow: Option<String>,
    },
}

impl TaskKind {
    /// The task's name in "... already in progress" answers (Patroni's async action names).
    pub fn action_name(&self) -> &'static str {
        match self {
            TaskKind::Bootstrap => "bootstrap",
            TaskKind::Clone { .. } => "replica creation",
            TaskKind::Start { .. } => "start",
            TaskKind::Rewind { .. } => "pg_rewind",
            TaskKind::Restart { .. } => "restart",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskKind::Bootstrap => write!(f, "bootstrap"),
            TaskKind::Clone { from } => write!(f, "cloning from {from}"),
            TaskKind::Start {
                as_primary: true, ..
            } => write!(f, "starting primary after failure"),
            TaskKind::Start { .. } => write!(f, "starting"),
            TaskKind::Rewind { from } => write!(f, "pg_rewind from {from}"),
            TaskKind::Restart { .. } => write!(f, "restart"),
        }
    }
}

/// Why a background task failed. A task that copies from another member (pg_rewind, clone)
/// can fail because that member is unreachable or bogus; that says nothing about the local data
/// directory and must not be remembered as a local failure (a forged leader key made a node stay
/// stopped for good after a failed "pg_rewind from ghost").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The local side failed (or the task succeeded): the local data may be at fault.
    Local,
    /// The source member could not be used: no such member, no usable `conn_url`, or its server
    /// could not be connected to.
    Source,
}

/// What a peer's `GET /patroni` said during a leader race.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Member name.
    pub name: String,
    /// It answered with a usable status (a document with `xlog`).
    pub reachable: bool,
    /// Its PostgreSQL is in recovery (a replica).
    pub in_recovery: bool,
    /// Its best WAL position (primary: location; replica: max(received, replayed)).
    pub lsn: u64,
    /// Its timeline, when it said. A member on a newer timeline than this node has history
    /// this node lacks, whatever the two WAL positions say.
    pub timeline: Option<u32>,
    /// Its tags forbid promotion.
    pub nofailover: bool,
    /// Its `failover_priority`.
    pub failover_priority: i64,
    /// It is a replica that streams from nobody (pgkeel's `detached` in `/patroni`): its WAL
    /// position cannot grow until its agent points it at a leader, so it acknowledges no
    /// commit of a former primary any more. Quorum votes count only from such members.
    pub detached: bool,
}

/// The result of an action executed earlier in the same cycle, or of a finished task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `RaceInitialize` ran.
    InitializeRace {
        /// This node created the `initialize` key.
        won: bool,
    },
    /// `AcquireLeader` ran.
    LeaderAcquired {
        /// This node created the `leader` key.
        won: bool,
    },
    /// `RefreshLeader` ran.
    LeaderRefreshed {
        /// The key now carries this node's current lease.
        ok: bool,
    },
    /// A background task ended.
    TaskFinished {
        /// Which task.
        kind: TaskKind,
        /// It succeeded.
        ok: bool,
        /// Error text when it failed.
        message: String,
        /// Whose fault a failure was (`Local` when it succeeded).
        cause: FailureCause,
    },
    /// `Follow` wrote recovery settings that take effect only after a restart (a parameter of
    /// postmaster context changed, or standby mode was switched); nothing was restarted: the
    /// core decides (a restart task, following `leader`).
    RestartNeeded {
        /// The member the new settings follow.
        leader: String,
    },
    /// `CheckUniqueName` ran: whether something answered at the member's address.
    UniqueNameChecked {
        /// An agent answered there: this name is taken.
        taken: bool,
    },
    /// `WriteMember` succeeded (carried into the next cycle's first step): what the member
    /// key holds now, so the core knows what is published.
    MemberWritten(Box<MemberUpdate>),
    /// An action failed; the rest of that decision's actions were skipped.
    ActionFailed {
        /// The action that failed.
        action: Box<Action>,
        /// The error.
        error: String,
    },
}

/// A request from outside the HA loop (the REST API today; signals and timers later), handed
/// to the core in the [`Observation`] until the core answers it. Requests never bypass the
/// safety rules: a step that fences or removes a stale key answers nothing, and the request
/// waits for the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the agent, unique among the requests in flight; answers carry it.
    pub id: u64,
    /// What is asked.
    pub kind: RequestKind,
}

/// What a [`Request`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// Restart PostgreSQL in place (Patroni's `POST /restart` without `schedule`).
    Restart(RestartConditions),
    /// Throw the local data away and clone it again (Patroni's `POST /reinitialize`): a replica
    /// only, while a leader exists. Answered `Done("reinitialize started")` when the clone
    /// starts, as Patroni answers before the copy ends.
    Reinitialize {
        /// Patroni's `force`: a running clone or pg_rewind is cancelled first (any other task
        /// is waited for: the answer is still "busy").
        force: bool,
        /// Clone from the leader even when a `clonefrom` member exists.
        from_leader: bool,
    },
    /// Stop the agent (SIGTERM, Ctrl-C): stop PostgreSQL and release the leader key, or, in
    /// pause mode, leave both as they are. Nobody waits for its answer.
    Shutdown,
    /// Remember a restart for later (Patroni's `POST /restart` with `schedule`): answered
    /// `Done("Restart scheduled")`, or refused when one is already scheduled.
    ScheduleRestart(ScheduledRestart),
    /// Forget the scheduled restart (Patroni's `DELETE /restart`): `Done("scheduled restart
    /// deleted")`, or refused with `no restarts are scheduled`.
    CancelScheduledRestart,
}

/// A restart waiting for its time (Patroni keeps it in the agent's memory and publishes it in
/// the member key as `scheduled_restart`; it does not survive a restart of the agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRestart {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The time as published (`isoformat()` of the requested time).
    pub schedule: String,
    /// The restart's filters, checked when the time comes.
    pub conditions: RestartConditions,
    /// The request's other fields as given (`role`, `postgres_version`, `timeout`,
    /// `restart_pending`), published with the schedule as Patroni does.
    pub filters: serde_json::Map<String, serde_json::Value>,
    /// `pg_postmaster_start_time()` when it was scheduled (filled in by the core): if the
    /// server restarted meanwhile, the scheduled restart has happened and is cancelled.
    pub postmaster_start_time: Option<String>,
}

impl ScheduledRestart {
    /// The `scheduled_restart` object of the member key: the filters, `schedule` and
    /// `postmaster_start_time` (`/patroni` shows it without the last).
    pub fn to_member_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = self.filters.clone();
        m.insert("schedule".into(), self.schedule.clone().into());
        m.insert(
            "postmaster_start_time".into(),
            self.postmaster_start_time
                .clone()
                .map_or(serde_json::Value::Null, serde_json::Value::from),
        );
        m
    }
}

/// The conditions of a restart request (Patroni's `restart_matches`); `None`/false: any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartConditions {
    /// Only if this node has this role.
    pub role: Option<Role>,
    /// Only if the running server's version (`server_version_num`) is below this one.
    pub below_version: Option<u32>,
    /// Only if a restart is pending (a changed parameter needs one).
    pub only_if_pending: bool,
    /// Not a condition but carried with them, as in Patroni's `restart_data`: the request's
    /// `timeout` (seconds). A requested restart that has not ended when it runs out is
    /// answered `restart failed` (PostgreSQL is left to finish starting).
    pub timeout_s: Option<u64>,
}

/// The core's answer to a [`Request`], in Patroni's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The work started; a [`Answer::Done`] follows when it ends.
    Accepted(String),
    /// The request cannot be carried out as asked.
    Refused(String),
    /// Another operation is running on this node (`restart already in progress`).
    Busy(String),
    /// The work ended.
    Done {
        /// It succeeded.
        ok: bool,
        /// `restarted successfully`, `restart failed`, ...
        message: String,
    },
}

impl Answer {
    /// The request needs no further answer.
    pub fn is_final(&self) -> bool {
        !matches!(self, Answer::Accepted(_))
    }
}

/// Why the DCS snapshot could not be read. Every kind means "the DCS is not accessible" to the
/// core (a primary keeps its role only while its lease is provably valid); the kinds keep the
/// agent's reason apart from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DcsUnavailable {
    /// No definite answer: connection refused, timeout, no etcd leader, a broken stream.
    Unreachable(String),
    /// A definite refusal: permission denied, bad credentials, an invalid request.
    Refused(String),
}

impl fmt::Display for DcsUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DcsUnavailable::Unreachable(why) | DcsUnavailable::Refused(why) => f.write_str(why),
        }
    }
}

/// Everything one HA step may look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Now, on the agent's monotonic clock.
    pub now: MonoTime,
    /// Now, on the wall clock (milliseconds since the Unix epoch): only for times people write
    /// down, such as a scheduled switchover's `scheduled_at`. Every timeout uses `now`.
    pub wall_ms: i64,
    /// The DCS snapshot, or why it could not be read (any error counts as unreachable).
    pub dcs: Result<Cluster, DcsUnavailable>,
    /// This node's lease, if it has one.
    pub lease: Option<LeaseView>,
    /// The local PostgreSQL.
    pub local: LocalPostgres,
    /// A background task in flight.
    pub task: Option<TaskKind>,
    /// Results of earlier actions in this cycle and of tasks finished since the last step.
    pub outcomes: Vec<Outcome>,
    /// Peer statuses, present only after `ProbePeers` ran in this cycle.
    pub peers: Option<Vec<PeerStatus>>,
    /// Requests not answered yet (see [`Request`]).
    pub requests: Vec<Request>,
    /// The local server's replication slots, when the agent listed them (a running primary
    /// with `use_slots`); `None`: not listed, or the listing failed.
    pub slots: Option<Vec<LocalSlot>>,
}

/// How to stop PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Fast shutdown (checkpoint), escalated to immediate if it does not finish in time.
    Fast,
    /// Immediate shutdown: stop accepting writes now (fencing).
    Immediate,
}

/// User callbacks (`postgresql.callbacks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEvent {
    /// `on_start`.
    OnStart,
    /// `on_stop`.
    OnStop,
    /// `on_role_change`.
    OnRoleChange,
    /// `on_restart`: after a requested restart in the same role.
    OnRestart,
    /// `on_reload`: after PostgreSQL's configuration was reloaded.
    OnReload,
}

impl CallbackEvent {
    /// The callback name as Patroni passes it to the script.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackEvent::OnStart => "on_start",
            CallbackEvent::OnStop => "on_stop",
            CallbackEvent::OnRoleChange => "on_role_change",
            CallbackEvent::OnRestart => "on_restart",
            CallbackEvent::OnReload => "on_reload",
        }
    }
}

/// One side effect the agent must perform. Actions run in order; the first that fails
/// skips the rest and the agent steps again with `Outcome::ActionFailed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create `initialize` = "" if absent (the bootstrap race). Yields `InitializeRace`.
    RaceInitialize,
    /// Write the system identifier into `initialize` (`create_only`: only if absent).
    WriteInitialize {
        /// System identifier.
        sysid: String,
        /// Do not overwrite an existing key.
        create_only: bool,
    },
    /// Delete `initialize` (failed bootstrap).
    DeleteInitialize,
    /// Write `bootstrap.dcs` to `config` if it is absent.
    WriteConfig,
    /// Create `leader` = own name on the own lease if absent. Yields `LeaderAcquired`.
    AcquireLeader,
    /// Put `leader` = own name on the own lease unconditionally (end of bootstrap).
    TakeLeader,
    /// Re-attach `leader` (which names this node) to the current lease. Yields `LeaderRefreshed`.
    RefreshLeader,
    /// Delete `leader` if it still names this node.
    ReleaseLeader,
    /// Delete a stale `leader` key (no lease, or naming no member for longer than `ttl`) if its
    /// mod_revision is still this one, so a key rewritten meanwhile is never removed. Logged as a
    /// WARNING by the agent with `reason`.
    DeleteStaleLeader {
        /// The member name the key holds (may be empty).
        name: String,
        /// The key's mod_revision in the snapshot the decision was made on.
        mod_revision: i64,
        /// Why the key is stale, for the log.
        reason: String,
    },
    /// Start a background task.
    StartTask(TaskKind),
    /// Stop the running background task (a clone or a pg_rewind, for a forced reinitialize):
    /// its processes are killed and it ends as failed, through no fault of the local data
    /// (`FailureCause::Source`).
    CancelTask,
    /// Promote the local replica and wait until it accepts writes.
    Promote,
    /// Stop PostgreSQL (bounded: a fast stop escalates to immediate).
    Stop(StopMode),
    /// Point the running replica at this member (rewrite recovery settings, reload or restart).
    Follow {
        /// Member to stream from.
        leader: String,
    },
    /// Stop the running replica's WAL receiver and leave it streaming from nobody until a
    /// `Follow` (its recovery settings lose `primary_conninfo`; a reload applies that). Quorum
    /// mode does this when the leader key is gone, so that a former primary that still runs
    /// (its agent frozen) can no longer have commits acknowledged by the members that vote.
    StopStreaming,
    /// Rewrite PostgreSQL's configuration files from the current local and dynamic settings
    /// (as a replica of `follow`, or as a primary when `None`) and reload the server if they
    /// changed, or `always`. Parameters that need a restart then show up as `pending_restart`.
    ReloadConfig {
        /// The member the running replica streams from; `None` for a primary.
        follow: Option<String>,
        /// Reload the server even when the files did not change (the agent's own reload).
        always: bool,
    },
    /// Leader: the member slots kept: their positions (from the observed slots) go into the
    /// `status` key. Creating the missing ones and dropping the others are the actions
    /// before it (`CreateSlot`, `DropSlot`); without an observed slot list it fails, and the
    /// `status` write after it is skipped.
    SyncSlots {
        /// Slot names wanted.
        wanted: Vec<String>,
    },
    /// Leader: create this physical member slot (missing in the observed slots).
    CreateSlot {
        /// Slot name.
        name: String,
    },
    /// Leader: drop this inactive physical slot no member wants (Patroni's "unknown" slot).
    DropSlot {
        /// Slot name.
        name: String,
    },
    /// Leader: write `status` (optime, slots).
    WriteStatus,
    /// Primary: run with this `synchronous_standby_names` (rewrite the configuration and
    /// reload). `None`: the user's own setting (synchronous mode is off); `Some("")`: nothing
    /// is synchronous.
    SetSynchronousStandbyNames {
        /// The value.
        value: Option<String>,
    },
    /// Primary: write the `sync` key (`{"leader","quorum","sync_standby"}`) if it is still the
    /// one the decision saw: `expected` its mod_revision, `None` when it was absent (then only
    /// if it still is). A lost compare-and-swap fails the action, so nothing after it runs.
    WriteSync {
        /// The primary (this node).
        leader: String,
        /// The synchronous standbys.
        sync_standby: Vec<String>,
        /// `quorum` (0 in priority mode).
        quorum: i64,
        /// The key's mod_revision in the snapshot the decision was made on.
        expected: Option<i64>,
    },
    /// Primary: delete the `sync` key if it is still the one the decision saw (synchronous mode
    /// was turned off).
    DeleteSync {
        /// The key's mod_revision in the snapshot the decision was made on.
        mod_revision: i64,
    },
    /// Run `CHECKPOINT` (before a graceful demotion, so the shutdown checkpoint that follows is
    /// short and the replicas receive it quickly). A failure is logged, not fatal (as Patroni).
    Checkpoint,
    /// After a clean stop: write the shutdown checkpoint's position to `status` (`{"optime":
    /// N}`, as Patroni's `delete_leader(last_lsn)`), so the replicas' lag checks measure against
    /// the last WAL the old primary wrote. Nothing is written after an unclean stop.
    WriteShutdownPosition,
    /// Write `{}` to `failover` if the key is still the one the decision saw (Patroni's CAS on
    /// the key's version): the manual failover/switchover request is done or void, and a request
    /// written since is kept.
    ClearFailover {
        /// The key's mod_revision in the snapshot the decision was made on.
        mod_revision: i64,
    },
    /// Leader: merge the local timeline history into the `history` key.
    UpdateHistory,
    /// Ask each peer's `GET /patroni` (short timeout); results come back in `peers`.
    ProbePeers,
    /// Empty the data directory (before a re-clone).
    RemoveDataDir,
    /// Ask `liveness_url` (the `GET /liveness` of the agent a member key of this node's name
    /// points at) whether an agent answers there (Patroni's `ensure_unique_name`, at start).
    /// Yields `UniqueNameChecked`.
    CheckUniqueName {
        /// The member's `api_url` with `/patroni` replaced by `/liveness`.
        liveness_url: String,
    },
    /// Another agent of this name runs: the agent ends with Patroni's CRITICAL `Can't start;
    /// there is already a node named '%s' running` (exit code 1).
    DuplicateName,
    /// Write this node's member key (`members/<name>`) on the lease. Decided by the core
    /// ([`Decision::member`]) and run by the cycle driver after a cycle's last step.
    WriteMember(Box<MemberUpdate>),
    /// Move the data directory aside to `<data_dir>.failed` (failed bootstrap).
    MoveDataDirAside,
    /// Run a user callback.
    Callback {
        /// Which one.
        event: CallbackEvent,
        /// Role argument.
        role: Role,
    },
    /// Revoke this node's lease: its member key, and a leader key on it, vanish at once, so
    /// the others need not wait for the TTL (shutdown).
    RevokeLease,
    /// The agent ends normally (a shutdown finished); nothing runs after it.
    Exit,
    /// Stop the agent with this error (it must not go on).
    Fatal {
        /// Why.
        message: String,
        /// Patroni logs this message with `logger.fatal` (level CRITICAL) rather than
        /// `logger.error`; the agent logs it at the same level.
        critical: bool,
    },
}

/// PostgreSQL's state as this node publishes it (member key and `/patroni` `state`), in
/// Patroni's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgState {
    /// Running and accepting connections.
    Running,
    /// Started, not accepting connections yet.
    Starting,
    /// Not running.
    Stopped,
    /// Not running although it was expected to run.
    Crashed,
    /// pg_basebackup in progress.
    CreatingReplica,
    /// initdb and the first start in progress.
    InitializingNewCluster,
    /// A requested restart is in progress.
    Restarting,
}

impl PgState {
    /// Patroni's word for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PgState::Running => "running",
            PgState::Starting => "starting",
            PgState::Stopped => "stopped",
            PgState::Crashed => "crashed",
            PgState::CreatingReplica => "creating replica",
            PgState::InitializingNewCluster => "initializing new cluster",
            PgState::Restarting => "restarting",
        }
    }
}

impl fmt::Display for PgState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// This node's role as it publishes it and passes it to callbacks, in Patroni's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the leader key and runs a writable primary.
    Primary,
    /// Streams from (or will follow) the leader.
    Replica,
    /// No data directory yet.
    Uninitialized,
    /// A former primary that has just been stopped (`on_role_change` after a demotion).
    Demoted,
}

impl Role {
    /// The role of a server that runs (or is about to run) as a primary or not.
    pub fn running_as(primary: bool) -> Role {
        if primary {
            Role::Primary
        } else {
            Role::Replica
        }
    }

    /// Patroni's word for the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Uninitialized => "uninitialized",
            Role::Demoted => "demoted",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What this node publishes as its PostgreSQL state and role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeState {
    /// PostgreSQL's state.
    pub state: PgState,
    /// The node's role.
    pub role: Role,
}

/// A member key to write: the value, the lease it goes on, and when the core decided it (the
/// WAL positions alone are republished at most once per `loop_wait` after that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberUpdate {
    /// The member key's value.
    pub member: MemberData,
    /// The lease id it is attached to.
    pub lease: i64,
    /// The observation's time when it was decided.
    pub decided_at: MonoTime,
}

/// The level the agent logs a decision's status at (Patroni's level for that message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusLevel {
    /// The ordinary `INFO` status line.
    #[default]
    Info,
    /// Patroni logs this one with `logger.error`.
    Error,
}

/// The result of one HA step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Side effects to perform, in order.
    pub actions: Vec<Action>,
    /// The cycle's one-line explanation, in Patroni's words where Patroni has them.
    pub status: String,
    /// Step again right after executing (an action's outcome decides what comes next).
    pub restep: bool,
    /// State and role to publish.
    pub node: NodeState,
    /// Answers to requests of the observation (and to requests accepted earlier whose work
    /// ended), by request id.
    pub answers: Vec<(u64, Answer)>,
    /// The member key to write if this is the cycle's last decision (`None`: what is published
    /// is current, or it cannot be written now). See [`crate::ha::Cycle`].
    pub member: Option<Box<MemberUpdate>>,
    /// The level to log `status` at.
    pub level: StatusLevel,
    /// Run the next cycle no later than this (a scheduled switchover is due then), when that
    /// is sooner than the agent would anyway.
    pub wake_at: Option<MonoTime>,
    /// Patroni's log lines of this step beyond the status (`Awaiting switchover at ...`,
    /// `Cleaning up failover key`), logged by the agent at INFO, or WARNING when they start
    /// with [`WARNING_NOTE`].
    pub notes: Vec<String>,
}

/// Prefix of a [`Decision::notes`] entry Patroni logs as a warning (the prefix is not logged).
pub const WARNING_NOTE: &str = "warning: ";
