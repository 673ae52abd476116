//! [`PgNode`]: the real [`PostgresControl`] for a PostgreSQL server on this host.
//!
//! This file holds the struct, its constructor, the paths and addresses it derives from the
//! configuration, and the [`PostgresControl`] implementation, which only delegates. The work is
//! in the submodules, one concern each:
//! * `lifecycle`: the postmaster process: start (adopting a running one, clearing stale locks,
//!   waiting for orphaned backends), stop with escalation, reload, promote, exit watching.
//! * `sql`: the local connection, queries with a bound, error redaction, `CHECKPOINT`, and the
//!   live-WAL reader's connection settings.
//! * `probe`: what a HA cycle and `GET /patroni` observe: data directory state,
//!   `pg_controldata`, the major version, [`PostgresControl::probe`], status details.
//! * `slots`: replication slots (list, create, drop).
//! * `roles`: role DDL after bootstrap, in a session with statement logging off.
//! * `clone`: building a data directory with PostgreSQL's tools: `initdb`, `pg_basebackup`,
//!   `pg_rewind` (with single-user crash recovery first when needed).
//! * `datadir`: the data directory itself: creating it empty, making it durable, removing it,
//!   the dynamic-configuration cache kept in it.
//! * `config_files`: the files pgkeel manages: the merged configuration, `postgresql.conf`,
//!   `pg_hba.conf`, `standby.signal`, pgpass.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgkeel_ha::pg::LocalPostgres;
use tokio::sync::watch;

use crate::config::{BootstrapUser, PgAuthentication, PostgresqlConfig};

use super::conf;
use super::os::{self, OsUser, Tool};
use super::{
    ConfigChange, ManagedConfig, PgError, PostgresControl, Recovery, SlotInfo, StartOutcome,
    StatusDetails, StopMode,
};

mod clone;
mod config_files;
mod datadir;
mod lifecycle;
mod probe;
mod roles;
mod slots;
mod sql;

/// Bound on monitoring and small control queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on `initdb`, `CHECKPOINT`, role creation and other slower one-off operations.
const SLOW_TIMEOUT: Duration = Duration::from_secs(300);

/// Which postmaster pid is being watched for exit, and the last exit status seen.
#[derive(Debug, Default)]
struct Watch {
    pid: Option<i32>,
    last_exit: Option<String>,
}

/// The local PostgreSQL server of one pgkeel member: runs its binaries, writes its managed
/// files and observes it. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct PgNode {
    /// The configuration the node was created with: addresses, directories and binaries,
    /// which cannot change under a running server.
    cfg: PostgresqlConfig,
    /// The settings a reload may change ([`PostgresControl::reconfigure`]): parameters,
    /// `pg_hba`, credentials. Everything that reads those reads them here.
    live: std::sync::RwLock<Arc<PostgresqlConfig>>,
    scope: String,
    member_name: String,
    bin_dir: PathBuf,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    exits: Arc<watch::Sender<u64>>,
    watch: Arc<Mutex<Watch>>,
    /// Every password of the configuration, the running one and earlier ones, for redaction.
    secrets: std::sync::RwLock<Vec<String>>,
    /// Settings the running standby was started with above its configuration (see
    /// `conf::raised_for_standby`): reported as pending a restart until it runs as configured.
    raised: Mutex<Vec<pgkeel_ha::pg::PendingRestart>>,
}

impl std::fmt::Debug for PgNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgNode")
            .field("data_dir", &self.cfg.data_dir)
            .field("scope", &self.scope)
            .field("member_name", &self.member_name)
            .field("bin_dir", &self.bin_dir)
            .finish_non_exhaustive()
    }
}

impl PgNode {
    /// Creates the controller for the server described by `cfg`, in cluster `scope`, for the
    /// member `member_name` (used as `application_name` and in logs). Does no I/O except
    /// locating the binaries.
    pub fn new(cfg: &PostgresqlConfig, scope: &str, member_name: &str) -> Self {
        PgNode {
            bin_dir: os::find_bin_dir(cfg.bin_dir.as_deref()),
            cfg: cfg.clone(),
            live: std::sync::RwLock::new(Arc::new(cfg.clone())),
            scope: scope.to_string(),
            member_name: member_name.to_string(),
            client: tokio::sync::Mutex::new(None),
            exits: Arc::new(watch::channel(0).0),
            watch: Arc::new(Mutex::new(Watch::default())),
            secrets: std::sync::RwLock::new(passwords(&cfg.authentication)),
            raised: Mutex::new(Vec::new()),
        }
    }

    /// The reloadable settings as they are now (see [`PgNode::reconfigure`]).
    fn live(&self) -> Arc<PostgresqlConfig> {
        match self.live.read() {
            Ok(live) => live.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Takes the reloadable settings of `cfg` (parameters, `pg_hba`, credentials) from now
    /// on; the addresses and directories stay those the node was created with. Writes no file:
    /// the next `write_config` / `write_pgpass` does.
    pub fn reconfigure(&self, cfg: &PostgresqlConfig) {
        let mut live = (*self.live()).clone();
        live.parameters.clone_from(&cfg.parameters);
        live.pg_hba.clone_from(&cfg.pg_hba);
        live.authentication = cfg.authentication.clone();
        if let Ok(mut secrets) = self.secrets.write() {
            for p in passwords(&cfg.authentication) {
                if !secrets.contains(&p) {
                    secrets.push(p);
                }
            }
        }
        match self.live.write() {
            Ok(mut slot) => *slot = Arc::new(live),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(live),
        }
    }

    /// The configured data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    /// The file the postmaster's stdout/stderr are appended to (until `logging_collector`
    /// takes over), for operators and for start-failure messages.
    pub fn log_file(&self) -> PathBuf {
        self.cfg.data_dir.join("log").join("pgkeel-postgres.log")
    }

    /// The listen hosts and port parsed from `postgresql.listen` (`a,b:port`).
    pub fn listen(&self) -> (Vec<String>, u16) {
        let (hosts, port) = match self.cfg.listen.rsplit_once(':') {
            Some((h, p)) => (h, p.trim().parse().unwrap_or(5432)),
            None => (self.cfg.listen.as_str(), 5432),
        };
        let hosts = hosts
            .split(',')
            .map(|h| h.trim().trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        (hosts, port)
    }

    /// The unix socket directory: the user's `unix_socket_directories` (first entry), else
    /// Debian's `/var/run/postgresql` when it exists, else `/tmp`. Never the data directory:
    /// a socket file inside PGDATA makes pg_rewind fail when it copies files from the source.
    /// Read from the configuration the node was created with: the socket moves only when the
    /// server restarts, and the local connection must find it until then.
    pub fn socket_dir(&self) -> PathBuf {
        let user = self
            .cfg
            .parameters
            .get("unix_socket_directories")
            .and_then(|v| {
                let v = conf::guc_value(v);
                v.split(',')
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .map(PathBuf::from)
            });
        user.unwrap_or_else(default_socket_dir)
    }

    /// The superuser's connection string for the local server, as Patroni hands it to
    /// `post_bootstrap` (`connection_pool.conn_kwargs` through `format_dsn`, password left out:
    /// it comes from `PGPASSFILE`): `dbname=postgres user=<superuser> host=<h> port=<p>`, where
    /// `h` is the unix socket directory with `use_unix_socket`, else `localhost` when PostgreSQL
    /// listens on `*`, `localhost`, `0.0.0.0` or `127.0.0.1`, else the first listen address.
    pub fn local_dsn(&self) -> String {
        let (hosts, port) = self.listen();
        let tcp = if hosts.iter().any(|h| {
            matches!(
                h.to_ascii_lowercase().as_str(),
                "*" | "localhost" | "0.0.0.0" | "127.0.0.1"
            )
        }) {
            "localhost".to_string()
        } else {
            hosts.first().cloned().unwrap_or_else(|| "localhost".into())
        };
        let socket = self.socket_dir();
        let host = if self.cfg.use_unix_socket && socket.is_absolute() {
            socket.display().to_string()
        } else {
            tcp
        };
        let port = port.to_string();
        conf::format_dsn(&[
            ("dbname", "postgres"),
            ("user", &self.live().authentication.superuser.username),
            ("host", &host),
            ("port", &port),
        ])
    }

    /// The OS user PostgreSQL's tools and files run as / belong to for this data directory
    /// (`None` when pgkeel does not run as root).
    fn os_user(&self) -> Result<Option<OsUser>, PgError> {
        os::resolve_os_user(&self.cfg.data_dir)
    }

    /// An invocation of the PostgreSQL binary `name` with `args`, in the C locale, bounded by
    /// `bound`.
    fn tool(&self, name: &str, args: Vec<OsString>, bound: Duration) -> Tool<'static> {
        Tool {
            program: self.bin_dir.join(name),
            args,
            env: vec![("LC_ALL", "C".into())],
            timeout: bound,
        }
    }
}

/// The non-empty passwords of `auth`.
fn passwords(auth: &PgAuthentication) -> Vec<String> {
    [
        Some(&auth.superuser),
        Some(&auth.replication),
        auth.rewind.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|u| u.password.clone())
    .filter(|p| !p.is_empty())
    .collect()
}

/// Where sockets go when the user did not choose: Debian's directory when present, else `/tmp`.
fn default_socket_dir() -> PathBuf {
    let debian = PathBuf::from("/var/run/postgresql");
    if debian.is_dir() {
        debian
    } else {
        PathBuf::from("/tmp")
    }
}

#[async_trait::async_trait]
impl PostgresControl for PgNode {
    fn managed_config(&self, recovery: Option<Recovery>) -> ManagedConfig {
        PgNode::managed_config(self, recovery)
    }

    fn reconfigure(&self, cfg: &PostgresqlConfig) {
        PgNode::reconfigure(self, cfg)
    }

    fn local_dsn(&self) -> String {
        PgNode::local_dsn(self)
    }

    async fn status_details(&self) -> StatusDetails {
        PgNode::status_details(self).await
    }

    fn load_dynamic_cache(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, super::dynamic_cache::CacheError>
    {
        PgNode::load_dynamic_cache(self)
    }

    fn save_dynamic_cache(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), PgError> {
        PgNode::save_dynamic_cache(self, config)
    }

    fn live_wal(&self) -> Option<super::LiveWal> {
        Some(PgNode::live_wal(self))
    }

    async fn probe(&self) -> LocalPostgres {
        PgNode::probe(self).await
    }

    async fn initdb(&self, extra_args: &[String]) -> Result<(), PgError> {
        PgNode::initdb(self, extra_args).await
    }

    async fn write_config(&self, config: &ManagedConfig) -> Result<ConfigChange, PgError> {
        PgNode::write_config(self, config).await
    }

    async fn write_pgpass(&self) -> Result<(), PgError> {
        PgNode::write_pgpass(self).await
    }

    async fn start(&self, bound: Duration) -> Result<StartOutcome, PgError> {
        PgNode::start(self, bound).await
    }

    async fn stop(&self, mode: StopMode, bound: Duration) -> Result<Option<StopMode>, PgError> {
        PgNode::stop(self, mode, bound).await
    }

    async fn reload(&self) -> Result<(), PgError> {
        PgNode::reload(self).await
    }

    async fn promote(&self, bound: Duration) -> Result<(), PgError> {
        PgNode::promote(self, bound).await
    }

    async fn create_roles(
        &self,
        auth: &PgAuthentication,
        users: &[BootstrapUser],
    ) -> Result<(), PgError> {
        PgNode::create_roles(self, auth, users).await
    }

    async fn basebackup(
        &self,
        from_host: &str,
        from_port: u16,
        extra_args: &[String],
        bound: Duration,
    ) -> Result<(), PgError> {
        PgNode::basebackup(self, from_host, from_port, extra_args, bound).await
    }

    async fn rewind(
        &self,
        from_host: &str,
        from_port: u16,
        bound: Duration,
    ) -> Result<(), PgError> {
        PgNode::rewind(self, from_host, from_port, bound).await
    }

    async fn checkpoint(&self) -> Result<(), PgError> {
        PgNode::checkpoint(self).await
    }

    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError> {
        PgNode::set_synchronous_standby_names(self, value).await
    }

    async fn list_slots(&self) -> Result<Vec<SlotInfo>, PgError> {
        PgNode::list_slots(self).await
    }

    async fn create_physical_slot(&self, name: &str) -> Result<bool, PgError> {
        PgNode::create_physical_slot(self, name).await
    }

    async fn drop_slot(&self, name: &str) -> Result<bool, PgError> {
        PgNode::drop_slot(self, name).await
    }

    async fn remove_data_dir(&self) -> Result<(), PgError> {
        PgNode::remove_data_dir(self).await
    }

    async fn move_data_dir_aside(&self) -> Result<(), PgError> {
        PgNode::move_data_dir_aside(self).await
    }

    fn postmaster_exits(&self) -> watch::Receiver<u64> {
        self.exits.subscribe()
    }
}
