//! The rules, one file per situation. `decide` is the only entry point and fixes their order.

mod bootstrap;
mod first_callback;
mod follow;
mod leader;
mod pause;
mod quorum_replication;
mod race;
mod recovery;
mod reload;
mod requests;
mod restart_timeout;
mod scheduled_restart;
mod shutdown;
mod slots;
mod stale_leader;
mod switchover;
mod sync_replication;
mod unique_name;

use super::{
    Action, Answer, CallbackEvent, FailureCause, Ha, Observation, Outcome, Role, StopMode, TaskKind,
};
use crate::cluster::{Cluster, GlobalConfig};
use crate::pg::DataDir;

/// Actions, status message, restep flag.
/// What a rule decided: the actions, the cycle's one-line status, and whether the core must
/// step again once the actions ran (their outcome decides what comes next).
#[derive(Debug)]
pub(crate) struct Verdict {
    pub actions: Vec<Action>,
    pub status: String,
    pub restep: bool,
}

/// Stops a primary that must not take writes any more, at once (immediate shutdown, as
/// Patroni's demote), and tells the callbacks it is a replica now. Every rule that demotes
/// says why in `status`.
pub(crate) fn demote(status: impl Into<String>) -> Verdict {
    verdict(
        vec![
            Action::Stop(StopMode::Immediate),
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: Role::Replica,
            },
        ],
        status,
    )
}

impl Verdict {
    /// Some action stops, starts, promotes or wipes the server, or ends the agent: rules that
    /// add work to a verdict for a server as it is (a reload, the first callback) wait for the
    /// next one.
    pub(crate) fn changes_server(&self) -> bool {
        self.actions.iter().any(|a| {
            matches!(
                a,
                Action::Stop(_)
                    | Action::Promote
                    | Action::StartTask(_)
                    | Action::RemoveDataDir
                    | Action::MoveDataDirAside
                    | Action::Exit
                    | Action::Fatal { .. }
            )
        })
    }
}

pub(crate) fn verdict(actions: Vec<Action>, status: impl Into<String>) -> Verdict {
    let restep = actions.iter().any(|a| {
        matches!(
            a,
            Action::RaceInitialize
                | Action::AcquireLeader
                | Action::RefreshLeader
                | Action::ProbePeers
                | Action::Stop(_)
                | Action::Promote
                | Action::ReleaseLeader
                | Action::DeleteStaleLeader { .. }
                | Action::RemoveDataDir
                | Action::TakeLeader
                | Action::CheckUniqueName { .. }
                | Action::CancelTask
        )
    });
    Verdict {
        actions,
        status: status.into(),
        restep,
    }
}

/// Facts every rule needs, computed once per step.
pub(crate) struct Ctx<'a> {
    pub obs: &'a Observation,
    pub cluster: &'a Cluster,
    pub gc: GlobalConfig,
    /// The leader key names this node.
    pub i_hold_key: bool,
    /// ... and is attached to this node's current lease.
    pub key_on_my_lease: bool,
    /// This node's lease is valid beyond the fencing margin.
    pub lease_valid: bool,
}

impl Ha {
    pub(crate) fn lease_valid(&self, obs: &Observation, gc: &GlobalConfig) -> bool {
        obs.lease
            .is_some_and(|l| obs.now.plus_ms(gc.fencing_margin_ms()) < l.valid_until)
    }

    /// The local server is, or may be, a primary taking writes: it answered as one, or it runs
    /// without answering and was a primary when last seen. Safety decisions assume the worst.
    pub(crate) fn may_accept_writes(&self, local: &crate::pg::LocalPostgres) -> bool {
        local.is_running_primary()
            || (local.running
                && local.role.is_none()
                && self.mem.last_role == Some(crate::pg::ServerRole::Primary)
                && !self.mem.started_read_only)
    }

    pub(crate) fn decide(&mut self, obs: &Observation) -> Verdict {
        // The start check for a duplicate name is a cycle of its own, before anything else.
        if let Some(v) = self.unique_name(obs) {
            return v;
        }
        // A shutdown goes before everything, DCS or not (see `shutdown.rs`).
        if let Some(v) = self.shutdown(obs) {
            return v;
        }
        let cluster = match &obs.dcs {
            Ok(c) => c,
            Err(e) => return self.dcs_unreachable(obs, e),
        };
        let gc = self.global_config(Some(cluster));
        let lease_valid = self.lease_valid(obs, &gc);
        let i_hold_key = cluster.leader_name() == Some(self.cfg.name.as_str());
        let key_on_my_lease = i_hold_key
            && obs
                .lease
                .zip(cluster.leader.as_ref())
                .is_some_and(|(l, k)| l.id == k.lease);
        let ctx = Ctx {
            obs,
            cluster,
            gc,
            i_hold_key,
            key_on_my_lease,
            lease_valid,
        };

        // 0a. A view from before this node released its key in a switchover (see
        //     `HaMemory::released_key`) decides nothing. A failed action of the demotion means
        //     the key may not have been released: then the view is believed again.
        if obs
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::ActionFailed { .. }))
        {
            self.mem.released_key = None;
        }
        if let Some(rev) = self.mem.released_key {
            match &cluster.leader {
                Some(l) if l.mod_revision == rev && ctx.i_hold_key => {
                    return verdict(
                        vec![],
                        "waiting for the DCS to show the released leader lock",
                    );
                }
                _ => self.mem.released_key = None,
            }
        }
        // 0. A leader key nobody can hold (no lease, or no such member for longer than ttl)
        //    is removed first, so that the cluster races normally instead of waiting forever.
        if let Some(v) = self.stale_leader(&ctx) {
            return v;
        }
        // 1. Fencing comes first: a primary that cannot prove leadership stops taking writes.
        if let Some(v) = self.fence(&ctx) {
            return v;
        }
        // 1b. Requests from outside the loop are answered (a busy node says so).
        if let Some(v) = self.requests(&ctx) {
            return v;
        }
        // 1c. New recovery settings that need a restart: the restart is a task of its own
        //     (state "restarting", on_restart), not a stop and start hidden in `Follow`. In
        //     pause nothing is restarted: the restart waits for the resume (see `pause.rs`).
        if let Some(v) = self.pause_defers_restart(&ctx) {
            return v;
        }
        if obs.task.is_none()
            && let Some(leader) = obs
                .outcomes
                .iter()
                .find_map(|o| match o {
                    Outcome::RestartNeeded { leader } => Some(leader.clone()),
                    _ => None,
                })
                .or_else(|| self.resumed_restart(&ctx))
        {
            return verdict(
                vec![Action::StartTask(TaskKind::Restart {
                    as_primary: false,
                    follow: Some(leader),
                })],
                "restarting postgres: the new recovery settings need a restart",
            );
        }
        // 2. A background task is running: only lease upkeep happens meanwhile.
        if let Some(task) = &obs.task {
            return self.task_in_progress(&ctx, task);
        }
        // 3. A task just finished: act on its result.
        if let Some((kind, ok, message, cause)) = self.outcome_task_finished(obs)
            && let Some(v) = self.task_finished(&ctx, &kind, ok, &message, cause)
        {
            return v;
        }
        if self.mem.post_bootstrap_pending {
            return self.post_bootstrap(&ctx);
        }
        // 4. The data directory decides between bootstrap, clone and normal operation.
        match &obs.local.data_dir {
            DataDir::Inaccessible(e) => {
                // The agent cannot see its own server (out of file descriptors, a failing
                // disk...): assume the worst. A server that may still take writes is stopped
                // first (the agent signals the postmaster it knows, which needs no file), and
                // the key is given up only once nothing runs: releasing it while the old
                // primary writes on would let a replica promote next to it.
                if obs.local.running && (ctx.i_hold_key || self.may_accept_writes(&obs.local)) {
                    return verdict(
                        vec![Action::Stop(StopMode::Immediate)],
                        format!(
                            "data directory is not accessible: {e}; stopping PostgreSQL before releasing the leader lock"
                        ),
                    );
                }
                let mut actions = vec![];
                if ctx.i_hold_key && !obs.local.running {
                    actions.push(Action::ReleaseLeader);
                }
                return verdict(actions, format!("data directory is not accessible: {e}"));
            }
            DataDir::Empty if !obs.local.running => {
                if ctx.i_hold_key {
                    return verdict(
                        vec![Action::ReleaseLeader],
                        "released leader key voluntarily as data dir empty and currently leader",
                    );
                }
                if ctx.gc.pause {
                    return verdict(vec![], pause::EMPTY_DATA_DIR);
                }
                return self.bootstrap(&ctx);
            }
            DataDir::Empty => {}
            DataDir::Initialized { sysid } => {
                if cluster.is_initialized()
                    && cluster.initialize.as_deref() != Some(sysid.as_str())
                    && let Some(v) = self.paused_sysid_mismatch(&ctx)
                {
                    return v;
                }
                if cluster.is_initialized()
                    && cluster.initialize.as_deref() != Some(sysid.as_str())
                    && !ctx.gc.pause
                {
                    let msg = format!(
                        "system ID mismatch, node {} belongs to a different cluster: {} != {}",
                        self.cfg.name,
                        cluster.initialize.as_deref().unwrap_or(""),
                        sysid
                    );
                    // Patroni: `logger.fatal(...)`, then exit.
                    return verdict(
                        vec![Action::Fatal {
                            message: msg.clone(),
                            critical: true,
                        }],
                        msg,
                    );
                }
                if cluster.initialize.is_none() && cluster.leader.is_none() && !ctx.gc.pause {
                    if obs.local.is_running_replica() {
                        let msg = "No initialize key in DCS and PostgreSQL is running as replica, aborting start";
                        return verdict(
                            vec![Action::Fatal {
                                message: msg.into(),
                                critical: false,
                            }],
                            msg,
                        );
                    }
                    // Adopt an existing data directory as this cluster's.
                    return verdict(
                        vec![Action::WriteInitialize {
                            sysid: sysid.clone(),
                            create_only: true,
                        }],
                        "initializing the cluster from the existing data directory",
                    );
                }
            }
        }
        // 5. PostgreSQL is not running: start it in the right role (in pause: leave it down,
        //    unless this node just handed over and follows the new leader, as Patroni's
        //    graceful demotion does).
        if obs.local.running || ctx.i_hold_key {
            self.mem.start_after_demotion = false;
        }
        if !obs.local.running {
            if !ctx.gc.pause {
                return self.recover(&ctx);
            }
            if self.mem.start_after_demotion && cluster.leader.is_some() {
                // Only the start as a replica (or the wait for the new leader's history):
                // a rewind or a re-clone changes the data directory, which pause forbids.
                let v = self.recover(&ctx);
                let start_or_wait = v.actions.iter().all(|a| {
                    matches!(
                        a,
                        Action::StartTask(TaskKind::Start {
                            as_primary: false,
                            ..
                        })
                    )
                });
                if start_or_wait {
                    return v;
                }
                self.mem.start_after_demotion = false;
            }
            return self.paused_not_running(&ctx);
        }
        if !obs.local.accepting_connections {
            return verdict(vec![], "postgres is starting");
        }
        // 6. Running: the leader key decides.
        //    With a leader, a scheduled restart that is due runs after the cycle's verdict.
        match &cluster.leader {
            None => self.unhealthy_cluster(&ctx),
            Some(_) if ctx.i_hold_key => {
                let v = self.healthy_leader(&ctx);
                self.evaluate_scheduled_restart(&ctx, v)
            }
            Some(l) => {
                let v = self.follow_leader(&ctx, &l.name.clone());
                self.evaluate_scheduled_restart(&ctx, v)
            }
        }
    }

    fn task_in_progress(&mut self, ctx: &Ctx<'_>, task: &TaskKind) -> Verdict {
        // A requested restart with a `timeout` that ran out: answered as failed, as Patroni
        // answers when PostgreSQL has not started within it; the task goes on.
        if let (TaskKind::Restart { .. }, Some(deadline)) = (task, self.mem.restart_deadline) {
            if ctx.obs.now >= deadline {
                self.mem.restart_deadline = None;
                self.mem.restart_timed_out = true;
                if let Some(id) = self.mem.restart_request.take() {
                    self.warn("restart did not finish within the request's timeout");
                    self.answers.push((
                        id,
                        Answer::Done {
                            ok: false,
                            message: "restart failed".to_string(),
                        },
                    ));
                }
            } else {
                self.wake_no_later_than(deadline);
            }
        }
        if ctx.i_hold_key && !ctx.key_on_my_lease && ctx.lease_valid {
            return verdict(
                vec![Action::RefreshLeader],
                format!("updated leader lock during {task}"),
            );
        }
        if let TaskKind::Restart {
            as_primary: true, ..
        } = task
            && self.mem.restart_timed_out
            && ctx.i_hold_key
            && !ctx.gc.pause
        {
            return self.primary_restart_timed_out(ctx);
        }
        // In pause a slow start is waited for (Patroni's handle_starting_instance hands a
        // paused node to normal processing, without the start timeout).
        if let TaskKind::Start {
            as_primary: true, ..
        } = task
            && !ctx.gc.pause
        {
            let waited = self
                .mem
                .primary_restart_since
                .map(|s| ctx.obs.now.since(s))
                .unwrap_or(0);
            if ctx.i_hold_key && waited > ctx.gc.primary_start_timeout_ms() {
                return verdict(
                    vec![Action::Stop(StopMode::Immediate), Action::ReleaseLeader],
                    "primary did not start within primary_start_timeout; released the leader lock",
                );
            }
        }
        let msg = match task {
            TaskKind::Bootstrap => "bootstrap in progress".to_string(),
            TaskKind::Clone { from } => format!("replica creation from {from} in progress"),
            TaskKind::Start { .. } if ctx.i_hold_key => {
                format!("updated leader lock during {task}")
            }
            TaskKind::Start { .. } => "postgres is starting".to_string(),
            TaskKind::Rewind { from } => format!("running pg_rewind from {from}"),
            TaskKind::Restart { .. } if ctx.i_hold_key => {
                format!("updated leader lock during {task}")
            }
            TaskKind::Restart { .. } => "restart in progress".to_string(),
        };
        verdict(vec![], msg)
    }

    fn task_finished(
        &mut self,
        ctx: &Ctx<'_>,
        kind: &TaskKind,
        ok: bool,
        message: &str,
        cause: FailureCause,
    ) -> Option<Verdict> {
        match (kind, ok) {
            (TaskKind::Restart { .. }, _) => {
                self.mem.restart_deadline = None;
                self.mem.restart_timed_out = false;
                let (done, status) = if ok {
                    (
                        "restarted successfully",
                        if self.mem.restart_request.is_some() {
                            "postgres restarted on request"
                        } else {
                            "postgres restarted"
                        }
                        .to_string(),
                    )
                } else {
                    ("restart failed", format!("restart failed: {message}"))
                };
                if let Some(id) = self.mem.restart_request.take() {
                    self.answers.push((
                        id,
                        Answer::Done {
                            ok,
                            message: done.to_string(),
                        },
                    ));
                }
                let role = Role::running_as(ctx.obs.local.is_running_primary());
                // A failed restart leaves PostgreSQL stopped: the next step's rules start it
                // again as any crashed server (a primary within primary_start_timeout).
                Some(verdict(
                    if ok {
                        vec![Action::Callback {
                            event: CallbackEvent::OnRestart,
                            role,
                        }]
                    } else {
                        vec![]
                    },
                    status,
                ))
            }
            (TaskKind::Bootstrap, true) => {
                self.mem.post_bootstrap_pending = true;
                Some(self.post_bootstrap(ctx))
            }
            (TaskKind::Bootstrap, false) => {
                self.mem.bootstrapping = false;
                self.mem.post_bootstrap_pending = false;
                let msg = format!("Failed to bootstrap cluster: {message}");
                Some(verdict(
                    vec![
                        Action::Stop(StopMode::Immediate),
                        Action::DeleteInitialize,
                        Action::MoveDataDirAside,
                        Action::Fatal {
                            message: msg.clone(),
                            critical: false,
                        },
                    ],
                    msg,
                ))
            }
            (TaskKind::Clone { from }, false) => Some(verdict(
                vec![Action::RemoveDataDir],
                format!("failed to bootstrap from leader '{from}': {message}"),
            )),
            // The source could not be used (no such member, no usable conn_url, its server does
            // not answer): nothing is known about the local data, so nothing is remembered; the
            // next cycle decides again (against a leader that may have changed meanwhile).
            (TaskKind::Rewind { from }, false) if cause == FailureCause::Source => Some(verdict(
                vec![],
                format!("pg_rewind from {from} could not use its source ({message}); will retry"),
            )),
            // In pause nothing is wiped: the rewind is tried again after the resume (and the
            // directory removed then, if it fails again and the config allows).
            (TaskKind::Rewind { from }, false) if ctx.gc.pause => Some(verdict(
                vec![],
                format!(
                    "pg_rewind from {from} failed ({message}); not removing the data directory in pause"
                ),
            )),
            (TaskKind::Rewind { from }, false) => {
                if self.cfg.remove_data_directory_on_rewind_failure
                    || self.cfg.remove_data_directory_on_diverged_timelines
                {
                    Some(verdict(
                        vec![Action::RemoveDataDir],
                        format!(
                            "pg_rewind from {from} failed ({message}); removing the data directory to re-clone"
                        ),
                    ))
                } else {
                    self.mem.rewind_failed = true;
                    None
                }
            }
            (TaskKind::Rewind { from }, true) => {
                self.mem.divergence_checked_for = Some(from.clone());
                self.mem.last_role = Some(crate::pg::ServerRole::Replica);
                None
            }
            // Patroni's post_recover(): a start that failed leaves no server. Holding on to the
            // key would keep the cluster without a writable primary (retrying a broken start
            // until primary_start_timeout); give it up so a replica is promoted.
            (TaskKind::Start { as_primary, .. }, false) if !ctx.obs.local.running => {
                self.mem.primary_restart_since = None;
                if !ctx.i_hold_key {
                    return Some(verdict(vec![], "failed to start postgres"));
                }
                let mut actions = vec![];
                if *as_primary {
                    actions.push(Action::Callback {
                        event: super::CallbackEvent::OnRoleChange,
                        role: Role::Demoted,
                    });
                }
                actions.push(Action::ReleaseLeader);
                Some(verdict(
                    actions,
                    "removed leader key after trying and failing to start postgres",
                ))
            }
            (TaskKind::Start { .. }, true) => {
                let role = Role::running_as(ctx.obs.local.is_running_primary());
                self.mem.primary_restart_since = None;
                Some(verdict(
                    vec![Action::Callback {
                        event: super::CallbackEvent::OnStart,
                        role,
                    }],
                    format!("postgres started as {role}"),
                ))
            }
            _ => None,
        }
    }

    /// True once any outcome of this kind is in the observation.
    pub(crate) fn has_outcome(obs: &Observation, f: impl Fn(&Outcome) -> bool) -> bool {
        obs.outcomes.iter().any(f)
    }
}
