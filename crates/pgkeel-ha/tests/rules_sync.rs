//! Synchronous replication (`synchronous_mode: on`): the primary's `sync` key and
//! `synchronous_standby_names` move in the safe order, and only a member the `sync` key lists
//! is promoted. Reference: patroni-reference.md §2 "Synchronous replication on the primary",
//! `is_healthiest_node()`; Patroni's `_process_multisync_replication`.
mod support;

use pgkeel_ha::Ha;
use pgkeel_ha::ha::{Action, CallbackEvent, Outcome, Role};
use pgkeel_ha::pg::{LocalPostgres, Lsn, ReplicationConnection};
use pgkeel_ha::sync::STRICT_PLACEHOLDER;
use serde_json::{Value, json};
use support::*;

/// `n1` leads `n2` and `n3` with this dynamic configuration and this `sync` key (`None`: absent).
fn cluster(config: Value, sync: Option<Value>) -> ClusterBuilder {
    let b = ClusterBuilder::initialized()
        .config(config)
        .three_nodes_led_by("n1");
    match sync {
        Some(s) => b.raw("sync", &s.to_string(), 0),
        None => b,
    }
}

fn sync_on() -> Value {
    json!({"synchronous_mode": true})
}

fn sync_key(standbys: Option<&str>) -> Value {
    json!({"leader": "n1", "quorum": 0, "sync_standby": standbys})
}

/// A walsender of the primary.
fn walsender(name: &str, sync_state: &str, flush: u64) -> ReplicationConnection {
    ReplicationConnection {
        application_name: name.into(),
        state: "streaming".into(),
        sync_state: sync_state.into(),
        write_lsn: Some(Lsn(flush)),
        flush_lsn: Some(Lsn(flush)),
        replay_lsn: Some(Lsn(flush)),
    }
}

fn primary(ssn: &str, walsenders: Vec<ReplicationConnection>) -> LocalPostgres {
    LocalPostgres {
        synchronous_standby_names: Some(ssn.into()),
        replication: walsenders,
        ..local_primary()
    }
}

/// The synchronous-replication actions of the leader's step.
fn sync_actions(ha: &mut Ha, c: &ClusterBuilder, local: LocalPostgres) -> Vec<Action> {
    let o = obs()
        .cluster(c.clone())
        .fresh_lease("n1")
        .local(local)
        .build();
    ha.step(&o)
        .actions
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                Action::SetSynchronousStandbyNames { .. }
                    | Action::WriteSync { .. }
                    | Action::DeleteSync { .. }
            )
        })
        .collect()
}

fn write_sync(standbys: &[&str], expected: Option<i64>) -> Action {
    Action::WriteSync {
        leader: "n1".into(),
        sync_standby: standbys.iter().map(|s| s.to_string()).collect(),
        quorum: 0,
        expected,
    }
}

fn set_ssn(v: &str) -> Action {
    Action::SetSynchronousStandbyNames {
        value: Some(v.into()),
    }
}

fn sync_revision(c: &ClusterBuilder) -> Option<i64> {
    c.build().sync.map(|s| s.mod_revision)
}

#[test]
fn turning_synchronous_mode_on_writes_the_sync_key_first() {
    let c = cluster(sync_on(), None);
    let mut n1 = ha("n1");
    assert_eq!(
        sync_actions(
            &mut n1,
            &c,
            primary("", vec![walsender("n2", "async", 100)])
        ),
        [write_sync(&[], None)]
    );
}

#[test]
fn a_standby_is_named_in_the_parameter_before_the_sync_key() {
    let c = cluster(sync_on(), Some(sync_key(None)));
    let mut n1 = ha("n1");
    // n3 is further ahead: the best one is picked (synchronous_node_count 1).
    let senders = vec![walsender("n2", "async", 90), walsender("n3", "async", 100)];
    assert_eq!(
        sync_actions(&mut n1, &c, primary("", senders)),
        [set_ssn("n3")]
    );
    // The parameter names n3, PostgreSQL reports it `sync` but it has not yet reached the
    // position of the moment the parameter changed: not in the key yet.
    let mut local = primary(
        "n3",
        vec![walsender("n2", "async", 90), walsender("n3", "sync", 99)],
    );
    local.wal_position = Some(Lsn(100));
    assert_eq!(sync_actions(&mut n1, &c, local), []);
    // Once it has, it joins the key.
    let mut local = primary(
        "n3",
        vec![walsender("n2", "async", 90), walsender("n3", "sync", 100)],
    );
    local.wal_position = Some(Lsn(120));
    assert_eq!(
        sync_actions(&mut n1, &c, local),
        [write_sync(&["n3"], sync_revision(&c))]
    );
}

#[test]
fn a_standby_that_is_not_reported_sync_never_joins_the_key() {
    let c = cluster(sync_on(), Some(sync_key(None)));
    let mut n1 = ha("n1");
    for _ in 0..3 {
        let local = primary("n2", vec![walsender("n2", "potential", 100)]);
        assert_eq!(sync_actions(&mut n1, &c, local), []);
    }
}

#[test]
fn a_standby_leaves_the_key_before_it_leaves_the_parameter() {
    // n2 is synchronous and disconnects; n3 streams.
    let c = cluster(sync_on(), Some(sync_key(Some("n2"))));
    let mut n1 = ha("n1");
    assert_eq!(
        sync_actions(
            &mut n1,
            &c,
            primary("n2", vec![walsender("n3", "async", 100)])
        ),
        [write_sync(&[], sync_revision(&c)), set_ssn("n3")]
    );
}

#[test]
fn a_synchronous_standby_in_the_key_stays_after_an_agent_restart() {
    // A new agent (empty memory) finds n2 in the key and the parameter, reported `sync`:
    // nothing changes, even though its position at the change is unknown.
    let c = cluster(sync_on(), Some(sync_key(Some("n2"))));
    let mut n1 = ha("n1");
    assert_eq!(
        sync_actions(
            &mut n1,
            &c,
            primary("n2", vec![walsender("n2", "sync", 50)])
        ),
        []
    );
}

#[test]
fn nosync_members_and_lagging_members_are_not_made_synchronous() {
    let c = ClusterBuilder::initialized()
        .config(json!({"synchronous_mode": true, "maximum_lag_on_syncnode": 1000}))
        .leader("n1")
        .member("n1", |m| m.primary())
        .member("n2", |m| m.tag("nosync", json!(true)))
        .member("n3", |m| m)
        .member("n4", |m| m)
        .raw("sync", &sync_key(None).to_string(), 0);
    let mut n1 = ha("n1");
    let senders = vec![
        walsender("n2", "async", 10_000),
        walsender("n3", "async", 5_000),
        walsender("n4", "async", 9_500),
    ];
    // n2 is nosync; n3 lags 5000 bytes behind the most advanced standby (n2 is not counted):
    // n4 is picked.
    assert_eq!(
        sync_actions(&mut n1, &c, primary("", senders)),
        [set_ssn("n4")]
    );
}

#[test]
fn synchronous_node_count_lists_several_standbys() {
    let c = cluster(
        json!({"synchronous_mode": true, "synchronous_node_count": 2}),
        Some(sync_key(None)),
    );
    let mut n1 = ha("n1");
    let senders = vec![walsender("n2", "async", 100), walsender("n3", "async", 100)];
    assert_eq!(
        sync_actions(&mut n1, &c, primary("", senders)),
        [set_ssn("2 (n2,n3)")]
    );
}

#[test]
fn strict_mode_without_standbys_makes_commits_wait() {
    let c = cluster(
        json!({"synchronous_mode": true, "synchronous_mode_strict": true}),
        Some(sync_key(None)),
    );
    let mut n1 = ha("n1");
    let o = obs()
        .cluster(c.clone())
        .fresh_lease("n1")
        .local(primary("", vec![]))
        .build();
    let d = n1.step(&o);
    assert!(
        d.actions.contains(&set_ssn(STRICT_PLACEHOLDER)),
        "{:?}",
        d.actions
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("synchronous_mode_strict is requested")
                && n.contains("Commits will be delayed")),
        "{:?}",
        d.notes
    );
    // A strict primary whose synchronous standby went away keeps waiting for it.
    let c = cluster(
        json!({"synchronous_mode": true, "synchronous_mode_strict": true}),
        Some(sync_key(Some("n2"))),
    );
    assert_eq!(sync_actions(&mut ha("n1"), &c, primary("n2", vec![])), []);
}

#[test]
fn turning_synchronous_mode_off_deletes_the_key_and_restores_the_parameter() {
    let c = cluster(json!({}), Some(sync_key(Some("n2"))));
    let rev = sync_revision(&c).unwrap_or_default();
    assert_eq!(
        sync_actions(
            &mut ha("n1"),
            &c,
            primary("n2", vec![walsender("n2", "sync", 100)])
        ),
        [
            Action::DeleteSync { mod_revision: rev },
            Action::SetSynchronousStandbyNames { value: None }
        ]
    );
    // Asynchronous all along: nothing.
    let c = cluster(json!({}), None);
    assert_eq!(sync_actions(&mut ha("n1"), &c, primary("", vec![])), []);
}

fn leaderless(config: Value, sync: Value) -> ClusterBuilder {
    ClusterBuilder::initialized()
        .config(config)
        .member("n2", |m| m)
        .member("n3", |m| m)
        .raw("sync", &sync.to_string(), 0)
}

#[test]
fn only_a_synchronous_standby_races_for_the_lock() {
    let c = leaderless(sync_on(), sync_key(Some("n2")));
    // n3 is ahead of n2 but not synchronous: it stands back.
    let o = obs()
        .cluster(c.clone())
        .fresh_lease("n3")
        .local(local_replica_of("n1"))
        .peers(vec![peer("n2", 100)])
        .build();
    let d = ha("n3").step(&o);
    assert!(
        !d.actions.contains(&Action::AcquireLeader),
        "{:?}",
        d.actions
    );
    assert!(
        d.status.contains("I am not a synchronous standby"),
        "{}",
        d.status
    );
    // n2 races, although n3 reports a higher position.
    let o = obs()
        .cluster(c)
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .peers(vec![peer("n3", 500)])
        .build();
    let d = ha("n2").step(&o);
    assert_eq!(d.actions, [Action::AcquireLeader], "{}", d.status);
}

/// The first actions of `n2` that has just won the leader race.
fn won_race(c: ClusterBuilder) -> Vec<Action> {
    won_race_running(c, None)
}

/// [`won_race`], its replica running with this `synchronous_standby_names`.
fn won_race_running(c: ClusterBuilder, ssn: Option<&str>) -> Vec<Action> {
    let mut local = local_replica_of("n1");
    local.synchronous_standby_names = ssn.map(str::to_string);
    let o = obs()
        .cluster(c)
        .fresh_lease("n2")
        .local(local)
        .outcome(Outcome::LeaderAcquired { won: true })
        .build();
    ha("n2").step(&o).actions.into_iter().take(3).collect()
}

fn n2_takes_sync(standbys: &[&str], expected: Option<i64>) -> Action {
    Action::WriteSync {
        leader: "n2".into(),
        sync_standby: standbys.iter().map(|s| s.to_string()).collect(),
        quorum: 0,
        expected,
    }
}

#[test]
fn a_new_primary_takes_the_sync_key_before_it_promotes() {
    let c = leaderless(sync_on(), sync_key(Some("n2")));
    let rev = sync_revision(&c);
    assert_eq!(
        won_race(c),
        [n2_takes_sync(&[], rev), set_ssn(""), Action::Promote]
    );
    // Strict mode: the members the key listed (the former primary among them) stay
    // synchronous from the first commit.
    let strict = json!({"synchronous_mode": true, "synchronous_mode_strict": true});
    let c = leaderless(strict, sync_key(Some("n2")));
    assert_eq!(
        won_race(c),
        [n2_takes_sync(&["n1"], rev), set_ssn("n1"), Action::Promote]
    );
}

#[test]
fn a_new_primary_changes_the_parameter_before_it_promotes_only_when_it_differs() {
    // A reload just before the promotion can delay it by PostgreSQL's retry sleep.
    let c = leaderless(sync_on(), sync_key(Some("n2")));
    let rev = sync_revision(&c);
    assert_eq!(
        won_race_running(c, Some("")),
        [
            n2_takes_sync(&[], rev),
            Action::Promote,
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: Role::Primary
            }
        ]
    );
    // A former primary's stale value is reset before it takes writes.
    let c = leaderless(sync_on(), sync_key(Some("n2")));
    assert_eq!(
        won_race_running(c, Some("n3")),
        [n2_takes_sync(&[], rev), set_ssn(""), Action::Promote]
    );
    let strict = json!({"synchronous_mode": true, "synchronous_mode_strict": true});
    let c = leaderless(strict, sync_key(Some("n2")));
    assert_eq!(
        won_race_running(c, Some("n1")).get(1),
        Some(&Action::Promote)
    );
}

fn standby_n2() -> Ha {
    ha_with("n2", |c| {
        c.member = Some(pgkeel_ha::ha::MemberIdentity {
            conn_url: "postgres://10.0.0.2:5432/postgres".into(),
            api_url: "http://10.0.0.2:8008/patroni".into(),
            tags: Default::default(),
            version: "4.1.4".into(),
        })
    })
}

fn shutting_down(c: &ClusterBuilder, now: u64) -> pgkeel_ha::Observation {
    obs()
        .cluster(c.clone())
        .now(now)
        .lease("n2", 30_000)
        .local(local_replica_of("n1"))
        .request(1, pgkeel_ha::ha::RequestKind::Shutdown)
        .build()
}

#[test]
fn a_synchronous_standby_asks_to_be_released_before_it_stops() {
    let listed = cluster(sync_on(), Some(sync_key(Some("n2"))));
    let mut n2 = standby_n2();
    let d = n2.step(&shutting_down(&listed, NOW));
    assert_eq!(
        (d.actions.as_slice(), d.status.as_str()),
        (
            &[][..],
            "Waiting for primary to release us from synchronous standby"
        )
    );
    let tags = d.member.map(|m| m.member.tags).unwrap_or_default();
    assert_eq!(
        (tags.get("nosync"), tags.get("sync_priority")),
        (Some(&json!(true)), Some(&json!(0))),
        "the member key asks the primary to release it"
    );
    // Still listed a little later: still waiting.
    let d = n2.step(&shutting_down(&listed, NOW + 5_000));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    // Released: it stops.
    let released = cluster(sync_on(), Some(sync_key(Some("n3"))));
    let d = n2.step(&shutting_down(&released, NOW + 6_000));
    assert!(
        d.actions
            .contains(&Action::Stop(pgkeel_ha::ha::StopMode::Fast)),
        "{:?}",
        d.actions
    );
}

#[test]
fn a_synchronous_standby_stops_after_two_loop_waits_even_when_not_released() {
    let listed = cluster(sync_on(), Some(sync_key(Some("n2"))));
    let mut n2 = standby_n2();
    assert!(n2.step(&shutting_down(&listed, NOW)).actions.is_empty());
    // loop_wait 10 s by default: 20 s later it gives up waiting.
    let d = n2.step(&shutting_down(&listed, NOW + 20_000));
    assert!(
        d.actions
            .contains(&Action::Stop(pgkeel_ha::ha::StopMode::Fast)),
        "{:?}",
        d.actions
    );
    // An asynchronous standby does not wait at all.
    let mut n3 = ha("n3");
    let o = obs()
        .cluster(listed)
        .fresh_lease("n3")
        .local(local_replica_of("n1"))
        .request(1, pgkeel_ha::ha::RequestKind::Shutdown)
        .build();
    assert!(
        n3.step(&o)
            .actions
            .contains(&Action::Stop(pgkeel_ha::ha::StopMode::Fast))
    );
}

#[test]
fn a_switchover_candidate_that_is_not_synchronous_does_not_hold_up_the_race() {
    // The leader died with a switchover to n3 pending; n3 is not a synchronous standby and
    // will not race, so n2 (listed) races instead of deferring to it (sim seed 25).
    let c = leaderless(sync_on(), sync_key(Some("n2"))).failover(Some("n1"), Some("n3"), None);
    let o = obs()
        .cluster(c)
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .peers(vec![peer("n3", 100)])
        .build();
    let d = ha("n2").step(&o);
    assert_eq!(d.actions, [Action::AcquireLeader], "{}", d.status);
}

#[test]
fn a_former_primary_listed_as_a_standby_stops_at_once_on_shutdown() {
    // A primary that was frozen through a failover finds itself in the new primary's `sync`
    // key; shut down, it must stop its writable server now, not wait to be released (sim
    // seed 48).
    let c = ClusterBuilder::initialized()
        .config(json!({"synchronous_mode": true, "synchronous_mode_strict": true}))
        .leader("n2")
        .member("n1", |m| m)
        .member("n2", |m| m.primary())
        .raw(
            "sync",
            &json!({"leader": "n2", "quorum": 0, "sync_standby": "n1"}).to_string(),
            0,
        );
    let o = obs()
        .cluster(c)
        .fresh_lease("n1")
        .local(local_primary())
        .request(1, pgkeel_ha::ha::RequestKind::Shutdown)
        .build();
    let d = ha("n1").step(&o);
    assert!(
        d.actions
            .contains(&Action::Stop(pgkeel_ha::ha::StopMode::Fast)),
        "{:?} {}",
        d.actions,
        d.status
    );
}
