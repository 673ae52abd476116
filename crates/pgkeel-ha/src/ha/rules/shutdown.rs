//! Shutting the agent down (SIGTERM, Ctrl-C), step 0 of `decide`: before every other rule, and
//! whether the DCS answers or not. As Patroni's `Ha.shutdown`:
//!
//! * paused: PostgreSQL is left running and the leader key in place; the agent just exits.
//! * otherwise PostgreSQL is stopped (fast) first. Once it is down, `on_stop` runs, the leader
//!   key is released and the lease revoked (the member key goes with it), so the others race
//!   at once instead of waiting for the TTL; then the agent exits. A server still running after
//!   the stop keeps the key: a replica must not promote next to a server that may take writes.
//! * the leader hands over the way a switchover does (issue 8 point 2): a CHECKPOINT before the
//!   stop (so the shutdown checkpoint is short and the write pause with it), and the shutdown
//!   checkpoint's position into `status` before the key is released (Patroni's
//!   `delete_leader(last_lsn)`), so the replicas that race see they have all of it. The healthiest
//!   replica wins the race the release starts; the old primary, stopped cleanly, can rejoin as a
//!   replica without pg_rewind.
//!
//! * a synchronous standby first asks the primary to name another one (`nosync` in its member
//!   key) and waits up to `2 * loop_wait` while the `sync` key lists it (Patroni's
//!   `while_not_sync_standby`), so commits do not wait for a standby that is going away.
//!
//! The stages live in `HaMemory::shutdown`; each step observes the server again, so the core
//! sees whether the stop worked rather than trusting the action.

use super::{Verdict, verdict};
use crate::ha::{
    Action, Answer, CallbackEvent, Ha, Observation, RequestKind, Role, ShutdownStage, StatusLevel,
    StopMode,
};

/// Patroni's message when a paused node's agent stops.
pub(crate) const PAUSED: &str =
    "Leader key is not deleted and Postgresql is not stopped due paused state";
/// Patroni's message when PostgreSQL could not be stopped on shutdown.
pub(crate) const STOP_FAILED: &str = "PostgreSQL shutdown failed, leader key not removed.";
/// Patroni's line while a synchronous standby waits to be released before it stops.
pub(crate) const WAITING_FOR_RELEASE: &str =
    "Waiting for primary to release us from synchronous standby";
/// How often a standby waiting for its release looks again.
const RELEASE_POLL_MS: u64 = 500;
/// The release or the revocation failed (the DCS does not answer): the key and the member
/// expire with the lease.
pub(crate) const NOT_RELEASED: &str =
    "shutting down: the leader key could not be released; it expires with the lease";

impl Ha {
    /// The verdict for a pending shutdown request, if there is one.
    pub(crate) fn shutdown(&mut self, obs: &Observation) -> Option<Verdict> {
        let id = obs
            .requests
            .iter()
            .find(|r| r.kind == RequestKind::Shutdown)?
            .id;
        let paused = self.global_config(obs.dcs.as_ref().ok()).pause;
        let (actions, status, finished): (Vec<Action>, String, bool) = if paused {
            (vec![Action::Exit], PAUSED.to_string(), true)
        } else {
            let leave_sync = self.wait_for_release_from_sync(obs);
            match self.mem.shutdown {
                _ if leave_sync => (vec![], WAITING_FOR_RELEASE.to_string(), false),
                None | Some(ShutdownStage::LeavingSync { .. }) => {
                    let was_running = obs
                        .local
                        .running
                        .then(|| Role::running_as(self.may_accept_writes(&obs.local)));
                    let leader = self.holds_leader_key(obs);
                    self.mem.shutdown = Some(ShutdownStage::Stopping {
                        was_running,
                        leader,
                    });
                    self.mem.expect_running = false;
                    let mut actions = Vec::new();
                    if leader && obs.local.is_running_primary() {
                        actions.push(Action::Checkpoint);
                    }
                    actions.push(Action::Stop(StopMode::Fast));
                    (
                        actions,
                        "shutting down: stopping PostgreSQL".to_string(),
                        false,
                    )
                }
                Some(ShutdownStage::Stopping { .. }) if obs.local.running => {
                    // Patroni logs it with `logger.error`.
                    self.level = StatusLevel::Error;
                    (vec![Action::Exit], STOP_FAILED.to_string(), true)
                }
                Some(ShutdownStage::Stopping {
                    was_running,
                    leader,
                }) => {
                    self.mem.shutdown = Some(ShutdownStage::Releasing);
                    let mut actions = Vec::new();
                    if let Some(role) = was_running {
                        actions.push(Action::Callback {
                            event: CallbackEvent::OnStop,
                            role,
                        });
                    }
                    if leader && was_running == Some(Role::Primary) {
                        actions.push(Action::WriteShutdownPosition);
                    }
                    actions.extend([Action::ReleaseLeader, Action::RevokeLease, Action::Exit]);
                    (
                        actions,
                        "shutting down: PostgreSQL stopped, releasing the leader lock".to_string(),
                        true,
                    )
                }
                Some(ShutdownStage::Releasing) => {
                    (vec![Action::Exit], NOT_RELEASED.to_string(), true)
                }
            }
        };
        if finished {
            self.answers.push((
                id,
                Answer::Done {
                    ok: true,
                    message: status.clone(),
                },
            ));
        }
        Some(verdict(actions, status))
    }

    /// Patroni's `while_not_sync_standby`: a running synchronous standby (the `sync` key lists
    /// it, and it does not hold the leader key) first asks the primary to name another standby,
    /// so commits need not wait for it once it is down; it waits while the key still lists it,
    /// at most `2 * loop_wait`, and not at all when the DCS does not answer.
    fn wait_for_release_from_sync(&mut self, obs: &Observation) -> bool {
        let Ok(cluster) = obs.dcs.as_ref() else {
            return false;
        };
        let gc = self.global_config(Some(cluster));
        let me = self.cfg.name.as_str();
        let listed = gc.synchronous_mode.is_synchronous()
            && cluster.leader_name().is_some_and(|l| l != me)
            && cluster
                .sync
                .as_ref()
                .is_some_and(|s| s.lists(me) && s.leader.as_deref() == cluster.leader_name());
        let since = match self.mem.shutdown {
            // Only a replica waits: a server that may take writes (a former primary that
            // `sync` now lists as the new primary's standby) is stopped at once.
            None if listed
                && obs.local.is_running_replica()
                && !self.may_accept_writes(&obs.local) =>
            {
                self.mem.shutdown = Some(ShutdownStage::LeavingSync { since: obs.now });
                self.mem.leaving_sync = true;
                obs.now
            }
            Some(ShutdownStage::LeavingSync { since }) => since,
            _ => return false,
        };
        let bound_ms = gc.loop_wait.saturating_mul(2000);
        if listed && obs.now.since(since) < bound_ms {
            self.wake_no_later_than(obs.now.plus_ms(RELEASE_POLL_MS));
            return true;
        }
        false
    }

    /// Whether the last DCS view names this node as the leader key's holder.
    fn holds_leader_key(&self, obs: &Observation) -> bool {
        obs.dcs
            .as_ref()
            .is_ok_and(|c| c.leader_name() == Some(self.cfg.name.as_str()))
    }
}
