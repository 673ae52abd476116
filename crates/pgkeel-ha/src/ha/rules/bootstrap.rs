//! Empty data directory: race for `initialize` and initdb, or clone from the leader.
//! Reference: patroni-reference.md §2 `bootstrap()` and `post_bootstrap()`.

use super::{Ctx, Verdict, verdict};
use crate::ha::{Action, CallbackEvent, Ha, Outcome, Role, TaskKind};

impl Ha {
    /// The member to clone from and what it is (`leader` / `replica`): a running member tagged
    /// `clonefrom` (unless `from_leader`), else the leader; `None` while it has no `conn_url`.
    pub(crate) fn clone_source(
        &self,
        ctx: &Ctx<'_>,
        from_leader: bool,
    ) -> Option<(String, &'static str)> {
        let c = ctx.cluster;
        let leader = c.leader.as_ref()?;
        let source = c
            .members
            .iter()
            .find(|m| {
                !from_leader
                    && m.clonefrom()
                    && m.is_running()
                    && m.name != leader.name
                    && m.name != self.cfg.name
            })
            .or_else(|| c.member(&leader.name))
            .filter(|m| m.conn_url.is_some())?;
        let what = if source.name == leader.name {
            "leader"
        } else {
            "replica"
        };
        Some((source.name.clone(), what))
    }

    pub(crate) fn bootstrap(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let c = ctx.cluster;
        if let Some(leader) = &c.leader {
            return match self.clone_source(ctx, false) {
                Some((from, what)) => verdict(
                    vec![Action::StartTask(TaskKind::Clone { from: from.clone() })],
                    format!("trying to bootstrap from {what} '{from}'"),
                ),
                None => verdict(
                    vec![],
                    format!(
                        "waiting for leader '{}' to publish its member data",
                        leader.name
                    ),
                ),
            };
        }
        if self.cfg.nofailover {
            return verdict(
                vec![],
                "waiting for leader to bootstrap (this node is tagged nofailover)",
            );
        }
        // The race outcome first: the restep's fresh snapshot already shows the `initialize`
        // key this node just created.
        if Self::has_outcome(ctx.obs, |o| {
            matches!(o, Outcome::InitializeRace { won: true })
        }) {
            if ctx.obs.lease.is_none() {
                return verdict(vec![], "waiting for a DCS lease before bootstrapping");
            }
            self.mem.bootstrapping = true;
            return verdict(
                vec![Action::StartTask(TaskKind::Bootstrap)],
                "trying to bootstrap a new cluster",
            );
        }
        if Self::has_outcome(ctx.obs, |o| {
            matches!(o, Outcome::InitializeRace { won: false })
        }) {
            return verdict(vec![], "failed to acquire initialize lock");
        }
        if c.initialize.is_some() {
            return verdict(vec![], "waiting for leader to bootstrap");
        }
        if ctx.obs.lease.is_none() {
            // A won race must be followed by initdb in the same cycle: do not race without a lease.
            return verdict(vec![], "waiting for a DCS lease before bootstrapping");
        }
        verdict(
            vec![Action::RaceInitialize],
            "racing for the initialize key",
        )
    }

    /// The new cluster's primary is up: publish it and take the leader key.
    pub(crate) fn post_bootstrap(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let Some(sysid) = ctx.obs.local.sysid() else {
            return verdict(vec![], "waiting for the new cluster's system identifier");
        };
        if !ctx.obs.local.is_running_primary() {
            return verdict(vec![], "waiting for the new cluster to accept connections");
        }
        self.mem.bootstrapping = false;
        self.mem.post_bootstrap_pending = false;
        verdict(
            vec![
                Action::TakeLeader,
                Action::WriteInitialize {
                    sysid: sysid.to_string(),
                    create_only: false,
                },
                Action::WriteConfig,
                Action::UpdateHistory,
                Action::Callback {
                    event: CallbackEvent::OnStart,
                    role: Role::Primary,
                },
            ],
            "initialized a new cluster",
        )
    }
}
