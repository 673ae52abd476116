//! The first callback of an agent's life (Patroni's `cb_called`): the first time a cycle finds
//! PostgreSQL running and accepting connections with nothing in progress, and no callback has run
//! since the agent started, `on_start` runs in the server's role. That covers a replica that was
//! cloned and started by a task (whose end has no callback of its own) and an agent restarted
//! next to a PostgreSQL that kept running, whose VIP script would otherwise never hear of it.

use super::Verdict;
use crate::ha::{Action, CallbackEvent, Ha, Observation, Role};

impl Ha {
    /// Appends `on_start` to a verdict when this is the first chance (see the module docs), and
    /// remembers that a callback ran once any verdict carries one.
    pub(crate) fn first_callback(&mut self, obs: &Observation, verdict: &mut Verdict) {
        let has_callback = verdict.actions.iter().any(|a| {
            matches!(
                a,
                Action::Callback {
                    event: CallbackEvent::OnStart
                        | CallbackEvent::OnStop
                        | CallbackEvent::OnRestart
                        | CallbackEvent::OnRoleChange,
                    ..
                }
            )
        });
        if has_callback {
            self.mem.callback_called = true;
            return;
        }
        if self.mem.callback_called
            || self.mem.bootstrapping
            || self.mem.shutdown.is_some()
            || obs.task.is_some()
            || !obs.local.running
            || !obs.local.accepting_connections
            || obs.local.role.is_none()
        {
            return;
        }
        // Not while this verdict changes the server (it decides its own callbacks).
        let changes_server = verdict.changes_server();
        if changes_server {
            return;
        }
        self.mem.callback_called = true;
        verdict.actions.push(Action::Callback {
            event: CallbackEvent::OnStart,
            role: Role::running_as(obs.local.is_running_primary()),
        });
    }
}
