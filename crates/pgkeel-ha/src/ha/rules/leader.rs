//! The lease holder: fencing, renewal, promotion with the lock, DCS loss.
//! Reference: patroni-reference.md §2 `process_healthy_cluster()`, `handle_dcs_error()`.

use super::slots::slot_changes;
use super::switchover::FromLeader;
use super::{Ctx, Verdict, demote, pause, verdict};
use crate::ha::{Action, CallbackEvent, DcsUnavailable, Ha, Observation, Role};
use crate::keys::codec::slot_name_from_member_name;

impl Ha {
    /// A running primary must hold the leader key on a lease that is valid beyond the fencing
    /// margin. If it cannot prove that, it stops accepting writes now, before another node can
    /// win the lease. Exceptions: bootstrapping (nobody else can be primary), re-attaching its own
    /// key to a new lease, and racing for a free key while its lease is valid. In pause there
    /// is no fencing at all (Patroni: the operator is in charge): the paused branches of
    /// `healthy_leader`, `unhealthy_cluster` and `follow_leader` keep such a primary running.
    pub(crate) fn fence(&mut self, ctx: &Ctx<'_>) -> Option<Verdict> {
        if !self.may_accept_writes(&ctx.obs.local) || self.mem.bootstrapping || ctx.gc.pause {
            return None;
        }
        if ctx.i_hold_key && ctx.lease_valid {
            return None;
        }
        if ctx.cluster.leader.is_none() && ctx.lease_valid {
            return None; // race for the free key (rules/race.rs)
        }
        let reason = if ctx.i_hold_key || ctx.cluster.leader.is_none() {
            "demoted self because failed to update leader lock in DCS"
        } else {
            "demoting self because I do not have the lock and I was a leader"
        };
        Some(demote(reason))
    }

    /// The DCS did not answer. A primary keeps its role only while its lease is provably valid;
    /// a replica keeps streaming. In pause (as last read from the DCS) a primary keeps running
    /// too, as Patroni's `handle_dcs_error`.
    pub(crate) fn dcs_unreachable(&mut self, obs: &Observation, err: &DcsUnavailable) -> Verdict {
        let gc = self.global_config(None);
        if self.may_accept_writes(&obs.local) && !self.mem.bootstrapping && !gc.pause {
            if self.lease_valid(obs, &gc)
                && self.mem.last_leader.as_deref() == Some(self.cfg.name.as_str())
            {
                let left = obs
                    .lease
                    .map(|l| {
                        l.valid_until
                            .since(obs.now)
                            .saturating_sub(gc.fencing_margin_ms())
                    })
                    .unwrap_or(0);
                return verdict(
                    vec![],
                    format!(
                        "DCS is not accessible ({err}); still the leader while the lease is valid ({left} ms left)"
                    ),
                );
            }
            return demote("demoted self because DCS is not accessible and I was a leader");
        }
        verdict(vec![], format!("DCS is not accessible ({err})"))
    }

    /// This node holds the leader key and PostgreSQL runs.
    pub(crate) fn healthy_leader(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let local = &ctx.obs.local;
        if ctx.gc.pause && !local.is_running_primary() {
            // Nothing promotes in pause: a key holder that is not a primary gives the key up.
            return verdict(vec![Action::ReleaseLeader], pause::KEY_REMOVED_NOT_PRIMARY);
        }
        if !ctx.lease_valid {
            if ctx.gc.pause {
                return verdict(vec![], pause::PRIMARY_LOCK_NOT_UPDATED);
            }
            return verdict(
                vec![],
                "not promoting because failed to update leader lock in DCS",
            );
        }
        if !ctx.key_on_my_lease {
            return verdict(
                vec![Action::RefreshLeader],
                "re-attaching the leader lock to this agent's lease",
            );
        }
        // Patroni's process_manual_failover_from_leader, once the lock is confirmed.
        let first = match self.manual_failover_from_leader(ctx) {
            FromLeader::Act(v) => return v,
            FromLeader::Continue(first) => first,
        };
        if local.is_running_primary() {
            let mut actions = first;
            let history_behind = match &ctx.cluster.history {
                None => true,
                Some(_) => local.timeline.is_some_and(|t| ctx.cluster.timeline() < t),
            };
            if history_behind {
                actions.push(Action::UpdateHistory);
            }
            if ctx.gc.use_slots {
                let wanted = self.member_slots(ctx, &self.cfg.name);
                actions.extend(slot_changes(ctx.obs.slots.as_deref(), &wanted));
                actions.push(Action::SyncSlots { wanted });
            }
            actions.push(Action::WriteStatus);
            // Last: a lost compare-and-swap on `sync` skips only what follows it.
            actions.extend(self.sync_replication(ctx));
            return verdict(
                actions,
                format!(
                    "no action. I am ({}), the leader with the lock",
                    self.cfg.name
                ),
            );
        }
        // A cleared request waits until writes resume.
        let mut actions = self.sync_before_promote(ctx);
        actions.extend([
            Action::Promote,
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: Role::Primary,
            },
        ]);
        actions.extend(first);
        verdict(
            actions,
            "promoted self to leader because I had the session lock",
        )
    }

    /// Physical slots this node keeps: one per member that streams from it (Patroni's member
    /// slots; on the leader all but the cascading ones, on a replica its cascading members).
    /// A key that does not parse is nobody's member key: eight fake ones exhausted
    /// max_replication_slots.
    pub(crate) fn member_slots(&self, ctx: &Ctx<'_>, leader: &str) -> Vec<String> {
        ctx.cluster
            .downstream_of(&self.cfg.name, leader)
            .into_iter()
            .map(|m| slot_name_from_member_name(&m.name))
            .collect()
    }
}
