//! The start check for a duplicate member name is the core's decision (issue 7 point 2,
//! Patroni's `ensure_unique_name`): a cycle of its own before every other rule.
mod support;

use pgkeel_ha::ha::{Action, Outcome};
use support::*;

fn checking() -> pgkeel_ha::Ha {
    ha_with("n2", |c| c.check_unique_name = true)
}

fn cluster_with_n2() -> ObsBuilder {
    obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .local(local_stopped("shut down", 1, 0x100))
}

#[test]
fn a_member_key_of_this_name_is_checked_at_its_liveness_address_first() {
    let mut n2 = checking();
    let d = n2.step(&cluster_with_n2().build());
    assert_eq!(
        d.actions,
        [Action::CheckUniqueName {
            liveness_url: "http://10.0.0.2:8008/liveness".into()
        }]
    );
    assert!(d.restep, "the answer decides at once");
    assert!(!n2.memory().unique_name_checked);
}

#[test]
fn an_answer_there_ends_the_agent_with_patronis_message() {
    let mut n2 = checking();
    n2.step(&cluster_with_n2().build());
    let d = n2.step(
        &cluster_with_n2()
            .outcome(Outcome::UniqueNameChecked { taken: true })
            .build(),
    );
    assert_decision(
        &d,
        &[Action::DuplicateName],
        "Can't start; there is already a node named 'n2' running",
    );
}

#[test]
fn no_answer_ends_the_check_cycle_and_the_rules_run_from_the_next_one() {
    let mut n2 = checking();
    n2.step(&cluster_with_n2().build());
    let d = n2.step(
        &cluster_with_n2()
            .outcome(Outcome::UniqueNameChecked { taken: false })
            .build(),
    );
    assert_eq!(
        (d.actions.as_slice(), d.status.as_str(), d.restep),
        (&[][..], "", false)
    );
    assert!(n2.memory().unique_name_checked);
    // The next cycle is an ordinary one: the stopped replica is started.
    let d = n2.step(&cluster_with_n2().build());
    assert!(
        d.actions.iter().any(|a| matches!(a, Action::StartTask(_))),
        "{d:?}"
    );
}

#[test]
fn no_member_key_or_no_dcs_passes_the_check_without_asking() {
    let mut n2 = checking();
    let d = n2.step(&obs().dcs_err("etcd: connection refused").build());
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(n2.memory().unique_name_checked);
    let mut n4 = ha_with("n4", |c| c.check_unique_name = true);
    let d = n4.step(&cluster_with_n2().build());
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(n4.memory().unique_name_checked);
}

#[test]
fn without_the_check_the_first_step_is_an_ordinary_one() {
    let mut n2 = ha("n2");
    let d = n2.step(&cluster_with_n2().build());
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::CheckUniqueName { .. })),
        "{d:?}"
    );
}
