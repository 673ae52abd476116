//! What a [`PgNode`] observes: the data directory's state and `pg_controldata`, its major
//! version, [`PostgresControl::probe`] for each HA cycle and [`PgNode::status_details`] for
//! `GET /patroni`.
//!
//! Observation only: nothing here changes the server or its files (a probe adopts a running
//! postmaster for exit watching, which is the lifecycle's bookkeeping).
//!
//! [`PostgresControl::probe`]: crate::postgres::PostgresControl::probe

use std::path::PathBuf;
use std::time::Duration;

use pgkeel_ha::pg::{
    DataDir, LocalPostgres, Lsn, PendingRestart, ReplicationConnection, ServerRole,
};

use super::{PgNode, QUERY_TIMEOUT};
use crate::postgres::{PgError, ReplicationRow, StatusDetails, conf, os};

impl PgNode {
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
    pub(super) fn major_version(&self) -> Option<u32> {
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

    pub(super) async fn controldata(&self) -> Result<conf::ControlData, PgError> {
        let tool = self.tool(
            "pg_controldata",
            vec![self.cfg.data_dir.clone().into()],
            Duration::from_secs(10),
        );
        let out = os::run_tool(&tool, self.os_user()?.as_ref()).await?;
        Ok(conf::parse_controldata(&out))
    }

    /// Data directory state, plus `pg_controldata` when initialized.
    pub(super) async fn data_dir_state(&self) -> (DataDir, Option<conf::ControlData>) {
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

    /// Observes the data directory and the server; never fails: the body of
    /// [`PostgresControl::probe`].
    ///
    /// [`PostgresControl::probe`]: crate::postgres::PostgresControl::probe
    pub(super) async fn probe(&self) -> LocalPostgres {
        let mut lp = LocalPostgres::empty();
        let (data_dir, cd) = self.data_dir_state().await;
        lp.data_dir = data_dir;
        if let Some(cd) = &cd {
            lp.cluster_state = cd.state.clone();
            (lp.checkpoint_lsn, lp.timeline) = cd.wal_end();
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
            (pg_catalog.pg_control_checkpoint()).timeline_id, \
            pg_catalog.pg_postmaster_start_time()::text, \
            pg_catalog.current_setting('synchronous_standby_names'), \
            pg_catalog.current_setting('synchronous_commit')";
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
        lp.postmaster_start_time = row
            .try_get::<_, Option<String>>(9)
            .ok()
            .flatten()
            .map(|t| conf::iso_offset(&t));
        let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
        lp.synchronous_standby_names = text(10);
        lp.synchronous_commit = text(11);
        let checkpoint_tli = int(8).and_then(|v| u32::try_from(v).ok());
        if in_recovery {
            lp.role = Some(ServerRole::Replica);
            lp.receive_lsn = lsn(4);
            lp.replay_lsn = lsn(5);
            lp.wal_position = lp.receive_lsn.max(lp.replay_lsn);
            let receiver = row.try_get::<_, Option<String>>(6).ok().flatten();
            lp.wal_receiver = receiver.is_some();
            lp.streaming = receiver.is_some_and(|s| s == "streaming");
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
        if lp.role == Some(ServerRole::Primary) {
            lp.replication = self.replication_connections().await;
        }
        lp.pending_restart = self.pending_restart().await;
        // Started above its configuration (a standby behind its primary's settings).
        if let Ok(raised) = self.raised.lock() {
            for r in raised.iter() {
                if !lp.pending_restart.iter().any(|p| p.name == r.name) {
                    lp.pending_restart.push(r.clone());
                }
            }
        }
        lp
    }

    /// The primary's walsenders with their positions, for choosing synchronous standbys. Empty
    /// when the query fails (then no standby counts as synchronous this cycle).
    async fn replication_connections(&self) -> Vec<ReplicationConnection> {
        const SQL: &str = "SELECT application_name, state, sync_state, write_lsn::text, \
            flush_lsn::text, replay_lsn::text FROM pg_catalog.pg_stat_replication \
            ORDER BY application_name";
        match self.query("replication", SQL, &[], QUERY_TIMEOUT).await {
            Ok(rows) => rows
                .iter()
                .map(|row| {
                    let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
                    let lsn = |i: usize| text(i).and_then(|s| s.parse::<Lsn>().ok());
                    ReplicationConnection {
                        application_name: text(0).unwrap_or_default(),
                        state: text(1).unwrap_or_default(),
                        sync_state: text(2).unwrap_or_default(),
                        write_lsn: lsn(3),
                        flush_lsn: lsn(4),
                        replay_lsn: lsn(5),
                    }
                })
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "could not read pg_stat_replication");
                Vec::new()
            }
        }
    }

    /// Parameters the configuration files changed that apply only after a restart: the value
    /// the server runs with and the one in the files (the last line that sets it). Empty when
    /// the query fails (reading `pg_file_settings` needs the superuser pgkeel connects as).
    async fn pending_restart(&self) -> Vec<PendingRestart> {
        const SQL: &str = "SELECT s.name, pg_catalog.current_setting(s.name), \
            COALESCE((SELECT f.setting FROM pg_catalog.pg_file_settings f \
                      WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1), '') \
            FROM pg_catalog.pg_settings s WHERE s.pending_restart ORDER BY s.name";
        match self.query("pending restart", SQL, &[], QUERY_TIMEOUT).await {
            Ok(rows) => rows
                .iter()
                .filter_map(|row| {
                    Some(PendingRestart {
                        name: row.try_get(0).ok()?,
                        old_value: row.try_get(1).ok()?,
                        new_value: row.try_get(2).ok()?,
                    })
                })
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "could not read the parameters pending a restart");
                Vec::new()
            }
        }
    }
}
