//! Executes the core's `Action`s against the DCS and PostgreSQL.
//!
//! The only module that performs side effects for the HA loop. It decides nothing: a new
//! condition here belongs in `pgkeel_ha::ha::rules`. Which action runs next, and what a failure
//! skips, is the cycle driver's (`pgkeel_ha::ha::Cycle`) business: this runs one action and
//! says what it gave.

use super::{
    Agent, AgentError,
    tasks::{TaskError, TaskSlot},
};
use crate::config::ShellCommand;
use crate::postgres::{ManagedConfig, Recovery, StopMode as PgStop, Upstream};
use pgkeel_ha::cluster::{
    Cluster, GlobalConfig, merge_timeline_history, parse_timeline_history_file,
};
use pgkeel_ha::ha::{Action, Observation, Outcome, PeerStatus, Ran, StopMode, TaskKind};
use pgkeel_ha::keys::codec::{
    encode_history, encode_status, encode_sync, slot_name_from_member_name, status_is_current,
};
use std::sync::Arc;
use std::time::Duration;

/// Why an action failed. Reported to the core as `Outcome::ActionFailed` (with this text) and
/// logged; the kinds keep where the failure came from.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActionError {
    /// The DCS refused or did not answer.
    #[error(transparent)]
    Dcs(#[from] crate::dcs::DcsError),
    /// A PostgreSQL operation failed.
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PgError),
    /// A file operation of the agent's own failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The action cannot run as asked (no lease yet, a member without a usable address).
    #[error("{0}")]
    Impossible(String),
}

impl From<String> for ActionError {
    fn from(why: String) -> Self {
        ActionError::Impossible(why)
    }
}

impl From<&str> for ActionError {
    fn from(why: &str) -> Self {
        ActionError::Impossible(why.to_string())
    }
}

impl Agent {
    /// Runs one action of the core and reports what it gave (`Err`: the agent ends).
    pub(super) async fn execute(
        self: &Arc<Self>,
        action: &Action,
        obs: &Observation,
        tasks: &mut TaskSlot,
        config: &GlobalConfig,
    ) -> Result<Ran, AgentError> {
        let cluster = obs.dcs.as_ref().ok();
        let lease = obs.lease.map(|l| l.id);
        let r: Result<Ran, ActionError> = match action {
            Action::RaceInitialize => self
                .dcs
                .create_if_absent(&self.layout.initialize(), b"", None)
                .await
                .map(|won| Ran::Outcome(Outcome::InitializeRace { won }))
                .map_err(ActionError::from),
            Action::WriteInitialize { sysid, create_only } => {
                let key = self.layout.initialize();
                if *create_only {
                    self.dcs
                        .create_if_absent(&key, sysid.as_bytes(), None)
                        .await
                        .map(|_| Ran::Done)
                } else {
                    self.dcs
                        .put(&key, sysid.as_bytes(), None)
                        .await
                        .map(|()| Ran::Done)
                }
                .map_err(ActionError::from)
            }
            Action::DeleteInitialize => done(self.dcs.delete(&self.layout.initialize()).await),
            Action::WriteConfig => {
                // As Patroni stores its adjusted dynamic configuration: `/config` shows the
                // timing values that actually run (loop_wait/retry_timeout lowered to fit ttl).
                let dcs = GlobalConfig::with_effective_timeouts(&self.cfg.bootstrap.dcs);
                let v = serde_json::Value::Object(dcs).to_string();
                self.dcs
                    .create_if_absent(&self.layout.config(), v.as_bytes(), None)
                    .await
                    .map(|_| Ran::Done)
                    .map_err(ActionError::from)
            }
            Action::AcquireLeader => match lease {
                None => Err("no lease".into()),
                Some(l) => self
                    .dcs
                    .create_if_absent(&self.layout.leader(), self.cfg.name.as_bytes(), Some(l))
                    .await
                    .map(|won| Ran::Outcome(Outcome::LeaderAcquired { won }))
                    .map_err(ActionError::from),
            },
            Action::TakeLeader => match lease {
                None => Err("no lease".into()),
                Some(l) => done(
                    self.dcs
                        .put(&self.layout.leader(), self.cfg.name.as_bytes(), Some(l))
                        .await,
                ),
            },
            Action::RefreshLeader => match lease {
                None => Err("no lease".into()),
                Some(l) => {
                    let name = self.cfg.name.as_bytes();
                    self.dcs
                        .put_if_value(&self.layout.leader(), name, name, Some(l))
                        .await
                        .map(|ok| Ran::Outcome(Outcome::LeaderRefreshed { ok }))
                        .map_err(ActionError::from)
                }
            },
            Action::ReleaseLeader => done(
                self.dcs
                    .delete_if_value(&self.layout.leader(), self.cfg.name.as_bytes())
                    .await
                    .map(|_| ()),
            ),
            Action::DeleteStaleLeader {
                name,
                mod_revision,
                reason,
            } => self
                .dcs
                .delete_if_mod_revision(&self.layout.leader(), *mod_revision)
                .await
                .map(|deleted| {
                    if deleted {
                        tracing::warn!(
                            "removed stale leader key {} = {name:?} (mod_revision {mod_revision}): {reason}",
                            self.layout.leader()
                        );
                    } else {
                        tracing::info!(
                            "stale leader key {} changed before it could be removed",
                            self.layout.leader()
                        );
                    }
                    Ran::Done
                })
                .map_err(ActionError::from),
            Action::StartTask(kind) => {
                let work = self
                    .clone()
                    .task(kind.clone(), cluster.cloned(), config.use_slots);
                tasks.start(kind.clone(), work);
                Ok(Ran::Done)
            }
            Action::CancelTask => {
                tasks.cancel().await;
                Ok(Ran::Done)
            }
            Action::Promote => self.promote().await.map(|()| Ran::Done),
            Action::Stop(mode) => self.stop(*mode).await.map(|()| Ran::Done),
            Action::Follow { leader } => self
                .follow(leader, cluster, config.use_slots)
                .await
                .map(|needs_restart| {
                    if needs_restart {
                        Ran::Outcome(Outcome::RestartNeeded {
                            leader: leader.clone(),
                        })
                    } else {
                        Ran::Done
                    }
                }),
            Action::StopStreaming => self.stop_streaming(cluster).await.map(|()| Ran::Done),
            Action::ReloadConfig { follow, always } => self
                .reload_config(follow.as_deref(), *always, cluster, config.use_slots)
                .await
                .map(|()| Ran::Done),
            Action::CreateSlot { name } => self.create_slot(name).await.map(|()| Ran::Done),
            Action::DropSlot { name } => {
                self.drop_slot(name).await;
                Ok(Ran::Done)
            }
            Action::SyncSlots { wanted } => self.sync_slots(wanted, obs).map(|()| Ran::Done),
            Action::WriteStatus => self.write_status(obs).await.map(|()| Ran::Done),
            Action::Checkpoint => {
                // Patroni ignores a failed CHECKPOINT before stopping: the stop checkpoints
                // anyway.
                if let Err(e) = self.pg.checkpoint().await {
                    tracing::warn!("CHECKPOINT before the demotion failed: {e}");
                }
                Ok(Ran::Done)
            }
            Action::WriteShutdownPosition => {
                self.write_shutdown_position().await.map(|()| Ran::Done)
            }
            Action::ClearFailover { mod_revision } => self
                .dcs
                .put_if_mod_revision(&self.layout.failover(), *mod_revision, b"{}")
                .await
                .map(|written| {
                    if !written {
                        tracing::info!("failover key changed before it could be cleaned up");
                    }
                    Ran::Done
                })
                .map_err(ActionError::from),
            Action::SetSynchronousStandbyNames { value } => {
                match value.as_deref() {
                    Some("") => tracing::info!("Resetting synchronous_standby_names"),
                    Some(v) => tracing::info!("Assigning synchronous_standby_names to {v}"),
                    None => tracing::info!(
                        "Restoring the configured synchronous_standby_names (synchronous mode is off)"
                    ),
                }
                done(self.pg.set_synchronous_standby_names(value.as_deref()).await)
            }
            Action::WriteSync {
                leader,
                sync_standby,
                quorum,
                expected,
            } => {
                let v = encode_sync(leader, sync_standby, *quorum);
                let key = self.layout.sync();
                let written = match expected {
                    Some(rev) => self.dcs.put_if_mod_revision(&key, *rev, v.as_bytes()).await,
                    None => self.dcs.create_if_absent(&key, v.as_bytes(), None).await,
                };
                match written {
                    Ok(true) => Ok(Ran::Done),
                    Ok(false) => Err(ActionError::from(
                        "Synchronous replication key updated by someone else",
                    )),
                    Err(e) => Err(ActionError::from(e)),
                }
            }
            Action::DeleteSync { mod_revision } => self
                .dcs
                .delete_if_mod_revision(&self.layout.sync(), *mod_revision)
                .await
                .map_err(ActionError::from)
                .and_then(|deleted| {
                    if deleted {
                        Ok(Ran::Done)
                    } else {
                        Err(ActionError::from("Synchronous replication key updated by someone else"))
                    }
                }),
            Action::UpdateHistory => self.update_history(obs).await.map(|()| Ran::Done),
            Action::ProbePeers => Ok(Ran::Peers(self.probe_peers(cluster).await)),
            Action::RemoveDataDir => done(self.pg.remove_data_dir().await),
            Action::MoveDataDirAside => done(self.pg.move_data_dir_aside().await),
            Action::CheckUniqueName { liveness_url } => {
                let probe = self
                    .http
                    .get(liveness_url)
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await;
                Ok(Ran::Outcome(Outcome::UniqueNameChecked {
                    taken: probe.is_ok(),
                }))
            }
            Action::DuplicateName => {
                return Err(AgentError::DuplicateName(self.cfg.name.clone()));
            }
            Action::WriteMember(update) => {
                let json = update.member.to_json();
                let key = self.layout.member(&self.cfg.name);
                return Ok(
                    match self.dcs.put(&key, json.as_bytes(), Some(update.lease)).await {
                        Ok(()) => Ran::Done,
                        Err(e) => {
                            tracing::warn!("could not update the member key: {e}");
                            Ran::Failed(e.to_string())
                        }
                    },
                );
            }
            Action::Callback { event, role } => {
                self.callbacks.submit(*event, *role);
                Ok(Ran::Done)
            }
            Action::RevokeLease => match lease {
                None => Ok(Ran::Done),
                Some(l) => done(self.dcs.revoke_lease(l).await),
            },
            Action::Exit => Ok(Ran::Done),
            Action::Fatal { message, critical } => {
                return Err(AgentError::Fatal {
                    message: message.clone(),
                    critical: *critical,
                });
            }
        };
        Ok(r.unwrap_or_else(|error| {
            tracing::warn!("{action:?} failed: {error}");
            Ran::Failed(error.to_string())
        }))
    }

    /// The managed config, with the dynamic `postgresql.parameters` under the local ones.
    pub(super) fn managed_config(
        &self,
        recovery: Option<Recovery>,
        cluster: Option<&Cluster>,
    ) -> ManagedConfig {
        let mut mc = self.pg.managed_config(recovery);
        let live = self.live_cfg();
        let dynamic = cluster
            .and_then(|c| c.config.as_ref())
            .map(|c| c.data.clone())
            .unwrap_or_else(|| live.bootstrap.dcs.clone());
        if let Some(params) = dynamic
            .get("postgresql")
            .and_then(|p| p.get("parameters"))
            .and_then(|p| p.as_object())
        {
            for (k, v) in params {
                if !live.postgresql.parameters.contains_key(k) {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Bool(true) => "on".into(),
                        serde_json::Value::Bool(false) => "off".into(),
                        other => other.to_string(),
                    };
                    mc.parameters.insert(k.clone(), v);
                }
            }
        }
        if mc.pg_hba.is_empty() {
            mc.pg_hba = live.bootstrap.pg_hba.clone();
        }
        mc
    }

    /// Recovery settings to stream from `member`, with this node's slot when the core's view of
    /// the dynamic configuration says `use_slots`.
    pub(super) fn recovery_for(
        &self,
        member: &str,
        cluster: Option<&Cluster>,
        use_slots: bool,
    ) -> Result<Recovery, ActionError> {
        let (host, port) = cluster
            .and_then(|c| c.member(member))
            .and_then(|m| m.host_port())
            .ok_or_else(|| format!("member {member} has no usable conn_url"))?;
        Ok(Recovery::streaming_from(Upstream {
            leader_name: member.to_string(),
            host,
            port,
            slot_name: use_slots.then(|| slot_name_from_member_name(&self.cfg.name)),
            nostream: self.live_cfg().tags.nostream,
        }))
    }

    async fn promote(&self) -> Result<(), ActionError> {
        let timeout = Duration::from_secs(self.live_cfg().postgresql.pg_ctl_timeout);
        self.pg.promote(timeout).await.map_err(ActionError::from)?;
        // A checkpoint right after promotion makes the new timeline visible in pg_control,
        // which pg_rewind on the former primary relies on.
        if let Err(e) = self.pg.checkpoint().await {
            tracing::warn!("CHECKPOINT after promote failed: {e}");
        }
        Ok(())
    }

    async fn stop(&self, mode: StopMode) -> Result<(), ActionError> {
        // A demotion forced by a lost lease must not hang: immediate, escalating to SIGKILL
        // after one second. A fast stop escalates after pg_ctl_timeout.
        let (pg_mode, bound) = match mode {
            StopMode::Immediate => (PgStop::Immediate, Duration::from_secs(1)),
            StopMode::Fast => (
                PgStop::Fast,
                Duration::from_secs(self.live_cfg().postgresql.pg_ctl_timeout),
            ),
        };
        self.pg
            .stop(pg_mode, bound)
            .await
            .map(|_| ())
            .map_err(ActionError::from)
    }

    /// Points the running replica at `leader`: rewrites the recovery settings and reloads.
    /// `Ok(true)` when the new settings need a restart, which the core decides on.
    /// Rewrites the configuration files with the current settings (a replica keeps streaming
    /// from `follow`) and reloads the server if they changed. A parameter that needs a restart
    /// is not restarted for: PostgreSQL reports it as pending, and the operator decides.
    async fn reload_config(
        &self,
        follow: Option<&str>,
        always: bool,
        cluster: Option<&Cluster>,
        use_slots: bool,
    ) -> Result<(), ActionError> {
        let rec = match follow {
            Some(member) => Some(self.recovery_for(member, cluster, use_slots)?),
            None => None,
        };
        let mc = self.managed_config(rec, cluster);
        // Credentials may have been reloaded: the walreceiver and the tools read them here.
        self.pg.write_pgpass().await.map_err(ActionError::from)?;
        let change = self.pg.write_config(&mc).await.map_err(ActionError::from)?;
        if change.changed {
            tracing::info!(
                "Reloading PostgreSQL configuration (changed: {})",
                change.changed_parameters.join(", ")
            );
            self.pg.reload().await.map_err(ActionError::from)?;
        } else if always {
            tracing::info!("Reloading PostgreSQL configuration.");
            self.pg.reload().await.map_err(ActionError::from)?;
        }
        Ok(())
    }

    async fn follow(
        &self,
        leader: &str,
        cluster: Option<&Cluster>,
        use_slots: bool,
    ) -> Result<bool, ActionError> {
        let rec = self.recovery_for(leader, cluster, use_slots)?;
        let mc = self.managed_config(Some(rec), cluster);
        let change = self.pg.write_config(&mc).await.map_err(ActionError::from)?;
        if change.needs_restart {
            return Ok(true);
        }
        if change.changed {
            self.pg.reload().await.map_err(ActionError::from)?;
        }
        Ok(false)
    }

    /// The replica keeps running but streams from nobody: its recovery settings lose
    /// `primary_conninfo` and a reload stops the WAL receiver (PostgreSQL 13 and later; an
    /// older server would need a restart, which is not done for this).
    async fn stop_streaming(&self, cluster: Option<&Cluster>) -> Result<(), ActionError> {
        let mc = self.managed_config(Some(Recovery::without_upstream()), cluster);
        let change = self.pg.write_config(&mc).await.map_err(ActionError::from)?;
        if change.needs_restart {
            tracing::warn!(
                "stopping the WAL receiver needs a restart on this PostgreSQL version; left streaming"
            );
            return Ok(());
        }
        if change.changed {
            tracing::info!("stopped streaming: no leader to follow");
            self.pg.reload().await.map_err(ActionError::from)?;
        }
        Ok(())
    }

    async fn create_slot(&self, name: &str) -> Result<(), ActionError> {
        use std::sync::atomic::Ordering;
        match self.pg.create_physical_slot(name).await {
            Ok(_) => {
                tracing::info!("created replication slot {name}");
                self.slot_shortage_logged.store(false, Ordering::Relaxed);
                Ok(())
            }
            // PostgreSQL's "all replication slots are in use": nothing this cycle can fix, and
            // it must not skip the `status` write that follows.
            Err(e) if e.is_configuration_limit() => {
                if !self.slot_shortage_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot create replication slot {name}: {e}; raise max_replication_slots \
                         (logged once until a slot can be created)"
                    );
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drops a slot the core found unknown; never fails the decision (Patroni's messages and
    /// levels, `SlotsHandler._drop_replication_slot`).
    async fn drop_slot(&self, name: &str) {
        tracing::info!("Trying to drop unknown replication slot '{name}'");
        match self.pg.drop_slot(name).await {
            Ok(true) => tracing::info!("Dropped replication slot '{name}'"),
            Ok(false) => {
                tracing::warn!("Unable to drop replication slot '{name}', slot is active")
            }
            Err(e) => tracing::error!("Failed to drop replication slot '{name}': {e}"),
        }
    }

    /// Keeps the observed positions of the wanted slots for the `status` key.
    fn sync_slots(&self, wanted: &[String], obs: &Observation) -> Result<(), ActionError> {
        let Some(existing) = &obs.slots else {
            return Err("the replication slots could not be listed".into());
        };
        if let Ok(mut m) = self.slot_lsns.lock() {
            *m = existing
                .iter()
                .filter(|s| wanted.contains(&s.name))
                .filter_map(|s| Some((s.name.clone(), s.restart_lsn?.0)))
                .collect();
        }
        Ok(())
    }

    async fn write_status(&self, obs: &Observation) -> Result<(), ActionError> {
        let Some(optime) = obs.local.wal_position else {
            return Ok(());
        };
        let slots = self.slot_lsns.lock().map(|m| m.clone()).unwrap_or_default();
        let mut all = slots;
        all.insert(slot_name_from_member_name(&self.cfg.name), optime.0);
        // Compared with what etcd holds (this cycle's snapshot), not with what this agent wrote
        // last: a value written by anyone else (`{"optime": 18446744073709551615}`) is corrected.
        if let Ok(c) = &obs.dcs
            && status_is_current(&c.status, optime.0, &all)
        {
            return Ok(());
        }
        let v = encode_status(optime.0, &all, &[]);
        self.dcs
            .put(&self.layout.status(), v.as_bytes(), None)
            .await
            .map_err(ActionError::from)
    }

    /// After a clean stop, `status` = `{"optime": <shutdown checkpoint>}` (Patroni's
    /// `delete_leader(last_lsn)`); nothing after an unclean one.
    async fn write_shutdown_position(&self) -> Result<(), ActionError> {
        let local = self.pg.probe().await;
        let (Some("shut down"), Some(lsn)) = (local.cluster_state.as_deref(), local.checkpoint_lsn)
        else {
            return Ok(());
        };
        let v = encode_status(lsn.0, &Default::default(), &[]);
        self.dcs
            .put(&self.layout.status(), v.as_bytes(), None)
            .await
            .map_err(ActionError::from)
    }

    async fn update_history(&self, obs: &Observation) -> Result<(), ActionError> {
        let Some(tl) = obs.local.timeline else {
            return Ok(());
        };
        let known = obs
            .dcs
            .as_ref()
            .ok()
            .and_then(|c| c.history.clone())
            .unwrap_or_default();
        let from_file = if tl > 1 {
            let path = self
                .cfg
                .postgresql
                .data_dir
                .join("pg_wal")
                .join(format!("{tl:08X}.history"));
            let text =
                tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|source| ActionError::Io {
                        what: format!("cannot read {}", path.display()),
                        source,
                    })?;
            parse_timeline_history_file(&text)
        } else {
            Vec::new()
        };
        let now = jiff::ZonedDateTime::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string();
        let merged = merge_timeline_history(&known, &from_file, &now, &self.cfg.name);
        self.dcs
            .put(
                &self.layout.history(),
                encode_history(&merged).as_bytes(),
                None,
            )
            .await
            .map_err(ActionError::from)
    }

    /// Asks every other member's `GET /patroni`; unreachable or unusable answers count as
    /// unreachable (Patroni requires `xlog` in the document).
    async fn probe_peers(&self, cluster: Option<&Cluster>) -> Vec<PeerStatus> {
        let Some(c) = cluster else { return vec![] };
        let futs = c
            .members
            .iter()
            .filter(|m| m.name != self.cfg.name)
            .filter_map(|m| {
                let url = m.api_url.clone()?;
                let name = m.name.clone();
                let http = self.http.clone();
                Some(async move {
                    let doc = async {
                        let r = http
                            .get(&url)
                            .timeout(Duration::from_secs(2))
                            .send()
                            .await
                            .ok()?;
                        r.json::<serde_json::Value>().await.ok()
                    }
                    .await;
                    PeerStatus::from_patroni_document(&name, doc.as_ref())
                })
            });
        futures_util::future::join_all(futs).await
    }
}

/// pg_rewind could not connect to its source server (refused, unknown host, authentication,
/// timeout): a fault of the source, not of the local data directory.
fn source_unreachable(err: &crate::postgres::PgError) -> bool {
    match err {
        crate::postgres::PgError::CommandFailed { stderr_tail, .. } => {
            stderr_tail.contains("connection to server")
                || stderr_tail.contains("could not connect to server")
                || stderr_tail.contains("could not translate host name")
        }
        _ => false,
    }
}

/// An action without an answer ran (or failed).
fn done<E: Into<ActionError>>(result: Result<(), E>) -> Result<Ran, ActionError> {
    result.map(|()| Ran::Done).map_err(Into::into)
}

impl Agent {
    /// The body of a background task.
    async fn task(
        self: Arc<Self>,
        kind: TaskKind,
        cluster: Option<Cluster>,
        use_slots: bool,
    ) -> Result<(), TaskError> {
        {
            let timeout = Duration::from_secs(self.live_cfg().postgresql.pg_ctl_timeout);
            let e = |e: crate::postgres::PgError| e.to_string();
            self.pg.write_pgpass().await.map_err(e)?;
            match kind {
                TaskKind::Bootstrap => {
                    self.pg
                        .initdb(&self.cfg.bootstrap.initdb)
                        .await
                        .map_err(e)?;
                    let mc = self.managed_config(None, cluster.as_ref());
                    self.pg.write_config(&mc).await.map_err(e)?;
                    self.pg.start(timeout).await.map_err(e)?;
                    self.pg
                        .create_roles(
                            &self.cfg.postgresql.authentication,
                            &self.cfg.bootstrap.users,
                        )
                        .await
                        .map_err(e)?;
                    if let Some(cmd) = &self.cfg.bootstrap.post_bootstrap {
                        self.run_post_bootstrap(cmd).await?;
                    }
                    Ok(())
                }
                TaskKind::Clone { from } => {
                    let (host, port) = cluster
                        .as_ref()
                        .and_then(|c| c.member(&from))
                        .and_then(|m| m.host_port())
                        .ok_or_else(|| format!("member {from} has no usable conn_url"))?;
                    self.pg
                        .basebackup(
                            &host,
                            port,
                            &self.live_cfg().postgresql.basebackup,
                            Duration::from_secs(3600),
                        )
                        .await
                        .map_err(e)?;
                    let rec = self.recovery_for(&from, cluster.as_ref(), use_slots)?;
                    let mc = self.managed_config(Some(rec), cluster.as_ref());
                    self.pg.write_config(&mc).await.map_err(e)?;
                    self.pg.start(timeout).await.map_err(e)?;
                    Ok(())
                }
                TaskKind::Start { as_primary, follow } => {
                    self.start_in_role(as_primary, follow.as_deref(), cluster.as_ref(), use_slots)
                        .await
                }
                TaskKind::Restart { as_primary, follow } => {
                    self.pg.stop(PgStop::Fast, timeout).await.map_err(e)?;
                    self.start_in_role(as_primary, follow.as_deref(), cluster.as_ref(), use_slots)
                        .await
                }
                TaskKind::Rewind { from } => {
                    let (host, port) = cluster
                        .as_ref()
                        .and_then(|c| c.member(&from))
                        .and_then(|m| m.host_port())
                        .ok_or_else(|| {
                            TaskError::source(format!("member {from} has no usable conn_url"))
                        })?;
                    self.pg
                        .rewind(&host, port, Duration::from_secs(3600))
                        .await
                        .map_err(|err| {
                            if source_unreachable(&err) {
                                TaskError::source(err.to_string())
                            } else {
                                TaskError::from(err.to_string())
                            }
                        })?;
                    let rec = self.recovery_for(&from, cluster.as_ref(), use_slots)?;
                    let mc = self.managed_config(Some(rec), cluster.as_ref());
                    self.pg.write_config(&mc).await.map_err(e)?;
                    self.pg.start(timeout).await.map_err(e)?;
                    Ok(())
                }
            }
        }
    }

    /// Configures PostgreSQL for its role (a primary: no recovery settings; a replica: follow
    /// `follow`, or no upstream yet) and starts it.
    async fn start_in_role(
        &self,
        as_primary: bool,
        follow: Option<&str>,
        cluster: Option<&Cluster>,
        use_slots: bool,
    ) -> Result<(), TaskError> {
        let rec = match (follow, as_primary) {
            (Some(f), false) => Some(self.recovery_for(f, cluster, use_slots)?),
            (None, false) => Some(Recovery::without_upstream()),
            _ => None,
        };
        let mc = self.managed_config(rec, cluster);
        let e = |e: crate::postgres::PgError| e.to_string();
        self.pg.write_config(&mc).await.map_err(e)?;
        let timeout = Duration::from_secs(self.live_cfg().postgresql.pg_ctl_timeout);
        self.pg.start(timeout).await.map_err(e)?;
        Ok(())
    }

    /// Runs `bootstrap.post_bootstrap` as Patroni's `call_post_bootstrap` does: its words plus
    /// the superuser's local connection string, with `PGPASSFILE` (the superuser's password) and
    /// `PGOPTIONS` set, and Patroni's error texts.
    async fn run_post_bootstrap(&self, cmd: &ShellCommand) -> Result<(), String> {
        let status = tokio::process::Command::new(cmd.program())
            .args(cmd.args())
            .arg(self.pg.local_dsn())
            .env("PGPASSFILE", &self.cfg.postgresql.pgpass)
            .env(
                "PGOPTIONS",
                "-c synchronous_commit=local -c statement_timeout=0",
            )
            .status()
            .await
            .map_err(|err| format!("post_init script {cmd} failed: {err}"))?;
        match status.code() {
            Some(0) => Ok(()),
            Some(code) => Err(format!(
                "post_init script {cmd} returned non-zero code {code}"
            )),
            None => Err(format!("post_init script {cmd} failed: {status}")),
        }
    }
}
