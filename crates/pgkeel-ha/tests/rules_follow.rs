//! Another node leads: follow it; crash recovery; rejoin of a former primary (divergence).
mod support;

use pgkeel_ha::Observation;
use pgkeel_ha::ha::{Action, CallbackEvent, FailureCause, Outcome, StopMode, TaskKind};
use serde_json::json;
use support::*;

fn start_secondary(follow: &str) -> Action {
    Action::StartTask(TaskKind::Start {
        as_primary: false,
        follow: Some(follow.into()),
    })
}

#[test]
fn replica_follows_the_leader_in_steady_state() {
    // Reference: patroni-reference.md §2 process_healthy_cluster() -> follow(): 'no action. I am (x), a secondary, and following a leader (y)'
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    let d = ha("n2").step(&o);
    assert_decision(
        &d,
        &[],
        "no action. I am (n2), a secondary, and following a leader (n1)",
    );
    assert_eq!(
        (d.node.state.as_str(), d.node.role.as_str()),
        ("running", "replica")
    );
}

#[test]
fn replica_repoints_when_the_leader_changes() {
    // Reference: patroni-reference.md §2 follow(): primary_conninfo changed -> reload/restart
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n3"))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[Action::Follow {
            leader: "n3".into(),
        }],
        "following new leader (n3)",
    );
}

#[test]
fn replica_streams_from_a_running_replicatefrom_member() {
    // Reference: patroni-reference.md §2 follow(): node = replicatefrom member
    let mut n3 = ha_with("n3", |c| c.replicatefrom = Some("n2".into()));
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n3")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &n3.step(&o),
        &[Action::Follow {
            leader: "n2".into(),
        }],
        "following new leader (n2)",
    );
}

#[test]
fn crashed_replica_restarts_as_a_secondary() {
    // Reference: patroni-reference.md §2 recover(): 'starting as a secondary'
    let mut n2 = ha("n2");
    let cluster = ClusterBuilder::initialized().three_nodes_led_by("n1");
    n2.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .build(),
    );
    let d = n2.step(
        &obs()
            .cluster(cluster)
            .fresh_lease("n2")
            .local(local_stopped("in archive recovery", 1, 100))
            .build(),
    );
    assert_decision(&d, &[start_secondary("n1")], "starting as a secondary");
    assert_eq!(
        (d.node.state.as_str(), d.node.role.as_str()),
        ("crashed", "replica")
    );
}

#[test]
fn crashed_primary_holding_the_key_restarts_in_place() {
    // Reference: patroni-reference.md §2 recover(): 'starting primary after failure'
    let mut n1 = ha("n1");
    let cluster = ClusterBuilder::initialized().three_nodes_led_by("n1");
    n1.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_decision(
        &n1.step(
            &obs()
                .cluster(cluster)
                .fresh_lease("n1")
                .local(local_stopped("in production", 1, 100))
                .build(),
        ),
        &[Action::StartTask(TaskKind::Start {
            as_primary: true,
            follow: None,
        })],
        "starting primary after failure",
    );
}

#[test]
fn crashed_primary_restart_reports_progress_within_primary_start_timeout() {
    // Reference: patroni-reference.md §2 handle_long_action_in_progress(): 'updated leader lock during <action>'
    let cluster = ClusterBuilder::initialized()
        .config(json!({"primary_start_timeout": 10}))
        .three_nodes_led_by("n1");
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n1")
            .local(local_stopped("in production", 1, 100))
            .build(),
    );
    let t = NOW + 10_000;
    let d = n1.step(
        &obs()
            .now(t)
            .cluster(cluster)
            .lease_raw(lease_of("n1"), t + TTL_MS)
            .local(local_stopped("in production", 1, 100))
            .task(TaskKind::Start {
                as_primary: true,
                follow: None,
            })
            .build(),
    );
    assert_decision(
        &d,
        &[],
        "updated leader lock during starting primary after failure",
    );
}

#[test]
fn crashed_primary_exceeding_primary_start_timeout_releases_the_key() {
    // Reference: patroni-reference.md §2 handle_starting_instance(): time left <= 0 -> demote('immediate')
    let cluster = ClusterBuilder::initialized()
        .config(json!({"primary_start_timeout": 10}))
        .three_nodes_led_by("n1");
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n1")
            .local(local_stopped("in production", 1, 100))
            .build(),
    );
    let t = NOW + 10_001;
    let d = n1.step(
        &obs()
            .now(t)
            .cluster(cluster)
            .lease_raw(lease_of("n1"), t + TTL_MS)
            .local(local_stopped("in production", 1, 100))
            .task(TaskKind::Start {
                as_primary: true,
                follow: None,
            })
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Stop(StopMode::Immediate), Action::ReleaseLeader],
        "primary did not start within primary_start_timeout; released the leader lock",
    );
    assert!(d.restep);
}

#[test]
fn crashed_primary_whose_restarts_keep_failing_releases_the_key_after_primary_start_timeout() {
    // Reference: patroni-reference.md §2 recover() / handle_starting_instance(): the timeout
    // bounds the whole in-place recovery, not one start attempt.
    let cluster = ClusterBuilder::initialized()
        .config(json!({"primary_start_timeout": 10}))
        .three_nodes_led_by("n1");
    let mut n1 = ha("n1");
    let first = n1.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n1")
            .local(local_stopped("in production", 1, 100))
            .build(),
    );
    assert_eq!(first.status, "starting primary after failure");
    // Every start attempt fails quickly; no task is running when the agent steps again.
    let t = NOW + 10_001;
    let d = n1.step(
        &obs()
            .now(t)
            .cluster(cluster)
            .lease_raw(lease_of("n1"), t + TTL_MS)
            .local(local_stopped("in production", 1, 100))
            .build(),
    );
    assert_decision(
        &d,
        &[Action::ReleaseLeader],
        "primary did not start within primary_start_timeout; released the leader lock",
    );
}

/// The observation after a failed start task: the server is still down.
fn after_failed_start(
    cluster: ClusterBuilder,
    as_primary: bool,
    lease_holder: &str,
) -> Observation {
    obs()
        .cluster(cluster)
        .fresh_lease(lease_holder)
        .local(local_stopped("in crash recovery", 1, 100))
        .outcome(Outcome::TaskFinished {
            kind: TaskKind::Start {
                as_primary,
                follow: None,
            },
            ok: false,
            message: "pg_ctl start failed".into(),
            cause: FailureCause::Local,
        })
        .build()
}

#[test]
fn crashed_primary_whose_start_fails_releases_the_key_at_once() {
    // Reference: patroni-reference.md §2 post_recover(): a primary that tried and failed to
    // start is demoted (on_role_change 'demoted') and deletes the leader key, whatever
    // primary_start_timeout says (found trying pgkeel: it held the key for 5 minutes).
    let cluster = ClusterBuilder::initialized()
        .config(json!({"primary_start_timeout": 300}))
        .three_nodes_led_by("n1");
    let mut n1 = ha("n1");
    let first = n1.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n1")
            .local(local_stopped("in production", 1, 100))
            .build(),
    );
    assert_eq!(first.status, "starting primary after failure");
    let d = n1.step(&after_failed_start(cluster, true, "n1"));
    assert_decision(
        &d,
        &[
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: pgkeel_ha::ha::Role::Demoted,
            },
            Action::ReleaseLeader,
        ],
        "removed leader key after trying and failing to start postgres",
    );
}

#[test]
fn key_holder_whose_read_only_start_fails_releases_the_key_without_a_role_change() {
    // Reference: patroni-reference.md §2 post_recover(): only a primary is 'demoted'.
    let cluster = ClusterBuilder::initialized().three_nodes_led_by("n1");
    let d = ha("n1").step(&after_failed_start(cluster, false, "n1"));
    assert_decision(
        &d,
        &[Action::ReleaseLeader],
        "removed leader key after trying and failing to start postgres",
    );
}

#[test]
fn replica_whose_start_fails_reports_it() {
    // Reference: patroni-reference.md §2 post_recover(): 'failed to start postgres'.
    let cluster = ClusterBuilder::initialized().three_nodes_led_by("n1");
    let d = ha("n2").step(&after_failed_start(cluster, false, "n2"));
    assert_decision(&d, &[], "failed to start postgres");
}

#[test]
fn crashed_primary_with_primary_start_timeout_zero_releases_the_key() {
    // Reference: patroni-reference.md §2 recover(): timeout == 0 -> 'stopped PostgreSQL to fail over after a crash'
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .config(json!({"primary_start_timeout": 0}))
                .three_nodes_led_by("n1"),
        )
        .fresh_lease("n1")
        .local(local_stopped("in production", 1, 100))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::ReleaseLeader],
        "stopped PostgreSQL to fail over after a crash",
    );
}

#[test]
fn key_holder_that_was_a_replica_starts_read_only() {
    // Reference: patroni-reference.md §2 recover(): 'starting as readonly because i had the session lock'
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_stopped("in archive recovery", 1, 100))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::StartTask(TaskKind::Start {
            as_primary: false,
            follow: None,
        })],
        "starting as readonly because i had the session lock",
    );
}

/// n2 leads on timeline 2, forked from timeline 1 at LSN 500 (0/1F4).
fn after_failover() -> ClusterBuilder {
    ClusterBuilder::initialized()
        .history(json!([[1, 500, "no recovery target specified"]]))
        .leader("n2")
        .member("n1", |m| m.state("stopped"))
        .member("n2", |m| m.primary().timeline(2).lsn(900))
        .member("n3", |m| m.timeline(2).lsn(900))
}

const DIVERGED: &str = "local WAL ends at 0/320 on timeline 1, past the switch point 0/1F4";

fn former_primary_obs(checkpoint: u64) -> pgkeel_ha::Observation {
    obs()
        .cluster(after_failover())
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, checkpoint))
        .build()
}

#[test]
fn rejoin_diverged_former_primary_runs_pg_rewind() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): NEED + use_pg_rewind -> 'running pg_rewind from <leader>'
    assert_decision(
        &ha("n1").step(&former_primary_obs(800)),
        &[Action::StartTask(TaskKind::Rewind { from: "n2".into() })],
        &format!("running pg_rewind from n2 ({DIVERGED})"),
    );
}

#[test]
fn rejoin_unclean_former_primary_runs_pg_rewind() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): an immediate stop
    // leaves 'in production'; its WAL end is unknown, so it is treated as diverged.
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n1")
        .local(local_stopped("in production", 1, 100))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::StartTask(TaskKind::Rewind { from: "n2".into() })],
        "running pg_rewind from n2 (the former primary was not shut down cleanly)",
    );
}

/// Found by the fault campaign (`on`, seed 2026, fault 98): pg_rewind ends by starting the
/// server as a standby; seen running before it answered, the former primary was taken for a
/// primary without the key and stopped, which failed the rewind for good.
#[test]
fn a_rewound_former_primary_starting_as_a_standby_is_not_fenced() {
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n1")
        .local(local_stopped("in production", 1, 100))
        .build();
    let rewind = TaskKind::Rewind { from: "n2".into() };
    assert_eq!(n1.step(&o).actions, [Action::StartTask(rewind.clone())]);
    let mut starting = local_primary();
    starting.accepting_connections = false;
    starting.role = None;
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n1")
        .local(starting)
        .task(rewind)
        .build();
    let d = n1.step(&o);
    assert_decision(&d, &[], "running pg_rewind from n2");
}

#[test]
fn rejoin_diverged_former_primary_is_reinitialized_when_allowed() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): remove_data_directory_on_diverged_timelines
    let mut n1 = ha_with("n1", |c| {
        c.use_pg_rewind = false;
        c.remove_data_directory_on_diverged_timelines = true;
    });
    let d = n1.step(&former_primary_obs(800));
    assert_decision(
        &d,
        &[Action::RemoveDataDir],
        &format!("reinitializing due to diverged timelines ({DIVERGED})"),
    );
    assert!(d.restep);
}

#[test]
fn rejoin_diverged_former_primary_stays_stopped_and_says_what_to_do() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): neither rewind nor removal allowed
    let mut n1 = ha_with("n1", |c| c.use_pg_rewind = false);
    assert_decision(
        &n1.step(&former_primary_obs(800)),
        &[],
        &format!(
            "data directory may have diverged from leader n2 ({DIVERGED}); not starting it. \
             Enable postgresql.use_pg_rewind, or empty the data directory and restart pgkeel to re-clone"
        ),
    );
}

#[test]
fn rejoin_dynamic_use_pg_rewind_overrides_the_local_setting() {
    // Reference: patroni-reference.md §5 postgresql.use_pg_rewind in the dynamic configuration
    let mut n1 = ha_with("n1", |c| c.use_pg_rewind = false);
    let o = obs()
        .cluster(after_failover().config(json!({"postgresql": {"use_pg_rewind": true}})))
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, 800))
        .build();
    assert_eq!(
        n1.step(&o).actions,
        [Action::StartTask(TaskKind::Rewind { from: "n2".into() })]
    );
}

#[test]
fn rejoin_clean_former_primary_at_the_switch_point_starts_as_a_secondary() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): CHECK -> NOT_NEED
    assert_decision(
        &ha("n1").step(&former_primary_obs(500)),
        &[start_secondary("n2")],
        "starting as a secondary",
    );
}

#[test]
fn rejoin_waits_for_the_leader_history() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): the check needs the leader's timeline history
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .without("history")
                .leader("n2")
                .member("n2", |m| m.primary().timeline(2)),
        )
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, 800))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[],
        "not starting yet: waiting for leader n2 to publish its timeline history",
    );
}

fn rewind_finished(ok: bool) -> Outcome {
    Outcome::TaskFinished {
        kind: TaskKind::Rewind { from: "n2".into() },
        ok,
        message: if ok {
            String::new()
        } else {
            "could not find common ancestor".into()
        },
        cause: FailureCause::Local,
    }
}

#[test]
fn rewind_success_starts_as_a_secondary() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): after pg_rewind, follow the leader
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, 800))
        .outcome(rewind_finished(true))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[start_secondary("n2")],
        "starting as a secondary",
    );
}

#[test]
fn rewind_failure_stays_stopped_and_says_what_to_do() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): rewind failed, removal not allowed
    let mut n1 = ha("n1");
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, 800))
        .outcome(rewind_finished(false))
        .build();
    let msg = "pg_rewind failed and removing the data directory is not allowed; \
               to re-clone from the leader, set postgresql.remove_data_directory_on_rewind_failure \
               or empty the data directory, then restart pgkeel";
    assert_decision(&n1.step(&o), &[], msg);
    // And on later cycles too: it must not retry rewind nor start the diverged data.
    assert_decision(&n1.step(&former_primary_obs(800)), &[], msg);
}

#[test]
fn rewind_failure_wipes_when_remove_data_directory_on_rewind_failure() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(): remove_data_directory_on_rewind_failure -> wipe, re-clone
    let mut n1 = ha_with("n1", |c| c.remove_data_directory_on_rewind_failure = true);
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, 800))
        .outcome(rewind_finished(false))
        .build();
    assert_decision(
        &n1.step(&o),
        &[Action::RemoveDataDir],
        "pg_rewind from n2 failed (could not find common ancestor); removing the data directory to re-clone",
    );
}

#[test]
fn rejoin_running_replica_past_the_switch_point_stops_to_rewind() {
    // Reference: patroni-reference.md §2 follow(): 'my timeline < leader timeline -> rewind check'.
    // n3 received WAL on timeline 1 beyond where n2 was promoted (0/1F4): it can never stream
    // from n2. Found by the simulator (seed 17 at the time: a replica stayed non-streaming forever).
    let mut n3 = ha("n3");
    let mut local = local_replica_of("n1");
    local.wal_position = Some(pgkeel_ha::pg::Lsn(800));
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n3")
        .local(local)
        .build();
    let d = n3.step(&o);
    assert_decision(
        &d,
        &[Action::Stop(StopMode::Fast)],
        &format!("stopping to rewind from n2: {DIVERGED}"),
    );
    assert!(d.restep);
    // Once stopped it is rewound, not restarted as is.
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n3")
        .local(local_stopped("shut down in recovery", 1, 800))
        .build();
    assert_decision(
        &n3.step(&o),
        &[Action::StartTask(TaskKind::Rewind { from: "n2".into() })],
        &format!("running pg_rewind from n2 ({DIVERGED})"),
    );
}

#[test]
fn replica_that_streamed_on_the_new_timeline_is_not_rewound_after_a_second_failover() {
    // Reference: patroni-reference.md §2 follow(). Once the WAL receiver stops, PostgreSQL only
    // reports the last restartpoint's timeline (possibly older than the one it streamed on);
    // the timeline remembered while streaming keeps a healthy replica from looking diverged.
    // Found by the failover benchmark: one replica restarted on every host loss.
    let mut n3 = ha("n3");
    let mut streaming = local_replica_of("n2");
    streaming.timeline = Some(2);
    streaming.wal_position = Some(pgkeel_ha::pg::Lsn(850));
    n3.step(
        &obs()
            .cluster(after_failover())
            .fresh_lease("n3")
            .local(streaming)
            .build(),
    );
    // n2 is lost; n1 was promoted from timeline 2 at 0/384 (900).
    let second = ClusterBuilder::initialized()
        .history(json!([
            [1, 500, "no recovery target specified"],
            [2, 900, "no recovery target specified"]
        ]))
        .leader("n1")
        .member("n1", |m| m.primary().timeline(3).lsn(950))
        .member("n3", |m| m.timeline(2).lsn(850));
    let mut stalled = local_replica_of("n2");
    stalled.streaming = false;
    stalled.timeline = Some(1); // the stale restartpoint timeline
    stalled.wal_position = Some(pgkeel_ha::pg::Lsn(850));
    let d = n3.step(
        &obs()
            .cluster(second)
            .fresh_lease("n3")
            .local(stalled)
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Follow {
            leader: "n1".into(),
        }],
        "following new leader (n1)",
    );
}

#[test]
fn replica_on_a_newer_timeline_than_the_leader_stops_to_rewind() {
    // Reference: patroni-reference.md §2 follow() rewind check ("local timeline > primary
    // timeline" needs a rewind). n3 replayed n2's promotion to timeline 2, which n2 never
    // published; the frozen primary n1 on timeline 1 came back and took the key. n3 cannot
    // stream from it. Found by the simulator (seed 718 at the time: n3 never streamed again).
    // A new primary's timeline lags its promotion (until the checkpoint after it), which made
    // an earlier version of this rule rewind healthy replicas: only a TTL of it is proof.
    let o = |now_ms: u64, streaming: bool| {
        let mut local = local_replica_of("n1");
        local.timeline = Some(2);
        local.streaming = streaming;
        obs()
            .now(now_ms)
            .cluster(
                ClusterBuilder::initialized()
                    .config(json!({"ttl": 30, "loop_wait": 10}))
                    .leader("n1")
                    .member("n1", |m| m.primary().timeline(1).lsn(900))
                    .member("n2", |m| m)
                    .member("n3", |m| m.timeline(2)),
            )
            .fresh_lease("n3")
            .local(local)
            .build()
    };
    let mut n3 = ha("n3");
    let d = n3.step(&o(1_000, false));
    assert_eq!(d.actions, vec![], "stopped before a TTL: {d:?}");
    assert_decision(
        &n3.step(&o(31_000, false)),
        &[Action::Stop(StopMode::Fast)],
        "stopping to rewind from n1: local timeline 2 is ahead of leader n1's timeline 1",
    );
    // While it streams, the leader's timeline is only stale: it keeps following.
    let mut n3 = ha("n3");
    n3.step(&o(1_000, true));
    let d = n3.step(&o(31_000, true));
    assert_eq!(d.actions, vec![], "{d:?}");
}

#[test]
fn replica_waits_for_the_first_history_before_following_a_new_leader() {
    // Reference: patroni-reference.md §2 follow() rewind check. The cluster's first failover:
    // no history key yet. n3 streamed on from the old primary n1 (frozen agent, PostgreSQL
    // alive) and may be past the switch point; pointed at n2 now, PostgreSQL would stop for
    // good ("requested timeline 2 does not contain minimum recovery point"). Found by the
    // fault campaign (bench/chaos.sh, asynchronous mode, primary agent frozen).
    let cluster = || {
        ClusterBuilder::initialized()
            .config(json!({"ttl": 30, "loop_wait": 10}))
            .leader("n2")
            .member("n1", |m| m.primary())
            .member("n2", |m| m.primary().timeline(2).lsn(900))
            .member("n3", |m| m.lsn(800))
    };
    let o = |now_ms: u64| {
        let mut local = local_replica_of("n1");
        local.wal_position = Some(pgkeel_ha::pg::Lsn(800));
        obs()
            .now(now_ms)
            .cluster(cluster())
            .fresh_lease("n3")
            .local(local)
            .build()
    };
    let mut n3 = ha("n3");
    assert_decision(
        &n3.step(&o(1_000)),
        &[],
        "not following n2 yet: waiting for leader n2 to publish its timeline history",
    );
    // No history within a TTL: its timeline is not one the leader came from.
    assert_decision(
        &n3.step(&o(31_000)),
        &[Action::Stop(StopMode::Fast)],
        "stopping to rewind from n2: timeline 1 is not in the leader's history",
    );
}

#[test]
fn replica_behind_the_switch_point_just_follows() {
    // Reference: patroni-reference.md §2 follow(): a replica that did not go past the fork
    // follows the new timeline without a rewind.
    let mut local = local_replica_of("n1");
    local.wal_position = Some(pgkeel_ha::pg::Lsn(500));
    let o = obs()
        .cluster(after_failover())
        .fresh_lease("n3")
        .local(local)
        .build();
    assert_decision(
        &ha("n3").step(&o),
        &[Action::Follow {
            leader: "n2".into(),
        }],
        "following new leader (n2)",
    );
}

#[test]
fn rejoin_running_replica_on_a_timeline_unknown_to_the_leader_stops_to_rewind() {
    // Reference: patroni-reference.md §2 follow() rewind check. n3 runs on timeline 2, a
    // short-lived promotion the leader (timeline 3, forked from 1) never saw.
    // Found by the simulator (seed 2348 at the time). The history cannot tell this apart from
    // one the new leader has not updated yet: n3 waits a TTL for timeline 2's entry.
    let mut local = local_replica_of("n1");
    local.timeline = Some(2);
    let o = |now_ms: u64| {
        obs()
            .now(now_ms)
            .cluster(
                after_failover()
                    .config(json!({"ttl": 30, "loop_wait": 10}))
                    .history(json!([[1, 500, "no recovery target specified"]]))
                    .member("n2", |m| m.primary().timeline(3)),
            )
            .fresh_lease("n3")
            .local(local.clone())
            .build()
    };
    let mut n3 = ha("n3");
    let d = n3.step(&o(1_000));
    assert!(
        !d.actions.contains(&Action::Stop(StopMode::Fast)),
        "stopped before the history could be written: {d:?}"
    );
    assert_decision(
        &n3.step(&o(31_000)),
        &[Action::Stop(StopMode::Fast)],
        "stopping to rewind from n2: timeline 2 is not in the leader's history",
    );
}

#[test]
fn rejoin_former_primary_on_a_timeline_unknown_to_the_leader_is_rewound() {
    // Reference: patroni-reference.md §2 handle_rewind_or_reinitialize(). n1 was promoted to
    // timeline 2 and crashed at once; n2 was promoted from timeline 1 to timeline 3, so the
    // history ([[1, 500]]) gives cluster timeline 2 and never mentions n1's timeline 2.
    // It used to wait forever for the history. Found by the simulator (seed 2149 at the time).
    let o = obs()
        .cluster(after_failover().member("n2", |m| m.primary().timeline(3)))
        .fresh_lease("n1")
        .local(local_stopped("in production", 2, 800))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::StartTask(TaskKind::Rewind { from: "n2".into() })],
        "running pg_rewind from n2 (the former primary was not shut down cleanly)",
    );
}

#[test]
fn a_node_that_was_primary_since_its_last_rewind_checks_for_divergence_again() {
    // Found by the simulator (seed 6176): n1 was rewound from n2, later became primary itself,
    // then lost its role while n2 led again on a newer timeline. The memory "already checked
    // against n2" survived its time as primary, so n1 followed n2 with diverged WAL.
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(after_failover())
            .fresh_lease("n1")
            .local(local_stopped("shut down in recovery", 1, 400))
            .outcome(Outcome::TaskFinished {
                kind: TaskKind::Rewind { from: "n2".into() },
                ok: true,
                message: String::new(),
                cause: FailureCause::Local,
            })
            .build(),
    );
    let mut primary = local_primary();
    primary.timeline = Some(2);
    n1.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n1")
            .local(primary)
            .build(),
    );
    let o = obs()
        .cluster(after_failover().member("n2", |m| m.primary().timeline(3)))
        .fresh_lease("n1")
        .local(local_stopped("in production", 2, 800))
        .build();
    assert_decision(
        &n1.step(&o),
        &[Action::StartTask(TaskKind::Rewind { from: "n2".into() })],
        "running pg_rewind from n2 (the former primary was not shut down cleanly)",
    );
}

/// `Follow` reports settings that need a restart; the core restarts as a task, in the
/// replica role, following the leader (issue 7 point 2: no stop and start hidden in Follow).
#[test]
fn recovery_settings_that_need_a_restart_start_a_restart_task() {
    use pgkeel_ha::ha::{Outcome, TaskKind};
    let mut n2 = ha("n2");
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .outcome(Outcome::RestartNeeded {
            leader: "n1".into(),
        })
        .build();
    let d = n2.step(&o);
    assert_decision(
        &d,
        &[Action::StartTask(TaskKind::Restart {
            as_primary: false,
            follow: Some("n1".into()),
        })],
        "restarting postgres: the new recovery settings need a restart",
    );
}

#[test]
fn a_cascading_replica_falls_back_to_the_leader_when_its_upstream_stops_running() {
    let mut n3 = ha_with("n3", |c| c.replicatefrom = Some("n2".into()));
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .three_nodes_led_by("n1")
                .member("n2", |m| m.state("stopped")),
        )
        .fresh_lease("n3")
        .local(local_replica_of("n2"))
        .build();
    assert_decision(
        &n3.step(&o),
        &[Action::Follow {
            leader: "n1".into(),
        }],
        "following new leader (n1)",
    );
}
