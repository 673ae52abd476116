//! SIGHUP and `POST /reload` (Patroni's `reload_config`): the configuration file is read again
//! and applied while the agent runs.
//!
//! A file that does not load (bad YAML, a bad value) is reported with its file and key and the
//! running configuration is kept; PostgreSQL is still reloaded with it, as in Patroni. Of a
//! good one, [`plan`] (pure) decides what changes and how:
//! * `postgresql.parameters`, `postgresql.pg_hba` (and `bootstrap.pg_hba`, used when it is
//!   empty), `postgresql.authentication`: PostgreSQL's configuration files and the pgpass file
//!   are rewritten and PostgreSQL reloaded, through the same core rule and `ReloadConfig`
//!   action as a change of `/config` (`pgkeel_ha` `rules/reload.rs`), followed by `on_reload`.
//!   As on SIGHUP in Patroni, the server is reloaded on every reload, changed or not (the
//!   action's `always`); a parameter that
//!   needs a restart is then reported as `pending_restart` with its old and new values.
//!   The local connection uses the new superuser credentials from its next connect.
//! * `restapi.authentication`, `restapi.allowlist`, `restapi.allowlist_include_members`: the
//!   running REST server checks the next request against the new ones.
//! * `postgresql.callbacks`: the next callback runs the new command.
//! * `log.level`: at once (unless `RUST_LOG` overrides it).
//! * `restapi.listen`: the REST API moves to the new address (bound first; if it cannot be
//!   bound, the error is logged and the API stays where it was), as in Patroni.
//! * tags, `postgresql.connect_address`, `restapi.connect_address`: the member key is
//!   rewritten in the next cycle; `use_pg_rewind`, the `remove_data_directory_*` switches,
//!   `pg_ctl_timeout` and `basebackup` are used from the next time they are needed.
//!
//! Keys that cannot change under a running agent keep their running values, and each changed
//! one is logged by name as taking effect when the agent restarts: `scope`, `namespace`,
//! `name`, `etcd3`, `postgresql.listen`, `postgresql.data_dir`, `postgresql.bin_dir`,
//! `postgresql.pgpass`, `postgresql.use_unix_socket`. `ttl`, `loop_wait` and
//! `retry_timeout` are dynamic settings (`/config`), not local ones, in pgkeel as in Patroni.

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
    Some(loaded.config)
}

/// What a reload applies, decided by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ReloadPlan {
    /// The `postgresql` settings that go into PostgreSQL's files changed (parameters,
    /// `pg_hba`, credentials); informational: the files are rewritten on every reload.
    pub postgres_changed: bool,
    /// `restapi.authentication` or the allowlist changed: the REST server gets the new ones.
    pub restapi_access: bool,
    /// `postgresql.callbacks` changed.
    pub callbacks: bool,
    /// `log.level` changed.
    pub log_level: bool,
    /// `restapi.listen` changed: the REST server moves there.
    pub restapi_listen: bool,
    /// The tags changed.
    pub tags: bool,
    /// Changed keys that take effect only when the agent restarts; they keep their running
    /// values in the configuration [`plan`] returns.
    pub needs_agent_restart: Vec<&'static str>,
}

/// Compares the running configuration with the one read again and returns the configuration
/// to run with (`new`, except that keys which cannot change under a running agent keep their
/// running values) and what to apply. Pure: the caller logs and applies.
pub(crate) fn plan(running: &Config, new: Config) -> (Config, ReloadPlan) {
    let mut applied = new;
    let mut plan = ReloadPlan::default();
    let mut keep = |changed: bool, key: &'static str| {
        if changed {
            plan.needs_agent_restart.push(key);
        }
    };
    keep(applied.scope != running.scope, "scope");
    keep(applied.namespace != running.namespace, "namespace");
    keep(applied.name != running.name, "name");
    keep(applied.etcd != running.etcd, "etcd3");
    let (pg, old) = (&applied.postgresql, &running.postgresql);
    keep(pg.listen != old.listen, "postgresql.listen");
    keep(pg.data_dir != old.data_dir, "postgresql.data_dir");
    keep(pg.bin_dir != old.bin_dir, "postgresql.bin_dir");
    keep(pg.pgpass != old.pgpass, "postgresql.pgpass");
    keep(
        pg.use_unix_socket != old.use_unix_socket,
        "postgresql.use_unix_socket",
    );
    applied.source.clone_from(&running.source);
    applied.scope.clone_from(&running.scope);
    applied.namespace.clone_from(&running.namespace);
    applied.name.clone_from(&running.name);
    applied.etcd = running.etcd.clone();
    let pg = &mut applied.postgresql;
    pg.listen.clone_from(&old.listen);
    pg.data_dir.clone_from(&old.data_dir);
    pg.bin_dir.clone_from(&old.bin_dir);
    pg.pgpass.clone_from(&old.pgpass);
    pg.use_unix_socket = old.use_unix_socket;

    plan.postgres_changed = pg.parameters != old.parameters
        || pg.pg_hba != old.pg_hba
        || pg.authentication != old.authentication
        || applied.bootstrap.pg_hba != running.bootstrap.pg_hba;
    plan.restapi_access = applied.restapi.authentication != running.restapi.authentication
        || applied.restapi.allowlist != running.restapi.allowlist
        || applied.restapi.allowlist_include_members != running.restapi.allowlist_include_members;
    plan.callbacks = applied.postgresql.callbacks != running.postgresql.callbacks;
    plan.log_level = applied.log_level != running.log_level;
    plan.restapi_listen = applied.restapi.listen != running.restapi.listen;
    plan.tags = applied.tags != running.tags;
    (applied, plan)
}

impl super::Agent {
    /// Applies a reload's configuration to the agent's own parts: the configuration the
    /// executor reads, PostgreSQL's reloadable settings (written by the core's next
    /// `ReloadConfig`), the callbacks, the REST server's credentials and allowlist, the log
    /// level. Writes no file and touches no server.
    pub(super) fn apply_reload(
        &self,
        applied: &Config,
        plan: &ReloadPlan,
        write_guard: &crate::api::WriteGuard,
    ) {
        plan.log(applied);
        let live = Arc::new(applied.clone());
        match self.live.write() {
            Ok(mut slot) => *slot = live,
            Err(poisoned) => *poisoned.into_inner() = live,
        }
        self.pg.reconfigure(&applied.postgresql);
        if plan.callbacks {
            self.callbacks
                .set_commands(applied.postgresql.callbacks.clone());
        }
        if plan.restapi_access {
            write_guard.replace(
                applied.restapi.authentication.clone(),
                crate::api::access::AccessList::from_config(
                    &applied.restapi.allowlist,
                    applied.restapi.allowlist_include_members,
                ),
            );
        }
        if plan.log_level && !crate::logging::set_level(&applied.log_level) {
            tracing::info!("log.level not changed: RUST_LOG chose the log filter");
        }
    }
}

impl ReloadPlan {
    /// Logs what the reload applies and what waits for an agent restart (names only: no value
    /// is logged, so no password can be).
    pub(crate) fn log(&self, applied: &Config) {
        if !self.needs_agent_restart.is_empty() {
            tracing::warn!(
                "changes to {} take effect when the agent restarts; the running values are kept",
                self.needs_agent_restart.join(", ")
            );
        }
        if self.postgres_changed {
            tracing::info!("new postgresql settings: rewriting the configuration and reloading");
        }
        if self.restapi_access {
            tracing::info!("new restapi authentication/allowlist applied");
        }
        if self.callbacks {
            tracing::info!("new postgresql.callbacks applied");
        }
        if self.log_level {
            tracing::info!("log level set to {}", applied.log_level);
        }
        if self.tags {
            tracing::info!("new tags applied: {:?}", applied.tags.published);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_config_from_str;

    const BASE: &str = r#"
scope: demo
name: n1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
  authentication: {username: admin, password: old-secret}
etcd3:
  hosts: [127.0.0.1:2379]
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /var/lib/pg/data
  authentication:
    superuser: {username: postgres, password: su}
    replication: {username: replicator, password: rep}
  parameters: {work_mem: 4MB}
  pg_hba: [local all all trust]
"#;

    fn cfg(yaml: &str) -> Config {
        load_config_from_str(yaml, std::path::Path::new("/etc/pgkeel.yml"), &[])
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    fn edited(from: &str, to: &str) -> Config {
        assert!(BASE.contains(from), "{from}");
        cfg(&BASE.replacen(from, to, 1))
    }

    #[test]
    fn an_unchanged_file_changes_nothing_but_still_reloads_postgres() {
        let running = cfg(BASE);
        let (applied, plan) = super::plan(&running, cfg(BASE));
        assert_eq!(applied, running);
        assert_eq!(plan, ReloadPlan::default());
    }

    #[test]
    fn parameters_pg_hba_and_credentials_are_postgres_changes() {
        let running = cfg(BASE);
        for (from, to) in [
            ("work_mem: 4MB", "work_mem: 8MB"),
            ("work_mem: 4MB", "work_mem: 4MB, max_connections: 200"),
            (
                "pg_hba: [local all all trust]",
                "pg_hba: [local all all peer]",
            ),
            ("password: rep", "password: rep2"),
        ] {
            let (applied, plan) = super::plan(&running, edited(from, to));
            assert!(plan.postgres_changed, "{to}");
            assert!(plan.needs_agent_restart.is_empty(), "{to}");
            assert_ne!(applied.postgresql, running.postgresql, "{to}: applied");
        }
    }

    #[test]
    fn restapi_credentials_and_allowlist_apply_at_once() {
        let running = cfg(BASE);
        let (applied, plan) = super::plan(
            &running,
            edited("password: old-secret", "password: new-secret"),
        );
        assert!(plan.restapi_access && !plan.postgres_changed);
        assert_eq!(
            applied.restapi.authentication.map(|a| a.password),
            Some("new-secret".to_string())
        );
        let (_, plan) = super::plan(
            &running,
            edited(
                "  connect_address: 127.0.0.1:8008\n",
                "  connect_address: 127.0.0.1:8008\n  allowlist: [10.0.0.0/8]\n",
            ),
        );
        assert!(plan.restapi_access);
    }

    #[test]
    fn callbacks_log_level_and_tags_are_applied() {
        let running = cfg(BASE);
        let (_, plan) = super::plan(
            &running,
            edited(
                "  pg_hba: [local all all trust]\n",
                "  pg_hba: [local all all trust]\n  callbacks: {on_reload: /bin/true}\n",
            ),
        );
        assert!(plan.callbacks && !plan.postgres_changed);
        let (applied, plan) = super::plan(&running, cfg(&format!("{BASE}log: {{level: DEBUG}}\n")));
        assert!(plan.log_level);
        assert_eq!(applied.log_level, "DEBUG");
        let (_, plan) = super::plan(
            &running,
            cfg(&format!("{BASE}tags: {{nofailover: true}}\n")),
        );
        assert!(plan.tags && plan.needs_agent_restart.is_empty());
    }

    /// A reload that changed the member name made the core act as another member than the
    /// one the agent writes keys for; such keys now keep their running values.
    #[test]
    fn keys_that_need_an_agent_restart_keep_their_running_values_and_are_named() {
        let running = cfg(BASE);
        let new = cfg(&BASE
            .replacen("name: n1", "name: n9", 1)
            .replacen("scope: demo", "scope: other", 1)
            .replacen("listen: 127.0.0.1:8008", "listen: 127.0.0.1:9008", 1)
            .replacen("hosts: [127.0.0.1:2379]", "hosts: [127.0.0.1:2479]", 1)
            .replacen("data_dir: /var/lib/pg/data", "data_dir: /srv/pg", 1)
            .replacen("listen: 127.0.0.1:5432", "listen: 127.0.0.1:6432", 1)
            .replacen("work_mem: 4MB", "work_mem: 5MB", 1));
        let (applied, plan) = super::plan(&running, new);
        assert_eq!(
            plan.needs_agent_restart,
            [
                "scope",
                "name",
                "etcd3",
                "postgresql.listen",
                "postgresql.data_dir",
                // Its default is named after the member.
                "postgresql.pgpass"
            ]
        );
        assert_eq!(applied.name, "n1");
        assert_eq!(applied.scope, "demo");
        assert_eq!(applied.etcd, running.etcd);
        // The REST API moves to a new address (the agent binds it first).
        assert!(plan.restapi_listen);
        assert_eq!(applied.restapi.listen, "127.0.0.1:9008");
        assert_eq!(applied.postgresql.listen, "127.0.0.1:5432");
        assert_eq!(
            applied.postgresql.data_dir,
            std::path::PathBuf::from("/var/lib/pg/data")
        );
        // What can be applied still is.
        assert!(plan.postgres_changed);
        assert_eq!(
            applied.postgresql.parameters.get("work_mem"),
            Some(&serde_json::json!("5MB"))
        );
    }
}
