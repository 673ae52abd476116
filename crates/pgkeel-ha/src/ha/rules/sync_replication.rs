//! Synchronous replication on the primary: the `sync` key and `synchronous_standby_names`
//! move in the one order that never lets a standby that lacks an acknowledged commit be
//! promoted: a standby is added to the parameter first and to `sync` only once it provably
//! confirms every commit; it is removed from `sync` first and from the parameter after.
//! At most one `sync` write per step (each is a compare-and-swap on the revision the step saw);
//! what is left waits for the next step, which the agent runs soon.
//!
//! Reference: patroni-reference.md §2 "Synchronous replication on the primary"; Patroni's
//! `_process_multisync_replication`, `_process_multisync_prepromote` and
//! `disable_synchronous_replication` (`patroni/ha.py`). Quorum mode: `quorum_replication.rs`.

use super::Ctx;
use crate::cluster::SyncMode;
use crate::ha::{Action, Ha};
use crate::sync::{SyncView, lower, standby_names_value};
use std::collections::BTreeSet;

/// How soon the primary looks again while its synchronous standbys are being changed (Patroni
/// sleeps 2 s after changing the parameter, then looks).
const SETTLE_MS: u64 = 500;

/// `names` as Patroni logs a list: `['a', 'b']`.
fn py_list<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Ha {
    /// What the running `synchronous_standby_names` means (its parse errors warned about) and
    /// its text, for either synchronous mode.
    pub(crate) fn sync_view(&mut self, me: &str, ctx: &Ctx<'_>) -> (SyncView, String) {
        let mut warnings = Vec::new();
        let view = self
            .mem
            .sync
            .view(me, &ctx.obs.local, ctx.cluster, &ctx.gc, &mut warnings);
        for w in warnings {
            self.warn(w);
        }
        let running = ctx
            .obs
            .local
            .synchronous_standby_names
            .clone()
            .unwrap_or_default();
        (view, running)
    }

    /// This step's work on the synchronous standbys of a running primary that holds the lock.
    pub(crate) fn sync_replication(&mut self, ctx: &Ctx<'_>) -> Vec<Action> {
        match ctx.gc.synchronous_mode {
            SyncMode::Off => self.disable_sync_replication(ctx),
            SyncMode::On => self.priority_sync_replication(ctx),
            SyncMode::Quorum => self.quorum_sync_replication(ctx),
        }
    }

    /// Synchronous mode is off: the `sync` key goes, and the user's own
    /// `synchronous_standby_names` comes back (once per agent start when the server runs with
    /// some value, and again after any synchronous mode).
    fn disable_sync_replication(&mut self, ctx: &Ctx<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(s) = &ctx.cluster.sync {
            actions.push(Action::DeleteSync {
                mod_revision: s.mod_revision,
            });
            self.note("Disabled synchronous replication");
            self.mem.sync_names_restored = false;
        }
        // A server that runs with no synchronous standby names needs nothing restored (a
        // setting of the user's own would show).
        let running = ctx.obs.local.synchronous_standby_names.as_deref();
        if !self.mem.sync_names_restored && running.is_some_and(|v| !v.is_empty()) {
            actions.push(Action::SetSynchronousStandbyNames { value: None });
            self.mem.sync_names_restored = true;
        }
        self.mem.strict_sync_warned = false;
        actions
    }

    /// Priority mode (`synchronous_mode: on`), one step of Patroni's
    /// `_process_multisync_replication`.
    fn priority_sync_replication(&mut self, ctx: &Ctx<'_>) -> Vec<Action> {
        let me = self.cfg.name.clone();
        self.mem.sync_names_restored = false;
        let sync = match &ctx.cluster.sync {
            None => {
                self.note("Enabled synchronous replication");
                return vec![Action::WriteSync {
                    leader: me,
                    sync_standby: vec![],
                    quorum: 0,
                    expected: None,
                }];
            }
            Some(s) if s.leader.as_deref() != Some(me.as_str()) => {
                self.warn(format!(
                    "Inconsistent state of /sync key detected, leader = {} doesn't match {me}, updating synchronous replication key",
                    s.leader.as_deref().unwrap_or("None")
                ));
                return vec![Action::WriteSync {
                    leader: me,
                    sync_standby: vec![],
                    quorum: 0,
                    expected: Some(s.mod_revision),
                }];
            }
            Some(s) => s.clone(),
        };
        let (view, running) = self.sync_view(&me, ctx);
        let voters: BTreeSet<String> = sync.sync_standby.iter().cloned().collect();
        let mut actions = Vec::new();

        // Strict mode with nobody to be synchronous: commits wait (on the standbys `sync` names,
        // or on a name no standby has) rather than go unprotected.
        if ctx.gc.synchronous_mode_strict && view.active.is_empty() {
            let numsync = (voters.len() as u64).max(1);
            let want = standby_names_value(&voters, Some(numsync), false).unwrap_or_default();
            if running != want {
                actions.push(Action::SetSynchronousStandbyNames { value: Some(want) });
            }
            if !self.mem.strict_sync_warned {
                let cont = if actions.is_empty() && !voters.is_empty() {
                    format!("Continue using old value of synchronous_standby_names=\"{running}\". ")
                } else {
                    String::new()
                };
                self.warn(format!(
                    "No active replication connections from Patroni members and synchronous_mode_strict is requested. {cont}Commits will be delayed."
                ));
                self.mem.strict_sync_warned = true;
            }
            return actions;
        }
        self.mem.strict_sync_warned = false;

        let picked = lower(&view.active);
        // 1. Who leaves `sync` leaves it first: a standby stays only while it is still to be
        //    listed and confirms every commit.
        let keep: BTreeSet<String> = voters
            .iter()
            .filter(|v| picked.contains(&v.to_lowercase()) && view.confirmed.contains(*v))
            .cloned()
            .collect();
        let mut wrote_sync = false;
        if keep != voters {
            self.note(format!(
                "Updating /sync key temporarily from {} to {}",
                py_list(&voters),
                py_list(&keep)
            ));
            actions.push(Action::WriteSync {
                leader: me.clone(),
                sync_standby: keep.iter().cloned().collect(),
                quorum: 0,
                expected: Some(sync.mod_revision),
            });
            wrote_sync = true;
        }
        // 2. The parameter names who should be synchronous.
        let active: BTreeSet<String> = view.active.iter().cloned().collect();
        let want = standby_names_value(&active, None, false).unwrap_or_default();
        if running != want {
            if !want.is_empty() {
                self.note(format!(
                    "Assigning synchronous standby status to {}",
                    py_list(&active)
                ));
            }
            actions.push(Action::SetSynchronousStandbyNames { value: Some(want) });
            self.wake_no_later_than(ctx.obs.now.plus_ms(SETTLE_MS));
            return actions;
        }
        // 3. Who joins `sync` joins it last: listed, and provably confirming every commit.
        let assign: BTreeSet<String> = view
            .confirmed
            .iter()
            .filter(|c| picked.contains(&c.to_lowercase()))
            .cloned()
            .collect();
        if !wrote_sync && assign != voters {
            self.note(format!(
                "Synchronous standby status assigned to {}",
                py_list(&assign)
            ));
            actions.push(Action::WriteSync {
                leader: me,
                sync_standby: assign.into_iter().collect(),
                quorum: 0,
                expected: Some(sync.mod_revision),
            });
        } else if active.len() > view.confirmed.len() {
            // Listed standbys that do not confirm yet: look again soon.
            self.wake_no_later_than(ctx.obs.now.plus_ms(SETTLE_MS));
        }
        actions
    }

    /// Before this node promotes (Patroni's `process_sync_replication_prepromote`): it becomes
    /// the `sync` key's leader (a lost compare-and-swap fails the action and the promotion
    /// waits), and its parameter is set before it takes writes. In strict mode the members
    /// `sync` listed (the former primary among them) are synchronous from the first commit.
    pub(crate) fn sync_before_promote(&mut self, ctx: &Ctx<'_>) -> Vec<Action> {
        match ctx.gc.synchronous_mode {
            SyncMode::Off => return self.disable_sync_replication(ctx),
            SyncMode::Quorum => return self.quorum_before_promote(ctx),
            SyncMode::On => {}
        }
        let me = &self.cfg.name;
        self.mem.sync_names_restored = false;
        let expected = ctx.cluster.sync.as_ref().map(|s| s.mod_revision);
        let names: BTreeSet<String> = if ctx.gc.synchronous_mode_strict {
            ctx.cluster
                .sync
                .iter()
                .flat_map(|s| s.leader.iter().chain(s.sync_standby.iter()))
                .filter(|n| !n.eq_ignore_ascii_case(me))
                .cloned()
                .collect()
        } else {
            BTreeSet::new()
        };
        let numsync = (ctx.gc.synchronous_mode_strict && names.is_empty()).then_some(1);
        let value = standby_names_value(&names, numsync, false).unwrap_or_default();
        let mut actions = vec![Action::WriteSync {
            leader: me.clone(),
            sync_standby: names.into_iter().collect(),
            quorum: 0,
            expected,
        }];
        // Only a change is applied: the reload it takes, just before the promotion, can cost
        // the promotion PostgreSQL's 5 s retry sleep (see the promote action).
        if ctx.obs.local.synchronous_standby_names.as_deref() != Some(value.as_str()) {
            actions.push(Action::SetSynchronousStandbyNames { value: Some(value) });
        }
        actions
    }
}
