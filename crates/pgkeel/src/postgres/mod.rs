//! The PostgreSQL seam: everything pgkeel does to its local PostgreSQL server.
//!
//! The agent talks to PostgreSQL only through the [`PostgresControl`] trait so that the HA loop
//! can be tested against a fake. [`PgNode`] is the real implementation: it runs the PostgreSQL
//! 15+ binaries (as the data directory's owner when pgkeel runs as root), writes the managed
//! configuration files the way Patroni does, and observes the server for each HA cycle.
//!
//! # Layout
//! * `conf`: pure rendering of `postgresql.conf`, `pgpass`, conninfo strings, slot names.
//! * `os`: OS helpers: which user PostgreSQL runs as, running tools, pid files, atomic files.
//! * `node`: [`PgNode`], the implementation of [`PostgresControl`]: the struct, its paths and the
//!   trait implementation in `node.rs`, the work in one submodule per concern:
//!   * `node/lifecycle`: the postmaster process: start, stop with escalation, reload, promote,
//!     adoption and exit watching, stale locks and orphaned backends.
//!   * `node/sql`: the local connection, bounded queries, redaction, `CHECKPOINT`.
//!   * `node/probe`: data directory state, `pg_controldata`, `probe()`, `status_details()`.
//!   * `node/slots`: replication slots.
//!   * `node/roles`: role DDL after bootstrap (passwords, grants).
//!   * `node/clone`: `initdb`, `pg_basebackup`, `pg_rewind` and single-user crash recovery.
//!   * `node/datadir`: creating, syncing and removing the data directory; the dynamic cache.
//!   * `node/config_files`: `managed_config()`, `postgresql.conf`, `pg_hba.conf`,
//!     `standby.signal`, pgpass.
//! * `live`: [`LiveWal`], WAL positions read when a REST client asks (`/patroni`).
//! * `dynamic_cache`: `patroni.dynamic.json`, the last `/config` seen, in the data directory.
//!
//! # Secrets
//! Passwords never appear in argv, in [`PgError`] messages or in pgkeel logs: tools read them
//! from the pgpass file (`PGPASSFILE`) or a 0600 `--pwfile`, the local connection passes them
//! through the tokio-postgres `Config` API, and role passwords are set in a session that has
//! turned statement logging off (see [`PostgresControl::create_roles`]).

use std::collections::BTreeMap;
use std::time::Duration;

use pgkeel_ha::pg::{LocalPostgres, Lsn};

use crate::config::{BootstrapUser, PgAuthentication, PostgresqlConfig};

mod conf;
pub mod dynamic_cache;
mod live;
mod node;
mod os;

pub use conf::render_pgpass;
pub use live::{LiveWal, WalNow};
pub use node::PgNode;

/// Errors of PostgreSQL control operations. Messages never contain passwords.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A file-system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What pgkeel was doing (includes the path).
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL tool exited with a non-zero status.
    #[error("`{command}` failed ({status}): {stderr_tail}")]
    CommandFailed {
        /// The command line (never contains a password).
        command: String,
        /// Exit status as printed by the OS.
        status: String,
        /// The last lines of its stderr/stdout.
        stderr_tail: String,
    },
    /// A PostgreSQL tool or an operation did not finish in time.
    #[error("{what} did not finish within {timeout:?}")]
    Timeout {
        /// The command line or operation.
        what: String,
        /// The bound that expired.
        timeout: Duration,
    },
    /// Could not connect to the local server.
    #[error("cannot connect to the local PostgreSQL: {0}")]
    Connect(String),
    /// A query against the local server failed.
    #[error("{what} failed: {message}")]
    Query {
        /// What the query was for.
        what: String,
        /// The server's (redacted) error.
        message: String,
        /// The server's SQLSTATE, when the server answered with an error.
        sqlstate: Option<String>,
    },
    /// The postmaster exited while pgkeel waited for it to start.
    #[error("postgres exited during start ({status}); log tail: {log_tail}")]
    StartFailed {
        /// Exit status, if known.
        status: String,
        /// The last lines of the postgres log file.
        log_tail: String,
    },
    /// The operation is not allowed in the current state (e.g. data dir not empty).
    #[error("{0}")]
    Refused(String),
    /// The OS user PostgreSQL must run as could not be determined.
    #[error("cannot determine the PostgreSQL OS user: {0}")]
    OsUser(String),
}

/// How hard to stop the postmaster (`pg_ctl stop -m <mode>`): the signal sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StopMode {
    /// SIGTERM: wait for clients to disconnect.
    Smart,
    /// SIGINT: abort transactions, shutdown checkpoint.
    Fast,
    /// SIGQUIT: no checkpoint, crash recovery at the next start.
    Immediate,
    /// SIGKILL to the whole process group: the last resort when even an immediate stop hangs.
    Kill,
}

/// Result of [`PostgresControl::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The server accepts connections (`postmaster.pid` status `ready`/`standby`).
    Ready,
    /// The postmaster is alive but still starting when the timeout passed (e.g. a replica
    /// waiting for WAL to become consistent). It is left running.
    StillStarting,
}

/// Recovery settings: the server runs as a standby (`standby.signal`), streaming from
/// `upstream` when it has one; rendered as the `# recovery.conf` block of `postgresql.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The member to stream from; `None` for a standby with no leader to follow yet (a
    /// read-only start: no `primary_conninfo`).
    pub upstream: Option<Upstream>,
}

impl Recovery {
    /// Streams from `upstream`.
    pub fn streaming_from(upstream: Upstream) -> Recovery {
        Recovery {
            upstream: Some(upstream),
        }
    }

    /// A standby with nothing to stream from yet.
    pub fn without_upstream() -> Recovery {
        Recovery { upstream: None }
    }
}

/// The member a standby streams from and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Member name of the upstream (recorded as `# pgkeel-following:`, reported as `following`).
    pub leader_name: String,
    /// Upstream host for `primary_conninfo`.
    pub host: String,
    /// Upstream port for `primary_conninfo`.
    pub port: u16,
    /// Physical slot on the upstream (`primary_slot_name`), when slots are used.
    pub slot_name: Option<String>,
    /// The `nostream` tag: the upstream is recorded as followed, but no `primary_conninfo` (or
    /// slot) is written, so WAL comes only from `restore_command` and `pg_wal`, as in Patroni.
    pub nostream: bool,
}

/// Everything pgkeel writes into the data directory's configuration files.
///
/// Build one with [`PgNode::managed_config`] (which merges the user's parameters with the
/// ones pgkeel manages) and apply it with [`PostgresControl::write_config`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManagedConfig {
    /// GUCs for `postgresql.conf` (sorted), user parameters already merged, under the names
    /// the user wrote; [`PostgresControl::write_config`] translates renamed ones
    /// (`wal_keep_segments` <-> `wal_keep_size`, ...) for the server's major version.
    pub parameters: BTreeMap<String, String>,
    /// `pg_hba.conf` lines; empty means "leave the existing `pg_hba.conf` alone".
    pub pg_hba: Vec<String>,
    /// Follow this upstream (writes `primary_conninfo` and `standby.signal`), or run as primary.
    pub recovery: Option<Recovery>,
}

/// What [`PostgresControl::write_config`] changed, so the agent knows how to apply it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigChange {
    /// Some file was rewritten (or `standby.signal` created/removed).
    pub changed: bool,
    /// A changed parameter only takes effect after a restart (postmaster context), or the
    /// server must switch between primary and standby mode (`standby.signal`).
    pub needs_restart: bool,
    /// Names of the GUCs whose values changed (including removed ones).
    pub changed_parameters: Vec<String>,
}

/// One row of `pg_stat_replication`: read by [`PgNode::status_details`], published by the
/// agent, and shown by `/patroni` with these field names (one type for all three).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ReplicationRow {
    /// Role streaming.
    pub usename: String,
    /// The standby's `application_name` (its member name).
    pub application_name: String,
    /// Client address.
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, ...
    pub state: String,
    /// `async`, `sync`, `potential`, `quorum`.
    pub sync_state: String,
    /// Sync priority.
    pub sync_priority: i32,
}

/// What [`PgNode::status_details`] reports for `GET /patroni`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusDetails {
    /// `pg_postmaster_start_time()`, ISO-like with a `+00:00` offset.
    pub postmaster_start_time: Option<String>,
    /// `pg_stat_replication` (primary).
    pub replication: Vec<ReplicationRow>,
    /// `pg_last_xact_replay_timestamp()` (replica).
    pub replayed_timestamp: Option<String>,
    /// WAL replay is paused (replica).
    pub replay_paused: bool,
    /// `pg_stat_wal_receiver.latest_end_lsn` (replica).
    pub latest_end_lsn: Option<u64>,
}

/// One row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot name.
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// A walreceiver/walsender is using it right now.
    pub active: bool,
    /// Oldest WAL the slot retains (None when not reserved yet).
    pub restart_lsn: Option<Lsn>,
}

impl PgError {
    /// The server refused because a configured limit is reached (SQLSTATE 53400,
    /// `configuration_limit_exceeded`: "all replication slots are in use" when
    /// `max_replication_slots` is exhausted). Nothing a retry in the same cycle can fix.
    pub fn is_configuration_limit(&self) -> bool {
        matches!(self, PgError::Query { sqlstate: Some(code), .. } if code == "53400")
    }
}

/// The operations the HA agent performs on its local PostgreSQL. Every method is bounded in
/// time: either by an explicit `timeout` argument or by a short built-in limit.
#[async_trait::async_trait]
pub trait PostgresControl: Send + Sync {
    /// Observes the data directory and the server. Never fails: problems become fields
    /// (e.g. `running` but not `accepting_connections`). Adopts a postmaster that is already
    /// running (so that [`Self::postmaster_exits`] also fires for it).
    async fn probe(&self) -> LocalPostgres;

    /// Creates a new cluster with `initdb` (superuser from the config, password via a 0600
    /// `--pwfile`). `extra_args` are the rendered `bootstrap.initdb` options.
    async fn initdb(&self, extra_args: &[String]) -> Result<(), PgError>;

    /// Writes `postgresql.conf` (including the base-config include and recovery settings),
    /// `pg_hba.conf` and `standby.signal` atomically; reports what changed. Parameters PostgreSQL
    /// renamed are written under the name the data directory's major version knows.
    async fn write_config(&self, config: &ManagedConfig) -> Result<ConfigChange, PgError>;

    /// Writes the pgpass file (replication, superuser and rewind credentials), mode 0600,
    /// owned by the PostgreSQL OS user because the walreceiver and the tools read it.
    async fn write_pgpass(&self) -> Result<(), PgError>;

    /// Starts the postmaster and waits up to `timeout` for it to accept connections.
    /// Adopts an already running postmaster instead of starting a second one.
    async fn start(&self, timeout: Duration) -> Result<StartOutcome, PgError>;

    /// Stops the postmaster with `mode`, escalating (Smart -> Fast -> Immediate -> SIGKILL of
    /// the process group) whenever a stage does not finish within `timeout`. Returns the mode
    /// that actually stopped it, or `None` when nothing was running.
    async fn stop(&self, mode: StopMode, timeout: Duration) -> Result<Option<StopMode>, PgError>;

    /// Asks PostgreSQL to reload its configuration files (SIGHUP to the postmaster).
    async fn reload(&self) -> Result<(), PgError>;

    /// Promotes a standby and waits until it is out of recovery.
    async fn promote(&self, timeout: Duration) -> Result<(), PgError>;

    /// After bootstrap: sets the superuser password, creates the replication and rewind roles
    /// (with Patroni's grants) and the legacy `bootstrap.users`.
    async fn create_roles(
        &self,
        auth: &PgAuthentication,
        users: &[BootstrapUser],
    ) -> Result<(), PgError>;

    /// Clones the data directory from `host:port` with `pg_basebackup` (the data dir must be
    /// empty; a partial copy is removed on failure).
    async fn basebackup(
        &self,
        from_host: &str,
        from_port: u16,
        extra_args: &[String],
        timeout: Duration,
    ) -> Result<(), PgError>;

    /// Rewinds a stopped former primary onto `host:port` with `pg_rewind`, doing single-user
    /// crash recovery first when it was not shut down cleanly.
    async fn rewind(
        &self,
        from_host: &str,
        from_port: u16,
        timeout: Duration,
    ) -> Result<(), PgError>;

    /// Runs `CHECKPOINT` (before a switchover or after a promotion, for pg_rewind).
    async fn checkpoint(&self) -> Result<(), PgError>;

    /// Sets `synchronous_standby_names` on the running server (`None`: back to the
    /// configuration files' value) and reloads it.
    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError>;

    /// Lists replication slots.
    async fn list_slots(&self) -> Result<Vec<SlotInfo>, PgError>;

    /// Creates a physical slot reserving WAL at once; `Ok(false)` when it already existed.
    async fn create_physical_slot(&self, name: &str) -> Result<bool, PgError>;

    /// Drops a slot unless it is active; `Ok(false)` when absent or active.
    async fn drop_slot(&self, name: &str) -> Result<bool, PgError>;

    /// Deletes the configured data directory (for a re-clone). Refuses while postgres runs.
    async fn remove_data_dir(&self) -> Result<(), PgError>;

    /// Renames the data directory to `<data_dir>.failed` (after a failed bootstrap, so that
    /// what initdb left can be looked at and the next start begins empty).
    async fn move_data_dir_aside(&self) -> Result<(), PgError>;

    /// A counter bumped each time a postmaster pgkeel started or adopted exits, so the agent
    /// notices a crash at once instead of one HA loop later.
    fn postmaster_exits(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Merges the user's `postgresql.parameters` with the GUCs pgkeel manages (Patroni's
    /// defaults and derived settings) into the config to write, following `recovery`.
    fn managed_config(&self, recovery: Option<Recovery>) -> ManagedConfig;

    /// Takes the settings of `cfg` a reload may change (SIGHUP, `POST /reload`):
    /// `parameters`, `pg_hba` and `authentication`, used by the next [`Self::managed_config`],
    /// [`Self::write_config`], [`Self::write_pgpass`] and connection. Addresses and
    /// directories stay as they were. Writes nothing. The default ignores them (fakes).
    fn reconfigure(&self, cfg: &PostgresqlConfig) {
        let _ = cfg;
    }

    /// The superuser's connection string for the local server, as Patroni hands it to
    /// `post_bootstrap` (password left out: it comes from `PGPASSFILE`).
    fn local_dsn(&self) -> String;

    /// The extra fields `GET /patroni` shows about a running server. Best effort: a failed
    /// query gives the empty default.
    async fn status_details(&self) -> StatusDetails;

    /// The cached dynamic configuration of the data directory (`patroni.dynamic.json`), if any.
    fn load_dynamic_cache(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, dynamic_cache::CacheError>;

    /// Caches `config` as `patroni.dynamic.json` in the data directory.
    fn save_dynamic_cache(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), PgError>;

    /// A reader of the live WAL positions for the REST API, on a connection of its own;
    /// `None` when this server has none (the API then shows the published positions).
    fn live_wal(&self) -> Option<LiveWal>;
}
