//! A changed dynamic configuration reaches the running server within one cycle (Patroni's
//! `reload_config` after `/config` changed): when the `postgresql` part of `/config` differs
//! from the one seen before, the next cycle that finds PostgreSQL running with nothing else
//! changing it rewrites the configuration files and reloads the server, then runs `on_reload`.
//! Reloadable parameters take effect at once; the others show up in the next observation as
//! `pending_restart` (PostgreSQL's own `pg_settings.pending_restart`), published with their old
//! and new values until `restart --pending` restarts the server.

use super::Verdict;
use crate::ha::{Action, CallbackEvent, Ha, Observation, Outcome, Role, TaskKind};

impl Ha {
    /// Appends the reload to a verdict when a change waits for it (see the module docs).
    pub(crate) fn reload_on_config_change(&mut self, obs: &Observation, verdict: &mut Verdict) {
        let failed = obs.outcomes.iter().find_map(|o| match o {
            Outcome::ActionFailed { action, .. } => match **action {
                Action::ReloadConfig { always, .. } => Some(always),
                _ => None,
            },
            _ => None,
        });
        if let Some(always) = failed {
            self.mem.config_reload_pending = true;
            self.mem.config_reload_asked |= always;
        }
        if !self.mem.config_reload_pending {
            return;
        }
        // Configuration written anyway, with the new settings: nothing left to do.
        let writes_config = verdict.actions.iter().any(|a| {
            matches!(
                a,
                Action::Follow { .. }
                    | Action::StartTask(
                        TaskKind::Start { .. }
                            | TaskKind::Restart { .. }
                            | TaskKind::Clone { .. }
                            | TaskKind::Bootstrap
                    )
            )
        });
        if writes_config {
            self.mem.config_reload_pending = false;
            self.mem.config_reload_asked = false;
            return;
        }
        let changes_server = verdict.changes_server();
        let local = &obs.local;
        if changes_server
            || obs.task.is_some()
            || self.mem.shutdown.is_some()
            || !local.running
            || !local.accepting_connections
        {
            return;
        }
        let (follow, role) = if local.is_running_primary() {
            (None, Role::Primary)
        } else if local.is_running_replica() {
            match &local.following {
                Some(upstream) => (Some(upstream.clone()), Role::Replica),
                // No upstream yet: the Follow that sets one writes the new settings too.
                None => return,
            }
        } else {
            return;
        };
        self.mem.config_reload_pending = false;
        let always = std::mem::take(&mut self.mem.config_reload_asked);
        verdict
            .actions
            .push(Action::ReloadConfig { follow, always });
        verdict.actions.push(Action::Callback {
            event: CallbackEvent::OnReload,
            role,
        });
    }
}
