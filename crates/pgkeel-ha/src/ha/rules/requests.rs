//! Requests from outside the loop (step 1b of `decide`, after the stale-key and fencing rules,
//! so a request never bypasses them). Each request of the observation is answered in the step
//! that sees it: refused, busy, or accepted, in which case its work is this step's action. An
//! accepted restart is answered `Done` when its task ends (`task_finished`).

use super::{Ctx, Verdict, verdict};
use crate::ha::{Action, Answer, Ha, RequestKind, RestartConditions, Role, StopMode, TaskKind};

/// Why a running primary that does not hold the leader key is not restarted.
pub(crate) const NOT_LEADING: &str = "restart refused: this primary does not hold the leader lock";

/// Why a reinitialize does not start in this step.
enum Refusal {
    /// Answered now (refused, or busy).
    Answer(Answer),
    /// A forced reinitialize: the running copy is cancelled first; the request stays pending.
    CancelFirst(Verdict),
}

/// Patroni's answer when a restart's conditions do not hold.
pub(crate) const RESTART_CONDITIONS: &str = "restart conditions are not satisfied";

impl Ha {
    /// Answers every request of the observation; the verdict of the one accepted, if any.
    pub(crate) fn requests(&mut self, ctx: &Ctx<'_>) -> Option<Verdict> {
        let mut accepted: Option<Verdict> = None;
        for request in &ctx.obs.requests {
            let answer = match &request.kind {
                // Answered by the shutdown rule, which goes before this one.
                RequestKind::Shutdown => continue,
                RequestKind::Reinitialize { from_leader, force } => match accepted {
                    Some(_) => Answer::Busy("restart already in progress".to_string()),
                    None => match self.reinitialize(ctx, *from_leader, *force) {
                        Ok(v) => {
                            accepted = Some(v);
                            Answer::Done {
                                ok: true,
                                message: "reinitialize started".to_string(),
                            }
                        }
                        Err(Refusal::Answer(refusal)) => refusal,
                        // Answered once the task is gone and the reinitialize starts.
                        Err(Refusal::CancelFirst(v)) => {
                            accepted = Some(v);
                            continue;
                        }
                    },
                },
                RequestKind::ScheduleRestart(scheduled) => self.schedule_restart(ctx, scheduled),
                RequestKind::CancelScheduledRestart => self.cancel_scheduled_restart(),
                RequestKind::Restart(conditions) => match accepted {
                    Some(_) => Answer::Busy("restart already in progress".to_string()),
                    None => match self.restart_refusal(ctx, conditions) {
                        Some(refusal) => refusal,
                        None => {
                            accepted = Some(self.start_restart(ctx, conditions));
                            self.mem.restart_request = Some(request.id);
                            Answer::Accepted("restart initiated".to_string())
                        }
                    },
                },
            };
            self.answers.push((request.id, answer));
        }
        accepted
    }

    /// Why a restart cannot start now, in Patroni's words; `None` when it can.
    pub(super) fn restart_refusal(
        &self,
        ctx: &Ctx<'_>,
        conditions: &RestartConditions,
    ) -> Option<Answer> {
        if let Some(task) = &ctx.obs.task {
            return Some(Answer::Busy(format!(
                "{} already in progress",
                task.action_name()
            )));
        }
        let local = &ctx.obs.local;
        if !local.running || local.role.is_none() {
            return Some(Answer::Refused("postgres is not running".to_string()));
        }
        let role = Role::running_as(local.is_running_primary());
        // A primary restarts as a primary: only while it provably leads. A primary without the
        // key (its lease lapsed, the cluster races) must be left to the race and the fencing
        // rules, or it would come back writable next to the new leader (found by the simulator).
        if role == Role::Primary && !(ctx.i_hold_key && ctx.key_on_my_lease && ctx.lease_valid) {
            return Some(Answer::Refused(NOT_LEADING.to_string()));
        }
        let role_differs = conditions.role.is_some_and(|wanted| wanted != role);
        let not_pending = conditions.only_if_pending && local.pending_restart.is_empty();
        let new_enough = conditions
            .below_version
            .is_some_and(|v| local.server_version.is_none_or(|running| v <= running));
        (role_differs || not_pending || new_enough)
            .then(|| Answer::Refused(RESTART_CONDITIONS.to_string()))
    }

    /// Stops the server, empties the data directory and clones it again (Patroni's
    /// `_do_reinitialize`), or why not, in Patroni's words.
    fn reinitialize(
        &mut self,
        ctx: &Ctx<'_>,
        from_leader: bool,
        force: bool,
    ) -> Result<Verdict, Refusal> {
        let refuse = |text: &str| Err(Refusal::Answer(Answer::Refused(text.to_string())));
        if ctx.cluster.leader.is_none() {
            return refuse("Cluster has no leader, can not reinitialize");
        }
        if ctx.i_hold_key {
            return refuse("I am the leader, can not reinitialize");
        }
        if let Some(task) = &ctx.obs.task {
            // Patroni's `force` cancels the running action; only a copy can be cancelled
            // here (a start or a restart is waited for).
            if force && matches!(task, TaskKind::Clone { .. } | TaskKind::Rewind { .. }) {
                return Err(Refusal::CancelFirst(verdict(
                    vec![Action::CancelTask],
                    format!("reinitialize: cancelling {task}"),
                )));
            }
            return Err(Refusal::Answer(Answer::Busy(format!(
                "{} already in progress",
                task.action_name()
            ))));
        }
        // A server that may still take writes is left to the fencing rules, never wiped.
        if self.may_accept_writes(&ctx.obs.local) {
            return refuse("reinitialize refused: this node runs a primary");
        }
        let Some((from, what)) = self.clone_source(ctx, from_leader) else {
            return refuse("reinitialize refused: the leader has not published its member data");
        };
        // What was remembered about the old data no longer applies.
        self.mem.rewind_failed = false;
        self.mem.divergence_checked_for = None;
        self.mem.last_role = None;
        self.mem.streamed_timeline = None;
        Ok(verdict(
            vec![
                Action::Stop(StopMode::Immediate),
                Action::RemoveDataDir,
                Action::StartTask(TaskKind::Clone { from: from.clone() }),
            ],
            format!("reinitializing: trying to bootstrap from {what} '{from}'"),
        ))
    }

    /// The restart task for this node's current role: a primary restarts as a primary (it
    /// keeps the leader key meanwhile, see `task_in_progress`), a replica follows the leader.
    /// The restart task, its `timeout` (if any) counted from now.
    pub(super) fn start_restart(
        &mut self,
        ctx: &Ctx<'_>,
        conditions: &RestartConditions,
    ) -> Verdict {
        self.mem.restart_deadline = conditions
            .timeout_s
            .map(|s| ctx.obs.now.plus_ms(s.saturating_mul(1000)));
        self.mem.restart_timed_out = false;
        let as_primary = ctx.obs.local.is_running_primary();
        let follow = if as_primary {
            None
        } else {
            ctx.cluster
                .leader_name()
                .filter(|l| *l != self.cfg.name)
                .map(str::to_string)
        };
        verdict(
            vec![Action::StartTask(TaskKind::Restart { as_primary, follow })],
            "restarting postgres on request",
        )
    }
}
