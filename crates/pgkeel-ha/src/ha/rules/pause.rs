//! Maintenance mode (`pause: true` in `/config`): the agents keep the DCS up to date but never
//! promote, demote, start, stop or restart PostgreSQL on their own; the operator is in charge.
//! Reference: patroni-reference.md §2, every `is_paused()` branch of Patroni's `ha.py`.
//!
//! This file holds the paused branches that are situations of their own; the other rules
//! consult `ctx.gc.pause` where Patroni does (fencing, `healthy_leader`, `unhealthy_cluster`,
//! `follow_leader`, `dcs_unreachable`, the start timeout of `task_in_progress`, the shutdown).
//! What pause turns off is listed in docs/ha-rules.md ("Pause").

use super::{Ctx, Verdict, verdict};
use crate::ha::{Action, Ha, Outcome};

/// Patroni's status of a running primary that does not hold the leader key in pause.
pub(crate) const PRIMARY_WITHOUT_LOCK: &str = "continue to run as primary without lock";
/// Patroni's status of a paused primary that holds the key but cannot renew its lease.
pub(crate) const PRIMARY_LOCK_NOT_UPDATED: &str =
    "continue to run as primary after failing to update leader lock in DCS";
/// Patroni's status when the key holder's PostgreSQL is down in pause (the key is removed).
pub(crate) const KEY_REMOVED_NOT_RUNNING: &str =
    "removed leader lock because postgres is not running";
/// Patroni's status when the key holder runs, but not as a primary, in pause.
pub(crate) const KEY_REMOVED_NOT_PRIMARY: &str =
    "removed leader lock because postgres is not running as primary";
/// Patroni's status of a stopped PostgreSQL in pause: nobody starts it.
pub(crate) const NOT_RUNNING: &str = "postgres is not running";
/// Patroni's status of an empty data directory in pause: no bootstrap, no clone.
pub(crate) const EMPTY_DATA_DIR: &str = "running with empty data directory";
/// Patroni's status when the key holder's data directory belongs to another cluster in pause.
pub(crate) const SYSID_MISMATCH: &str =
    "released leader key voluntarily due to the system ID mismatch";
/// Why new recovery settings are not applied by a restart in pause (pgkeel's words).
pub(crate) const RESTART_DEFERRED: &str =
    "not restarting postgres in pause: the new recovery settings need a restart after resume";

impl Ha {
    /// Patroni's `no action. I am (x)` of a paused replica with nothing to follow.
    pub(crate) fn paused_no_action(&self) -> String {
        format!("no action. I am ({})", self.cfg.name)
    }

    /// PostgreSQL is down and the cluster is paused: it stays down. A key holder gives the
    /// key up (nothing will run as primary under it), so that the cluster is seen leaderless.
    pub(crate) fn paused_not_running(&self, ctx: &Ctx<'_>) -> Verdict {
        if ctx.i_hold_key {
            return verdict(vec![Action::ReleaseLeader], KEY_REMOVED_NOT_RUNNING);
        }
        verdict(vec![], NOT_RUNNING)
    }

    /// The data directory's system ID is not the cluster's: outside pause a fatal exit (in
    /// `decide`); in pause Patroni only warns, and a key holder gives up the key.
    pub(crate) fn paused_sysid_mismatch(&self, ctx: &Ctx<'_>) -> Option<Verdict> {
        (ctx.gc.pause && ctx.i_hold_key)
            .then(|| verdict(vec![Action::ReleaseLeader], SYSID_MISMATCH))
    }

    /// A `Follow` of this cycle wrote settings that need a restart, in pause: remember it for
    /// the resume instead of restarting.
    pub(crate) fn pause_defers_restart(&mut self, ctx: &Ctx<'_>) -> Option<Verdict> {
        if !ctx.gc.pause {
            return None;
        }
        let leader = ctx.obs.outcomes.iter().find_map(|o| match o {
            Outcome::RestartNeeded { leader } => Some(leader.clone()),
            _ => None,
        })?;
        self.mem.deferred_restart = Some(leader);
        Some(verdict(vec![], RESTART_DEFERRED))
    }

    /// After the resume, the restart deferred during pause, while it still applies: the
    /// replica runs and still follows the member the settings were written for.
    pub(crate) fn resumed_restart(&mut self, ctx: &Ctx<'_>) -> Option<String> {
        if ctx.gc.pause {
            return None;
        }
        let leader = self.mem.deferred_restart.take()?;
        let local = &ctx.obs.local;
        (local.is_running_replica()
            && ctx.obs.task.is_none()
            && local.following.as_deref() == Some(leader.as_str()))
        .then_some(leader)
    }
}
