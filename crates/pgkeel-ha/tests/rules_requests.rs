//! Requests from outside the loop (issue 7 point 1): answered accepted, refused or busy in the
//! step that sees them, done when their work ends; never ahead of the safety rules.
mod support;

use pgkeel_ha::ha::{
    Action, Answer, CallbackEvent, FailureCause, Outcome, RequestKind, RestartConditions, Role,
    StopMode, TaskKind,
};
use support::*;

fn restart() -> RequestKind {
    RequestKind::Restart(RestartConditions::default())
}

fn healthy_leader_obs() -> ObsBuilder {
    obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_primary())
}

#[test]
fn a_restart_of_the_leader_is_accepted_and_done_when_its_task_ends() {
    let mut n1 = ha("n1");
    let d = n1.step(&healthy_leader_obs().request(7, restart()).build());
    assert_decision(
        &d,
        &[Action::StartTask(TaskKind::Restart {
            as_primary: true,
            follow: None,
        })],
        "restarting postgres on request",
    );
    assert_eq!(
        d.answers,
        [(7, Answer::Accepted("restart initiated".into()))]
    );
    // While it runs the leader keeps its key, says so, and publishes "restarting".
    let running = healthy_leader_obs()
        .task(TaskKind::Restart {
            as_primary: true,
            follow: None,
        })
        .build();
    let d = n1.step(&running);
    assert_decision(&d, &[], "updated leader lock during restart");
    assert_eq!(d.node.state.as_str(), "restarting");
    assert!(d.answers.is_empty());
    // Done: answered once, with Patroni's words, and on_restart runs.
    let finished = healthy_leader_obs()
        .outcome(Outcome::TaskFinished {
            kind: TaskKind::Restart {
                as_primary: true,
                follow: None,
            },
            ok: true,
            message: String::new(),
            cause: FailureCause::Local,
        })
        .build();
    let d = n1.step(&finished);
    assert_eq!(
        d.actions,
        [Action::Callback {
            event: CallbackEvent::OnRestart,
            role: Role::Primary
        }]
    );
    assert_eq!(
        d.answers,
        [(
            7,
            Answer::Done {
                ok: true,
                message: "restarted successfully".into()
            }
        )]
    );
}

/// Reference: Patroni's `Ha.restart` (ha.py): with a `timeout`, a restart whose PostgreSQL has
/// not started by then answers `restart failed` (503); the start itself goes on.
#[test]
fn a_restart_that_outlasts_its_timeout_is_answered_restart_failed() {
    let mut n1 = ha("n1");
    let timed = RequestKind::Restart(RestartConditions {
        timeout_s: Some(5),
        ..RestartConditions::default()
    });
    let d = n1.step(&healthy_leader_obs().request(7, timed).build());
    assert_eq!(
        d.answers,
        [(7, Answer::Accepted("restart initiated".into()))]
    );
    let task = TaskKind::Restart {
        as_primary: true,
        follow: None,
    };
    let at = |ms: u64| {
        healthy_leader_obs()
            .now(NOW + ms)
            .lease_raw(lease_of("n1"), NOW + ms + TTL_MS)
            .task(task.clone())
            .build()
    };
    // Before the deadline: nothing answered, the agent is asked to wake at it.
    let d = n1.step(&at(4_000));
    assert!(d.answers.is_empty());
    assert_eq!(d.wake_at, Some(pgkeel_ha::time::MonoTime(NOW + 5_000)));
    // At it: failed, in Patroni's words; the task is left running, and the primary asks the
    // members whether one could take over (rules/restart_timeout.rs).
    let d = n1.step(&at(5_000));
    assert_decision(
        &d,
        &[Action::ProbePeers],
        "primary start has timed out: asking the members whether a failover is possible",
    );
    assert_eq!(
        d.answers,
        [(
            7,
            Answer::Done {
                ok: false,
                message: "restart failed".into()
            }
        )]
    );
    // Answered once: the task's end later answers nothing more.
    assert!(n1.step(&at(6_000)).answers.is_empty());
    let finished = healthy_leader_obs()
        .outcome(Outcome::TaskFinished {
            kind: task.clone(),
            ok: true,
            message: String::new(),
            cause: FailureCause::Local,
        })
        .build();
    assert!(n1.step(&finished).answers.is_empty());
    // Without a timeout nothing is answered before the task ends.
    let mut n1 = ha("n1");
    n1.step(&healthy_leader_obs().request(8, restart()).build());
    let d = n1.step(&at(600_000));
    assert!(d.answers.is_empty());
}

/// Reference: Patroni's `handle_starting_instance` with the start timeout `restart(timeout)`
/// sets: a primary not back within the timeout stops and gives the key up when a failover is
/// possible, and keeps waiting when it is not.
#[test]
fn a_primary_restart_past_its_timeout_demotes_only_when_a_failover_is_possible() {
    let timed = RequestKind::Restart(RestartConditions {
        timeout_s: Some(5),
        ..RestartConditions::default()
    });
    let task = TaskKind::Restart {
        as_primary: true,
        follow: None,
    };
    let at = |ms: u64, peers: Vec<pgkeel_ha::ha::PeerStatus>| {
        healthy_leader_obs()
            .now(NOW + ms)
            .lease_raw(lease_of("n1"), NOW + ms + TTL_MS)
            .task(task.clone())
            .peers(peers)
            .build()
    };
    let started = |n1: &mut pgkeel_ha::Ha| {
        n1.step(&healthy_leader_obs().request(7, timed.clone()).build());
        n1.step(
            &healthy_leader_obs()
                .now(NOW + 5_000)
                .lease_raw(lease_of("n1"), NOW + 5_000 + TTL_MS)
                .task(task.clone())
                .build(),
        );
    };
    // A healthy replica answered: stop at once and release the key.
    let mut n1 = ha("n1");
    started(&mut n1);
    let d = n1.step(&at(5_100, vec![peer("n2", 0), peer("n3", 0)]));
    assert_decision(
        &d,
        &[Action::Stop(StopMode::Immediate), Action::ReleaseLeader],
        "stopped PostgreSQL because of startup timeout",
    );
    // Nobody may take over (both replicas nofailover): keep the key and wait.
    let mut n1 = ha("n1");
    started(&mut n1);
    let tagged = |name: &str| pgkeel_ha::ha::PeerStatus {
        nofailover: true,
        ..peer(name, 0)
    };
    let d = n1.step(&at(5_100, vec![tagged("n2"), tagged("n3")]));
    assert_decision(
        &d,
        &[],
        "primary start has timed out, but continuing to wait because failover is not possible",
    );
    // Without a timeout the key holder never gives up on a requested restart.
    let mut n1 = ha("n1");
    n1.step(&healthy_leader_obs().request(8, restart()).build());
    let d = n1.step(&at(600_000, vec![peer("n2", 0)]));
    assert!(d.actions.is_empty(), "{d:?}");
}

#[test]
fn a_replica_restarts_following_the_leader_and_a_failure_is_answered() {
    let mut n2 = ha("n2");
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .request(1, restart())
        .build();
    let d = n2.step(&o);
    assert_eq!(
        d.actions,
        [Action::StartTask(TaskKind::Restart {
            as_primary: false,
            follow: Some("n1".into()),
        })]
    );
    let failed = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local_stopped("shut down in recovery", 1, 100))
        .outcome(Outcome::TaskFinished {
            kind: TaskKind::Restart {
                as_primary: false,
                follow: Some("n1".into()),
            },
            ok: false,
            message: "pg_ctl: could not start server".into(),
            cause: FailureCause::Local,
        })
        .build();
    let d = n2.step(&failed);
    assert_eq!(
        d.answers,
        [(
            1,
            Answer::Done {
                ok: false,
                message: "restart failed".into()
            }
        )]
    );
    assert!(d.actions.is_empty(), "{:?}", d.actions);
}

#[test]
fn a_node_busy_with_a_task_answers_busy() {
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .task(TaskKind::Rewind { from: "n1".into() })
        .request(3, restart())
        .build();
    let d = ha("n2").step(&o);
    assert_eq!(
        d.answers,
        [(3, Answer::Busy("pg_rewind already in progress".into()))]
    );
    assert_decision(&d, &[], "running pg_rewind from n1");
    // Two restarts in one step: the second is busy with the first.
    let d = ha("n1").step(
        &healthy_leader_obs()
            .request(1, restart())
            .request(2, restart())
            .build(),
    );
    assert_eq!(
        d.answers,
        [
            (1, Answer::Accepted("restart initiated".into())),
            (2, Answer::Busy("restart already in progress".into())),
        ]
    );
}

#[test]
fn restart_conditions_that_do_not_hold_are_refused_in_patronis_words() {
    for conditions in [
        RestartConditions {
            role: Some(Role::Replica),
            ..RestartConditions::default()
        },
        RestartConditions {
            only_if_pending: true,
            ..RestartConditions::default()
        },
        RestartConditions {
            // local_primary() runs 15.x: a request for "below 14" does not apply.
            below_version: Some(140000),
            ..RestartConditions::default()
        },
    ] {
        let d = ha("n1").step(
            &healthy_leader_obs()
                .request(9, RequestKind::Restart(conditions.clone()))
                .build(),
        );
        assert_eq!(
            d.answers,
            [(
                9,
                Answer::Refused("restart conditions are not satisfied".into())
            )],
            "{conditions:?}"
        );
        assert!(
            !d.actions.iter().any(|a| matches!(a, Action::StartTask(_))),
            "{:?}",
            d.actions
        );
    }
    let stopped = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local_stopped("shut down in recovery", 1, 100))
        .request(4, restart())
        .build();
    assert_eq!(
        ha("n2").step(&stopped).answers,
        [(4, Answer::Refused("postgres is not running".into()))]
    );
}

#[test]
fn a_request_never_goes_ahead_of_fencing() {
    // The primary's lease has lapsed: it is demoted this step, the restart waits unanswered.
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .lease("n1", 0)
        .local(local_primary())
        .request(5, restart())
        .build();
    let d = ha("n1").step(&o);
    assert!(d.answers.is_empty(), "{:?}", d.answers);
    assert_eq!(d.actions.first(), Some(&Action::Stop(StopMode::Immediate)));
}

#[test]
fn a_primary_without_the_leader_key_is_not_restarted() {
    // Its lease lapsed while it was frozen; the key is gone and the cluster races. A restart
    // "as primary" now would bring it back writable next to the new leader.
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .member("n1", |m| m.primary())
                .member("n2", |m| m)
                .member("n3", |m| m),
        )
        .fresh_lease("n1")
        .local(local_primary())
        .request(6, restart())
        .build();
    let d = ha("n1").step(&o);
    assert_eq!(
        d.answers,
        [(
            6,
            Answer::Refused("restart refused: this primary does not hold the leader lock".into())
        )]
    );
    assert!(
        !d.actions.iter().any(|a| matches!(a, Action::StartTask(_))),
        "{:?}",
        d.actions
    );
}

fn reinit(from_leader: bool) -> RequestKind {
    RequestKind::Reinitialize {
        force: false,
        from_leader,
    }
}

#[test]
fn a_replica_reinitializes_by_wiping_and_cloning_and_the_answer_comes_at_once() {
    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .local(local_replica_of("n1"))
            .request(3, reinit(false))
            .build(),
    );
    assert_decision(
        &d,
        &[
            Action::Stop(StopMode::Immediate),
            Action::RemoveDataDir,
            Action::StartTask(TaskKind::Clone { from: "n1".into() }),
        ],
        "reinitializing: trying to bootstrap from leader 'n1'",
    );
    assert_eq!(
        d.answers,
        [(
            3,
            Answer::Done {
                ok: true,
                message: "reinitialize started".into()
            }
        )]
    );
}

#[test]
fn reinitialize_clones_from_a_clonefrom_member_unless_from_leader() {
    let cluster = || {
        ClusterBuilder::initialized()
            .three_nodes_led_by("n1")
            .member("n3", |m| m.tag("clonefrom", serde_json::json!(true)))
    };
    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .cluster(cluster())
            .local(local_replica_of("n1"))
            .request(1, reinit(false))
            .build(),
    );
    assert!(
        d.actions
            .contains(&Action::StartTask(TaskKind::Clone { from: "n3".into() })),
        "{d:?}"
    );
    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .cluster(cluster())
            .local(local_replica_of("n1"))
            .request(1, reinit(true))
            .build(),
    );
    assert!(
        d.actions
            .contains(&Action::StartTask(TaskKind::Clone { from: "n1".into() })),
        "{d:?}"
    );
}

#[test]
fn reinitialize_is_refused_on_the_leader_without_a_leader_and_while_busy() {
    let mut n1 = ha("n1");
    let d = n1.step(&healthy_leader_obs().request(1, reinit(false)).build());
    assert_eq!(
        d.answers,
        [(
            1,
            Answer::Refused("I am the leader, can not reinitialize".into())
        )]
    );
    assert!(!d.actions.contains(&Action::RemoveDataDir), "{d:?}");

    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .cluster(
                ClusterBuilder::initialized()
                    .member("n1", |m| m)
                    .member("n2", |m| m),
            )
            .local(local_replica_of("n1"))
            .request(2, reinit(false))
            .build(),
    );
    assert_eq!(
        d.answers,
        [(
            2,
            Answer::Refused("Cluster has no leader, can not reinitialize".into())
        )]
    );
    assert!(!d.actions.contains(&Action::RemoveDataDir), "{d:?}");

    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .local(local_replica_of("n1"))
            .task(TaskKind::Restart {
                as_primary: false,
                follow: Some("n1".into()),
            })
            .request(3, reinit(false))
            .build(),
    );
    assert_eq!(
        d.answers,
        [(3, Answer::Busy("restart already in progress".into()))]
    );
}

#[test]
fn a_forced_reinitialize_cancels_a_running_copy_first() {
    // Patroni's `reinitialize(force=True)`: the running action is cancelled, then the
    // reinitialize starts. Here a clone (stuck on a slow source) is cancelled; the request is
    // answered in the step that starts the reinitialize.
    let forced = RequestKind::Reinitialize {
        force: true,
        from_leader: false,
    };
    let cluster = ClusterBuilder::initialized().three_nodes_led_by("n1");
    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .cluster(cluster.clone())
            .local(local_stopped("in archive recovery", 1, 100))
            .task(TaskKind::Clone { from: "n3".into() })
            .request(4, forced.clone())
            .build(),
    );
    assert_eq!(d.actions, [Action::CancelTask], "{}", d.status);
    assert!(d.restep);
    assert!(d.answers.is_empty(), "answered too early: {:?}", d.answers);
    let d = n2.step(
        &obs()
            .cluster(cluster.clone())
            .local(local_stopped("in archive recovery", 1, 100))
            .request(4, forced.clone())
            .build(),
    );
    assert!(
        d.actions
            .contains(&Action::StartTask(TaskKind::Clone { from: "n1".into() })),
        "{:?}",
        d.actions
    );
    assert_eq!(
        d.answers,
        [(
            4,
            Answer::Done {
                ok: true,
                message: "reinitialize started".into()
            }
        )]
    );
    // A restart is not a copy: it is waited for, forced or not.
    let d = ha("n2").step(
        &obs()
            .cluster(cluster)
            .local(local_replica_of("n1"))
            .task(TaskKind::Restart {
                as_primary: false,
                follow: Some("n1".into()),
            })
            .request(5, forced)
            .build(),
    );
    assert_eq!(
        d.answers,
        [(5, Answer::Busy("restart already in progress".into()))]
    );
}
