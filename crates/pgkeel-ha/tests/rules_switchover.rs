//! Manual failover and switchover (the `failover` key): the leader's side, the race without a
//! leader, the new leader cleaning up, and the old primary following without pg_rewind.
//! Reference: patroni-reference.md §2 `process_manual_failover_from_leader()`,
//! `manual_failover_process_no_leader()`, `is_failover_possible()`, `demote('graceful')`.
mod support;

use pgkeel_ha::Decision;
use pgkeel_ha::ha::{Action, CallbackEvent, Ha, Outcome, PeerStatus, Role, StopMode, WARNING_NOTE};
use pgkeel_ha::pg::ServerRole;
use pgkeel_ha::time::MonoTime;
use serde_json::json;
use support::*;

fn leader_actions() -> Vec<Action> {
    vec![
        Action::SyncSlots {
            wanted: vec!["n2".into(), "n3".into()],
        },
        Action::WriteStatus,
    ]
}

fn cleared() -> Vec<Action> {
    let mut a = vec![Action::ClearFailover {
        mod_revision: FAILOVER_REV,
    }];
    a.extend(leader_actions());
    a
}

/// The `failover` key's mod_revision in the clusters without a leader (`no_leader`).
const FAILOVER_REV_NO_LEADER: i64 = 7;

/// The `failover` key's mod_revision in these clusters (the codec numbers keys in order).
const FAILOVER_REV: i64 = 8;

fn graceful() -> Vec<Action> {
    vec![
        Action::Checkpoint,
        Action::Stop(StopMode::Fast),
        Action::Callback {
            event: CallbackEvent::OnStop,
            role: Role::Primary,
        },
        Action::WriteShutdownPosition,
        Action::ReleaseLeader,
        Action::Callback {
            event: CallbackEvent::OnRoleChange,
            role: Role::Replica,
        },
    ]
}

/// n1 leads n2 and n3; `failover` is written last (mod_revision [`FAILOVER_REV`]).
fn led_by_n1(leader: Option<&str>, member: Option<&str>, at: Option<&str>) -> ClusterBuilder {
    ClusterBuilder::initialized()
        .config(json!({"loop_wait": 10, "ttl": 30}))
        .three_nodes_led_by("n1")
        .failover(leader, member, at)
}

fn on_leader(c: ClusterBuilder) -> ObsBuilder {
    obs().cluster(c).fresh_lease("n1").local(local_primary())
}

fn warned(d: &Decision, text: &str) -> bool {
    d.notes
        .iter()
        .any(|n| n == &format!("{WARNING_NOTE}{text}"))
}

fn noted(d: &Decision, text: &str) -> bool {
    d.notes.iter().any(|n| n == text)
}

#[test]
fn the_failover_key_gets_the_revision_the_tests_assume() {
    let c = led_by_n1(Some("n1"), Some("n2"), None).build();
    assert_eq!(c.failover.map(|f| f.mod_revision), Some(FAILOVER_REV));
    let c = no_leader(Some("n1"), Some("n2")).build();
    assert_eq!(
        c.failover.map(|f| f.mod_revision),
        Some(FAILOVER_REV_NO_LEADER)
    );
}

#[test]
fn a_switchover_asks_the_candidate_first_then_demotes_gracefully() {
    let c = led_by_n1(Some("n1"), Some("n2"), None);
    let mut n1 = ha("n1");
    let d = n1.step(&on_leader(c.clone()).build());
    assert_decision(
        &d,
        &[Action::ProbePeers],
        "switchover: asking the candidates",
    );
    assert!(d.restep);
    let d = n1.step(
        &on_leader(c)
            .peers(vec![peer("n2", 100), peer("n3", 100)])
            .build(),
    );
    assert_decision(&d, &graceful(), "switchover: demoting myself");
    assert!(d.restep, "the next step starts PostgreSQL as a replica");
}

#[test]
fn a_manual_failover_to_a_candidate_names_itself_so() {
    let c = led_by_n1(None, Some("n2"), None);
    let d = ha("n1").step(&on_leader(c).peers(vec![peer("n2", 100)]).build());
    assert_decision(&d, &graceful(), "manual failover: demoting myself");
}

#[test]
fn a_switchover_without_candidate_takes_any_healthy_member() {
    let c = led_by_n1(Some("n1"), None, None);
    let unreachable = PeerStatus {
        detached: false,
        timeline: None,
        reachable: false,
        ..peer("n2", 0)
    };
    let d = ha("n1").step(
        &on_leader(c)
            .peers(vec![unreachable, peer("n3", 100)])
            .build(),
    );
    assert_decision(&d, &graceful(), "switchover: demoting myself");
    assert!(noted(&d, "Member n2 is not reachable"), "{:?}", d.notes);
}

#[test]
fn a_nofailover_candidate_is_no_candidate_and_the_key_is_cleared() {
    let c = ClusterBuilder::initialized()
        .config(json!({"loop_wait": 10, "ttl": 30}))
        .three_nodes_led_by("n1")
        .member("n2", |m| m.tag("nofailover", json!(true)))
        .failover(Some("n1"), Some("n2"), None);
    let d = ha("n1").step(&on_leader(c).build());
    assert_decision(
        &d,
        &cleared(),
        "no action. I am (n1), the leader with the lock",
    );
    assert!(
        warned(&d, "switchover: candidates list is empty"),
        "{:?}",
        d.notes
    );
    assert!(warned(
        &d,
        "switchover: no healthy members found, switchover is not possible"
    ));
    assert!(noted(&d, "Cleaning up failover key"));
}

#[test]
fn an_unreachable_or_nofailover_tagged_candidate_makes_it_impossible() {
    let c = led_by_n1(Some("n1"), Some("n2"), None);
    for p in [
        PeerStatus {
            detached: false,
            timeline: None,
            reachable: false,
            ..peer("n2", 100)
        },
        PeerStatus {
            detached: false,
            timeline: None,
            nofailover: true,
            ..peer("n2", 100)
        },
    ] {
        let reason = if p.reachable {
            "Member n2 is not allowed to promote"
        } else {
            "Member n2 is not reachable"
        };
        let d = ha("n1").step(&on_leader(c.clone()).peers(vec![p, peer("n3", 100)]).build());
        assert_decision(
            &d,
            &cleared(),
            "no action. I am (n1), the leader with the lock",
        );
        assert!(noted(&d, reason), "{:?}", d.notes);
    }
}

#[test]
fn a_lagging_candidate_makes_it_impossible() {
    let c = ClusterBuilder::initialized()
        .config(json!({"loop_wait": 10, "ttl": 30, "maximum_lag_on_failover": 1000}))
        .three_nodes_led_by("n1")
        .member("n1", |m| m.primary().lsn(50_000))
        .optime(50_000)
        .failover(Some("n1"), Some("n2"), None);
    let d = ha("n1").step(&on_leader(c.clone()).peers(vec![peer("n2", 48_999)]).build());
    assert_eq!(
        d.actions.first(),
        Some(&Action::ClearFailover { mod_revision: 9 })
    );
    assert!(noted(&d, "Member n2 exceeds maximum replication lag"));
    // Within the limit it goes ahead.
    let d = ha("n1").step(&on_leader(c).peers(vec![peer("n2", 49_000)]).build());
    assert_decision(&d, &graceful(), "switchover: demoting myself");
}

#[test]
fn a_request_for_another_leader_or_for_myself_is_cleared() {
    let d = ha("n1").step(&on_leader(led_by_n1(Some("n3"), Some("n2"), None)).build());
    assert_decision(
        &d,
        &cleared(),
        "no action. I am (n1), the leader with the lock",
    );
    assert!(warned(
        &d,
        "switchover: leader name does not match: n3 != n1"
    ));
    let d = ha("n1").step(&on_leader(led_by_n1(Some("n1"), Some("n1"), None)).build());
    assert_decision(
        &d,
        &cleared(),
        "no action. I am (n1), the leader with the lock",
    );
    assert!(warned(
        &d,
        "switchover: I am already the leader, no need to switchover"
    ));
}

#[test]
fn a_scheduled_switchover_waits_and_asks_to_be_woken_at_its_time() {
    // 2026-12-02T15:00:00Z is WALL_NOW_MS; one minute later:
    let at = "2026-12-02T15:01:00+00:00";
    let d = ha("n1").step(&on_leader(led_by_n1(Some("n1"), Some("n2"), Some(at))).build());
    assert_decision(
        &d,
        &leader_actions(),
        "no action. I am (n1), the leader with the lock",
    );
    assert_eq!(d.wake_at, Some(MonoTime(NOW + 60_000)));
    assert!(noted(
        &d,
        "Awaiting switchover at 2026-12-02T15:01:00+00:00 (in 60 seconds)"
    ));
    // Less than loop_wait ahead: no message, but still a wake-up at the time.
    let d = ha("n1").step(
        &on_leader(led_by_n1(Some("n1"), Some("n2"), Some(at)))
            .wall_offset(59_500)
            .build(),
    );
    assert_eq!(d.actions, leader_actions());
    assert_eq!(d.wake_at, Some(MonoTime(NOW + 500)));
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn a_due_switchover_runs_and_a_stale_one_is_cleared() {
    let at = "2026-12-02T15:00:00Z";
    // Due (up to int(1.5 * loop_wait) = 15 s late): carried out.
    for late in [0, 15_000] {
        let d = ha("n1").step(
            &on_leader(led_by_n1(Some("n1"), Some("n2"), Some(at)))
                .wall_offset(late)
                .build(),
        );
        assert_decision(
            &d,
            &[Action::ProbePeers],
            "switchover: asking the candidates",
        );
        assert!(noted(
            &d,
            "Manual scheduled switchover at 2026-12-02T15:00:00Z"
        ));
        assert_eq!(d.wake_at, None);
    }
    let d = ha("n1").step(
        &on_leader(led_by_n1(Some("n1"), Some("n2"), Some(at)))
            .wall_offset(15_001)
            .build(),
    );
    assert_decision(
        &d,
        &cleared(),
        "no action. I am (n1), the leader with the lock",
    );
    assert!(warned(
        &d,
        "Found a stale switchover value, cleaning up: 2026-12-02T15:00:00Z"
    ));
}

#[test]
fn an_unreadable_schedule_is_cleared() {
    for at in ["next tuesday", "2026-12-02T15:00:00"] {
        let d = ha("n1").step(&on_leader(led_by_n1(Some("n1"), Some("n2"), Some(at))).build());
        assert_decision(
            &d,
            &cleared(),
            "no action. I am (n1), the leader with the lock",
        );
        assert!(warned(
            &d,
            &format!("Incorrect value of scheduled_at: {at}")
        ));
    }
}

#[test]
fn paused_a_switchover_needs_a_candidate_and_is_not_scheduled() {
    let paused = |f: ClusterBuilder| f.config(json!({"loop_wait": 10, "ttl": 30, "pause": true}));
    let c = paused(led_by_n1(Some("n1"), None, None));
    let rev = c.build().failover.map_or(0, |f| f.mod_revision);
    let d = ha("n1").step(&on_leader(c).build());
    assert_eq!(
        d.actions.first(),
        Some(&Action::ClearFailover { mod_revision: rev })
    );
    assert!(warned(
        &d,
        "Switchover is possible only to a specific candidate in a paused state"
    ));
}

// --- no leader: the race ---

fn no_leader(leader: Option<&str>, member: Option<&str>) -> ClusterBuilder {
    ClusterBuilder::initialized()
        .config(json!({"loop_wait": 10, "ttl": 30}))
        .member("n1", |m| m)
        .member("n2", |m| m)
        .member("n3", |m| m)
        .failover(leader, member, None)
}

fn replica(name: &str, c: ClusterBuilder) -> ObsBuilder {
    obs()
        .cluster(c)
        .fresh_lease(name)
        .local(local_replica_of("n1"))
}

#[test]
fn the_named_candidate_races_at_once_without_asking_anyone() {
    let d = ha("n2").step(&replica("n2", no_leader(Some("n1"), Some("n2"))).build());
    assert_decision(&d, &[Action::AcquireLeader], "racing for the leader lock");
}

#[test]
fn the_named_candidate_races_even_when_it_lags() {
    let c = no_leader(Some("n1"), Some("n2"))
        .member("n1", |m| m.lsn(90_000_000))
        .optime(90_000_000);
    let d = ha("n2").step(&replica("n2", c).build());
    assert_decision(&d, &[Action::AcquireLeader], "racing for the leader lock");
}

#[test]
fn other_replicas_stand_back_while_the_candidate_can_take_over() {
    let c = no_leader(Some("n1"), Some("n2"));
    let mut n3 = ha("n3");
    let d = n3.step(&replica("n3", c.clone()).build());
    assert_decision(
        &d,
        &[Action::ProbePeers],
        "no leader: asking peers before the leader race",
    );
    let d = n3.step(
        &replica("n3", c)
            .peers(vec![peer("n1", 100), peer("n2", 100)])
            .build(),
    );
    assert_decision(
        &d,
        &[],
        "following a different leader because i am not the healthiest node: switchover: to n2, i am n3",
    );
}

#[test]
fn without_a_usable_candidate_the_healthiest_of_the_others_races_leaving_out_the_old_leader() {
    let c = no_leader(Some("n1"), Some("n2"));
    let down = PeerStatus {
        detached: false,
        timeline: None,
        reachable: false,
        ..peer("n2", 0)
    };
    // n1 (the former leader) is ahead, but is not counted.
    let d = ha("n3").step(
        &replica("n3", c.clone())
            .peers(vec![peer("n1", 500), down.clone()])
            .build(),
    );
    assert_decision(&d, &[Action::AcquireLeader], "racing for the leader lock");
    assert!(
        warned(&d, "switchover: member n2 is not reachable"),
        "{:?}",
        d.notes
    );
    // Another replica ahead of it still wins over it.
    let c4 = c.member("n4", |m| m);
    let d = ha("n3").step(
        &replica("n3", c4)
            .peers(vec![peer("n1", 100), down, peer("n4", 200)])
            .build(),
    );
    assert!(d.actions.is_empty());
    assert!(
        d.status
            .ends_with("Wal position of n4 is ahead of my wal position"),
        "{}",
        d.status
    );
}

#[test]
fn the_former_leader_races_only_when_nobody_else_can_take_over() {
    let c = no_leader(Some("n1"), Some("n2"));
    let down = |n: &str| PeerStatus {
        detached: false,
        timeline: None,
        reachable: false,
        ..peer(n, 0)
    };
    let d = ha("n1").step(
        &replica("n1", c.clone())
            .peers(vec![down("n2"), peer("n3", 100)])
            .build(),
    );
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let d = ha("n1").step(&replica("n1", c).peers(vec![down("n2"), down("n3")]).build());
    assert_decision(&d, &[Action::AcquireLeader], "racing for the leader lock");
}

#[test]
fn a_nofailover_node_never_races_even_when_named() {
    let n2 = ha_with("n2", |c| c.nofailover = true);
    let mut n2 = n2;
    let d = n2.step(&replica("n2", no_leader(Some("n1"), Some("n2"))).build());
    assert!(d.actions.is_empty());
    assert_eq!(
        d.status,
        "following a different leader because I am not allowed to promote"
    );
}

#[test]
fn the_new_leader_clears_the_failover_key_after_promoting() {
    let d = ha("n2").step(
        &replica("n2", no_leader(Some("n1"), Some("n2")))
            .outcome(Outcome::LeaderAcquired { won: true })
            .build(),
    );
    assert_decision(
        &d,
        &[
            Action::Promote,
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: Role::Primary,
            },
            Action::ClearFailover {
                mod_revision: FAILOVER_REV_NO_LEADER,
            },
        ],
        "promoted self to leader by acquiring session lock",
    );
}

// --- the old primary follows the new leader ---

/// n1 was the primary on timeline 1 and was shut down cleanly with its checkpoint at `ckpt`;
/// n2 leads on timeline 2.
fn old_primary(history: serde_json::Value, ckpt: u64) -> Decision {
    old_primary_step(&mut former_primary_n1(), history, 1, ckpt, NOW)
}

/// The actions that start this node as a replica of `leader`.
fn start_as_replica_of(leader: &str) -> Vec<Action> {
    vec![Action::StartTask(pgkeel_ha::ha::TaskKind::Start {
        as_primary: false,
        follow: Some(leader.into()),
    })]
}

#[test]
fn the_cleanly_stopped_old_primary_follows_without_rewind() {
    let history = json!([history_entry(1, 5000)]);
    let d = old_primary(history, 4900);
    assert_decision(&d, &start_as_replica_of("n2"), "starting as a secondary");
}

#[test]
fn an_old_primary_past_the_switch_point_is_rewound() {
    let history = json!([history_entry(1, 5000)]);
    let d = old_primary(history, 5100);
    assert!(
        matches!(
            d.actions.as_slice(),
            [Action::StartTask(pgkeel_ha::ha::TaskKind::Rewind { from })] if from == "n2"
        ),
        "{:?}",
        d
    );
}

/// The history entry of timeline `tl` (switch at `lsn`).
fn history_entry(tl: u32, lsn: u64) -> serde_json::Value {
    json!([
        tl,
        lsn,
        "no recovery target specified",
        "2026-12-02T15:00:00+00:00",
        "n2"
    ])
}

/// n1 was the primary of timeline `my_tl` and stopped cleanly at `ckpt`; n2 now leads on the
/// next timeline with `history` published. One step at `now_ms`.
fn old_primary_step(
    n1: &mut Ha,
    history: serde_json::Value,
    my_tl: u32,
    ckpt: u64,
    now_ms: u64,
) -> Decision {
    let c = ClusterBuilder::initialized()
        .config(json!({"loop_wait": 10, "ttl": 30}))
        .history(history)
        .leader("n2")
        .member("n1", |m| m.state("stopped"))
        .member("n2", |m| m.primary().timeline(my_tl + 1))
        .member("n3", |m| m);
    n1.step(
        &obs()
            .now(now_ms)
            .cluster(c)
            .fresh_lease("n1")
            .local(local_stopped("shut down", my_tl, ckpt))
            .build(),
    )
}

/// The second switch: n1 was the primary of timeline 2, n2 leads on timeline 3.
fn second_switch_step(n1: &mut Ha, history: serde_json::Value, ckpt: u64, now_ms: u64) -> Decision {
    old_primary_step(n1, history, 2, ckpt, now_ms)
}

/// n1 after running as the primary.
fn former_primary_n1() -> Ha {
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(led_by_n1(None, None, None))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_eq!(n1.memory().last_role, Some(ServerRole::Primary));
    n1
}

/// The flake of `e2e_switchover` (switchover and back): the old primary of timeline 2 saw the new
/// leader on timeline 3 before it had written timeline 2's entry into `history`, took the old
/// history as proof of divergence and was rewound needlessly. It waits for the entry now.
#[test]
fn an_old_primary_waits_for_the_new_leaders_history_entry_instead_of_rewinding() {
    let mut n1 = former_primary_n1();
    let stale = json!([history_entry(1, 5000)]);
    let d = second_switch_step(&mut n1, stale.clone(), 6000, 1_000);
    assert_decision(
        &d,
        &[],
        "not starting yet: waiting for leader n2 to publish its timeline history",
    );
    let d = second_switch_step(&mut n1, stale, 6000, 20_000);
    assert!(d.actions.is_empty(), "{d:?}");
    // The entry arrives: timeline 2 ended at 7000, past the shutdown checkpoint.
    let d = second_switch_step(
        &mut n1,
        json!([history_entry(1, 5000), history_entry(2, 7000)]),
        6000,
        21_000,
    );
    assert_decision(&d, &start_as_replica_of("n2"), "starting as a secondary");
}

#[test]
fn a_history_that_stays_without_the_entry_for_a_ttl_means_divergence() {
    let mut n1 = former_primary_n1();
    let stale = json!([history_entry(1, 5000)]);
    let d = second_switch_step(&mut n1, stale.clone(), 6000, 1_000);
    assert!(d.actions.is_empty(), "{d:?}");
    // ttl 30 s later the entry is still missing (PostgreSQL may skip timeline numbers).
    let d = second_switch_step(&mut n1, stale, 6000, 31_000);
    assert!(
        matches!(
            d.actions.as_slice(),
            [Action::StartTask(pgkeel_ha::ha::TaskKind::Rewind { from })] if from == "n2"
        ),
        "{d:?}"
    );
    assert!(
        d.status
            .contains("timeline 2 is not in the leader's history"),
        "{d:?}"
    );
}

#[test]
fn a_history_past_the_local_timeline_without_its_entry_means_divergence_at_once() {
    let mut n1 = former_primary_n1();
    // The history knows timelines 1 and 3 but not 2: n1's timeline 2 is no ancestor.
    let d = second_switch_step(
        &mut n1,
        json!([history_entry(1, 5000), history_entry(3, 9000)]),
        6000,
        1_000,
    );
    assert!(
        matches!(
            d.actions.as_slice(),
            [Action::StartTask(pgkeel_ha::ha::TaskKind::Rewind { .. })]
        ),
        "{d:?}"
    );
}

#[test]
fn paused_the_old_primary_of_a_switchover_is_started_as_a_replica_of_the_new_leader() {
    let pause = json!({"loop_wait": 10, "ttl": 30, "pause": true});
    let c = led_by_n1(Some("n1"), Some("n2"), None).config(pause.clone());
    let mut n1 = ha("n1");
    let d = n1.step(
        &on_leader(c)
            .peers(vec![peer("n2", 100), peer("n3", 100)])
            .build(),
    );
    assert_decision(&d, &graceful(), "PAUSE: switchover: demoting myself");
    // n2 took the key; n1 stopped cleanly. Pause does not leave it down.
    let history = json!([history_entry(1, 5000)]);
    let after_at = |n1: &mut Ha, ckpt: u64| {
        let c = ClusterBuilder::initialized()
            .config(pause.clone())
            .history(history.clone())
            .leader("n2")
            .member("n1", |m| m.state("stopped"))
            .member("n2", |m| m.primary().timeline(2))
            .member("n3", |m| m);
        n1.step(
            &obs()
                .cluster(c)
                .fresh_lease("n1")
                .local(local_stopped("shut down", 1, ckpt))
                .build(),
        )
    };
    let after = |n1: &mut Ha| after_at(n1, 4900);
    // Past the switch point it would need pg_rewind, which pause forbids: it stays down.
    let mut past = ha("n1");
    past.step(
        &on_leader(led_by_n1(Some("n1"), Some("n2"), None).config(pause.clone()))
            .peers(vec![peer("n2", 100), peer("n3", 100)])
            .build(),
    );
    let d = after_at(&mut past, 5100);
    assert!(d.actions.is_empty(), "{d:?}");
    let d = after(&mut n1);
    assert_decision(
        &d,
        &start_as_replica_of("n2"),
        "PAUSE: starting as a secondary",
    );
    // A node that did not hand over stays down in pause.
    let d = after(&mut ha("n1"));
    assert!(d.actions.is_empty(), "{d:?}");
}
