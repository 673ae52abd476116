//! SIGHUP and `POST /reload` (Patroni's `reload_config`): the configuration file is read again.
//! A file that does not load (bad YAML, a bad value) is reported with its file and key and the
//! running configuration is kept. Of a good one, the member's tags (`nofailover`,
//! `failover_priority`, `replicatefrom`, custom tags) take effect at once (the member key is
//! rewritten in the next cycle); changes to other sections are logged as needing an agent
//! restart, which is where pgkeel differs from Patroni today.

use crate::config::{Config, load_config, load_config_from_env_only};
use std::sync::Arc;
use tokio::sync::Notify;

/// Notifies `reload` on every SIGHUP the process receives (nothing when signals cannot be
/// watched, which is logged).
pub(super) fn notify_on_sighup(reload: Arc<Notify>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    reload.notify_one();
                }
            });
        }
        Err(e) => tracing::warn!("cannot watch SIGHUP, reload only through POST /reload: {e}"),
    }
}

/// The configuration read again from where `running` came from, or `None` (logged) when it
/// does not load.
pub(super) fn reread(running: &Config) -> Option<Config> {
    tracing::info!("Reloading configuration from {}", running.source.display());
    let loaded = if running.source.exists() {
        load_config(&running.source)
    } else {
        let env: Vec<(String, String)> = std::env::vars().collect();
        load_config_from_env_only(&env)
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("reload failed, the running configuration is kept: {e}");
            return None;
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let new = loaded.config;
    let mut ignored = Vec::new();
    if (&new.scope, &new.namespace, &new.name)
        != (&running.scope, &running.namespace, &running.name)
    {
        ignored.push("scope/namespace/name");
    }
    if new.restapi != running.restapi {
        ignored.push("restapi");
    }
    if new.etcd != running.etcd {
        ignored.push("etcd3");
    }
    if new.postgresql != running.postgresql {
        ignored.push("postgresql");
    }
    if new.log_level != running.log_level {
        ignored.push("log");
    }
    if !ignored.is_empty() {
        tracing::warn!(
            "changes to {} take effect when the agent restarts (pgkeel applies only tags on reload)",
            ignored.join(", ")
        );
    }
    if new.tags != running.tags {
        tracing::info!("new tags applied: {:?}", new.tags.published);
    }
    Some(new)
}
