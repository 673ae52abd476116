//! The first callback of an agent's life (Patroni's `cb_called`): `on_start` in the server's
//! role at the first cycle that finds it running with nothing in progress, once.
mod support;

use pgkeel_ha::ha::{Action, CallbackEvent, Role, TaskKind};
use pgkeel_ha::{Ha, HaConfig};
use support::*;

fn fresh(name: &str) -> Ha {
    Ha::new(HaConfig::named(name))
}

fn on_start(role: Role) -> Action {
    Action::Callback {
        event: CallbackEvent::OnStart,
        role,
    }
}

#[test]
fn an_agent_started_next_to_a_running_replica_runs_on_start_once() {
    let mut n2 = fresh("n2");
    let obs = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .local(local_replica_of("n1"))
        .build();
    let d = n2.step(&obs);
    assert_eq!(d.actions.last(), Some(&on_start(Role::Replica)), "{d:?}");
    let d = n2.step(&obs);
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::Callback { .. })),
        "on_start ran twice: {d:?}"
    );
}

#[test]
fn an_agent_started_next_to_its_running_primary_runs_on_start_as_primary() {
    let mut n1 = fresh("n1");
    let obs = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    let d = n1.step(&obs);
    assert_eq!(d.actions.last(), Some(&on_start(Role::Primary)), "{d:?}");
}

#[test]
fn no_first_callback_while_a_task_runs_and_none_after_a_rule_ran_one() {
    // A clone is in progress: nothing yet.
    let mut n2 = fresh("n2");
    let cloning = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .local(local_replica_of("n1"))
        .task(TaskKind::Clone { from: "n1".into() })
        .build();
    let d = n2.step(&cloning);
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::Callback { .. })),
        "{d:?}"
    );
    // The clone's server runs: the first healthy cycle says so.
    let running = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .local(local_replica_of("n1"))
        .build();
    let d = n2.step(&running);
    assert_eq!(d.actions.last(), Some(&on_start(Role::Replica)), "{d:?}");
}

#[test]
fn no_first_callback_for_a_server_that_is_not_running() {
    let mut n2 = fresh("n2");
    let mut local = local_replica_of("n1");
    local.running = false;
    local.accepting_connections = false;
    local.role = None;
    let d = n2.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .local(local)
            .build(),
    );
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::Callback { .. })),
        "{d:?}"
    );
}
