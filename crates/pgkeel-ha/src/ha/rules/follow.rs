//! Another node holds the leader key: follow it, after checking that the local data directory
//! has not diverged from the leader's timeline.
//! Reference: patroni-reference.md §2 `follow()`, `handle_rewind_or_reinitialize()`.

use super::slots::slot_changes_keeping;
use super::{Ctx, Verdict, demote, pause, verdict};
use crate::ha::{Action, Ha, StopMode, TaskKind};
use crate::keys::codec::slot_name_from_member_name;
use crate::time::MonoTime;

/// Whether a stopped data directory can follow the leader as is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Divergence {
    /// Safe to start as a replica of the leader.
    No,
    /// It may hold WAL the leader does not have: rewind or re-clone first.
    Yes(String),
    /// Cannot tell yet (the leader has not published its timeline history).
    Unknown(String),
}

/// Whether `leader` has been seen on timeline `leader_tl` for a whole `ttl` (a promotion's
/// publishing lags it by less); `since` remembers when that sighting began.
fn waited_a_ttl(
    since: &mut Option<(String, u32, MonoTime)>,
    ctx: &Ctx<'_>,
    leader: &str,
    leader_tl: u32,
) -> bool {
    let now = ctx.obs.now;
    let began = match since {
        Some((l, tl, at)) if l == leader && *tl == leader_tl => *at,
        _ => {
            *since = Some((leader.to_string(), leader_tl, now));
            now
        }
    };
    now.since(began) >= ctx.gc.ttl.saturating_mul(1000)
}

impl Ha {
    pub(crate) fn follow_leader(&mut self, ctx: &Ctx<'_>, leader: &str) -> Verdict {
        let local = &ctx.obs.local;
        if local.is_running_primary() {
            if ctx.gc.pause {
                // Patroni warns about the parallel primary but does not demote it in pause.
                return verdict(vec![], pause::PRIMARY_WITHOUT_LOCK);
            }
            // fence() normally catches this first; kept for the bootstrapping exception.
            return demote("demoting self because I do not have the lock and I was a leader");
        }
        let target = self.upstream(ctx, leader);
        let repointing = local.following.as_deref() != Some(target.as_str());
        let divergence = if local.is_running_replica() {
            self.divergence(ctx, leader)
        } else {
            Divergence::No
        };
        if let Divergence::Unknown(why) = &divergence
            && repointing
        {
            // Pointed at a leader whose timeline it may not contain, PostgreSQL stops for good
            // ("requested timeline does not contain minimum recovery point"): wait.
            return verdict(vec![], format!("not following {leader} yet: {why}"));
        }
        if let Divergence::Yes(why) = divergence {
            if ctx.gc.pause {
                // Rewinding means stopping it: not in pause. It streams on as it can.
                return verdict(
                    vec![],
                    format!("not stopping to rewind from {leader} in pause: {why}"),
                );
            }
            // It cannot stream from the leader: stop it so that it is rewound (or re-cloned).
            return verdict(
                vec![Action::Stop(StopMode::Fast)],
                format!("stopping to rewind from {leader}: {why}"),
            );
        }
        if repointing {
            return verdict(
                vec![Action::Follow {
                    leader: target.clone(),
                }],
                format!("following new leader ({target})"),
            );
        }
        // Slots for the members that cascade from this replica; other members' slots it holds
        // are kept for when it leads, anything else inactive is dropped.
        let slots = if ctx.gc.use_slots {
            let members: Vec<String> = ctx
                .cluster
                .others(&self.cfg.name)
                .map(|m| slot_name_from_member_name(&m.name))
                .collect();
            slot_changes_keeping(
                ctx.obs.slots.as_deref(),
                &self.member_slots(ctx, leader),
                &members,
            )
        } else {
            Vec::new()
        };
        verdict(
            slots,
            format!(
                "no action. I am ({}), a secondary, and following a leader ({leader})",
                self.cfg.name
            ),
        )
    }

    /// The member to stream from: `replicatefrom` when it is a running member, else the leader.
    pub(crate) fn upstream(&self, ctx: &Ctx<'_>, leader: &str) -> String {
        ctx.cluster
            .upstream_of(&self.cfg.name, self.cfg.replicatefrom.as_deref(), leader)
            .to_string()
    }

    /// Compares the stopped local data directory with the leader's timeline history.
    pub(crate) fn divergence(&mut self, ctx: &Ctx<'_>, leader: &str) -> Divergence {
        let local = &ctx.obs.local;
        let former_primary = self.mem.last_role == Some(crate::pg::ServerRole::Primary)
            || (self.mem.last_role.is_none() && local.was_primary_per_controldata());
        if self.mem.divergence_checked_for.as_deref() == Some(leader) {
            return Divergence::No;
        }
        if !former_primary {
            return self.replica_divergence(ctx, leader);
        }
        let Some(my_tl) = local.timeline else {
            return Divergence::Yes("the local timeline is unknown".into());
        };
        let leader_tl = ctx
            .cluster
            .member(leader)
            .and_then(|m| m.timeline)
            .unwrap_or(0)
            .max(ctx.cluster.timeline());
        if leader_tl <= my_tl {
            // Same timeline: the leader was promoted from it only if its timeline is higher,
            // so this node can simply follow (it cannot be ahead of a leader on its own timeline
            // unless it was the primary of this timeline, which the leader key rules out).
            return if leader_tl == 0 {
                Divergence::Unknown(format!(
                    "leader {leader} has not published its timeline yet"
                ))
            } else if local.cluster_state.as_deref() == Some("in production") {
                Divergence::Yes("the former primary was not shut down cleanly".into())
            } else {
                Divergence::No
            };
        }
        if local.cluster_state.as_deref() != Some("shut down") {
            // Whatever the switch point: its WAL past the last checkpoint is unknown.
            return Divergence::Yes("the former primary was not shut down cleanly".into());
        }
        let switch = ctx
            .cluster
            .history
            .as_ref()
            .and_then(|h| h.iter().find(|e| e.timeline == my_tl))
            .map(|e| e.lsn);
        let Some(switch) = switch else {
            return self.missing_from_history(ctx, leader, my_tl, leader_tl);
        };
        match local.checkpoint_lsn {
            Some(lsn) if lsn.0 <= switch => Divergence::No,
            Some(lsn) => Divergence::Yes(format!(
                "local WAL ends at {lsn} on timeline {my_tl}, past the switch point {}",
                crate::pg::Lsn(switch)
            )),
            None => Divergence::Yes("the local WAL position is unknown".into()),
        }
    }

    /// A replica diverged only if its WAL went past the point where the leader's timeline
    /// forked off its own (it received WAL the new leader never had).
    fn replica_divergence(&mut self, ctx: &Ctx<'_>, leader: &str) -> Divergence {
        let local = &ctx.obs.local;
        let (Some(reported_tl), Some(pos)) =
            (local.timeline, local.wal_position.or(local.checkpoint_lsn))
        else {
            return Divergence::No;
        };
        let my_tl = match self.mem.streamed_timeline {
            Some(t) if local.running => t.max(reported_tl),
            _ => reported_tl,
        };
        let leader_tl = ctx
            .cluster
            .member(leader)
            .and_then(|m| m.timeline)
            .unwrap_or(0)
            .max(ctx.cluster.timeline());
        if leader_tl > 0 && leader_tl < my_tl && !local.streaming {
            // It replayed a promotion the leader never saw (Patroni's rewind check: "local
            // timeline > primary timeline" needs a rewind); it cannot stream from that leader.
            // The leader's timeline may only lag its promotion: a TTL of it is proof.
            if !waited_a_ttl(&mut self.mem.timeline_ahead_wait, ctx, leader, leader_tl) {
                return Divergence::No;
            }
            return Divergence::Yes(format!(
                "local timeline {my_tl} is ahead of leader {leader}'s timeline {leader_tl}"
            ));
        }
        self.mem.timeline_ahead_wait = None;
        if leader_tl <= my_tl {
            return Divergence::No;
        }
        let switch = ctx
            .cluster
            .history
            .as_ref()
            .and_then(|h| h.iter().find(|e| e.timeline == my_tl))
            .map(|e| e.lsn);
        match switch {
            Some(sw) if pos.0 > sw => Divergence::Yes(format!(
                "local WAL ends at {pos} on timeline {my_tl}, past the switch point {}",
                crate::pg::Lsn(sw)
            )),
            Some(_) => Divergence::No,
            // The history does not know this timeline (or there is none yet: the cluster's
            // first failover): a promotion the leader never saw (at worst this costs a
            // needless rewind), unless the leader has not written its newest entry yet.
            // Found by the fault campaign: a replica that streamed on from a frozen primary
            // past the switch point was pointed at the new leader and never started again.
            None => self.missing_from_history(ctx, leader, my_tl, leader_tl),
        }
    }

    /// The published `history` has no entry for `my_tl` while the leader runs on a later
    /// timeline. If the history has not reached `my_tl` yet and lags the leader's timeline, the
    /// new leader has probably not written it since its promotion: wait, for at most a TTL
    /// (PostgreSQL may skip timeline numbers, so a history can lag for good). Otherwise, or
    /// after the wait, `my_tl` is not an ancestor of the leader's timeline: diverged.
    fn missing_from_history(
        &mut self,
        ctx: &Ctx<'_>,
        leader: &str,
        my_tl: u32,
        leader_tl: u32,
    ) -> Divergence {
        let not_reached = ctx
            .cluster
            .history
            .as_ref()
            .is_none_or(|h| h.iter().all(|e| e.timeline < my_tl));
        if not_reached && ctx.cluster.timeline() < leader_tl {
            if !waited_a_ttl(&mut self.mem.history_wait, ctx, leader, leader_tl) {
                return Divergence::Unknown(format!(
                    "waiting for leader {leader} to publish its timeline history"
                ));
            }
        } else {
            self.mem.history_wait = None;
        }
        Divergence::Yes(format!("timeline {my_tl} is not in the leader's history"))
    }

    /// Stopped, another node leads: rewind, re-clone or start as its replica.
    pub(crate) fn start_following(&mut self, ctx: &Ctx<'_>, leader: &str) -> Verdict {
        if self.mem.rewind_failed {
            return verdict(
                vec![],
                "pg_rewind failed and removing the data directory is not allowed; \
                 to re-clone from the leader, set postgresql.remove_data_directory_on_rewind_failure \
                 or empty the data directory, then restart pgkeel",
            );
        }
        match self.divergence(ctx, leader) {
            Divergence::No => {
                let target = self.upstream(ctx, leader);
                verdict(
                    vec![Action::StartTask(TaskKind::Start {
                        as_primary: false,
                        follow: Some(target),
                    })],
                    "starting as a secondary",
                )
            }
            Divergence::Unknown(why) => verdict(vec![], format!("not starting yet: {why}")),
            Divergence::Yes(why) => {
                let use_rewind = ctx.gc.use_pg_rewind.unwrap_or(self.cfg.use_pg_rewind);
                if use_rewind {
                    verdict(
                        vec![Action::StartTask(TaskKind::Rewind {
                            from: leader.to_string(),
                        })],
                        format!("running pg_rewind from {leader} ({why})"),
                    )
                } else if self.cfg.remove_data_directory_on_diverged_timelines {
                    verdict(
                        vec![Action::RemoveDataDir],
                        format!("reinitializing due to diverged timelines ({why})"),
                    )
                } else {
                    verdict(
                        vec![],
                        format!(
                            "data directory may have diverged from leader {leader} ({why}); not starting it. \
                             Enable postgresql.use_pg_rewind, or empty the data directory and restart pgkeel to re-clone"
                        ),
                    )
                }
            }
        }
    }
}
