//! The command line of `pgkeelctl`, shaped like patronictl's: `-c/--config-file` and
//! `-d/--dcs-url` go before the subcommand, as in patronictl (`query` has its own `-c` and
//! `-d`); `-k` may also follow it. One `Command` variant per subcommand; each has its file in
//! `commands/`.

use super::output::OutputFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `pgkeelctl`: patronictl-compatible control of a pgkeel (or Patroni) cluster.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pgkeelctl",
    version,
    about = "Control a pgkeel/Patroni cluster"
)]
pub struct Cli {
    /// Configuration file (default: ~/.config/patroni/patronictl.yaml).
    #[arg(short = 'c', long = "config-file", env = "PATRONICTL_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// The DCS: `etcd3://host:port[,host:port][/namespace]` (also `etcd://`, `http://`).
    #[arg(short = 'd', long = "dcs-url", visible_alias = "dcs", env = "DCS_URL")]
    pub dcs_url: Option<String>,
    /// Do not verify TLS certificates.
    #[arg(short = 'k', long = "insecure", global = true)]
    pub insecure: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// pgkeelctl subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// List the members of clusters.
    List(ListArgs),
    /// Print the replication topology of clusters.
    Topology(TopologyArgs),
    /// Switchover to a replica.
    Switchover(SwitchoverArgs),
    /// Failover to a replica.
    Failover(FailoverArgs),
    /// Disable auto failover.
    Pause(PauseArgs),
    /// Resume auto failover.
    Resume(PauseArgs),
    /// Show cluster configuration.
    ShowConfig(ShowConfigArgs),
    /// Edit cluster configuration.
    EditConfig(EditConfigArgs),
    /// Show the history of failovers/switchovers.
    History(HistoryArgs),
    /// Remove cluster from DCS.
    Remove(RemoveArgs),
    /// Output version of pgkeelctl or of the running members.
    Version(VersionArgs),
    /// Generate a dsn for the provided member, defaults to a dsn of the leader.
    Dsn(DsnArgs),
    /// Restart cluster member.
    Restart(RestartArgs),
    /// Reload cluster member configuration.
    Reload(ReloadArgs),
    /// Reinitialize cluster member.
    Reinit(ReinitArgs),
    /// Discard scheduled events.
    Flush(FlushArgs),
    /// Query a Patroni PostgreSQL member.
    Query(QueryArgs),
}

/// patronictl's `CtlPostgresqlRole`: which members a command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The leader (primary or standby leader).
    Leader,
    /// The leader when it is a primary.
    Primary,
    /// The leader when it is a standby leader.
    StandbyLeader,
    /// Every member but the leader.
    Replica,
    /// Every member but the leader.
    Standby,
    /// Every member.
    Any,
}

impl Role {
    /// The name patronictl shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Primary => "primary",
            Role::StandbyLeader => "standby-leader",
            Role::Replica => "replica",
            Role::Standby => "standby",
            Role::Any => "any",
        }
    }
}

/// `restart CLUSTER [MEMBER...] [--group N] [-r ROLE] [--any] [--scheduled TIME]
/// [--pg-version V] [--pending] [--timeout T] [--force]`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// The cluster.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: String,
    /// The members to restart (default: all with the role).
    #[arg(value_name = "MEMBER_NAMES")]
    pub members: Vec<String>,
    /// Citus group.
    #[arg(long = "group")]
    pub group: Option<i64>,
    /// Restart only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: Role,
    /// Restart a single member only.
    #[arg(long = "any")]
    pub any: bool,
    /// Timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601).
    #[arg(long = "scheduled")]
    pub scheduled: Option<String>,
    /// Restart if the PostgreSQL version is less than provided (e.g. 9.5.2).
    #[arg(long = "pg-version")]
    pub pg_version: Option<String>,
    /// Restart if pending.
    #[arg(long = "pending")]
    pub pending: bool,
    /// Return error and fail over if necessary when restarting takes longer than this.
    #[arg(long = "timeout")]
    pub timeout: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// `reload CLUSTER [MEMBER...] [--group N] [-r ROLE] [--force]`.
#[derive(Debug, Clone, Args)]
pub struct ReloadArgs {
    /// The cluster.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: String,
    /// The members to reload (default: all with the role).
    #[arg(value_name = "MEMBER_NAMES")]
    pub members: Vec<String>,
    /// Citus group.
    #[arg(long = "group")]
    pub group: Option<i64>,
    /// Reload only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: Role,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// `reinit CLUSTER [MEMBER...] [--group N] [--force] [--from-leader] [--wait]`.
#[derive(Debug, Clone, Args)]
pub struct ReinitArgs {
    /// The cluster.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: String,
    /// The members to reinitialize (asked for when none is given).
    #[arg(value_name = "MEMBER_NAMES")]
    pub members: Vec<String>,
    /// Citus group.
    #[arg(long = "group")]
    pub group: Option<i64>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
    /// Get basebackup from leader.
    #[arg(long = "from-leader")]
    pub from_leader: bool,
    /// Wait until reinitialization completes.
    #[arg(long = "wait")]
    pub wait: bool,
}

/// `flush CLUSTER [MEMBER...] {restart|switchover} [--group N] [-r ROLE] [--force]`.
#[derive(Debug, Clone, Args)]
pub struct FlushArgs {
    /// The cluster.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: String,
    /// The members, then what to flush: `restart` or `switchover` (the last word).
    #[arg(value_name = "[MEMBER_NAMES]... {restart|switchover}", required = true)]
    pub members_and_target: Vec<String>,
    /// Citus group.
    #[arg(long = "group")]
    pub group: Option<i64>,
    /// Flush only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: Role,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// `-W` / `-w SECS`: repeat the output.
#[derive(Debug, Clone, Default, Args)]
pub struct WatchArgs {
    /// Auto update the screen every 2 seconds.
    #[arg(short = 'W')]
    pub watch_refresh: bool,
    /// Auto update the screen every SECS seconds.
    #[arg(short = 'w', long = "watch", value_name = "SECS")]
    pub watch: Option<f64>,
}

impl WatchArgs {
    /// The refresh interval, if watching.
    pub fn interval(&self) -> Option<std::time::Duration> {
        match (self.watch, self.watch_refresh) {
            (Some(s), _) if s.is_finite() && s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
            (_, true) => Some(std::time::Duration::from_secs(2)),
            _ => None,
        }
    }
}

/// `list [CLUSTER...] [-e] [-t] [-f fmt] [-W|-w SECS]`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Clusters to list (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER")]
    pub clusters: Vec<String>,
    /// Show pending restart, scheduled restart and tags columns even when empty.
    #[arg(short = 'e', long = "extended")]
    pub extended: bool,
    /// Print a timestamp before the output.
    #[arg(short = 't', long = "timestamp")]
    pub timestamp: bool,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: OutputFormat,
    /// Watch options.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// `topology [CLUSTER...] [-W|-w SECS]`.
#[derive(Debug, Clone, Args)]
pub struct TopologyArgs {
    /// Clusters to show (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER")]
    pub clusters: Vec<String>,
    /// Watch options.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// `switchover [CLUSTER] [--leader NAME] [--candidate NAME] [--scheduled TIME] [--force]`.
#[derive(Debug, Clone, Args)]
pub struct SwitchoverArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// The name of the current leader.
    #[arg(long = "leader", visible_alias = "primary")]
    pub leader: Option<String>,
    /// The name of the candidate.
    #[arg(long = "candidate")]
    pub candidate: Option<String>,
    /// Timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601).
    #[arg(long = "scheduled")]
    pub scheduled: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// `failover [CLUSTER] [--candidate NAME] [--force]`.
#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// The name of the candidate.
    #[arg(long = "candidate")]
    pub candidate: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// `pause [CLUSTER] [--wait]` and `resume [CLUSTER] [--wait]`.
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// Wait until the change is applied on all nodes.
    #[arg(long = "wait")]
    pub wait: bool,
}

/// `show-config [CLUSTER]`.
#[derive(Debug, Clone, Args)]
pub struct ShowConfigArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
}

/// `history [CLUSTER] [-f fmt]`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: OutputFormat,
}

/// `edit-config [CLUSTER] [--group N] [-q] [-s K=V]... [-p P=V]... [--apply FILE]
/// [--replace FILE] [--force]`.
#[derive(Debug, Clone, Args)]
pub struct EditConfigArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// Citus group: the keys under `<cluster>/<group>/`, as patronictl reads them.
    #[arg(long = "group")]
    pub group: Option<i64>,
    /// Do not show changes.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Set specific configuration value. Can be specified multiple times.
    #[arg(short = 's', long = "set", value_name = "TEXT")]
    pub set: Vec<String>,
    /// Set specific PostgreSQL parameter value. Shorthand for -s postgresql.parameters. Can be
    /// specified multiple times.
    #[arg(short = 'p', long = "pg", value_name = "TEXT")]
    pub pg: Vec<String>,
    /// Apply configuration from file. Use - for stdin.
    #[arg(long = "apply", value_name = "TEXT")]
    pub apply: Option<String>,
    /// Apply configuration from file, replacing existing configuration. Use - for stdin.
    #[arg(long = "replace", value_name = "TEXT")]
    pub replace: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// `remove CLUSTER [-f fmt]`.
#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    /// The cluster whose keys are removed.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: String,
    /// Output format of the member list shown first.
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: OutputFormat,
}

/// `version [CLUSTER [MEMBER...]]`.
#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// The cluster whose members are asked (none: only pgkeelctl's own version).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// Only these members.
    #[arg(value_name = "MEMBER_NAMES")]
    pub members: Vec<String>,
}

/// `dsn [CLUSTER] [--group N] [-r ROLE | -m MEMBER]`.
#[derive(Debug, Clone, Args)]
pub struct DsnArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// Citus group.
    #[arg(long = "group")]
    pub group: Option<i64>,
    /// Give a dsn of any member with this role.
    #[arg(short = 'r', long = "role", value_enum)]
    pub role: Option<Role>,
    /// Generate a dsn for this member.
    #[arg(short = 'm', long = "member")]
    pub member: Option<String>,
}

/// `query [CLUSTER] [--group N] [--format FMT] [-f FILE | -c SQL] [--password] [-U USER]
/// [-W | -w SECS] [-r ROLE | -m MEMBER] [--delimiter D] [-d DBNAME]`.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// The cluster (default: the configuration's `scope`).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// Citus group.
    #[arg(long = "group")]
    pub group: Option<i64>,
    /// Output format (pretty, tsv, json, yaml); patronictl takes any word and prints nothing
    /// for one it does not know.
    #[arg(long = "format", default_value = "tsv")]
    pub format: String,
    /// Execute the SQL commands from this file (checked for readability when parsed, as
    /// click's `File` does).
    #[arg(short = 'f', long = "file", value_name = "P_FILE", value_parser = readable_file)]
    pub file: Option<PathBuf>,
    /// Force password prompt.
    #[arg(long = "password")]
    pub password: bool,
    /// Database user name.
    #[arg(short = 'U', long = "username")]
    pub username: Option<String>,
    /// Watch options.
    #[command(flatten)]
    pub watch: WatchArgs,
    /// The role of the query.
    #[arg(short = 'r', long = "role", value_enum)]
    pub role: Option<Role>,
    /// Query a specific member.
    #[arg(short = 'm', long = "member")]
    pub member: Option<String>,
    /// The column delimiter.
    #[arg(long = "delimiter", default_value = "\t")]
    pub delimiter: String,
    /// The SQL commands to execute.
    #[arg(short = 'c', long = "command")]
    pub command: Option<String>,
    /// Database name to connect to.
    #[arg(short = 'd', long = "dbname")]
    pub dbname: Option<String>,
}

/// `--file`'s parser: the path, once it opens for reading.
fn readable_file(s: &str) -> Result<PathBuf, String> {
    std::fs::File::open(s)
        .map(|_| PathBuf::from(s))
        .map_err(|e| format!("'{s}': {e}"))
}
