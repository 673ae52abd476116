//! The files a [`PgNode`] manages: the configuration to write (the user's parameters merged
//! with the ones pgkeel manages), `postgresql.conf` with its base-config include and recovery
//! settings, `pg_hba.conf`, `standby.signal`, and the pgpass file.
//!
//! The rendering itself is pure and lives in `conf`; this is where it meets the file system and
//! where a change is classified (reload or restart).

use std::collections::BTreeMap;

use super::{PgNode, default_socket_dir};
use crate::postgres::conf::{self, BASE_CONF, CONF_HEADER, ConninfoContext};
use crate::postgres::{ConfigChange, ManagedConfig, PgError, Recovery, os};

impl PgNode {
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
        let live = self.live();
        for (k, v) in &live.parameters {
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
            pg_hba: live.pg_hba.clone(),
            recovery,
        }
    }

    /// Writes `postgresql.conf`, `pg_hba.conf` and `standby.signal`; reports what changed: the body
    /// of [`PostgresControl::write_config`].
    ///
    /// [`PostgresControl::write_config`]: crate::postgres::PostgresControl::write_config
    pub(super) async fn write_config(
        &self,
        config: &ManagedConfig,
    ) -> Result<ConfigChange, PgError> {
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
        let live = self.live();
        let ctx = ConninfoContext {
            replication_user: &live.authentication.replication.username,
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

    /// Writes the pgpass file, mode 0600, owned by the PostgreSQL OS user: the body of
    /// [`PostgresControl::write_pgpass`].
    ///
    /// [`PostgresControl::write_pgpass`]: crate::postgres::PostgresControl::write_pgpass
    pub(super) async fn write_pgpass(&self) -> Result<(), PgError> {
        let path = &self.cfg.pgpass;
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| PgError::Io {
                what: format!("creating {}", parent.display()),
                source: e,
            })?;
        }
        let content = conf::render_pgpass(&self.live().authentication);
        os::write_atomic(path, content.as_bytes(), 0o600, self.os_user()?.as_ref())
    }
}
