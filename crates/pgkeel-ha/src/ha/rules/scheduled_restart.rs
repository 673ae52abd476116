//! Scheduled restarts: Patroni's `schedule_future_restart`, `delete_future_restart` and
//! `evaluate_scheduled_restart`. The request is remembered by this node's core (published in
//! the member key) and evaluated in every cycle of a cluster that has a leader, after the
//! cycle's own verdict: it waits for its time (the agent is woken then), is dropped when it
//! went stale or the server restarted meanwhile, and runs as an ordinary restart when due,
//! with the request's filters checked at that moment.

use super::{Ctx, Verdict};
use crate::ha::{Answer, Ha, ScheduledRestart};

/// Patroni's answer (409) when a restart is already scheduled.
pub(crate) const ALREADY_SCHEDULED: &str = "Another restart is already scheduled";

/// Patroni's answer (404) to a cancellation with nothing scheduled.
pub(crate) const NOTHING_SCHEDULED: &str = "no restarts are scheduled";

impl Ha {
    /// `POST /restart` with `schedule`: remember it, with the server's current start time.
    pub(crate) fn schedule_restart(&mut self, ctx: &Ctx<'_>, request: &ScheduledRestart) -> Answer {
        if self.mem.scheduled_restart.is_some() {
            return Answer::Refused(ALREADY_SCHEDULED.to_string());
        }
        let mut scheduled = request.clone();
        scheduled.postmaster_start_time = ctx.obs.local.postmaster_start_time.clone();
        self.mem.scheduled_restart = Some(scheduled);
        Answer::Done {
            ok: true,
            message: "Restart scheduled".to_string(),
        }
    }

    /// `DELETE /restart`: forget the scheduled restart.
    pub(crate) fn cancel_scheduled_restart(&mut self) -> Answer {
        match self.mem.scheduled_restart.take() {
            Some(_) => Answer::Done {
                ok: true,
                message: "scheduled restart deleted".to_string(),
            },
            None => Answer::Refused(NOTHING_SCHEDULED.to_string()),
        }
    }

    /// Step 6, after the cycle's verdict in a cluster with a leader (`healthy`): the scheduled
    /// restart, when one is due and the verdict leaves the server as it is.
    pub(crate) fn evaluate_scheduled_restart(
        &mut self,
        ctx: &Ctx<'_>,
        healthy: Verdict,
    ) -> Verdict {
        let Some(scheduled) = self.mem.scheduled_restart.clone() else {
            return healthy;
        };
        if healthy.changes_server() || healthy.restep || ctx.obs.task.is_some() {
            return healthy;
        }
        if let (Some(now), Some(then)) = (
            &ctx.obs.local.postmaster_start_time,
            &scheduled.postmaster_start_time,
        ) && now != then
        {
            self.note(format!(
                "Cancelling scheduled restart: postgres restart has already happened at {now}"
            ));
            self.mem.scheduled_restart = None;
            return healthy;
        }
        // Patroni's `should_run_scheduled_action`: nothing runs in pause, nothing is dropped.
        if ctx.gc.pause {
            return healthy;
        }
        let schedule = &scheduled.schedule;
        let delta_ms = scheduled.at_ms.saturating_sub(ctx.obs.wall_ms);
        if delta_ms > 0 {
            let wait = u64::try_from(delta_ms).unwrap_or(u64::MAX);
            if wait > ctx.gc.loop_wait.saturating_mul(1000) {
                self.note(format!(
                    "Awaiting restart at {schedule} (in {:.0} seconds)",
                    wait.div_ceil(1000)
                ));
            }
            // Patroni sleeps until the time within its cycle; the agent is woken at it.
            self.wake_no_later_than(ctx.obs.now.plus_ms(wait));
            return healthy;
        }
        let stale_after_ms = (ctx.gc.loop_wait.saturating_mul(3) / 2).saturating_mul(1000);
        self.mem.scheduled_restart = None;
        if delta_ms.unsigned_abs() > stale_after_ms {
            self.warn(format!(
                "Found a stale restart value, cleaning up: {schedule}"
            ));
            return healthy;
        }
        self.note(format!("Manual scheduled restart at {schedule}"));
        if let Some(refusal) = self.restart_refusal(ctx, &scheduled.conditions) {
            let (Answer::Refused(why)
            | Answer::Busy(why)
            | Answer::Accepted(why)
            | Answer::Done { message: why, .. }) = refusal;
            self.warn(format!("Scheduled restart: {why}"));
            return healthy;
        }
        let mut restart = self.start_restart(ctx, &scheduled.conditions);
        let mut actions = healthy.actions;
        actions.append(&mut restart.actions);
        restart.actions = actions;
        restart.status = "restart initiated".to_string();
        restart
    }
}
