//! Manual failover and switchover: the `failover` key (`{"leader","member","scheduled_at"}`),
//! written by `POST /switchover`, `POST /failover` or `patronictl switchover`, is honoured by
//! every node.
//!
//! * The leader (`from_leader`, after its lock is confirmed): a scheduled request waits for its
//!   time, a stale one is cleared; when it names this node (or no leader) and another member can
//!   take over, the leader demotes itself gracefully (CHECKPOINT, fast stop, the shutdown
//!   position into `status`, the leader key released); otherwise the key is cleared.
//! * Without a leader (`no_leader`, in the leader race): the named candidate races at once;
//!   the others stand back while it is reachable and allowed to promote.
//!
//! Reference: patroni-reference.md §2 `process_manual_failover_from_leader()`,
//! `manual_failover_process_no_leader()`, `is_failover_possible()`, `demote('graceful')`;
//! Patroni's `patroni/ha.py`.

use super::{Ctx, Verdict, verdict};
use crate::cluster::{Failover, SyncMode};
use crate::ha::{Action, CallbackEvent, Ha, Outcome, PeerStatus, Role, StopMode};
use crate::time::parse_iso8601_ms;

/// What the leader does about the `failover` key this step.
pub(crate) enum FromLeader {
    /// Nothing to do: carry on as the leader with these extra actions first (a cleared key).
    Continue(Vec<Action>),
    /// The request is carried out (or its candidates are being asked first).
    Act(Verdict),
}

/// Patroni's `_get_failover_action_name`: `switchover` when the key names a leader, else
/// `manual failover`.
fn action_name(f: &Failover) -> &'static str {
    if f.leader.is_some() {
        "switchover"
    } else {
        "manual failover"
    }
}

/// `action` without `manual ` (Patroni's `bare_action`).
fn bare(action: &str) -> &str {
    action.trim_start_matches("manual ")
}

/// Capitalises the first letter (Python's `str.title()` on these one- or two-word names).
fn title(action: &str) -> String {
    action
        .split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Ha {
    /// Patroni's `process_manual_failover_from_leader`: this node holds the lock (confirmed on
    /// a valid lease) and there may be a `failover` key.
    pub(crate) fn manual_failover_from_leader(&mut self, ctx: &Ctx<'_>) -> FromLeader {
        let Some(f) = ctx.cluster.failover.clone() else {
            return FromLeader::Continue(vec![]);
        };
        if Self::has_outcome(ctx.obs, |o| {
            matches!(o, Outcome::LeaderAcquired { won: true })
        }) {
            // This node has just won the race the request started (or another one): Patroni
            // clears the key right after acquiring the lock, whoever was named. Here only the
            // key seen (CAS): the clear runs after the promotion, and a new request written
            // meanwhile must survive it (a bench round lost one that way).
            self.note("Cleaning up failover key after acquiring leader lock...");
            return FromLeader::Continue(vec![Action::ClearFailover {
                mod_revision: f.mod_revision,
            }]);
        }
        let primary = ctx.obs.local.is_running_primary();
        if ctx.gc.pause && !primary {
            return FromLeader::Continue(vec![]);
        }
        let action = action_name(&f);
        let clear = vec![Action::ClearFailover {
            mod_revision: f.mod_revision,
        }];
        if let Some(at) = &f.scheduled_at
            && !ctx.gc.pause
        {
            let Some(due) = parse_iso8601_ms(at) else {
                self.warn(format!("Incorrect value of scheduled_at: {at}"));
                return FromLeader::Continue(clear);
            };
            let delta_ms = due.saturating_sub(ctx.obs.wall_ms);
            if delta_ms > 0 {
                // Patroni waits while the time is more than loop_wait away and then sleeps
                // until it; the agent is woken at the time instead.
                let wait = u64::try_from(delta_ms).unwrap_or(u64::MAX);
                if wait > ctx.gc.loop_wait.saturating_mul(1000) {
                    self.note(format!(
                        "Awaiting {} at {at} (in {:.0} seconds)",
                        bare(action),
                        wait.div_ceil(1000)
                    ));
                }
                self.wake_no_later_than(ctx.obs.now.plus_ms(wait));
                return FromLeader::Continue(vec![]);
            }
            // `delta < -int(loop_wait * 1.5)`: a cycle delayed that long skips the request.
            let stale_after_s = ctx.gc.loop_wait.saturating_mul(3) / 2;
            let late_ms = delta_ms.unsigned_abs();
            if late_ms > stale_after_s.saturating_mul(1000) {
                self.warn(format!(
                    "Found a stale {} value, cleaning up: {at}",
                    bare(action)
                ));
                return FromLeader::Continue(clear);
            }
            self.note(format!("Manual scheduled {} at {at}", bare(action)));
        }
        let me = self.cfg.name.clone();
        match (&f.leader, &f.member) {
            (Some(l), _) if *l != me => {
                self.warn(format!("{action}: leader name does not match: {l} != {me}"));
            }
            (_, Some(c)) if *c == me => {
                self.warn(format!(
                    "{action}: I am already the leader, no need to {}",
                    bare(action)
                ));
            }
            (_, None) if ctx.gc.pause => {
                self.warn(format!(
                    "{} is possible only to a specific candidate in a paused state",
                    title(action)
                ));
            }
            _ => {
                let candidates = self.failover_candidates(ctx, &f, false);
                if !candidates.is_empty() && ctx.obs.peers.is_none() {
                    return FromLeader::Act(verdict(
                        vec![Action::ProbePeers],
                        format!("{action}: asking the candidates"),
                    ));
                }
                if self.is_failover_possible(ctx, &f, false) {
                    return FromLeader::Act(
                        self.graceful_demote(ctx, format!("{action}: demoting myself")),
                    );
                }
                self.warn(format!(
                    "{action}: no healthy members found, {} is not possible",
                    bare(action)
                ));
            }
        }
        self.note("Cleaning up failover key");
        FromLeader::Continue(clear)
    }

    /// Patroni's `demote('graceful')`: a CHECKPOINT (so the shutdown checkpoint is quick), a
    /// fast stop (the replicas receive all WAL including the shutdown checkpoint, so the old
    /// primary can follow the new one without pg_rewind), `on_stop`, the last position into
    /// `status`, the leader key released, `on_role_change` (replica). The next step starts
    /// PostgreSQL as a replica.
    fn graceful_demote(&mut self, ctx: &Ctx<'_>, status: String) -> Verdict {
        self.mem.released_key = ctx.cluster.leader.as_ref().map(|l| l.mod_revision);
        self.mem.start_after_demotion = true;
        let role = Role::running_as(ctx.obs.local.is_running_primary());
        verdict(
            vec![
                Action::Checkpoint,
                Action::Stop(StopMode::Fast),
                Action::Callback {
                    event: CallbackEvent::OnStop,
                    role,
                },
                Action::WriteShutdownPosition,
                Action::ReleaseLeader,
                Action::Callback {
                    event: CallbackEvent::OnRoleChange,
                    role: Role::Replica,
                },
            ],
            status,
        )
    }

    /// Patroni's `get_failover_candidates`: the other members that may promote and can be asked
    /// (an `api_url`); only the named candidate unless it is excluded.
    fn failover_candidates(
        &self,
        ctx: &Ctx<'_>,
        f: &Failover,
        exclude_candidate: bool,
    ) -> Vec<String> {
        // Synchronous mode: a switchover goes only to a member `sync` lists (a failover
        // without a leader may go to an asynchronous one: the operator confirmed it).
        let sync = Self::sync_active(ctx).filter(|_| f.leader.is_some());
        ctx.cluster
            .members
            .iter()
            .filter(|m| m.name != self.cfg.name && m.unreadable.is_none())
            .filter(|m| sync.is_none_or(|s| s.lists(&m.name)))
            .filter(|m| !(exclude_candidate && f.member.as_deref() == Some(m.name.as_str())))
            .filter(|m| !m.nofailover() && m.api_url.is_some())
            .filter(|m| {
                exclude_candidate
                    || f.member.is_none()
                    || f.member.as_deref() == Some(m.name.as_str())
            })
            .map(|m| m.name.clone())
            .collect()
    }

    /// Patroni's `is_failover_possible`: some candidate answered, may promote, and is within
    /// `maximum_lag_on_failover` of the last known leader position. Needs the peers' answers
    /// (`ProbePeers`); without them nothing is possible.
    pub(crate) fn is_failover_possible(
        &mut self,
        ctx: &Ctx<'_>,
        f: &Failover,
        exclude_candidate: bool,
    ) -> bool {
        let candidates = self.failover_candidates(ctx, f, exclude_candidate);
        if candidates.is_empty() {
            self.warn(format!("{}: candidates list is empty", action_name(f)));
            return false;
        }
        let last_lsn = ctx
            .cluster
            .plausible_optime(self.mem.highest_member_lsn)
            .unwrap_or(0);
        let mut healthy: i64 = 0;
        for name in &candidates {
            let st = ctx
                .obs
                .peers
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|p| &p.name == name);
            match st.and_then(failover_limitation) {
                Some(reason) => self.note(format!("Member {name} is {reason}")),
                None if st.is_none() => self.note(format!("Member {name} is not reachable")),
                None => {
                    let lsn = st.map(|p| p.lsn).unwrap_or(0);
                    if last_lsn.saturating_sub(lsn) > ctx.gc.maximum_lag_on_failover {
                        self.note(format!("Member {name} exceeds maximum replication lag"));
                    } else {
                        healthy = healthy.saturating_add(1);
                    }
                }
            }
        }
        // Quorum mode: enough healthy voters must be left to elect a new primary (unless the
        // request names the candidate).
        if let Some(q) = Self::quorum_active(ctx)
            && (f.member.is_none() || exclude_candidate)
            && healthy.saturating_sub(1) < q
        {
            self.note(format!("Quorum requirement {q} can not be reached"));
            return false;
        }
        healthy > 0
    }

    /// Patroni's `manual_failover_process_no_leader` (not paused): whether this node may race
    /// for the free leader key while a `failover` key exists. `Ok` also when the peers have not
    /// been asked yet (the race asks them first, except for the named candidate itself).
    pub(crate) fn manual_failover_no_leader(
        &mut self,
        ctx: &Ctx<'_>,
        f: &Failover,
    ) -> Result<(), String> {
        let action = action_name(f);
        let me = self.cfg.name.clone();
        if let Some(c) = &f.member {
            if *c == me {
                // Quorum mode: a switchover whose leader did not hand over (its key expired)
                // must not skip the votes; this node alone may lack acknowledged commits.
                if f.leader.is_some() && Self::quorum_active(ctx).is_some() {
                    return self.compare_with_peers_as(ctx, f.leader.as_deref(), true);
                }
                return Ok(());
            }
            // Synchronous mode (not quorum): a member `sync` does not list stands back
            // even when the candidate cannot take over.
            if ctx.gc.synchronous_mode == SyncMode::On
                && Self::sync_active(ctx).is_some_and(|s| !s.includes(&me))
            {
                return Err(format!("{action}: I am not a synchronous standby"));
            }
            // A switchover candidate `sync` does not list cannot take over (it refuses, see
            // `healthiest`): any member may, as if none had been named.
            let unpromotable =
                f.leader.is_some() && Self::sync_active(ctx).is_some_and(|s| !s.includes(c));
            if unpromotable {
                self.warn(format!("{action}: member {c} is not a synchronous standby"));
            } else if ctx.cluster.member(c).is_some() {
                let Some(peers) = &ctx.obs.peers else {
                    return Ok(());
                };
                let st = peers.iter().find(|p| &p.name == c);
                let my_lsn = ctx.obs.local.wal_position.map(|l| l.0).unwrap_or(0);
                let behind = Self::quorum_active(ctx).is_some()
                    && f.leader.is_some()
                    && st.is_some_and(|p| p.lsn < my_lsn);
                match st.map_or(Some("not reachable"), failover_limitation) {
                    // Quorum mode: a candidate behind this member cannot get its vote; the
                    // race goes on among the others (it would wait forever otherwise).
                    None if behind => self.warn(format!("{action}: member {c} is behind me")),
                    None => {
                        let why = format!("{action}: to {c}, i am {me}");
                        self.note(why.clone());
                        return Err(why);
                    }
                    Some(reason) => self.warn(format!("{action}: member {c} is {reason}")),
                }
            }
            // The candidate cannot take over: any member may, as if none had been named.
        }
        // Quorum mode: only the primary the `sync` key names is known to have every
        // acknowledged commit; a `failover` key naming another "leader" (anyone may write it)
        // must not let that member skip the votes. Found by the simulator (seed 17078).
        let former_leader = f.leader.as_deref() == Some(me.as_str())
            && (Self::quorum_active(ctx).is_none()
                || Self::sync_active(ctx).and_then(|s| s.leader.as_deref()) == Some(me.as_str()));
        if former_leader {
            if ctx.obs.peers.is_none() {
                return Ok(());
            }
            return if self.is_failover_possible(ctx, f, f.member.is_some()) {
                Err(format!(
                    "{action}: another member can take over from me, the former leader"
                ))
            } else {
                Ok(()) // I was the leader and seem to be the only healthy member.
            };
        }
        self.compare_with_peers(ctx, f.leader.as_deref())
    }
}

/// Patroni's `_MemberStatus.failover_limitation`: why a peer cannot promote, if it cannot.
fn failover_limitation(p: &PeerStatus) -> Option<&'static str> {
    if !p.reachable {
        Some("not reachable")
    } else if p.nofailover {
        Some("not allowed to promote")
    } else {
        None
    }
}
