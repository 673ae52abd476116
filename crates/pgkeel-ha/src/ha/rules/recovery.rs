//! PostgreSQL is not running: restart a crashed primary in place, or start as a replica.
//! Reference: patroni-reference.md §2 `recover()`.

use super::{Ctx, Verdict, verdict};
use crate::ha::{Action, Ha, TaskKind};
use crate::pg::ServerRole;

impl Ha {
    pub(crate) fn recover(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let was_primary = self.mem.last_role == Some(ServerRole::Primary)
            || (self.mem.last_role.is_none() && ctx.obs.local.was_primary_per_controldata());
        if ctx.i_hold_key {
            if !ctx.lease_valid {
                return verdict(
                    vec![],
                    "not starting postgres: the leader lock's lease is not valid",
                );
            }
            if !ctx.key_on_my_lease {
                return verdict(
                    vec![Action::RefreshLeader],
                    "re-attaching the leader lock to this agent's lease",
                );
            }
            if was_primary {
                if ctx.gc.primary_start_timeout == 0 {
                    return verdict(
                        vec![Action::ReleaseLeader],
                        "stopped PostgreSQL to fail over after a crash",
                    );
                }
                let since = *self.mem.primary_restart_since.get_or_insert(ctx.obs.now);
                if ctx.obs.now.since(since) > ctx.gc.primary_start_timeout_ms() {
                    // Start attempts kept failing (each one short): the bound covers them all.
                    self.mem.primary_restart_since = None;
                    return verdict(
                        vec![Action::ReleaseLeader],
                        "primary did not start within primary_start_timeout; released the leader lock",
                    );
                }
                return verdict(
                    vec![Action::StartTask(TaskKind::Start {
                        as_primary: true,
                        follow: None,
                    })],
                    "starting primary after failure",
                );
            }
            return verdict(
                vec![Action::StartTask(TaskKind::Start {
                    as_primary: false,
                    follow: None,
                })],
                "starting as readonly because i had the session lock",
            );
        }
        match ctx.cluster.leader.as_ref().map(|l| l.name.clone()) {
            Some(leader) => self.start_following(ctx, &leader),
            None if was_primary => {
                // No leader: start read-only; the race decides who becomes primary.
                verdict(
                    vec![Action::StartTask(TaskKind::Start {
                        as_primary: false,
                        follow: None,
                    })],
                    "starting as a secondary",
                )
            }
            None => verdict(
                vec![Action::StartTask(TaskKind::Start {
                    as_primary: false,
                    follow: None,
                })],
                "starting as a secondary",
            ),
        }
    }
}
