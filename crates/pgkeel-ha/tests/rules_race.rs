//! No leader key: the healthiest-node checks and the leader race.
mod support;

use pgkeel_ha::ha::{Action, CallbackEvent, Outcome, PeerStatus, StopMode};
use serde_json::json;
use support::*;

/// n2 is a replica of the vanished leader n1; the leader key is gone.
fn leaderless() -> ClusterBuilder {
    ClusterBuilder::initialized()
        .member("n1", |m| m.primary())
        .member("n2", |m| m)
        .member("n3", |m| m)
}

/// As `leaderless`, after the old leader n1 wrote up to `pos` (its member key and `status` say
/// so; an optime beyond every published position is not believed, see rules_hostile.rs).
fn leaderless_after_writing(pos: u64) -> ClusterBuilder {
    leaderless()
        .member("n1", |m| m.primary().lsn(pos))
        .optime(pos)
}

fn race_obs() -> ObsBuilder {
    obs()
        .cluster(leaderless())
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
}

fn unreachable(name: &str) -> PeerStatus {
    PeerStatus {
        detached: false,
        timeline: None,
        reachable: false,
        ..peer(name, 0)
    }
}

#[test]
fn leader_race_probes_peers_first() {
    // Reference: patroni-reference.md §2 _is_healthiest_node(): parallel GET <api_url> of the peers
    let d = ha("n2").step(&race_obs().build());
    assert_decision(
        &d,
        &[Action::ProbePeers],
        "no leader: asking peers before the leader race",
    );
    assert!(d.restep);
}

#[test]
fn leader_race_healthiest_node_acquires_the_key() {
    // Reference: patroni-reference.md §2 process_unhealthy_cluster(): is_healthiest_node() -> acquire_lock()
    let o = race_obs()
        .peers(vec![unreachable("n1"), peer("n3", 100)])
        .build();
    let d = ha("n2").step(&o);
    assert_decision(&d, &[Action::AcquireLeader], "racing for the leader lock");
    assert!(d.restep);
}

#[test]
fn leader_race_not_healthiest_when_a_peer_is_ahead() {
    // Reference: patroni-reference.md §2 _is_healthiest_node(): 'Wal position of %s is ahead of my wal position'
    let o = race_obs()
        .peers(vec![unreachable("n1"), peer("n3", 101)])
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "following a different leader because i am not the healthiest node: Wal position of n3 is ahead of my wal position",
    );
}

#[test]
fn leader_race_a_peer_on_a_newer_timeline_is_ahead_whatever_its_position() {
    // Reference: patroni-reference.md §2 _is_healthiest_node() compares wal_position only; pgkeel
    // compares timelines first. Found by the simulator (seed 6370 at the time): a former primary
    // on timeline 1, with WAL nobody acknowledged, outranked the timeline 2 replicas by position.
    let o = race_obs()
        .peers(vec![
            unreachable("n1"),
            PeerStatus {
                timeline: Some(2),
                ..peer("n3", 90)
            },
        ])
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "following a different leader because i am not the healthiest node: Wal position of n3 is ahead of my wal position",
    );
}

#[test]
fn leader_race_a_peer_on_an_older_timeline_is_not_ahead_whatever_its_position() {
    // Its WAL past the fork is WAL this node's timeline replaced: not a reason to stand back.
    let mut local = local_replica_of("n1");
    local.timeline = Some(2);
    let o = race_obs()
        .local(local)
        .peers(vec![
            unreachable("n1"),
            PeerStatus {
                timeline: Some(1),
                ..peer("n3", 500)
            },
        ])
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[Action::AcquireLeader],
        "racing for the leader lock",
    );
}

#[test]
fn leader_race_not_healthiest_when_a_primary_is_alive() {
    // Reference: patroni-reference.md §2 _is_healthiest_node(): 'Primary (%s) is still alive'
    let o = race_obs()
        .peers(vec![
            PeerStatus {
                detached: false,
                timeline: None,
                in_recovery: false,
                ..peer("n1", 100)
            },
            peer("n3", 100),
        ])
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "following a different leader because i am not the healthiest node: Primary (n1) is still alive",
    );
}

#[test]
fn leader_race_not_healthiest_at_equal_lsn_and_lower_priority() {
    // Reference: patroni-reference.md §2 _is_healthiest_node(): '%s has equally tolerable WAL position and priority %s, while this node has priority %s'
    let o = race_obs()
        .peers(vec![
            unreachable("n1"),
            PeerStatus {
                detached: false,
                timeline: None,
                failover_priority: 2,
                ..peer("n3", 100)
            },
        ])
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "following a different leader because i am not the healthiest node: n3 has equally tolerable WAL position and priority 2, while this node has priority 1",
    );
}

#[test]
fn leader_race_ignores_nofailover_peers_that_are_ahead() {
    // Reference: patroni-reference.md §2 _is_healthiest_node(): only peers without nofailover vote
    let o = race_obs()
        .peers(vec![
            unreachable("n1"),
            PeerStatus {
                detached: false,
                timeline: None,
                nofailover: true,
                ..peer("n3", 500)
            },
        ])
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[Action::AcquireLeader],
        "racing for the leader lock",
    );
}

#[test]
fn leader_race_lag_beyond_maximum_lag_on_failover() {
    // Reference: patroni-reference.md §2 _is_healthiest_node(): status.optime - my_lsn > maximum_lag_on_failover
    let o = obs()
        .cluster(leaderless_after_writing(100 + 1_048_577))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "following a different leader because i am not the healthiest node: my lag of 1048577 bytes behind the last known leader position exceeds maximum_lag_on_failover (1048576)",
    );
    // Exactly at the limit is still eligible.
    let o = obs()
        .cluster(leaderless_after_writing(100 + 1_048_576))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_eq!(ha("n2").step(&o).actions, [Action::ProbePeers]);
}

#[test]
fn leader_race_check_timeline_refuses_an_old_timeline() {
    // Reference: patroni-reference.md §2 _is_healthiest_node(): check_timeline and my_tl < cluster.timeline
    let o = obs()
        .cluster(
            leaderless()
                .config(json!({"check_timeline": true}))
                .history(json!([[1, 50, "no recovery target specified"]])),
        )
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "following a different leader because i am not the healthiest node: my timeline 1 is behind the cluster timeline 2",
    );
}

#[test]
fn leader_race_waits_for_a_valid_lease() {
    // Reference: patroni-reference.md §2 acquire_lock(); pgkeel attaches the key to its own lease
    let o = obs()
        .cluster(leaderless())
        .lease("n2", 1_000)
        .local(local_replica_of("n1"))
        .peers(vec![unreachable("n1"), peer("n3", 100)])
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "waiting for a valid DCS lease before racing for the leader lock",
    );
}

#[test]
fn leader_race_won_promotes() {
    // Reference: patroni-reference.md §2 enforce_primary_role(): 'promoted self to leader by acquiring session lock'
    let o = race_obs()
        .peers(vec![unreachable("n1"), peer("n3", 100)])
        .outcome(Outcome::LeaderAcquired { won: true })
        .build();
    let d = ha("n2").step(&o);
    assert_decision(
        &d,
        &[
            Action::Promote,
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: pgkeel_ha::ha::Role::Primary,
            },
        ],
        "promoted self to leader by acquiring session lock",
    );
    assert!(d.restep);
}

#[test]
fn leader_race_lost_follows() {
    // Reference: patroni-reference.md §2 process_unhealthy_cluster(): follow(..., 'following new leader after trying and failing to obtain lock')
    let o = race_obs()
        .peers(vec![unreachable("n1"), peer("n3", 100)])
        .outcome(Outcome::LeaderAcquired { won: false })
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "following new leader after trying and failing to obtain lock",
    );
}

#[test]
fn leader_race_lost_by_a_running_primary_demotes() {
    // Reference: patroni-reference.md §2 process_unhealthy_cluster(): follow('demoted self after
    // trying and failing to obtain lock', ...) demotes a running primary at once.
    let o = obs()
        .cluster(leaderless())
        .fresh_lease("n1")
        .local(local_primary())
        .outcome(Outcome::LeaderAcquired { won: false })
        .build();
    let d = ha("n1").step(&o);
    assert_decision(
        &d,
        &[
            Action::Stop(StopMode::Immediate),
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: pgkeel_ha::ha::Role::Replica,
            },
        ],
        "demoted self after trying and failing to obtain lock",
    );
    assert!(d.restep);
}

#[test]
fn leader_race_running_primary_races_without_probing() {
    // Reference: patroni-reference.md §2 is_healthiest_node(): primary -> own timeline >= cluster timeline
    let o = obs()
        .cluster(leaderless())
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::AcquireLeader],
        "racing for the leader lock",
    );
}

#[test]
fn leader_race_won_by_a_running_primary_keeps_it() {
    // Reference: patroni-reference.md §2 enforce_primary_role(): 'acquired session lock as a leader'
    let o = obs()
        .cluster(leaderless())
        .fresh_lease("n1")
        .local(local_primary())
        .outcome(Outcome::LeaderAcquired { won: true })
        .build();
    assert_decision(&ha("n1").step(&o), &[], "acquired session lock as a leader");
}

#[test]
fn leader_race_nofailover_never_races() {
    // Reference: patroni-reference.md §2 process_unhealthy_cluster(): 'following a different leader because I am not allowed to promote'
    let mut n3 = ha_with("n3", |c| c.nofailover = true);
    let o = obs()
        .cluster(leaderless())
        .fresh_lease("n3")
        .local(local_replica_of("n1"))
        .peers(vec![unreachable("n1"), unreachable("n2")])
        .build();
    assert_decision(
        &n3.step(&o),
        &[],
        "following a different leader because I am not allowed to promote",
    );
}
