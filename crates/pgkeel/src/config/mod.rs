//! Typed pgkeel configuration, read from Patroni-compatible YAML plus `PATRONI_*` overrides.
//!
//! This module owns the *shape* of the local configuration. Loading (`load.rs`), environment
//! overrides (`env.rs`), the typed build (`build.rs`, one builder per section in `sections/`,
//! known keys in `keys.rs`, value readers in `read.rs`, defaults in `defaults.rs`) and
//! cross-field checks (`validate.rs`) live beside it. Everything else in the agent reads these
//! structs and never the raw YAML.
//!
//! Dynamic settings (`ttl`, `loop_wait`, ... from `bootstrap.dcs` or the DCS `/config` key) are
//! kept as raw JSON here and interpreted by `pgkeel_ha::cluster::GlobalConfig`, so that the agent
//! and the pure core read them the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;

mod build;
mod command;
mod defaults;
mod env;
mod error;
mod keys;
mod load;
mod origin;
mod read;
mod sections;
mod tls;
mod validate;

pub use command::{ShellCommand, SplitError};
pub use defaults::{MIN_LOOP_WAIT, MIN_RETRY_TIMEOUT, MIN_TTL};
pub use error::{ConfigError, ConfigWarning};
pub use load::{
    LoadedConfig, load_config, load_config_from_env_only, load_config_from_str, load_ctl_settings,
};
pub use validate::validate_filesystem;

/// The whole local configuration of one pgkeel node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the configuration came from (for error messages); `<env>` when built from env only.
    pub source: PathBuf,
    /// Cluster name (`scope`): the second level of the DCS path and PostgreSQL's `cluster_name`.
    pub scope: String,
    /// First level of the DCS path; Patroni's default is `/service`.
    pub namespace: String,
    /// This node's member name, unique in the cluster.
    pub name: String,
    /// The REST API server.
    pub restapi: RestApiConfig,
    /// Credentials pgkeelctl uses for write endpoints (falls back to `restapi.authentication`).
    pub ctl: CtlConfig,
    /// The etcd v3 cluster (from `etcd3:` or, with a warning, a legacy `etcd:` section).
    pub etcd: EtcdConfig,
    /// How a new cluster is created.
    pub bootstrap: BootstrapConfig,
    /// The local PostgreSQL server.
    pub postgresql: PostgresqlConfig,
    /// Member tags (`nofailover`, `clonefrom`, custom ones...), published in the member key.
    pub tags: Tags,
    /// `log.level` (`DEBUG`, `INFO`, `WARNING`, `ERROR`), default `INFO`.
    pub log_level: String,
}

/// What `pgkeelctl` reads from a configuration: where the DCS is and which cluster to act on.
///
/// Like patronictl's `Config(path, validator=None)`, nothing is required: a `patronictl.yaml`
/// holding only an `etcd3` section, or no file at all with `PATRONI_ETCD3_HOSTS` and
/// `PATRONI_SCOPE` in the environment, is enough. Keys asking for TLS are still refused.
#[derive(Debug, Clone, PartialEq)]
pub struct CtlSettings {
    /// Where the settings came from (for messages): a path, `<env>` or
    /// `<env PATRONI_CONFIGURATION>`.
    pub source: PathBuf,
    /// `scope`, the default cluster for commands.
    pub scope: Option<String>,
    /// `namespace` (`/service` by default).
    pub namespace: String,
    /// The `etcd3` (or legacy `etcd`) section, when there is one.
    pub etcd: Option<EtcdConfig>,
    /// The basic auth pgkeelctl sends to members' REST APIs: `ctl.authentication`, else
    /// `restapi.authentication` (patronictl's `ctl.auth or restapi.auth`).
    pub rest_auth: Option<BasicAuth>,
}

/// `restapi:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RestApiConfig {
    /// `host:port` the REST API binds to.
    pub listen: String,
    /// `host:port` peers and clients use to reach this node's API (goes into `api_url`).
    pub connect_address: String,
    /// Basic auth required by the write endpoints (POST/PUT/PATCH/DELETE).
    pub authentication: Option<BasicAuth>,
    /// `allowlist`: the only clients (IP addresses, networks, host names) the write endpoints
    /// accept; empty: any.
    pub allowlist: Vec<String>,
    /// `allowlist_include_members`: the members' REST API hosts may write too.
    pub allowlist_include_members: bool,
}

/// `ctl:` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CtlConfig {
    /// Basic auth sent by pgkeelctl; `None` means "use `restapi.authentication`".
    pub authentication: Option<BasicAuth>,
}

/// HTTP basic-auth credentials. `Debug` never prints the password.
#[derive(Clone, PartialEq)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password (never logged).
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `etcd3:` section (etcd v3, native gRPC). `Debug` never prints the password.
#[derive(Clone, PartialEq)]
pub struct EtcdConfig {
    /// Endpoints as `host:port`, from `proxy`, `url`, `hosts` (list or comma string) or `host`.
    pub hosts: Vec<String>,
    /// Always `http`: a configuration asking for TLS to etcd (`https`, `cacert`, `cert`, `key`)
    /// is refused until pgkeel supports it.
    pub protocol: String,
    /// etcd user (auth enabled clusters).
    pub username: Option<String>,
    /// etcd password (never logged).
    pub password: Option<String>,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("hosts", &self.hosts)
            .field("protocol", &self.protocol)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl EtcdConfig {
    /// Endpoint URLs such as `http://127.0.0.1:2379`, as the etcd client wants them.
    pub fn endpoints(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| format!("{}://{}", self.protocol, h))
            .collect()
    }
}

/// `bootstrap:` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BootstrapConfig {
    /// `bootstrap.dcs`: the initial dynamic configuration written to `/config` (JSON object).
    pub dcs: serde_json::Map<String, serde_json::Value>,
    /// `initdb` options already rendered as command-line arguments (`--encoding=UTF8`, `--data-checksums`).
    pub initdb: Vec<String>,
    /// Legacy `bootstrap.pg_hba` lines (used when `postgresql.pg_hba` is empty).
    pub pg_hba: Vec<String>,
    /// Command run once after initdb, with the superuser's local connection string appended
    /// as its last argument (`bootstrap.post_bootstrap`, alias `post_init`).
    pub post_bootstrap: Option<ShellCommand>,
    /// Legacy `bootstrap.users` (removed in Patroni 4, still common in old configs): roles
    /// created once after initdb. Read with a deprecation warning.
    pub users: Vec<BootstrapUser>,
}

/// One entry of the legacy `bootstrap.users` map.
#[derive(Clone, PartialEq)]
pub struct BootstrapUser {
    /// Role name (the map key).
    pub name: String,
    /// Password (never logged).
    pub password: Option<String>,
    /// Role options such as `createrole`, `createdb`.
    pub options: Vec<String>,
}

impl std::fmt::Debug for BootstrapUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapUser")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `postgresql:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresqlConfig {
    /// `host:port` (host may be a comma list) PostgreSQL listens on.
    pub listen: String,
    /// `host:port` others use to connect to this node (goes into `conn_url`).
    pub connect_address: String,
    /// PGDATA.
    pub data_dir: PathBuf,
    /// Directory of `pg_ctl`, `initdb`, ... (`None`: search `$PATH`, then `/usr/lib/postgresql/*/bin`).
    pub bin_dir: Option<PathBuf>,
    /// Where pgkeel writes the libpq password file it uses (mode 0600).
    pub pgpass: PathBuf,
    /// Roles pgkeel creates at bootstrap and connects as.
    pub authentication: PgAuthentication,
    /// Extra `postgresql.conf` parameters (values kept as YAML gave them).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// `pg_hba.conf` lines.
    pub pg_hba: Vec<String>,
    /// Use `pg_rewind` to rejoin a former primary.
    pub use_pg_rewind: bool,
    /// Connect to the local server over its unix socket.
    pub use_unix_socket: bool,
    /// Scripts run on role changes and starts/stops.
    pub callbacks: Callbacks,
    /// Wipe and re-clone the data directory when pg_rewind fails.
    pub remove_data_directory_on_rewind_failure: bool,
    /// Wipe and re-clone when the timeline diverged and rewind is not possible.
    pub remove_data_directory_on_diverged_timelines: bool,
    /// Seconds `pg_ctl` waits for start/stop.
    pub pg_ctl_timeout: u64,
    /// Extra `pg_basebackup` options rendered as arguments.
    pub basebackup: Vec<String>,
}

/// `postgresql.authentication`.
#[derive(Debug, Clone, PartialEq)]
pub struct PgAuthentication {
    /// Superuser pgkeel connects as for monitoring and control.
    pub superuser: PgUser,
    /// Role replicas stream with.
    pub replication: PgUser,
    /// Role used by pg_rewind (defaults to the superuser when absent).
    pub rewind: Option<PgUser>,
}

/// A PostgreSQL role and its password. `Debug` never prints the password.
#[derive(Clone, PartialEq)]
pub struct PgUser {
    /// Role name.
    pub username: String,
    /// Password (`None`: trust/peer auth). Never logged.
    pub password: Option<String>,
}

impl std::fmt::Debug for PgUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUser")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `postgresql.callbacks`: commands run as `<cmd words...> <action> <role> <scope>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Callbacks {
    /// After PostgreSQL started.
    pub on_start: Option<ShellCommand>,
    /// After PostgreSQL stopped.
    pub on_stop: Option<ShellCommand>,
    /// After a restart without a role change.
    pub on_restart: Option<ShellCommand>,
    /// After a reload.
    pub on_reload: Option<ShellCommand>,
    /// After a promotion or demotion.
    pub on_role_change: Option<ShellCommand>,
    /// The word a callback gets for the primary role.
    pub primary_role_name: PrimaryRoleName,
}

/// What callbacks are told the primary's role is (`postgresql.callbacks.primary_role_name`, a
/// pgkeel key): Patroni 4's `primary`, or `master` for scripts written for Patroni 3 and older
/// (such as a VIP script testing `$role == 'master'`), so that they work unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrimaryRoleName {
    /// `primary`, as Patroni 4 passes it.
    #[default]
    Primary,
    /// `master`, as Patroni 3 and older passed it.
    Master,
}

impl PrimaryRoleName {
    /// The word itself.
    pub fn as_str(self) -> &'static str {
        match self {
            PrimaryRoleName::Primary => "primary",
            PrimaryRoleName::Master => "master",
        }
    }
}

/// `tags:` section. Known tags are typed; any other tag is kept and published as given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tags {
    /// Never promote this node.
    pub nofailover: bool,
    /// Promotion preference (higher wins ties); `<= 0` means nofailover. Default 1.
    pub failover_priority: Option<i64>,
    /// Exclude from `/replica` load-balancing checks.
    pub noloadbalance: bool,
    /// Preferred source for new replicas' base backups.
    pub clonefrom: bool,
    /// Never a synchronous standby.
    pub nosync: bool,
    /// Stream from this member instead of the leader.
    pub replicatefrom: Option<String>,
    /// Do not stream WAL at all: replay what `restore_command` and `pg_wal` give.
    pub nostream: bool,
    /// Every tag as published (known ones only when set/true, custom ones verbatim).
    pub published: BTreeMap<String, serde_json::Value>,
}
