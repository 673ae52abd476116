//! Shutting the agent down (SIGTERM) is the core's decision (issue 7 point 2): stop PostgreSQL,
//! then release the key and the lease only once it is down; in pause mode leave both alone.
mod support;

use pgkeel_ha::ha::{Action, Answer, CallbackEvent, Outcome, RequestKind, Role, StopMode};
use serde_json::json;
use support::*;

fn leader_obs() -> ObsBuilder {
    obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_primary())
}

fn stopped() -> pgkeel_ha::pg::LocalPostgres {
    local_stopped("shut down", 1, 0x300_0000)
}

/// What follows a successful stop of a server that ran as `role`: `on_stop`, the shutdown
/// position when it was the leader's primary, the release, the revocation and the exit.
fn after_the_stop(role: Role) -> Vec<Action> {
    let mut actions = vec![Action::Callback {
        event: CallbackEvent::OnStop,
        role,
    }];
    if role == Role::Primary {
        // The replicas racing for the released key see the shutdown checkpoint's position.
        actions.push(Action::WriteShutdownPosition);
    }
    actions.extend([Action::ReleaseLeader, Action::RevokeLease, Action::Exit]);
    actions
}

#[test]
fn the_leader_checkpoints_stops_postgres_then_hands_over_like_a_switchover_and_exits() {
    let mut n1 = ha("n1");
    let d = n1.step(&leader_obs().request(1, RequestKind::Shutdown).build());
    assert_decision(
        &d,
        &[Action::Checkpoint, Action::Stop(StopMode::Fast)],
        "shutting down: stopping PostgreSQL",
    );
    assert!(d.answers.is_empty(), "not done yet");
    // The next step sees the server down: on_stop, release, revoke, exit.
    let d = n1.step(
        &leader_obs()
            .local(stopped())
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    assert_eq!(d.actions, after_the_stop(Role::Primary));
    assert!(matches!(
        d.answers.as_slice(),
        [(1, Answer::Done { ok: true, .. })]
    ));
}

#[test]
fn a_replica_stops_without_a_checkpoint_and_writes_no_shutdown_position() {
    let replica_obs = || {
        obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
    };
    let mut n2 = ha("n2");
    let d = n2.step(&replica_obs().request(1, RequestKind::Shutdown).build());
    assert_eq!(d.actions, [Action::Stop(StopMode::Fast)]);
    let d = n2.step(
        &replica_obs()
            .local(stopped())
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    assert_eq!(d.actions, after_the_stop(Role::Replica));
}

#[test]
fn a_server_still_running_after_the_stop_keeps_the_key() {
    let mut n1 = ha("n1");
    n1.step(&leader_obs().request(1, RequestKind::Shutdown).build());
    // The stop failed: the server still answers as a primary.
    let d = n1.step(
        &leader_obs()
            .outcome(Outcome::ActionFailed {
                action: Box::new(Action::Stop(StopMode::Fast)),
                error: "pg_ctl stop timed out".into(),
            })
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Exit],
        "PostgreSQL shutdown failed, leader key not removed.",
    );
}

#[test]
fn a_failed_release_does_not_keep_the_agent_from_exiting() {
    let mut n1 = ha("n1");
    n1.step(&leader_obs().request(1, RequestKind::Shutdown).build());
    n1.step(
        &leader_obs()
            .local(stopped())
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    let d = n1.step(
        &obs()
            .dcs_err("etcd: connection refused")
            .fresh_lease("n1")
            .local(stopped())
            .outcome(Outcome::ActionFailed {
                action: Box::new(Action::ReleaseLeader),
                error: "etcd: connection refused".into(),
            })
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Exit],
        "shutting down: the leader key could not be released; it expires with the lease",
    );
}

#[test]
fn in_pause_mode_postgres_and_the_key_are_left_alone() {
    let mut n1 = ha("n1");
    let paused = leader_obs().cluster(
        ClusterBuilder::initialized()
            .three_nodes_led_by("n1")
            .config(json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": true})),
    );
    let d = n1.step(&paused.request(1, RequestKind::Shutdown).build());
    assert_decision(
        &d,
        &[Action::Exit],
        "Leader key is not deleted and Postgresql is not stopped due paused state",
    );
}

#[test]
fn shutdown_goes_before_every_other_rule_even_without_the_dcs() {
    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .dcs_err("etcd: connection refused")
            .local(local_replica_of("n1"))
            .request(3, RequestKind::Shutdown)
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Stop(StopMode::Fast)],
        "shutting down: stopping PostgreSQL",
    );
    // A replica's on_stop names its role; a stopped node has no on_stop at all.
    let d = n2.step(
        &obs()
            .dcs_err("etcd: connection refused")
            .local(stopped())
            .request(3, RequestKind::Shutdown)
            .build(),
    );
    assert_eq!(
        d.actions.first(),
        Some(&Action::Callback {
            event: CallbackEvent::OnStop,
            role: Role::Replica
        })
    );
    let mut idle = ha("n3");
    idle.step(
        &obs()
            .local(stopped())
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    let d = idle.step(
        &obs()
            .local(stopped())
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    assert_eq!(
        d.actions,
        [Action::ReleaseLeader, Action::RevokeLease, Action::Exit]
    );
}

#[test]
fn a_failed_stop_is_logged_at_error_as_patroni_does() {
    let mut n1 = ha("n1");
    let d = n1.step(&leader_obs().request(1, RequestKind::Shutdown).build());
    assert_eq!(d.level, pgkeel_ha::ha::StatusLevel::Info);
    let d = n1.step(&leader_obs().request(1, RequestKind::Shutdown).build());
    assert_eq!(d.actions, [Action::Exit]);
    assert_eq!(d.level, pgkeel_ha::ha::StatusLevel::Error);
}
