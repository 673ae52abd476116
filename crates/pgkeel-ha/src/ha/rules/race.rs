//! No leader key: decide whether this node is the healthiest and race for the key.
//! Reference: patroni-reference.md §2 `process_unhealthy_cluster()`, `_is_healthiest_node()`.

use super::{Ctx, Verdict, demote, pause, verdict};
use crate::cluster::{SyncMode, SyncState};
use crate::ha::{Action, CallbackEvent, Ha, Outcome, Role};

/// How soon a member waiting for quorum votes asks its peers again.
const VOTE_RETRY_MS: u64 = 200;

impl Ha {
    pub(crate) fn unhealthy_cluster(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let mut v = self.leaderless(ctx);
        // Quorum mode: with no leader key, a replica stops streaming before anything else, so
        // that a former primary still running (its agent frozen, no watchdog) cannot have more
        // commits acknowledged by the members whose votes elect the next primary.
        let won = Self::has_outcome(ctx.obs, |o| matches!(o, Outcome::LeaderAcquired { .. }));
        if !ctx.gc.pause
            && !won
            && Self::quorum_active(ctx).is_some()
            && ctx.obs.local.is_running_replica()
            && ctx.obs.local.following.is_some()
        {
            v.actions.insert(0, Action::StopStreaming);
        }
        v
    }

    /// The `sync` key's quorum while quorum commit is active.
    pub(crate) fn quorum_active(ctx: &Ctx<'_>) -> Option<i64> {
        Self::sync_active(ctx)
            .filter(|_| ctx.gc.synchronous_mode == SyncMode::Quorum)
            .map(|s| s.quorum.unwrap_or(0))
    }

    fn leaderless(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let local = &ctx.obs.local;
        let primary = local.is_running_primary();
        if ctx.gc.pause {
            return self.paused_unhealthy_cluster(ctx);
        }
        if Self::has_outcome(ctx.obs, |o| {
            matches!(o, Outcome::LeaderAcquired { won: true })
        }) {
            // Patroni clears the request once the lock is taken (`Cleaning up failover key
            // after acquiring leader lock...`); here right after the promotion, so that
            // writes resume one DCS round trip sooner, and only the key seen (CAS), so that
            // a request written during the promotion survives.
            let clear = ctx.cluster.failover.as_ref().map(|f| {
                self.note("Cleaning up failover key after acquiring leader lock...");
                Action::ClearFailover {
                    mod_revision: f.mod_revision,
                }
            });
            if primary {
                return verdict(
                    clear.into_iter().collect(),
                    "acquired session lock as a leader",
                );
            }
            let mut actions = self.sync_before_promote(ctx);
            actions.extend([
                Action::Promote,
                Action::Callback {
                    event: CallbackEvent::OnRoleChange,
                    role: Role::Primary,
                },
            ]);
            actions.extend(clear);
            return verdict(actions, "promoted self to leader by acquiring session lock");
        }
        if Self::has_outcome(ctx.obs, |o| {
            matches!(o, Outcome::LeaderAcquired { won: false })
        }) {
            if primary {
                // Another node holds the key now: stop writes at once, not a loop_wait later.
                return demote("demoted self after trying and failing to obtain lock");
            }
            return verdict(
                vec![],
                "following new leader after trying and failing to obtain lock",
            );
        }
        if let Err(why) = self.healthiest(ctx) {
            if primary {
                return demote(format!("demoting self because {why}"));
            }
            let reason = if self.cfg.nofailover {
                "following a different leader because I am not allowed to promote".to_string()
            } else {
                format!("following a different leader because i am not the healthiest node: {why}")
            };
            return verdict(vec![], reason);
        }
        let has_peers = ctx
            .cluster
            .members
            .iter()
            .any(|m| m.name != self.cfg.name && m.api_url.is_some());
        // The named candidate of a manual failover races at once (Patroni asks nobody).
        let named_candidate = ctx.cluster.failover.as_ref().is_some_and(|f| {
            f.member.as_deref() == Some(self.cfg.name.as_str())
                && !(f.leader.is_some() && Self::quorum_active(ctx).is_some())
        });
        if !primary && ctx.obs.peers.is_none() && has_peers && !named_candidate {
            return verdict(
                vec![Action::ProbePeers],
                "no leader: asking peers before the leader race",
            );
        }
        if !ctx.lease_valid {
            return verdict(
                vec![],
                "waiting for a valid DCS lease before racing for the leader lock",
            );
        }
        verdict(vec![Action::AcquireLeader], "racing for the leader lock")
    }

    /// No leader key in pause: only a running primary of this cluster races (and keeps running
    /// whatever the outcome); nothing is promoted, nothing demoted. A replica that won the key
    /// anyway (the pause arrived between its race and this step) gives it back rather than
    /// promote.
    fn paused_unhealthy_cluster(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let local = &ctx.obs.local;
        let primary = local.is_running_primary();
        let won = Self::has_outcome(ctx.obs, |o| {
            matches!(o, Outcome::LeaderAcquired { won: true })
        });
        let lost = Self::has_outcome(ctx.obs, |o| {
            matches!(o, Outcome::LeaderAcquired { won: false })
        });
        if !primary {
            if won {
                return verdict(vec![Action::ReleaseLeader], pause::KEY_REMOVED_NOT_PRIMARY);
            }
            return verdict(vec![], self.paused_no_action());
        }
        if won {
            return verdict(vec![], "acquired session lock as a leader");
        }
        // Patroni's is_healthiest_node in pause: a primary is the healthiest when its system
        // ID is the cluster's (or the cluster has none yet). pgkeel also keeps the timeline
        // check of the unpaused rule: a primary behind the cluster's timeline taking the key
        // would discard a promotion made meanwhile (found by the simulator: a frozen primary
        // woke up in pause after a failover and took the key on the old timeline).
        let ours = match (ctx.cluster.initialize.as_deref(), ctx.obs.local.sysid()) {
            (None | Some(""), _) => true,
            (Some(init), Some(mine)) => init == mine,
            (Some(_), None) => false,
        };
        let cluster_tl = ctx.cluster.timeline();
        let behind = local
            .timeline
            .is_some_and(|t| cluster_tl > 0 && t < cluster_tl);
        if lost || !ours || behind || !ctx.lease_valid {
            return verdict(vec![], pause::PRIMARY_WITHOUT_LOCK);
        }
        verdict(vec![Action::AcquireLeader], "racing for the leader lock")
    }

    /// `Ok` when this node may race: eligible by tags, lag and timeline, and no reachable peer
    /// is a primary, ahead of it, or as far ahead with a higher failover priority.
    /// A running primary whose timeline is current needs no peer probe.
    fn healthiest(&mut self, ctx: &Ctx<'_>) -> Result<(), String> {
        if self.cfg.nofailover {
            return Err("I am not allowed to become primary".into());
        }
        let local = &ctx.obs.local;
        let my_lsn = local.wal_position.map(|l| l.0).unwrap_or(0);
        let cluster_tl = ctx.cluster.timeline();
        if local.is_running_primary() {
            return match local.timeline {
                Some(t) if cluster_tl > 0 && t < cluster_tl => Err(format!(
                    "my timeline {t} is behind the cluster timeline {cluster_tl}"
                )),
                _ => Ok(()),
            };
        }
        let not_sync = Self::sync_active(ctx).is_some_and(|s| !s.includes(&self.cfg.name));
        if let Some(f) = ctx.cluster.failover.clone() {
            if f.leader.is_some() && not_sync {
                return Err("I am not a synchronous standby".into());
            }
            // A requested failover/switchover decides (rules/switchover.rs); no lag check.
            return self.manual_failover_no_leader(ctx, &f);
        }
        // Synchronous mode: only a member the `sync` key lists has every acknowledged commit.
        // Quorum mode lets anyone race who gathers enough votes (`compare_with_peers`).
        if not_sync && ctx.gc.synchronous_mode == SyncMode::On {
            return Err("I am not a synchronous standby".into());
        }
        if let Some(optime) = ctx.cluster.plausible_optime(self.mem.highest_member_lsn) {
            let lag = optime.saturating_sub(my_lsn);
            if lag > ctx.gc.maximum_lag_on_failover {
                return Err(format!(
                    "my lag of {lag} bytes behind the last known leader position exceeds maximum_lag_on_failover ({})",
                    ctx.gc.maximum_lag_on_failover
                ));
            }
        }
        self.compare_with_peers(ctx, None)
    }

    /// The `sync` key while synchronous mode is on and a primary has written it (Patroni's
    /// `sync_mode_is_active`): then only the members it lists may be promoted.
    pub(crate) fn sync_active<'a>(ctx: &Ctx<'a>) -> Option<&'a SyncState> {
        if !ctx.gc.synchronous_mode.is_synchronous() {
            return None;
        }
        ctx.cluster.sync.as_ref().filter(|s| s.leader.is_some())
    }

    /// The timeline check and the comparison with the peers' answers (Patroni's
    /// `_is_healthiest_node` after the lag check), leaving out the member `exclude` (the former
    /// leader of a switchover).
    pub(crate) fn compare_with_peers(
        &mut self,
        ctx: &Ctx<'_>,
        exclude: Option<&str>,
    ) -> Result<(), String> {
        self.compare_with_peers_as(ctx, exclude, false)
    }

    /// [`Self::compare_with_peers`]; `named`: this node is the named candidate of a
    /// switchover (quorum mode), which needs the votes but yields to no higher priority.
    pub(crate) fn compare_with_peers_as(
        &mut self,
        ctx: &Ctx<'_>,
        exclude: Option<&str>,
        named: bool,
    ) -> Result<(), String> {
        let local = &ctx.obs.local;
        let my_lsn = local.wal_position.map(|l| l.0).unwrap_or(0);
        let cluster_tl = ctx.cluster.timeline();
        if ctx.gc.check_timeline {
            match local.timeline {
                Some(t) if t >= cluster_tl => {}
                other => {
                    return Err(format!(
                        "my timeline {} is behind the cluster timeline {cluster_tl}",
                        other
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    ));
                }
            }
        }
        let quorum_mode = Self::quorum_active(ctx).is_some();
        let no_one_to_ask = !ctx
            .cluster
            .members
            .iter()
            .any(|m| m.name != self.cfg.name && m.api_url.is_some());
        let none = Vec::new();
        let peers = match &ctx.obs.peers {
            Some(p) => p,
            // Quorum mode with nobody to ask: no votes (only the former leader may go on).
            None if quorum_mode && no_one_to_ask => &none,
            None => return Ok(()), // not probed yet: `unhealthy_cluster` probes before racing
        };
        let sync = Self::sync_active(ctx);
        // Quorum mode: the `sync` key's leader and voters vote; a voter that is not ahead says
        // this node may have every acknowledged commit, and `quorum` such votes prove it
        // (Patroni's quorum votes in `_is_healthiest_node`).
        let quorum = Self::quorum_active(ctx);
        let mut still_streaming = Vec::new();
        let me = self.cfg.name.as_str();
        let mut votes: i64 = if sync.is_some_and(|s| s.includes(me)) {
            0
        } else {
            -1
        };
        let mut nodes_ahead = 0u32;
        // The timeline it streamed on: a stopped WAL receiver reports the older restartpoint's.
        let my_tl = local.timeline.max(self.mem.streamed_timeline);
        for p in peers
            .iter()
            .filter(|p| p.reachable && p.name != self.cfg.name)
            .filter(|p| Some(p.name.as_str()) != exclude)
        {
            if !p.in_recovery {
                return Err(format!("Primary ({}) is still alive", p.name));
            }
            // Synchronous mode compares only with the members `sync` lists; the former primary
            // it names may be ahead (it wrote what the standbys had not confirmed yet). In
            // quorum mode a listed member votes even when it may not promote.
            let voter = quorum.is_some() && sync.is_some_and(|s| s.includes(&p.name));
            if (p.nofailover && !voter) || sync.is_some_and(|s| !s.includes(&p.name)) {
                continue;
            }
            let position = wal_order(p.timeline, p.lsn, my_tl, my_lsn);
            if position == std::cmp::Ordering::Greater {
                nodes_ahead = nodes_ahead.saturating_add(1);
                if sync.is_some_and(|s| s.leader.as_deref() == Some(&p.name)) {
                    continue;
                }
                return Err(format!(
                    "Wal position of {} is ahead of my wal position",
                    p.name
                ));
            }
            if p.lsn == 0 {
                continue; // its PostgreSQL is not running: no vote
            }
            let former_leader = sync.and_then(|s| s.leader.as_deref()) == Some(p.name.as_str());
            if position == std::cmp::Ordering::Equal
                && !named
                && p.failover_priority > self.cfg.failover_priority
                && !former_leader
                && (quorum.is_none() || voter)
            {
                return Err(format!(
                    "{} has equally tolerable WAL position and priority {}, while this node has priority {}",
                    p.name, p.failover_priority, self.cfg.failover_priority
                ));
            }
            // A vote says "I do not have more than you, and will not get more from the
            // former primary": only a member that streams from nobody can promise the second.
            if voter && !p.detached {
                still_streaming.push(p.name.clone());
            } else if voter {
                votes = votes.saturating_add(1);
            }
        }
        if let Some(q) = quorum {
            let former = sync.and_then(|s| s.leader.as_deref()) == Some(me);
            if votes < q && !(nodes_ahead == 0 && former) {
                let mut why = format!("{} quorum votes, {q} needed", votes.max(0));
                if !still_streaming.is_empty() {
                    // They stop streaming as soon as they see the leader key gone.
                    why.push_str(&format!(
                        " ({} still streaming from the former primary)",
                        still_streaming.join(", ")
                    ));
                    self.wake_no_later_than(ctx.obs.now.plus_ms(VOTE_RETRY_MS));
                }
                return Err(why);
            }
        }
        Ok(())
    }
}

/// How a peer's WAL position compares with this node's: by timeline first when both are known
/// (a member on a newer timeline has history this node lacks, however far an older timeline
/// went: the simulator found a former primary on timeline 1, with WAL nobody acknowledged,
/// beating the timeline 2 replicas on position alone), else by position.
fn wal_order(
    peer_tl: Option<u32>,
    peer_lsn: u64,
    my_tl: Option<u32>,
    my_lsn: u64,
) -> std::cmp::Ordering {
    match (peer_tl, my_tl) {
        (Some(p), Some(m)) if p != m => p.cmp(&m),
        _ => peer_lsn.cmp(&my_lsn),
    }
}
