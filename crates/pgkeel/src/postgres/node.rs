//! [`PgNode`]: the real [`PostgresControl`] for a PostgreSQL server on this host.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use pgkeel_ha::pg::{DataDir, LocalPostgres, Lsn, ServerRole};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use crate::config::{BootstrapUser, PgAuthentication, PostgresqlConfig};

use super::conf::{self, BASE_CONF, CONF_HEADER, ConninfoContext};
use super::os::{self, OsUser, Tool};
use super::{
    ConfigChange, ManagedConfig, PgError, PostgresControl, Recovery, ReplicationRow, SlotInfo,
    StartOutcome, StatusDetails, StopMode,
};

/// Connect timeout for the local monitoring connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on monitoring and small control queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/patroni` waits for live WAL positions before answering with the published ones
/// (peers probe it with a 2 s timeout).
const LIVE_WAL_BOUND: Duration = Duration::from_millis(500);
/// How long a start waits at most for the backends of a dead postmaster to exit.
const ORPHAN_WAIT: Duration = Duration::from_secs(5);
/// Bound on `initdb`, `CHECKPOINT`, role creation and other slower one-off operations.
const SLOW_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait after SIGKILL of the process group.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How often an adopted postmaster's pid is checked.
const ADOPT_POLL: Duration = Duration::from_millis(200);
/// How often start/stop/promote re-check their condition.
const POLL: Duration = Duration::from_millis(25);

/// Which postmaster pid is being watched for exit, and the last exit status seen.
#[derive(Debug, Default)]
struct Watch {
    pid: Option<i32>,
    last_exit: Option<String>,
}

/// The local PostgreSQL server of one pgkeel member: runs its binaries, writes its managed
/// files and observes it. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct PgNode {
    cfg: PostgresqlConfig,
    scope: String,
    member_name: String,
    bin_dir: PathBuf,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    exits: Arc<watch::Sender<u64>>,
    watch: Arc<Mutex<Watch>>,
    secrets: Vec<String>,
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
        let auth = &cfg.authentication;
        let secrets = [
            Some(&auth.superuser),
            Some(&auth.replication),
            auth.rewind.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|u| u.password.clone())
        .filter(|p| !p.is_empty())
        .collect();
        PgNode {
            bin_dir: os::find_bin_dir(cfg.bin_dir.as_deref()),
            cfg: cfg.clone(),
            scope: scope.to_string(),
            member_name: member_name.to_string(),
            client: tokio::sync::Mutex::new(None),
            exits: Arc::new(watch::channel(0).0),
            watch: Arc::new(Mutex::new(Watch::default())),
            secrets,
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
            ("user", &self.cfg.authentication.superuser.username),
            ("host", &host),
            ("port", &port),
        ])
    }

    /// Merges the user's `postgresql.parameters` with the GUCs pgkeel manages (Patroni's
    /// defaults and derived settings) into the config to write, following `recovery`.
    pub fn managed_config(&self, recovery: Option<Recovery>) -> ManagedConfig {
        let mut p = BTreeMap::new();
        for (k, v) in [
            ("wal_level", "replica"),
            ("max_wal_senders", "10"),
            ("max_replication_slots", "10"),
            ("wal_log_hints", "on"),
        ] {
            p.insert(k.to_string(), v.to_string());
        }
        for (k, v) in &self.cfg.parameters {
            p.insert(k.clone(), conf::guc_value(v));
        }
        let (hosts, port) = self.listen();
        p.insert("listen_addresses".into(), hosts.join(","));
        p.insert("port".into(), port.to_string());
        p.insert("cluster_name".into(), self.scope.clone());
        p.insert("hot_standby".into(), "on".into());
        // Crash recovery starts by fsyncing every file of the data directory, which dominated
        // the restart of a crashed primary here (up to 1-2 s); syncfs (PostgreSQL 14+, Linux)
        // does the same durability work with one call per filesystem. The user's value wins.
        if self.major_version().is_some_and(|v| v >= 14) {
            p.entry("recovery_init_sync_method".into())
                .or_insert_with(|| "syncfs".into());
        }
        p.entry("unix_socket_directories".into())
            .or_insert_with(|| default_socket_dir().display().to_string());
        ManagedConfig {
            parameters: p,
            pg_hba: self.cfg.pg_hba.clone(),
            recovery,
        }
    }

    /// The extra fields `GET /patroni` shows about a running server: start time, replication
    /// connections (primary), replay timestamp, replay pause and `latest_end_lsn` (replica).
    /// Best effort: a failed query gives the empty default.
    pub async fn status_details(&self) -> StatusDetails {
        const SQL: &str = "SELECT pg_catalog.pg_postmaster_start_time()::text, \
            pg_catalog.pg_is_in_recovery(), \
            CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_xact_replay_timestamp()::text END, \
            CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END, \
            (SELECT latest_end_lsn::text FROM pg_catalog.pg_stat_wal_receiver)";
        const REPL: &str = "SELECT usename::text, application_name, pg_catalog.host(client_addr), state, \
            sync_state, sync_priority FROM pg_catalog.pg_stat_replication ORDER BY application_name";
        let mut d = StatusDetails::default();
        let Ok(rows) = self.query("status details", SQL, &[], QUERY_TIMEOUT).await else {
            return d;
        };
        let Some(row) = rows.first() else { return d };
        let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
        d.postmaster_start_time = text(0).map(|t| conf::iso_offset(&t));
        let in_recovery: bool = row.try_get(1).unwrap_or(false);
        d.replayed_timestamp = text(2).map(|t| conf::iso_offset(&t));
        d.replay_paused = row.try_get(3).unwrap_or(false);
        d.latest_end_lsn = text(4).and_then(|l| l.parse::<Lsn>().ok()).map(|l| l.0);
        if !in_recovery && let Ok(rows) = self.query("replication", REPL, &[], QUERY_TIMEOUT).await
        {
            d.replication = rows
                .iter()
                .map(|r| ReplicationRow {
                    usename: r
                        .try_get::<_, Option<String>>(0)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    application_name: r
                        .try_get::<_, Option<String>>(1)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    client_addr: r.try_get::<_, Option<String>>(2).ok().flatten(),
                    state: r
                        .try_get::<_, Option<String>>(3)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    sync_state: r
                        .try_get::<_, Option<String>>(4)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    sync_priority: r.try_get::<_, Option<i32>>(5).ok().flatten().unwrap_or(0),
                })
                .collect();
        }
        d
    }

    /// The data directory's major version (`PG_VERSION`), or the binaries' when it is empty.
    fn major_version(&self) -> Option<u32> {
        let from_file = |p: PathBuf| -> Option<u32> {
            std::fs::read_to_string(p)
                .ok()?
                .trim()
                .split('.')
                .next()?
                .parse()
                .ok()
        };
        from_file(self.cfg.data_dir.join("PG_VERSION")).or_else(|| {
            // Debian layout: /usr/lib/postgresql/<major>/bin
            self.bin_dir
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
        })
    }

    /// The pid of a live postmaster for our data directory, from `postmaster.pid`.
    ///
    /// When `postmaster.pid` cannot be read for another reason than its absence (the agent is
    /// out of file descriptors, the disk fails), the postmaster this agent started or adopted
    /// still counts while it lives: checking and signalling a known PID needs no file, so a
    /// server the agent cannot see is still reported, and can still be stopped.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = match std::fs::read_to_string(self.cfg.data_dir.join("postmaster.pid")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => return self.known_postmaster().filter(|pid| os::pid_alive(*pid)),
        };
        let pf = conf::parse_pidfile(&text)?;
        (os::pid_alive(pf.pid) && os::looks_like_postgres(pf.pid)).then_some(pf.pid)
    }

    /// The postmaster this agent started or adopted, if it has not seen it exit.
    fn known_postmaster(&self) -> Option<i32> {
        self.watch.lock().ok().and_then(|w| w.pid)
    }

    /// The tokio-postgres config for the local server (socket or TCP, superuser). The
    /// password is set through the API and never rendered into a string.
    /// Caches `config` as `patroni.dynamic.json` in the data directory (see
    /// [`super::dynamic_cache`]).
    pub fn save_dynamic_cache(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), PgError> {
        super::dynamic_cache::save(&self.cfg.data_dir, config, self.os_user()?.as_ref())
    }

    /// The cached dynamic configuration of the data directory, if any.
    pub fn load_dynamic_cache(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, super::dynamic_cache::CacheError>
    {
        super::dynamic_cache::load(&self.cfg.data_dir)
    }

    /// A reader of the live WAL positions for the REST API, on a connection of its own.
    pub fn live_wal(&self) -> super::LiveWal {
        super::LiveWal::new(self.connect_config(), LIVE_WAL_BOUND)
    }

    fn connect_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        let su = &self.cfg.authentication.superuser;
        c.user(&su.username)
            .dbname("postgres")
            .application_name("pgkeel")
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(pw) = &su.password {
            c.password(pw.as_bytes());
        }
        let (hosts, port) = self.listen();
        if self.cfg.use_unix_socket {
            c.host_path(self.socket_dir());
        } else {
            let host = match hosts.first().map(String::as_str) {
                None | Some("0.0.0.0") | Some("*") => "127.0.0.1",
                Some("::") => "::1",
                Some(h) => h,
            };
            c.host(host);
        }
        c.port(port);
        c
    }

    /// Replaces every known password in `msg` (defence in depth for server error texts).
    fn redact(&self, msg: String) -> String {
        self.secrets.iter().fold(msg, |m, s| {
            m.replace(s.as_str(), "<redacted>")
                .replace(&s.replace('\'', "''"), "<redacted>")
        })
    }

    fn query_error(&self, what: &str, e: &tokio_postgres::Error) -> PgError {
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        };
        PgError::Query {
            what: what.to_string(),
            message: self.redact(message),
        }
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let cfg = self.connect_config();
        let (client, connection) = timeout(CONNECT_TIMEOUT, cfg.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| PgError::Connect(format!("timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| PgError::Connect(self.redact(e.to_string())))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs `sql` on the persistent local connection, reconnecting when needed; drops the
    /// connection on any failure so the next call starts afresh.
    async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        bound: Duration,
    ) -> Result<Vec<tokio_postgres::Row>, PgError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            *guard = Some(self.connect().await?);
        }
        let Some(client) = guard.as_ref() else {
            return Err(PgError::Connect("no connection".into()));
        };
        let res = timeout(bound, client.query(sql, params)).await;
        match res {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                let err = self.query_error(what, &e);
                if client.is_closed() || e.as_db_error().is_none() {
                    *guard = None;
                }
                Err(err)
            }
            Err(_) => {
                *guard = None;
                Err(PgError::Timeout {
                    what: what.to_string(),
                    timeout: bound,
                })
            }
        }
    }

    fn os_user(&self) -> Result<Option<OsUser>, PgError> {
        os::resolve_os_user(&self.cfg.data_dir)
    }

    /// Creates the (empty) data directory for initdb or pg_basebackup, mode 0700, and returns
    /// the OS user the tools run as: the owner of an existing directory (an empty directory
    /// owned by a non-root user keeps its owner), else `postgres`.
    fn prepare_empty_data_dir(&self) -> Result<Option<OsUser>, PgError> {
        let dir = &self.cfg.data_dir;
        let user = match std::fs::metadata(dir) {
            Ok(_) => self.os_user()?,
            Err(_) => os::resolve_os_user(Path::new("/nonexistent-pgkeel"))?,
        };
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| PgError::Io {
                what: format!("creating {}", parent.display()),
                source: e,
            })?;
        }
        os::ensure_dir(dir, 0o700, user.as_ref())?;
        Ok(user)
    }

    /// After a postmaster was killed, its backends notice only a moment later and exit; a new
    /// postmaster started before they are gone fails ("pre-existing shared memory block is
    /// still in use"). Waits, at most `bound`, until no process works in the data directory.
    async fn wait_for_orphaned_backends(&self, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let orphans = os::pids_working_in(&self.cfg.data_dir);
            if orphans.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    ?orphans,
                    "processes of a dead postmaster still run in the data directory; starting anyway"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes a data directory that initdb or pg_basebackup wrote with `--no-sync` durable.
    ///
    /// Both tools fsync every file one by one, each call waiting for its own journal commit:
    /// about 0.6 s of initdb's 1.4 s on this project's disk, and as much again for a base
    /// backup. One `syncfs(2)` of the file system holding the directory gives the same
    /// guarantee in one commit; it is what PostgreSQL 16 does with `--sync-method=syncfs`, and
    /// what `recovery_init_sync_method=syncfs` already does at crash recovery. Where syncfs is
    /// refused, `initdb --sync-only` fsyncs file by file as before. Nothing uses the directory
    /// before this returns.
    async fn sync_data_dir(&self, user: Option<&OsUser>) -> Result<(), PgError> {
        let dir = self.cfg.data_dir.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let d = std::fs::File::open(&dir)?;
            nix::unistd::syncfs(&d).map_err(std::io::Error::from)
        })
        .await;
        let why = match synced {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            "syncfs of {} failed ({why}); syncing file by file",
            self.cfg.data_dir.display()
        );
        let args = vec![
            "--sync-only".into(),
            "-D".into(),
            self.cfg.data_dir.clone().into(),
        ];
        os::run_tool(&self.tool("initdb", args, SLOW_TIMEOUT), user)
            .await
            .map(|_| ())
    }

    fn tool(&self, name: &str, args: Vec<OsString>, bound: Duration) -> Tool<'static> {
        Tool {
            program: self.bin_dir.join(name),
            args,
            env: vec![("LC_ALL", "C".into())],
            timeout: bound,
        }
    }

    async fn controldata(&self) -> Result<conf::ControlData, PgError> {
        let tool = self.tool(
            "pg_controldata",
            vec![self.cfg.data_dir.clone().into()],
            Duration::from_secs(10),
        );
        let out = os::run_tool(&tool, self.os_user()?.as_ref()).await?;
        Ok(conf::parse_controldata(&out))
    }

    /// Data directory state, plus `pg_controldata` when initialized.
    async fn data_dir_state(&self) -> (DataDir, Option<conf::ControlData>) {
        let dir = &self.cfg.data_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (DataDir::Empty, None),
            Err(e) => {
                return (
                    DataDir::Inaccessible(format!("{}: {e}", dir.display())),
                    None,
                );
            }
        };
        let non_hidden = entries.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            !n.starts_with('.') && n != "lost+found"
        });
        if !non_hidden {
            return (DataDir::Empty, None);
        }
        if !dir.join("PG_VERSION").is_file() {
            return (
                DataDir::Inaccessible(format!(
                    "{} is not empty but has no PG_VERSION",
                    dir.display()
                )),
                None,
            );
        }
        match self.controldata().await {
            Ok(cd) => match cd.sysid.clone() {
                Some(sysid) if sysid.chars().all(|c| c.is_ascii_digit()) && sysid != "0" => {
                    (DataDir::Initialized { sysid }, Some(cd))
                }
                _ => (
                    DataDir::Inaccessible("pg_controldata shows no valid system identifier".into()),
                    Some(cd),
                ),
            },
            Err(e) => (DataDir::Inaccessible(e.to_string()), None),
        }
    }

    /// Starts watching `pid` (started elsewhere or by a previous agent) for exit.
    fn adopt(&self, pid: i32) {
        {
            let Ok(mut w) = self.watch.lock() else {
                return;
            };
            if w.pid == Some(pid) {
                return;
            }
            w.pid = Some(pid);
        }
        let watch = self.watch.clone();
        let exits = self.exits.clone();
        tokio::spawn(async move {
            loop {
                sleep(ADOPT_POLL).await;
                let still_ours = watch.lock().map(|w| w.pid == Some(pid)).unwrap_or(false);
                if !still_ours {
                    return;
                }
                if !os::pid_alive(pid) {
                    if let Ok(mut w) = watch.lock()
                        && w.pid == Some(pid)
                    {
                        w.pid = None;
                        w.last_exit = Some("adopted postmaster exited".into());
                    }
                    exits.send_modify(|n| *n += 1);
                    return;
                }
            }
        });
    }

    /// Waits until `postmaster.pid` shows `pid` ready, the postmaster dies, or `bound` passes.
    async fn wait_ready(&self, pid: i32, bound: Duration) -> Result<StartOutcome, PgError> {
        let deadline = Instant::now() + bound;
        loop {
            if !os::pid_alive(pid) {
                let status = self
                    .watch
                    .lock()
                    .ok()
                    .and_then(|w| w.last_exit.clone())
                    .unwrap_or_else(|| "exited".into());
                return Err(PgError::StartFailed {
                    status,
                    log_tail: os::file_tail(&self.log_file(), 15),
                });
            }
            let pidfile = std::fs::read_to_string(self.cfg.data_dir.join("postmaster.pid"))
                .ok()
                .and_then(|t| conf::parse_pidfile(&t));
            if let Some(pf) = pidfile
                && pf.pid == pid
                && matches!(pf.status.as_deref(), Some("ready" | "standby"))
            {
                return Ok(StartOutcome::Ready);
            }
            if Instant::now() >= deadline {
                return Ok(StartOutcome::StillStarting);
            }
            sleep(POLL).await;
        }
    }

    async fn wait_dead(pid: i32, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if !os::pid_alive(pid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(POLL).await;
        }
    }

    /// Refuses an operation that needs the server stopped.
    fn ensure_stopped(&self, what: &str) -> Result<(), PgError> {
        match self.postmaster_pid() {
            Some(pid) => Err(PgError::Refused(format!(
                "cannot {what}: postgres is running (pid {pid})"
            ))),
            None => Ok(()),
        }
    }

    fn pgpass_env(&self) -> (&'static str, OsString) {
        ("PGPASSFILE", self.cfg.pgpass.clone().into())
    }

    /// Upserts a role; `options` are trusted SQL keywords.
    async fn upsert_role(
        &self,
        client: &tokio_postgres::Client,
        name: &str,
        options: &str,
        password: Option<&str>,
    ) -> Result<(), PgError> {
        let what = format!("creating role {name}");
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                &[&name],
            )
            .await
            .map_err(|e| self.query_error(&what, &e))?
            .is_some();
        let mut sql = format!(
            "{} ROLE {} WITH {options}",
            if exists { "ALTER" } else { "CREATE" },
            conf::quote_ident(name)
        );
        if let Some(pw) = password {
            sql.push_str(" PASSWORD ");
            sql.push_str(&conf::quote_literal(pw));
        }
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| self.query_error(&what, &e))
    }

    async fn create_roles_inner(
        &self,
        auth: &PgAuthentication,
        users: &[BootstrapUser],
    ) -> Result<(), PgError> {
        // A dedicated session with statement logging off, so no password reaches the server
        // log even when the user configured log_statement = 'all' or ddl.
        let client = self.connect().await?;
        client
            .batch_execute(
                "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; \
                 SET log_min_error_statement TO 'panic'; SET log_duration TO off; \
                 SET synchronous_commit TO 'local'",
            )
            .await
            .map_err(|e| self.query_error("disabling statement logging", &e))?;
        let su = &auth.superuser;
        if let Some(pw) = &su.password {
            let sql = format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                conf::quote_ident(&su.username),
                conf::quote_literal(pw)
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.query_error("setting the superuser password", &e))?;
        }
        let repl = &auth.replication;
        if repl.username != su.username {
            self.upsert_role(
                &client,
                &repl.username,
                "LOGIN REPLICATION",
                repl.password.as_deref(),
            )
            .await?;
        }
        if let Some(rw) = &auth.rewind
            && rw.username != su.username
        {
            self.upsert_role(&client, &rw.username, "LOGIN", rw.password.as_deref())
                .await?;
            let ident = conf::quote_ident(&rw.username);
            let grants: String = [
                "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                "pg_catalog.pg_stat_file(text, boolean)",
                "pg_catalog.pg_read_binary_file(text)",
                "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
            ]
            .iter()
            .map(|f| format!("GRANT EXECUTE ON FUNCTION {f} TO {ident};"))
            .collect();
            client
                .batch_execute(&grants)
                .await
                .map_err(|e| self.query_error("granting pg_rewind functions", &e))?;
        }
        for user in users {
            let mut opts: Vec<String> = Vec::new();
            for o in &user.options {
                let ok = !o.is_empty()
                    && o.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ' || c == '-');
                if !ok {
                    return Err(PgError::Refused(format!(
                        "bootstrap user {}: option {o:?} is not a plain role option",
                        user.name
                    )));
                }
                opts.push(o.to_ascii_uppercase());
            }
            if !opts.iter().any(|o| o == "LOGIN" || o == "NOLOGIN") {
                opts.insert(0, "LOGIN".into());
            }
            self.upsert_role(
                &client,
                &user.name,
                &opts.join(" "),
                user.password.as_deref(),
            )
            .await?;
        }
        Ok(())
    }

    /// Removes the data directory (only the configured one, never `/`).
    fn remove_dir_now(&self) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        if dir.parent().is_none() || dir.as_os_str().is_empty() {
            return Err(PgError::Refused(format!(
                "refusing to remove data directory {}",
                dir.display()
            )));
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PgError::Io {
                what: format!("removing {}", dir.display()),
                source: e,
            }),
        }
    }

    async fn single_user_recovery(&self, bound: Duration) -> Result<(), PgError> {
        // Standby mode is not allowed in single-user mode: move the signal files aside.
        let data = &self.cfg.data_dir;
        let mut moved = Vec::new();
        for sig in ["standby.signal", "recovery.signal"] {
            let p = data.join(sig);
            if p.exists() {
                let aside = data.join(format!("{sig}.pgkeel-aside"));
                std::fs::rename(&p, &aside).map_err(|e| PgError::Io {
                    what: format!("moving {} aside", p.display()),
                    source: e,
                })?;
                moved.push((aside, p));
            }
        }
        let tool = self.tool(
            "postgres",
            vec![
                "--single".into(),
                "-D".into(),
                data.clone().into(),
                "-c".into(),
                "archive_mode=on".into(),
                "-c".into(),
                "archive_command=false".into(),
                "postgres".into(),
            ],
            bound,
        );
        let res = os::run_tool(&tool, self.os_user()?.as_ref()).await;
        for (aside, orig) in moved {
            let _ = std::fs::rename(aside, orig);
        }
        res.map(|_| ())
    }
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
        let mut lp = LocalPostgres::empty();
        let (data_dir, cd) = self.data_dir_state().await;
        lp.data_dir = data_dir;
        if let Some(cd) = &cd {
            lp.cluster_state = cd.state.clone();
            lp.timeline = cd.timeline;
            lp.checkpoint_lsn = cd.checkpoint_lsn;
        }
        lp.following = std::fs::read_to_string(self.cfg.data_dir.join("postgresql.conf"))
            .ok()
            .and_then(|t| conf::read_following(&t));
        let Some(pid) = self.postmaster_pid() else {
            // Drop a stale connection so the next start begins afresh.
            if let Ok(mut g) = self.client.try_lock() {
                *g = None;
            }
            return lp;
        };
        lp.running = true;
        self.adopt(pid);
        const SQL: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
            pg_catalog.current_setting('server_version_num')::int4, \
            CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn()::text END, \
            CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END, \
            pg_catalog.pg_last_wal_receive_lsn()::text, \
            pg_catalog.pg_last_wal_replay_lsn()::text, \
            (SELECT status FROM pg_catalog.pg_stat_wal_receiver), \
            (SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver), \
            (pg_catalog.pg_control_checkpoint()).timeline_id";
        let rows = match self.query("probe", SQL, &[], QUERY_TIMEOUT).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "PostgreSQL is running but not answering");
                return lp;
            }
        };
        let Some(row) = rows.first() else {
            return lp;
        };
        let lsn = |i: usize| -> Option<Lsn> {
            row.try_get::<_, Option<String>>(i)
                .ok()
                .flatten()
                .and_then(|s| s.parse().ok())
        };
        let int = |i: usize| -> Option<i32> { row.try_get::<_, Option<i32>>(i).ok().flatten() };
        let in_recovery: bool = row.try_get(0).unwrap_or(false);
        lp.accepting_connections = true;
        lp.server_version = int(1).and_then(|v| u32::try_from(v).ok());
        let checkpoint_tli = int(8).and_then(|v| u32::try_from(v).ok());
        if in_recovery {
            lp.role = Some(ServerRole::Replica);
            lp.receive_lsn = lsn(4);
            lp.replay_lsn = lsn(5);
            lp.wal_position = lp.receive_lsn.max(lp.replay_lsn);
            lp.streaming = row
                .try_get::<_, Option<String>>(6)
                .ok()
                .flatten()
                .is_some_and(|s| s == "streaming");
            lp.timeline = int(7)
                .and_then(|v| u32::try_from(v).ok())
                .or(checkpoint_tli)
                .or(lp.timeline);
        } else {
            lp.role = Some(ServerRole::Primary);
            lp.wal_position = lsn(2);
            lp.timeline = row
                .try_get::<_, Option<String>>(3)
                .ok()
                .flatten()
                .and_then(|w| conf::timeline_from_walfile(&w))
                .or(checkpoint_tli)
                .or(lp.timeline);
        }
        lp
    }

    async fn initdb(&self, extra_args: &[String]) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        if let (DataDir::Initialized { .. } | DataDir::Inaccessible(_), _) =
            self.data_dir_state().await
        {
            return Err(PgError::Refused(format!(
                "initdb: data directory {} is not empty",
                dir.display()
            )));
        }
        let user = self.prepare_empty_data_dir()?;
        let su = &self.cfg.authentication.superuser;
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            dir.clone().into(),
            format!("--username={}", su.username).into(),
        ];
        let pwfile = match &su.password {
            Some(pw) => Some(os::SecretFile::create(
                format!("{pw}\n").as_bytes(),
                user.as_ref(),
            )?),
            None => None,
        };
        if let Some(f) = &pwfile {
            let mut a = OsString::from("--pwfile=");
            a.push(&f.path);
            args.push(a);
        }
        args.extend(extra_args.iter().map(OsString::from));
        args.push("--no-sync".into());
        let mut tool = self.tool("initdb", args, SLOW_TIMEOUT);
        tool.env.clear();
        let res = os::run_tool(&tool, user.as_ref()).await;
        drop(pwfile);
        res?;
        self.sync_data_dir(user.as_ref()).await
    }

    async fn write_config(&self, config: &ManagedConfig) -> Result<ConfigChange, PgError> {
        let data = &self.cfg.data_dir;
        let user = self.os_user()?;
        let conf_path = data.join("postgresql.conf");
        let base_path = data.join(BASE_CONF);
        let old = std::fs::read_to_string(&conf_path).ok();
        let ours = old.as_deref().is_some_and(|t| t.starts_with(CONF_HEADER));
        if !base_path.exists() {
            if old.is_some() && !ours {
                std::fs::rename(&conf_path, &base_path).map_err(|e| PgError::Io {
                    what: format!("renaming {} to {BASE_CONF}", conf_path.display()),
                    source: e,
                })?;
            } else {
                os::write_atomic(&base_path, b"", 0o600, user.as_ref())?;
            }
        }
        let ctx = ConninfoContext {
            replication_user: &self.cfg.authentication.replication.username,
            pgpass: &self.cfg.pgpass,
            member_name: &self.member_name,
        };
        let recovery = config.recovery.as_ref();
        // Renamed settings (wal_keep_segments on 13+, ...) are written under the name this
        // server knows, or PostgreSQL would refuse to start.
        let parameters = conf::server_parameters(&config.parameters, self.major_version());
        let text = conf::render_postgresql_conf(&parameters, data, recovery, &ctx);
        let old_params = match (&old, ours) {
            (Some(t), true) => conf::parse_managed_params(t),
            _ => BTreeMap::new(),
        };
        let new_params: BTreeMap<String, String> =
            conf::all_params(&parameters, data, recovery, &ctx)
                .into_iter()
                .collect();
        let mut change = ConfigChange::default();
        for k in old_params.keys().chain(new_params.keys()) {
            if old_params.get(k) != new_params.get(k) && !change.changed_parameters.contains(k) {
                change.changed_parameters.push(k.clone());
            }
        }
        change.changed_parameters.sort();
        change.needs_restart = change
            .changed_parameters
            .iter()
            .any(|k| conf::needs_restart(k));
        if old.as_deref() != Some(text.as_str()) {
            os::write_atomic(&conf_path, text.as_bytes(), 0o600, user.as_ref())?;
            change.changed = true;
        }
        if !config.pg_hba.is_empty() {
            let hba_path = data.join("pg_hba.conf");
            let mut hba = config.pg_hba.join("\n");
            hba.push('\n');
            if std::fs::read_to_string(&hba_path).ok().as_deref() != Some(hba.as_str()) {
                os::write_atomic(&hba_path, hba.as_bytes(), 0o600, user.as_ref())?;
                change.changed = true;
            }
        }
        let signal = data.join("standby.signal");
        match (recovery.is_some(), signal.exists()) {
            (true, false) => {
                os::write_atomic(&signal, b"", 0o600, user.as_ref())?;
                change.changed = true;
                change.needs_restart = true;
            }
            (false, true) => {
                std::fs::remove_file(&signal).map_err(|e| PgError::Io {
                    what: format!("removing {}", signal.display()),
                    source: e,
                })?;
                change.changed = true;
                change.needs_restart = true;
            }
            _ => {}
        }
        Ok(change)
    }

    async fn write_pgpass(&self) -> Result<(), PgError> {
        let path = &self.cfg.pgpass;
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| PgError::Io {
                what: format!("creating {}", parent.display()),
                source: e,
            })?;
        }
        let content = conf::render_pgpass(&self.cfg.authentication);
        os::write_atomic(path, content.as_bytes(), 0o600, self.os_user()?.as_ref())
    }

    async fn start(&self, bound: Duration) -> Result<StartOutcome, PgError> {
        if let Some(pid) = self.postmaster_pid() {
            self.adopt(pid);
            return self.wait_ready(pid, bound).await;
        }
        // No live postmaster owns this data directory, but a lock file may still name a dead
        // one: a crashed postmaster we adopted (not our child) stays a zombie until its parent
        // reaps it, and PostgreSQL's own check counts a zombie as alive and refuses to start.
        // Removing the stale lock is safe: PostgreSQL still refuses to start while any old
        // backend holds the shared memory segment.
        let lock = self.cfg.data_dir.join("postmaster.pid");
        if lock.exists() {
            tracing::info!(path = %lock.display(), "removing the stale lock file of a dead postmaster");
            let _ = std::fs::remove_file(&lock);
        }
        // The same for the unix socket's lock, unless it belongs to a live postgres.
        let (_, port) = self.listen();
        let socket_lock = self.socket_dir().join(format!(".s.PGSQL.{port}.lock"));
        if let Ok(text) = std::fs::read_to_string(&socket_lock) {
            let owner = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<i32>().ok());
            let live = owner.is_some_and(|pid| os::pid_alive(pid) && os::looks_like_postgres(pid));
            if !live {
                tracing::info!(path = %socket_lock.display(), "removing the stale socket lock file of a dead postmaster");
                let _ = std::fs::remove_file(&socket_lock);
            }
        }
        self.wait_for_orphaned_backends(bound.min(ORPHAN_WAIT))
            .await;
        let user = self.os_user()?;
        let log = self.log_file();
        if let Some(dir) = log.parent() {
            os::ensure_dir(dir, 0o700, user.as_ref())?;
        }
        let log_io = |e| PgError::Io {
            what: format!("opening {}", log.display()),
            source: e,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&log)
                .map_err(log_io)?
        };
        if let Some(u) = &user {
            let _ = nix::unistd::chown(&log, Some(u.uid), Some(u.gid));
        }
        let err_file = file.try_clone().map_err(log_io)?;
        let mut cmd = os::prepare_command(&self.bin_dir.join("postgres"), user.as_ref());
        cmd.arg("-D")
            .arg(&self.cfg.data_dir)
            .stdout(file)
            .stderr(err_file);
        let mut child = cmd.spawn().map_err(|e| PgError::Io {
            what: format!("spawning {}/postgres", self.bin_dir.display()),
            source: e,
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| PgError::Refused("postgres exited before it got a pid".into()))?;
        tracing::info!(pid, data_dir = %self.cfg.data_dir.display(), "started postgres");
        if let Ok(mut w) = self.watch.lock() {
            w.pid = Some(pid);
            w.last_exit = None;
        }
        let watch = self.watch.clone();
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            tracing::info!(pid, %status, "postmaster exited");
            if let Ok(mut w) = watch.lock() {
                if w.pid == Some(pid) {
                    w.pid = None;
                }
                w.last_exit = Some(status);
            }
            exits.send_modify(|n| *n += 1);
        });
        self.wait_ready(pid, bound).await
    }

    async fn stop(&self, mode: StopMode, bound: Duration) -> Result<Option<StopMode>, PgError> {
        let Some(pid) = self.postmaster_pid() else {
            return Ok(None);
        };
        *self.client.lock().await = None;
        let stages: &[StopMode] = match mode {
            StopMode::Smart => &[
                StopMode::Smart,
                StopMode::Fast,
                StopMode::Immediate,
                StopMode::Kill,
            ],
            StopMode::Fast => &[StopMode::Fast, StopMode::Immediate, StopMode::Kill],
            StopMode::Immediate => &[StopMode::Immediate, StopMode::Kill],
            StopMode::Kill => &[StopMode::Kill],
        };
        let target = Pid::from_raw(pid);
        for &stage in stages {
            let sent = match stage {
                StopMode::Smart => kill(target, Signal::SIGTERM),
                StopMode::Fast => kill(target, Signal::SIGINT),
                StopMode::Immediate => kill(target, Signal::SIGQUIT),
                StopMode::Kill => {
                    // The postmaster's children each run in their own session (setsid), so
                    // kill them one by one, then the postmaster's group when it leads one
                    // (we start it with process_group(0)); never our own group.
                    for child in os::child_pids(pid) {
                        let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
                    }
                    let own = nix::unistd::getpgrp();
                    match nix::unistd::getpgid(Some(target)) {
                        Ok(pg) if pg == target && pg != own => killpg(pg, Signal::SIGKILL),
                        _ => kill(target, Signal::SIGKILL),
                    }
                }
            };
            if let Err(nix::errno::Errno::ESRCH) = sent {
                return Ok(Some(stage));
            }
            let wait = if stage == StopMode::Kill {
                KILL_WAIT
            } else {
                bound
            };
            if Self::wait_dead(pid, wait).await {
                if stage != mode {
                    tracing::warn!(pid, requested = ?mode, finished = ?stage, "postgres stop escalated");
                }
                return Ok(Some(stage));
            }
            tracing::warn!(pid, ?stage, timeout = ?wait, "postgres did not stop in time, escalating");
        }
        Err(PgError::Timeout {
            what: format!("stopping postgres (pid {pid})"),
            timeout: bound,
        })
    }

    async fn reload(&self) -> Result<(), PgError> {
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| PgError::Refused("cannot reload: postgres is not running".into()))?;
        kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| PgError::Io {
            what: format!("sending SIGHUP to postmaster {pid}"),
            source: e.into(),
        })
    }

    async fn promote(&self, bound: Duration) -> Result<(), PgError> {
        let deadline = Instant::now() + bound;
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| PgError::Refused("cannot promote: postgres is not running".into()))?;
        const IN_RECOVERY: &str = "SELECT pg_catalog.pg_is_in_recovery()";
        let asked = match self.query("promote", IN_RECOVERY, &[], QUERY_TIMEOUT).await {
            Ok(rows) if rows.first().is_some_and(|r| !r.get::<_, bool>(0)) => return Ok(()),
            Ok(_) => self
                .query(
                    "promote",
                    "SELECT pg_catalog.pg_promote(false)",
                    &[],
                    QUERY_TIMEOUT,
                )
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !asked {
            // Not accepting connections: what `pg_ctl promote` does.
            let user = self.os_user()?;
            os::write_atomic(
                &self.cfg.data_dir.join("promote"),
                b"",
                0o600,
                user.as_ref(),
            )?;
            kill(Pid::from_raw(pid), Signal::SIGUSR1).map_err(|e| PgError::Io {
                what: format!("sending SIGUSR1 to postmaster {pid}"),
                source: e.into(),
            })?;
        }
        loop {
            if let Ok(rows) = self.query("promote", IN_RECOVERY, &[], QUERY_TIMEOUT).await
                && rows.first().is_some_and(|r| !r.get::<_, bool>(0))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PgError::Timeout {
                    what: "promotion".into(),
                    timeout: bound,
                });
            }
            sleep(POLL).await;
        }
    }

    async fn create_roles(
        &self,
        auth: &PgAuthentication,
        users: &[BootstrapUser],
    ) -> Result<(), PgError> {
        timeout(SLOW_TIMEOUT, self.create_roles_inner(auth, users))
            .await
            .map_err(|_| PgError::Timeout {
                what: "creating roles".into(),
                timeout: SLOW_TIMEOUT,
            })?
    }

    async fn basebackup(
        &self,
        from_host: &str,
        from_port: u16,
        extra_args: &[String],
        bound: Duration,
    ) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        if !matches!(self.data_dir_state().await.0, DataDir::Empty) {
            return Err(PgError::Refused(format!(
                "basebackup: data directory {} is not empty",
                dir.display()
            )));
        }
        let user = self.prepare_empty_data_dir()?;
        let port = from_port.to_string();
        let ci = conf::conninfo(&[
            ("host", from_host),
            ("port", &port),
            ("user", &self.cfg.authentication.replication.username),
            ("application_name", &self.member_name),
        ]);
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            dir.clone().into(),
            "-X".into(),
            "stream".into(),
            "-c".into(),
            "fast".into(),
            "-w".into(),
            format!("--dbname={ci}").into(),
        ];
        args.extend(extra_args.iter().map(OsString::from));
        args.push("--no-sync".into());
        let mut tool = self.tool("pg_basebackup", args, bound);
        tool.env.push(self.pgpass_env());
        let res = match os::run_tool(&tool, user.as_ref()).await {
            Ok(_) => self.sync_data_dir(user.as_ref()).await,
            Err(e) => Err(e),
        };
        if res.is_err() {
            let _ = self.remove_dir_now();
        }
        res
    }

    async fn rewind(
        &self,
        from_host: &str,
        from_port: u16,
        bound: Duration,
    ) -> Result<(), PgError> {
        self.ensure_stopped("pg_rewind")?;
        let deadline = Instant::now() + bound;
        let cd = self.controldata().await?;
        let clean = matches!(
            cd.state.as_deref(),
            Some("shut down" | "shut down in recovery")
        );
        if !clean {
            tracing::info!(state = ?cd.state, "running single-user crash recovery before pg_rewind");
            self.single_user_recovery(bound).await?;
        }
        let auth = &self.cfg.authentication;
        let user = auth.rewind.as_ref().unwrap_or(&auth.superuser);
        let port = from_port.to_string();
        let ci = conf::conninfo(&[
            ("host", from_host),
            ("port", &port),
            ("user", &user.username),
            ("dbname", "postgres"),
        ]);
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let mut tool = self.tool(
            "pg_rewind",
            vec![
                "-D".into(),
                self.cfg.data_dir.clone().into(),
                format!("--source-server={ci}").into(),
            ],
            remaining,
        );
        tool.env.push(self.pgpass_env());
        os::run_tool(&tool, self.os_user()?.as_ref())
            .await
            .map(|_| ())
    }

    async fn checkpoint(&self) -> Result<(), PgError> {
        self.query("CHECKPOINT", "CHECKPOINT", &[], SLOW_TIMEOUT)
            .await
            .map(|_| ())
    }

    async fn list_slots(&self) -> Result<Vec<SlotInfo>, PgError> {
        let rows = self
            .query(
                "listing replication slots",
                "SELECT slot_name::text, slot_type, active, restart_lsn::text \
                 FROM pg_catalog.pg_replication_slots ORDER BY slot_name",
                &[],
                QUERY_TIMEOUT,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SlotInfo {
                name: r.get(0),
                slot_type: r.get(1),
                active: r.get(2),
                restart_lsn: r.get::<_, Option<String>>(3).and_then(|s| s.parse().ok()),
            })
            .collect())
    }

    async fn create_physical_slot(&self, name: &str) -> Result<bool, PgError> {
        let rows = self
            .query(
                "creating a replication slot",
                "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
                &[&name],
                QUERY_TIMEOUT,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn drop_slot(&self, name: &str) -> Result<bool, PgError> {
        let rows = self
            .query(
                "dropping a replication slot",
                "SELECT pg_catalog.pg_drop_replication_slot(slot_name) \
                 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND NOT active",
                &[&name],
                QUERY_TIMEOUT,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn remove_data_dir(&self) -> Result<(), PgError> {
        self.ensure_stopped("remove the data directory")?;
        *self.client.lock().await = None;
        let dir = self.cfg.data_dir.clone();
        if dir.parent().is_none() || dir.as_os_str().is_empty() {
            return Err(PgError::Refused(format!(
                "refusing to remove data directory {}",
                dir.display()
            )));
        }
        // A large data directory takes a while to delete: keep it off the async workers so the
        // lease keeper and the REST API are never held up.
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PgError::Io {
                what: format!("removing {}", dir.display()),
                source: e,
            }),
        }
    }

    fn postmaster_exits(&self) -> watch::Receiver<u64> {
        self.exits.subscribe()
    }
}
