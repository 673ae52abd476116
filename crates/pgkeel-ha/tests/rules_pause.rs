//! Maintenance mode (`pause: true` in `/config`, issue 8 point 4): every paused branch of
//! Patroni's `ha.py` (`_run_cycle`, `process_healthy_cluster`, `process_unhealthy_cluster`,
//! `is_healthiest_node`, `follow`, `handle_starting_instance`, `handle_dcs_error`): nothing is
//! promoted, demoted, started or stopped on the agent's own account; requested restarts still
//! run; the resume restores the normal rules at the next cycle.
mod support;

use pgkeel_ha::ha::{
    Action, Answer, Outcome, PgState, RequestKind, RestartConditions, StopMode, TaskKind,
};
use serde_json::json;
use support::*;

fn paused() -> serde_json::Value {
    json!({"pause": true, "ttl": 30})
}

/// `/config` after `patronictl resume` (`{"pause": null}` removed the key).
fn resumed() -> ClusterBuilder {
    ClusterBuilder::initialized().config(json!({"ttl": 30}))
}

/// n1 leads; the cluster is paused.
fn paused_cluster() -> ClusterBuilder {
    ClusterBuilder::initialized()
        .config(paused())
        .three_nodes_led_by("n1")
}

/// The same cluster without the leader key.
fn paused_leaderless() -> ClusterBuilder {
    paused_cluster().without("leader")
}

/// True for the actions that change PostgreSQL's state on the agent's own account.
fn changes_postgres(a: &Action) -> bool {
    matches!(
        a,
        Action::Promote
            | Action::Stop(_)
            | Action::StartTask(_)
            | Action::RemoveDataDir
            | Action::MoveDataDirAside
    )
}

#[track_caller]
fn assert_leaves_postgres_alone(d: &pgkeel_ha::Decision) {
    assert!(
        !d.actions.iter().any(changes_postgres),
        "{:?} -> {}",
        d.actions,
        d.status
    );
}

#[test]
fn the_healthy_leader_does_what_it_does_unpaused_with_the_status_prefixed() {
    let unpaused = ha("n1").step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let d = ha("n1").step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_eq!(d.actions, unpaused.actions, "lock refresh, status, slots");
    assert_eq!(
        d.status,
        "PAUSE: no action. I am (n1), the leader with the lock"
    );
    assert_eq!(d.node.state, PgState::Running);
}

#[test]
fn a_killed_primary_stays_down_and_its_agent_removes_the_leader_key() {
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let dead = local_stopped("in production", 1, 0x300_0000);
    let d = n1.step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(dead.clone())
            .build(),
    );
    assert_decision(
        &d,
        &[Action::ReleaseLeader],
        "PAUSE: removed leader lock because postgres is not running",
    );
    // Patroni shows it `stopped`, not `crashed`: nobody is going to restart it.
    assert_eq!(d.node.state, PgState::Stopped);
    let d = n1.step(
        &obs()
            .cluster(paused_leaderless())
            .fresh_lease("n1")
            .local(dead)
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: postgres is not running");
}

#[test]
fn a_stopped_replica_is_not_started() {
    let mut n2 = ha("n2");
    n2.step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .build(),
    );
    let d = n2.step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n2")
            .local(local_stopped("in archive recovery", 1, 0x300_0000))
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: postgres is not running");
    assert_eq!(d.node.state, PgState::Stopped);
}

#[test]
fn without_a_leader_no_replica_races_or_is_promoted() {
    let d = ha("n2").step(
        &obs()
            .cluster(paused_leaderless())
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: no action. I am (n2)");
    // Even with the peers' answers in hand (the best candidate of all).
    let d = ha("n2").step(
        &obs()
            .cluster(paused_leaderless())
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .peers(vec![peer("n1", 0), peer("n3", 50)])
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: no action. I am (n2)");
}

#[test]
fn a_replica_that_won_the_key_as_the_pause_began_gives_it_back_instead_of_promoting() {
    let d = ha("n2").step(
        &obs()
            .cluster(paused_leaderless().leader("n2"))
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .outcome(Outcome::LeaderAcquired { won: true })
            .build(),
    );
    assert_decision(
        &d,
        &[Action::ReleaseLeader],
        "PAUSE: removed leader lock because postgres is not running as primary",
    );
}

#[test]
fn a_running_primary_takes_a_free_key_and_keeps_running_whatever_the_race_gives() {
    let base = || {
        obs()
            .cluster(paused_leaderless())
            .fresh_lease("n1")
            .local(local_primary())
    };
    let d = ha("n1").step(&base().build());
    assert_decision(
        &d,
        &[Action::AcquireLeader],
        "PAUSE: racing for the leader lock",
    );
    let d = ha("n1").step(
        &base()
            .outcome(Outcome::LeaderAcquired { won: true })
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: acquired session lock as a leader");
    // Another primary (an operator's doing) was faster: warn, do not demote.
    let d = ha("n1").step(
        &base()
            .outcome(Outcome::LeaderAcquired { won: false })
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: continue to run as primary without lock");
    // No valid lease to race with: no race, no demotion either.
    let d = ha("n1").step(&base().lease("n1", 1_000).build());
    assert_decision(&d, &[], "PAUSE: continue to run as primary without lock");
}

#[test]
fn a_primary_behind_the_cluster_timeline_does_not_take_the_key() {
    // Stricter than Patroni's pause (system ID only): a failover to timeline 2 happened while
    // this primary was away; taking the key on timeline 1 would discard it.
    let d = ha("n1").step(
        &obs()
            .cluster(paused_leaderless().history(json!([[1, 50, "no recovery target specified"]])))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: continue to run as primary without lock");
}

#[test]
fn a_failed_rewind_does_not_wipe_the_data_directory() {
    let d = ha_with("n2", |c| c.remove_data_directory_on_rewind_failure = true).step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n2")
            .local(local_stopped("shut down", 1, 0x300_0000))
            .outcome(Outcome::TaskFinished {
                kind: TaskKind::Rewind { from: "n1".into() },
                ok: false,
                message: "could not connect".into(),
                cause: pgkeel_ha::ha::FailureCause::Local,
            })
            .build(),
    );
    assert_decision(
        &d,
        &[],
        "PAUSE: pg_rewind from n1 failed (could not connect); not removing the data directory in pause",
    );
}

#[test]
fn a_primary_of_another_cluster_does_not_take_the_key() {
    let d = ha("n1").step(
        &obs()
            .cluster(paused_leaderless().initialize("6999999999999999999"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    // No FATAL exit in pause (Patroni only warns), and no race: its system ID is not ours.
    assert_decision(&d, &[], "PAUSE: continue to run as primary without lock");
}

#[test]
fn the_key_holder_of_another_cluster_gives_up_the_key_instead_of_exiting() {
    let d = ha("n1").step(
        &obs()
            .cluster(paused_cluster().initialize("6999999999999999999"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_decision(
        &d,
        &[Action::ReleaseLeader],
        "PAUSE: released leader key voluntarily due to the system ID mismatch",
    );
}

#[test]
fn a_primary_whose_lease_runs_out_is_not_fenced() {
    let d = ha("n1").step(
        &obs()
            .cluster(paused_cluster())
            .lease("n1", 1_000) // inside the fencing margin
            .local(local_primary())
            .build(),
    );
    assert_decision(
        &d,
        &[],
        "PAUSE: continue to run as primary after failing to update leader lock in DCS",
    );
}

#[test]
fn a_primary_without_the_lock_next_to_another_leader_is_not_demoted() {
    let d = ha("n2").step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n2")
            .local(local_primary())
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: continue to run as primary without lock");
}

#[test]
fn a_primary_cut_off_from_the_dcs_keeps_running_in_pause() {
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    // The last /config read says pause; the lease is past its fencing margin.
    let d = n1.step(
        &obs()
            .dcs_err("connection refused")
            .lease("n1", 1_000)
            .local(local_primary())
            .build(),
    );
    assert_leaves_postgres_alone(&d);
    assert!(
        d.status.starts_with("PAUSE: DCS is not accessible"),
        "{}",
        d.status
    );
}

#[test]
fn a_key_holder_running_as_a_replica_releases_the_key_and_is_not_promoted() {
    let d = ha("n1").step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(local_replica_of("n2"))
            .build(),
    );
    assert_decision(
        &d,
        &[Action::ReleaseLeader],
        "PAUSE: removed leader lock because postgres is not running as primary",
    );
}

#[test]
fn a_replica_is_pointed_at_a_new_leader_but_not_restarted_until_the_resume() {
    let mut n3 = ha("n3");
    // An operator promoted n2 by hand; its agent took the key. n3 still follows n1.
    let led_by_n2 = || {
        ClusterBuilder::initialized()
            .config(paused())
            .three_nodes_led_by("n2")
    };
    let d = n3.step(
        &obs()
            .cluster(led_by_n2())
            .fresh_lease("n3")
            .local(local_replica_of("n1"))
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Follow {
            leader: "n2".into(),
        }],
        "PAUSE: following new leader (n2)",
    );
    // The new settings need a restart: not in pause.
    let d = n3.step(
        &obs()
            .cluster(led_by_n2())
            .fresh_lease("n3")
            .local(local_replica_of("n2"))
            .outcome(Outcome::RestartNeeded {
                leader: "n2".into(),
            })
            .build(),
    );
    assert_decision(
        &d,
        &[],
        "PAUSE: not restarting postgres in pause: the new recovery settings need a restart after resume",
    );
    let d = n3.step(
        &obs()
            .cluster(led_by_n2())
            .fresh_lease("n3")
            .local(local_replica_of("n2"))
            .build(),
    );
    assert_leaves_postgres_alone(&d);
    // Resumed: the deferred restart runs at the next cycle.
    let d = n3.step(
        &obs()
            .cluster(resumed().three_nodes_led_by("n2"))
            .fresh_lease("n3")
            .local(local_replica_of("n2"))
            .build(),
    );
    assert_eq!(
        d.actions,
        [Action::StartTask(TaskKind::Restart {
            as_primary: false,
            follow: Some("n2".into()),
        })],
        "{}",
        d.status
    );
}

#[test]
fn a_diverged_replica_is_not_stopped_for_a_rewind() {
    // n2 streams on timeline 1 past the point where n1's timeline 2 forked off.
    let cluster = ClusterBuilder::initialized()
        .config(paused())
        .three_nodes_led_by("n1")
        .member("n1", |m| m.primary().timeline(2))
        .history(json!([[1, 50, "no recovery target specified"]]));
    let d = ha("n2").step(
        &obs()
            .cluster(cluster)
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .build(),
    );
    assert_leaves_postgres_alone(&d);
    assert!(
        d.status
            .starts_with("PAUSE: not stopping to rewind from n1 in pause"),
        "{}",
        d.status
    );
}

#[test]
fn a_slow_primary_start_is_waited_for_past_primary_start_timeout() {
    let cluster = |pause: bool| {
        ClusterBuilder::initialized()
            .config(json!({"pause": pause, "ttl": 30, "primary_start_timeout": 10}))
            .three_nodes_led_by("n1")
    };
    let dead = || local_stopped("in production", 1, 0x300_0000);
    // The crashed primary's in-place start began before the pause.
    let mut n1 = ha("n1");
    let d = n1.step(
        &obs()
            .cluster(cluster(false))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert!(!d.status.starts_with("PAUSE"));
    let d = n1.step(
        &obs()
            .cluster(cluster(false))
            .fresh_lease("n1")
            .local(dead())
            .build(),
    );
    let starting = TaskKind::Start {
        as_primary: true,
        follow: None,
    };
    assert_eq!(d.actions, [Action::StartTask(starting.clone())]);
    let late = |pause: bool| {
        obs()
            .cluster(cluster(pause))
            .now(NOW + 60_000)
            .lease_raw(lease_of("n1"), NOW + 60_000 + TTL_MS)
            .local(dead())
            .task(starting.clone())
            .build()
    };
    // Unpaused it would be stopped and the key released; in pause it is waited for.
    let mut unpaused = n1.clone();
    assert!(
        unpaused
            .step(&late(false))
            .actions
            .contains(&Action::ReleaseLeader)
    );
    let d = n1.step(&late(true));
    assert_leaves_postgres_alone(&d);
    assert!(
        !d.actions.contains(&Action::ReleaseLeader),
        "{:?}",
        d.actions
    );
}

#[test]
fn an_empty_data_directory_is_neither_bootstrapped_nor_cloned() {
    let d = ha("n3").step(
        &obs()
            .cluster(paused_cluster().without("members/n3"))
            .fresh_lease("n3")
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: running with empty data directory");
    let d = ha("n1").step(
        &obs()
            .cluster(ClusterBuilder::new().config(paused()))
            .fresh_lease("n1")
            .build(),
    );
    assert_decision(&d, &[], "PAUSE: running with empty data directory");
}

#[test]
fn an_existing_data_directory_is_not_adopted_without_an_initialize_key() {
    let d = ha("n1").step(
        &obs()
            .cluster(ClusterBuilder::new().config(paused()))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::WriteInitialize { .. })),
        "{:?}",
        d.actions
    );
    assert_leaves_postgres_alone(&d);
}

#[test]
fn a_requested_restart_still_runs() {
    let d = ha("n2").step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .request(7, RequestKind::Restart(RestartConditions::default()))
            .build(),
    );
    assert_eq!(
        d.actions,
        [Action::StartTask(TaskKind::Restart {
            as_primary: false,
            follow: Some("n1".into()),
        })]
    );
    assert!(matches!(d.answers.as_slice(), [(7, Answer::Accepted(_))]));
    assert_eq!(d.status, "PAUSE: restarting postgres on request");
}

#[test]
fn after_the_resume_a_primary_that_died_in_pause_is_failed_over_and_started_again() {
    let mut n1 = ha("n1");
    let mut n2 = ha("n2");
    n1.step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let dead = local_stopped("in production", 1, 0x300_0000);
    n1.step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(dead.clone())
            .build(),
    );
    let resumed = || {
        resumed()
            .three_nodes_led_by("n1")
            .without("leader")
            .member("n1", |m| m.primary().state("stopped"))
    };
    // The replicas race again (asking their peers first) ...
    let d = n2.step(
        &obs()
            .cluster(resumed())
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .build(),
    );
    assert_decision(
        &d,
        &[Action::ProbePeers],
        "no leader: asking peers before the leader race",
    );
    // ... and the old primary is started again (read-only: the race decides).
    let d = n1.step(
        &obs()
            .cluster(resumed())
            .fresh_lease("n1")
            .local(dead)
            .build(),
    );
    assert_eq!(
        d.actions,
        [Action::StartTask(TaskKind::Start {
            as_primary: false,
            follow: None,
        })],
        "{}",
        d.status
    );
    assert!(!d.status.starts_with("PAUSE"), "{}", d.status);
}

#[test]
fn after_the_resume_a_key_holder_losing_its_lease_is_fenced_again() {
    let mut n1 = ha("n1");
    let d = n1.step(
        &obs()
            .cluster(paused_cluster())
            .lease("n1", 1_000)
            .local(local_primary())
            .build(),
    );
    assert_leaves_postgres_alone(&d);
    let d = n1.step(
        &obs()
            .cluster(resumed().three_nodes_led_by("n1"))
            .lease("n1", 1_000)
            .local(local_primary())
            .build(),
    );
    assert_eq!(d.actions.first(), Some(&Action::Stop(StopMode::Immediate)));
}

#[test]
fn a_shutdown_in_pause_leaves_postgres_and_the_key_and_is_not_prefixed() {
    let d = ha("n1").step(
        &obs()
            .cluster(paused_cluster())
            .fresh_lease("n1")
            .local(local_primary())
            .request(1, RequestKind::Shutdown)
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Exit],
        "Leader key is not deleted and Postgresql is not stopped due paused state",
    );
}
