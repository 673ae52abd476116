//! Quorum commit on the primary (`synchronous_mode: quorum`): `synchronous_standby_names` is
//! `ANY numsync (standbys)` and the `sync` key holds `quorum` of `voters`; the steps between
//! states come from the resolver (`sync/quorum.rs`), one per step: a parameter change is seen
//! in effect before the key moves, and each key write is a compare-and-swap on the revision the
//! step saw. A new primary moves its predecessor into the voters (the resolver's failover case).
//!
//! Reference: Patroni's `_process_quorum_replication`, `_process_quorum_prepromote` and
//! `_handle_synchronous_strict_mode` (`patroni/ha.py`).

use super::Ctx;
use crate::ha::{Action, Ha};
use crate::sync::{
    NameSet, QuorumInput, SsnKind, TransitionKind, resolve_quorum, standby_names_value,
};
use std::collections::BTreeSet;

/// How soon the primary looks again while its standbys are being changed.
const SETTLE_MS: u64 = 500;

impl Ha {
    /// One step of quorum commit on a running primary that holds the lock.
    pub(crate) fn quorum_sync_replication(&mut self, ctx: &Ctx<'_>) -> Vec<Action> {
        let me = self.cfg.name.clone();
        self.mem.sync_names_restored = false;
        let sync = match &ctx.cluster.sync {
            Some(s) if s.leader.is_some() => s.clone(),
            other => {
                self.note("Enabled synchronous replication");
                return vec![Action::WriteSync {
                    leader: me,
                    sync_standby: vec![],
                    quorum: 0,
                    expected: other.as_ref().map(|s| s.mod_revision),
                }];
            }
        };
        let key_leader = sync.leader.clone().unwrap_or_default();
        let (view, running) = self.sync_view(&me, ctx);
        // Names as the members spell them (the parameter's are compared without case).
        let spelled = |lower: &String| {
            ctx.cluster
                .members
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(lower))
                .map(|m| m.name.clone())
                .unwrap_or_else(|| lower.clone())
        };
        let listed = NameSet::of(view.listed.iter().map(spelled));
        let voters = NameSet::of(&sync.sync_standby);
        let quorum = u64::try_from(sync.quorum.unwrap_or(0)).unwrap_or(0);

        if key_leader.eq_ignore_ascii_case(&me) {
            let strict_min = u64::from(ctx.gc.synchronous_mode_strict);
            if (view.active.len() as u64) < strict_min {
                return self.quorum_strict_without_standbys(
                    &voters,
                    quorum,
                    &listed,
                    &view.kind,
                    view.numsync,
                    &running,
                );
            }
            self.mem.strict_sync_warned = false;
            if !ctx.gc.synchronous_mode_strict
                && view.active.is_empty()
                && voters.is_empty()
                && (!listed.is_empty() || view.numsync > 0)
                && !running.is_empty()
            {
                return vec![Action::SetSynchronousStandbyNames {
                    value: Some(String::new()),
                }];
            }
        }

        let input = QuorumInput {
            leader: key_leader,
            quorum,
            voters,
            numsync: view.numsync,
            sync: listed.clone(),
            numsync_confirmed: view.confirmed.len() as u64,
            active: NameSet::of(&view.active),
            sync_wanted: ctx.gc.synchronous_node_count,
            leader_wanted: me,
        };
        let resolution = match resolve_quorum(input) {
            Ok(r) => r,
            Err(e) => {
                self.warn(e.to_string());
                self.wake_no_later_than(ctx.obs.now.plus_ms(SETTLE_MS));
                return vec![];
            }
        };
        for w in resolution.warnings {
            self.warn(w);
        }
        let Some(t) = resolution.transitions.first() else {
            // Steady. A parameter in priority form (FIRST n) is rewritten as ANY n.
            if view.kind != SsnKind::Quorum && !listed.is_empty() {
                return self.set_quorum_names(&listed, view.numsync, &running, ctx);
            }
            return vec![];
        };
        match t.kind {
            TransitionKind::Sync => self.set_quorum_names(&t.names, t.num, &running, ctx),
            TransitionKind::Quorum => {
                self.note(format!(
                    "Setting leader to {}, quorum to {} of ({})",
                    t.leader, t.num, t.names
                ));
                // The key changed: the watch brings the next step; look again anyway.
                self.wake_no_later_than(ctx.obs.now.plus_ms(SETTLE_MS));
                vec![Action::WriteSync {
                    leader: t.leader.clone(),
                    sync_standby: t.names.names(),
                    quorum: i64::try_from(t.num).unwrap_or(i64::MAX),
                    expected: Some(sync.mod_revision),
                }]
            }
            TransitionKind::Restart => {
                // Standbys just named have not confirmed yet: look again soon.
                self.wake_no_later_than(ctx.obs.now.plus_ms(SETTLE_MS));
                vec![]
            }
        }
    }

    /// `synchronous_standby_names = ANY num (names)` (nothing when already so).
    fn set_quorum_names(
        &mut self,
        names: &NameSet,
        num: u64,
        running: &str,
        ctx: &Ctx<'_>,
    ) -> Vec<Action> {
        let set: BTreeSet<String> = names.names().into_iter().collect();
        let value = standby_names_value(&set, Some(num), true).unwrap_or_default();
        if value == running {
            return vec![];
        }
        if !value.is_empty() {
            self.note(format!("Assigning synchronous_standby_names to {value}"));
        }
        self.wake_no_later_than(ctx.obs.now.plus_ms(SETTLE_MS));
        vec![Action::SetSynchronousStandbyNames { value: Some(value) }]
    }

    /// Strict mode with no standby to name: commits wait on the voters the key lists (or on
    /// the placeholder) rather than go unprotected.
    fn quorum_strict_without_standbys(
        &mut self,
        voters: &NameSet,
        quorum: u64,
        listed: &NameSet,
        kind: &SsnKind,
        numsync: u64,
        running: &str,
    ) -> Vec<Action> {
        let want_num = (voters.len() as u64).saturating_sub(quorum).max(1);
        let mut actions = Vec::new();
        let mut cont = String::new();
        if voters != listed || want_num != numsync || *kind != SsnKind::Quorum {
            let set: BTreeSet<String> = voters.names().into_iter().collect();
            let value = standby_names_value(&set, Some(want_num), true).unwrap_or_default();
            if value != running {
                actions.push(Action::SetSynchronousStandbyNames { value: Some(value) });
            }
        } else if !voters.is_empty() {
            cont = format!("Continue using old value of synchronous_standby_names=\"{running}\". ");
        }
        if !self.mem.strict_sync_warned {
            self.warn(format!(
                "No active replication connections from Patroni members and synchronous_mode_strict is requested. {cont}Commits will be delayed."
            ));
            self.mem.strict_sync_warned = true;
        }
        actions
    }

    /// Before this node promotes in quorum mode (Patroni's `_process_quorum_prepromote`): the
    /// parameter names the former members so that its first commits wait for as many of them
    /// as could have the newest commit; the key moves after the promotion.
    pub(crate) fn quorum_before_promote(&mut self, ctx: &Ctx<'_>) -> Vec<Action> {
        let me = &self.cfg.name;
        self.mem.sync_names_restored = false;
        let (quorum, members): (u64, Vec<String>) = match &ctx.cluster.sync {
            Some(s) if s.leader.is_some() => (
                u64::try_from(s.quorum.unwrap_or(0)).unwrap_or(0),
                s.leader
                    .iter()
                    .chain(s.sync_standby.iter())
                    .cloned()
                    .collect(),
            ),
            _ => (0, vec![]),
        };
        let mut set = NameSet::of(&members);
        // Minus one: the members include the former leader.
        let mut numsync = (set.len() as u64).saturating_sub(quorum).saturating_sub(1);
        if set.contains(me) {
            set = NameSet::of(members.iter().filter(|m| !m.eq_ignore_ascii_case(me)));
        } else {
            // Promoted from outside the voters (a manual failover, or on quorum votes).
            numsync = numsync.saturating_add(1);
        }
        let numsync = numsync.max(u64::from(ctx.gc.synchronous_mode_strict));
        let names: BTreeSet<String> = set.names().into_iter().collect();
        let value = standby_names_value(&names, Some(numsync), true).unwrap_or_default();
        if ctx.obs.local.synchronous_standby_names.as_deref() == Some(value.as_str()) {
            return vec![]; // already so: no reload just before the promotion
        }
        vec![Action::SetSynchronousStandbyNames { value: Some(value) }]
    }
}
