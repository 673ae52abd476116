//! A requested (or scheduled) restart of the primary with a `timeout` that ran out while
//! PostgreSQL is not back: as with Patroni's start timeout (`restart(timeout)` sets it in place
//! of `primary_start_timeout`, and `handle_starting_instance` acts on it), the key holder stops
//! the server and gives the key up, but only when a failover is possible; otherwise it keeps
//! waiting. Reference: patroni-reference.md §2; Patroni's `Ha.restart`,
//! `Ha.handle_starting_instance`.

use super::{Ctx, Verdict, verdict};
use crate::cluster::Failover;
use crate::ha::{Action, Ha, StopMode};

impl Ha {
    /// The primary's restart outlasted its `timeout`: ask the members, then demote if one can
    /// take over.
    pub(crate) fn primary_restart_timed_out(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let me = self.cfg.name.clone();
        let anyone = Failover {
            leader: Some(me),
            member: None,
            scheduled_at: None,
            mod_revision: 0,
        };
        let others = ctx
            .cluster
            .members
            .iter()
            .any(|m| m.name != self.cfg.name && m.api_url.is_some());
        if others && ctx.obs.peers.is_none() {
            return verdict(
                vec![Action::ProbePeers],
                "primary start has timed out: asking the members whether a failover is possible",
            );
        }
        if self.is_failover_possible(ctx, &anyone, false) {
            self.note("Demoting self because primary startup is taking too long");
            self.mem.restart_timed_out = false;
            return verdict(
                vec![Action::Stop(StopMode::Immediate), Action::ReleaseLeader],
                "stopped PostgreSQL because of startup timeout",
            );
        }
        verdict(
            vec![],
            "primary start has timed out, but continuing to wait because failover is not possible",
        )
    }
}
