//! `pgkeel CONFIG.yml`: the per-node HA agent (Patroni's `patroni` command).

use anyhow::Context;
use clap::Parser;
use pgkeel::config::{LoadedConfig, load_config, load_config_from_env_only};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// PostgreSQL high availability agent, a drop-in replacement for Patroni.
#[derive(Parser, Debug)]
#[command(name = "pgkeel", version, about)]
struct Args {
    /// Check the configuration file and exit (non-zero on errors).
    #[arg(long)]
    validate_config: bool,
    /// Patroni-compatible YAML configuration file or directory (default: `PATRONI_CONFIGURATION`
    /// or `PATRONI_*` variables).
    config: Option<PathBuf>,
}

fn load(args: &Args) -> Result<LoadedConfig, pgkeel::config::ConfigError> {
    match &args.config {
        Some(p) => load_config(p),
        None => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            load_config_from_env_only(&env)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match load(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if args.validate_config {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}: configuration is valid", loaded.config.source.display());
        return ExitCode::SUCCESS;
    }
    pgkeel::logging::init(&loaded.config.log_level);
    // Room for the HA loop and PostgreSQL's tools next to the REST API's connections.
    match pgkeel::api::server::raise_descriptor_limit() {
        Ok(limit) => tracing::debug!("open-files limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the open-files limit: {e}"),
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Patroni's level: CRITICAL for a duplicate name or a system ID mismatch.
            match e.downcast_ref::<pgkeel::agent::AgentError>() {
                Some(a) if a.is_critical() => pgkeel::critical!("{a}"),
                _ => tracing::error!("{e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(loaded: LoadedConfig) -> anyhow::Result<()> {
    let cfg = loaded.config;
    let etcd = &cfg.etcd;
    let dcs = pgkeel::dcs::etcd::EtcdDcs::connect(
        etcd.endpoints(),
        etcd.username.clone(),
        etcd.password.clone(),
        // During an etcd election requests hang rather than fail; a short bound lets the
        // lease keeper retry on another member well within a short TTL's fencing margin.
        Duration::from_secs(1),
    )
    .await
    .context("connecting to etcd")?;
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending::<()>().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    pgkeel::agent::run(cfg, Arc::new(dcs), shutdown).await?;
    Ok(())
}
