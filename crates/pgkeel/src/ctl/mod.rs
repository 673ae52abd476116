//! `pgkeelctl`: patronictl's commands and output.
//!
//! The binary parses [`Cli`] and calls [`main_with`] (or [`run`]) with a function that connects
//! to the DCS; commands read the DCS directly (and, later, talk to members over REST). Commands
//! parse, read, and render with `output`; they hold no cluster policy.
//!
//! # Layout
//! * `cli`: the clap command line.
//! * `target`: where the DCS is (`--dcs-url` or the config file).
//! * `commands`: one file per subcommand (`list`, `topology`, `switchover`, `failover`,
//!   `pause`, `resume`, `show-config`, `edit-config`, `history`, `restart`, `reload`, `reinit`,
//!   `flush`, `query`; `members` holds the member selection and confirmation they share).
//! * `prompt`: click-style prompts on stdin.
//! * `pyyaml`: YAML read as PyYAML's `safe_load` reads it (`edit-config` values and files).
//! * `request`: requests to a member's REST API.
//! * `output`: tables, JSON and YAML as patronictl prints them.

pub mod cli;
pub mod commands;
pub mod output;
pub mod prompt;
pub mod pyyaml;
pub mod request;
pub mod target;

pub use cli::{
    Cli, Command, DsnArgs, EditConfigArgs, FailoverArgs, FlushArgs, HistoryArgs, ListArgs,
    PauseArgs, QueryArgs, ReinitArgs, ReloadArgs, RemoveArgs, RestartArgs, Role, ShowConfigArgs,
    SwitchoverArgs, TopologyArgs, VersionArgs, WatchArgs,
};
pub use commands::list::render_list;
pub use output::OutputFormat;
pub use target::{DcsTarget, parse_dcs_url};

use crate::config::CtlSettings;
use crate::dcs::{Dcs, DcsError};
use std::future::Future;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

/// A pgkeelctl failure; the binary prints `Error: <message>` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad arguments or missing settings.
    #[error("{0}")]
    Usage(String),
    /// The configuration file could not be used.
    #[error("{0}")]
    Config(String),
    /// The DCS failed.
    #[error(transparent)]
    Dcs(#[from] DcsError),
    /// patronictl's `PatroniCtlException`: the operation was refused or aborted.
    #[error("{0}")]
    Failed(String),
    /// End of input at a prompt (click's `Abort`): `Aborted!`, no `Error:` prefix.
    #[error("Aborted!")]
    Aborted,
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// What [`Connect`] returns: a connected DCS or the reason it is not.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn Dcs>, CtlError>> + Send>>;

/// Connects to a DCS target (the binary passes one that builds the etcd client; tests pass a
/// fake).
pub type Connect<'a> = &'a (dyn Fn(&DcsTarget) -> ConnectFuture + Sync);

/// patronictl's default configuration file.
pub fn default_config_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/patroni/patronictl.yaml"))
}

/// Everything a command needs from the global options: the configuration (if any) and where
/// the DCS is.
#[derive(Debug, Clone)]
pub struct Context {
    /// The settings read from the configuration file and/or the `PATRONI_*` environment.
    pub config: Option<CtlSettings>,
    /// The DCS to read.
    pub target: DcsTarget,
}

impl Context {
    /// [`Context::resolve_with`] on the process environment and patronictl's default file.
    pub fn resolve(cli: &Cli) -> Result<Context, CtlError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Context::resolve_with(cli, &env, default_config_path().as_deref())
    }

    /// Resolves the global options like patronictl's `load_config` + `get_dcs`: an explicit
    /// config file must exist; the default one (`default_file`) is used when it exists; without
    /// a file the YAML in `PATRONI_CONFIGURATION` is used, else the `PATRONI_*` variables alone
    /// (`PATRONI_ETCD3_HOSTS`, `PATRONI_ETCD3_URL`, `PATRONI_SCOPE`, `PATRONI_NAMESPACE`...),
    /// which also apply on top of a file. `--dcs-url` replaces the DCS section (and the
    /// namespace, when the URL has a path).
    pub fn resolve_with(
        cli: &Cli,
        env: &[(String, String)],
        default_file: Option<&Path>,
    ) -> Result<Context, CtlError> {
        let file = match &cli.config_file {
            Some(p) if std::fs::metadata(p).is_err() => {
                return Err(CtlError::Config(format!(
                    "Provided config file {} not existing or no read rights. Check the -c/--config-file parameter",
                    p.display()
                )));
            }
            Some(p) => Some(p.as_path()),
            None => default_file.filter(|p| p.is_file()),
        };
        let config = crate::config::load_ctl_settings(file, env)
            .map_err(|e| CtlError::Config(e.to_string()))?;
        let target = match (&cli.dcs_url, &config.etcd) {
            (Some(url), _) => {
                let (mut t, ns) = parse_dcs_url(url)?;
                if ns.is_none() {
                    t.namespace = config.namespace.clone();
                }
                t.insecure = cli.insecure;
                t
            }
            (None, Some(etcd)) if !etcd.hosts.is_empty() => {
                DcsTarget::from_settings(etcd, &config.namespace, cli.insecure)
            }
            _ => {
                return Err(CtlError::Usage(
                    "Can not find suitable configuration of distributed configuration store".into(),
                ));
            }
        };
        Ok(Context {
            config: Some(config),
            target,
        })
    }

    /// The basic auth to send with REST requests (`ctl.authentication`, else
    /// `restapi.authentication`), when configured.
    pub fn rest_auth(&self) -> Option<&crate::config::BasicAuth> {
        self.config.as_ref().and_then(|c| c.rest_auth.as_ref())
    }

    /// The clusters to act on: the given names, else the configuration's `scope`.
    pub fn cluster_names(&self, given: &[String]) -> Result<Vec<String>, CtlError> {
        if !given.is_empty() {
            return Ok(given.to_vec());
        }
        match self.config.as_ref().and_then(|c| c.scope.as_ref()) {
            Some(scope) => Ok(vec![scope.clone()]),
            None => Err(CtlError::Usage(
                "No cluster names were provided: pass CLUSTER or set `scope` in the configuration"
                    .into(),
            )),
        }
    }
}

/// Runs one pgkeelctl invocation, reading prompt answers from `input` and writing its output
/// to `out`.
pub async fn run(
    cli: Cli,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let ctx = Context::resolve(&cli)?;
    match &cli.command {
        Command::List(args) => commands::list::run(&ctx, args, connect, out).await,
        Command::Topology(args) => commands::topology::run(&ctx, args, connect, out).await,
        Command::Switchover(args) => {
            commands::switchover::run(&ctx, args, connect, input, out).await
        }
        Command::Failover(args) => commands::failover::run(&ctx, args, connect, input, out).await,
        Command::Pause(args) => commands::pause::run(&ctx, args, connect, out).await,
        Command::Resume(args) => commands::resume::run(&ctx, args, connect, out).await,
        Command::ShowConfig(args) => commands::show_config::run(&ctx, args, connect, out).await,
        Command::EditConfig(args) => {
            commands::edit_config::run(&ctx, args, connect, input, out).await
        }
        Command::History(args) => commands::history::run(&ctx, args, connect, out).await,
        Command::Remove(args) => commands::remove::run(&ctx, args, connect, input, out).await,
        Command::Version(args) => commands::version::run(&ctx, args, connect, out).await,
        Command::Dsn(args) => commands::dsn::run(&ctx, args, connect, out).await,
        Command::Restart(args) => commands::restart::run(&ctx, args, connect, input, out).await,
        Command::Reload(args) => commands::reload::run(&ctx, args, connect, input, out).await,
        Command::Reinit(args) => commands::reinit::run(&ctx, args, connect, input, out).await,
        Command::Flush(args) => commands::flush::run(&ctx, args, connect, input, out).await,
        Command::Query(args) => commands::query::run(&ctx, args, connect, input, out).await,
    }
}

/// [`run`] on stdin and stdout; prints `Error: <msg>` (or click's `Aborted!`) on stderr and
/// returns exit code 1 on failure.
pub async fn main_with(cli: Cli, connect: Connect<'_>) -> ExitCode {
    let mut stdout = std::io::stdout();
    let mut stdin = std::io::BufReader::new(std::io::stdin());
    match run(cli, connect, &mut stdin, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CtlError::Aborted) => {
            // click prints `Aborted!` alone; the prompt line on stdout is left open.
            let _ = stdout.flush();
            eprintln!("Aborted!");
            ExitCode::FAILURE
        }
        Err(e) => {
            let _ = stdout.flush();
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
