//! Hostile or bogus DCS keys (issue 10): a forged `status`, a leader key nobody holds, fake
//! member keys, and any JSON in any key.
mod support;

use pgkeel_ha::Observation;
use pgkeel_ha::ha::{Action, FailureCause, Outcome, StopMode, TaskKind};
use pgkeel_ha::pg::LocalPostgres;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::*;

/// n1 primary led the cluster; its key is gone; n2, n3 replicas at 100.
fn leaderless() -> ClusterBuilder {
    ClusterBuilder::initialized()
        .member("n1", |m| m.primary())
        .member("n2", |m| m)
        .member("n3", |m| m)
}

// ---- point 3: a forged `status` ---------------------------------------------------------

#[test]
fn forged_optime_beyond_every_member_position_is_unknown_not_lag() {
    // `status {"optime": 18446744073709551615}`: before, every replica "lagged" by 2^64 bytes
    // and none raced for the key after the leader died.
    let o = obs()
        .cluster(leaderless().optime(u64::MAX))
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[Action::ProbePeers],
        "no leader: asking peers before the leader race",
    );
}

#[test]
fn an_optime_the_dead_leader_published_still_counts_as_lag() {
    // The leader's member key expires with its leader key: the position it published while it
    // was alive is remembered, so a real optime keeps counting once it is gone.
    let mut n2 = ha("n2");
    let alive = ClusterBuilder::initialized()
        .three_nodes_led_by("n1")
        .member("n1", |m| m.primary().lsn(5_000_000))
        .optime(5_000_000);
    n2.step(
        &obs()
            .cluster(alive)
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .build(),
    );
    let gone = ClusterBuilder::initialized()
        .member("n2", |m| m)
        .member("n3", |m| m)
        .optime(5_000_000);
    assert_decision(
        &n2.step(
            &obs()
                .cluster(gone)
                .fresh_lease("n2")
                .local(local_replica_of("n1"))
                .build(),
        ),
        &[],
        "following a different leader because i am not the healthiest node: my lag of 4999900 bytes \
         behind the last known leader position exceeds maximum_lag_on_failover (1048576)",
    );
}

#[test]
fn a_member_key_without_a_lease_cannot_make_a_forged_optime_believable() {
    // The forger also writes a member key, with no lease, claiming the same huge position.
    let forged_member = r#"{"conn_url":"postgres://10.0.0.9:5432/postgres","api_url":"http://10.0.0.9:8008/patroni","state":"running","role":"replica","xlog_location":18446744073709551615,"timeline":1}"#;
    let o = obs()
        .cluster(
            leaderless()
                .optime(u64::MAX)
                .raw("members/forger", forged_member, 0),
        )
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[Action::ProbePeers],
        "no leader: asking peers before the leader race",
    );
}

// ---- point 4: a leader key that nobody holds --------------------------------------------

fn ghost_without_lease() -> ClusterBuilder {
    leaderless().raw("leader", "ghost", 0)
}

fn stale_key_removal(name: &str, mod_revision: i64, reason: &str) -> Action {
    Action::DeleteStaleLeader {
        name: name.into(),
        mod_revision,
        reason: reason.into(),
    }
}

/// The mod_revision the builder gives the `leader` key (its position among the keys, from 1).
fn leader_revision(b: &ClusterBuilder) -> i64 {
    b.build_with_garbage()
        .leader
        .map(|l| l.mod_revision)
        .unwrap_or(0)
}

#[test]
fn stale_leader_key_without_a_lease_is_removed_by_a_replica() {
    let b = ghost_without_lease();
    let d = ha("n2").step(
        &obs()
            .cluster(b.clone())
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .build(),
    );
    assert_decision(
        &d,
        &[stale_key_removal(
            "ghost",
            leader_revision(&b),
            "it is not attached to a lease",
        )],
        "removing stale leader key (\"ghost\"): it is not attached to a lease",
    );
    assert!(d.restep, "the race follows in the same cycle");
}

#[test]
fn stale_leader_key_without_a_lease_does_not_demote_the_primary() {
    // Before: "demoting self because I do not have the lock and I was a leader", then nobody
    // could take the key.
    let b = ClusterBuilder::initialized()
        .three_nodes_led_by("n1")
        .raw("leader", "ghost", 0);
    assert_decision(
        &ha("n1").step(
            &obs()
                .cluster(b.clone())
                .fresh_lease("n1")
                .local(local_primary())
                .build(),
        ),
        &[stale_key_removal(
            "ghost",
            leader_revision(&b),
            "it is not attached to a lease",
        )],
        "removing stale leader key (\"ghost\"): it is not attached to a lease",
    );
}

#[test]
fn stale_leader_key_is_left_to_fencing_when_the_primary_lease_is_not_valid() {
    let b = ClusterBuilder::initialized()
        .three_nodes_led_by("n1")
        .raw("leader", "ghost", 0);
    let d = ha("n1").step(&obs().cluster(b).local(local_primary()).build());
    assert_eq!(d.actions[0], Action::Stop(StopMode::Immediate));
}

#[test]
fn empty_leader_key_is_removed() {
    // `leader = ""`: every agent's create-if-absent failed every second.
    let b = leaderless().raw("leader", "", lease_of("n9"));
    assert_decision(
        &ha("n2").step(
            &obs()
                .cluster_with_garbage(b.clone())
                .fresh_lease("n2")
                .local(local_replica_of("n1"))
                .build(),
        ),
        &[stale_key_removal(
            "",
            leader_revision(&b),
            "it names no member",
        )],
        "removing stale leader key (\"\"): it names no member",
    );
}

#[test]
fn leader_key_naming_no_member_is_removed_only_after_ttl() {
    let b = leaderless().raw("leader", "ghost", lease_of("n9"));
    let at = |ms: u64| {
        obs()
            .cluster(b.clone())
            .lease_raw(lease_of("n2"), ms + TTL_MS)
            .now(ms)
            .local(local_replica_of("n1"))
            .build()
    };
    let mut n2 = ha("n2");
    for ms in [NOW, NOW + TTL_MS] {
        let d = n2.step(&at(ms));
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::DeleteStaleLeader { .. })),
            "removed at {ms}: {d:?}"
        );
    }
    assert_decision(
        &n2.step(&at(NOW + TTL_MS + 1)),
        &[stale_key_removal(
            "ghost",
            leader_revision(&b),
            "it names no member for longer than ttl (30 s)",
        )],
        "removing stale leader key (\"ghost\"): it names no member for longer than ttl (30 s)",
    );
}

#[test]
fn own_leader_key_without_a_lease_is_reattached_not_removed() {
    let b = ClusterBuilder::initialized()
        .three_nodes_led_by("n1")
        .raw("leader", "n1", 0);
    assert_decision(
        &ha("n1").step(
            &obs()
                .cluster(b)
                .fresh_lease("n1")
                .local(local_primary())
                .build(),
        ),
        &[Action::RefreshLeader],
        "re-attaching the leader lock to this agent's lease",
    );
}

fn rewind_failed(cause: FailureCause) -> Outcome {
    Outcome::TaskFinished {
        kind: TaskKind::Rewind {
            from: "ghost".into(),
        },
        ok: false,
        message: "member ghost has no usable conn_url".into(),
        cause,
    }
}

/// n1, a former primary stopped on timeline 1 past the switch point, and n2 the leader on 2.
fn after_failover() -> ClusterBuilder {
    ClusterBuilder::initialized()
        .leader("n2")
        .member("n1", |m| m.state("stopped"))
        .member("n2", |m| m.primary().timeline(2).lsn(900))
        .history(json!([[1, 500, "no recovery target specified"]]))
}

fn former_primary(o: ObsBuilder) -> Observation {
    o.cluster(after_failover())
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, 800))
        .build()
}

#[test]
fn rewind_failure_of_an_unusable_source_is_not_a_local_failure() {
    // Before: "pg_rewind from ghost" failed, `rewind_failed` was set and the node stayed stopped.
    let mut n1 = ha("n1");
    // The last role a primary: pg_rewind is due.
    n1.step(&former_primary(obs()));
    let d = n1.step(&former_primary(
        obs().outcome(rewind_failed(FailureCause::Source)),
    ));
    assert_decision(
        &d,
        &[],
        "pg_rewind from ghost could not use its source (member ghost has no usable conn_url); will retry",
    );
    assert!(!n1.memory().rewind_failed);
    let d = n1.step(&former_primary(obs()));
    assert!(
        matches!(&d.actions[..], [Action::StartTask(TaskKind::Rewind { from })] if from == "n2"),
        "{d:?}"
    );
}

#[test]
fn rewind_failure_of_the_local_side_is_still_remembered() {
    let mut n1 = ha("n1");
    n1.step(&former_primary(obs()));
    n1.step(&former_primary(
        obs().outcome(rewind_failed(FailureCause::Local)),
    ));
    assert!(n1.memory().rewind_failed);
}

// ---- lesser: fake member keys -----------------------------------------------------------

#[test]
fn fake_member_keys_get_no_replication_slots() {
    let mut b = ClusterBuilder::initialized().three_nodes_led_by("n1");
    for i in 0..8 {
        b = b.raw(&format!("members/fake{i}"), "{not json", 0);
    }
    let d = ha("n1").step(
        &obs()
            .cluster_with_garbage(b)
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_decision(
        &d,
        &[
            Action::SyncSlots {
                wanted: vec!["n2".into(), "n3".into()],
            },
            Action::WriteStatus,
        ],
        "no action. I am (n1), the leader with the lock",
    );
}

// ---- any JSON in any key ----------------------------------------------------------------

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,12}".prop_map(Value::from),
        Just(json!("n1")),
        Just(json!("running")),
        Just(json!("primary")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("optime".to_string()),
                    Just("slots".to_string()),
                    Just("retain_slots".to_string()),
                    Just("xlog_location".to_string()),
                    Just("timeline".to_string()),
                    Just("state".to_string()),
                    Just("role".to_string()),
                    Just("conn_url".to_string()),
                    Just("api_url".to_string()),
                    Just("tags".to_string()),
                    Just("ttl".to_string()),
                    Just("loop_wait".to_string()),
                    Just("retry_timeout".to_string()),
                    Just("primary_start_timeout".to_string()),
                    Just("pause".to_string()),
                    Just("postgresql".to_string()),
                    Just("maximum_lag_on_failover".to_string()),
                    Just("leader".to_string()),
                    Just("member".to_string()),
                    Just("sync_standby".to_string()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every key the core reads, `config` among them (a `loop_wait` of u64::MAX there once panicked
/// every agent).
const KEYS: &[&str] = &[
    "config",
    "initialize",
    "leader",
    "status",
    "history",
    "failover",
    "sync",
    "optime/leader",
    "members/n1",
    "members/n2",
    "members/ghost",
];

fn locals() -> Vec<LocalPostgres> {
    vec![
        LocalPostgres::empty(),
        local_primary(),
        local_replica_of("n2"),
        local_stopped("shut down", 1, 100),
        local_stopped("in production", 2, 900),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever JSON (or non-JSON text) anyone writes into any key, the core decides without
    /// panicking, over several steps with its memory carried along.
    #[test]
    fn any_json_in_any_dcs_key_never_panics_the_core(
        writes in proptest::collection::vec(
            (0..KEYS.len(), any_json(), prop_oneof![Just(0i64), Just(101i64), Just(102i64)], any::<bool>()),
            1..8,
        ),
        local in 0..5usize,
        lease_ms in prop_oneof![Just(0u64), Just(1_000u64), Just(TTL_MS)],
    ) {
        let mut b = ClusterBuilder::initialized().three_nodes_led_by("n2");
        for (k, v, lease, as_text) in &writes {
            let text = match (as_text, v) {
                (true, Value::String(s)) => s.clone(),
                _ => v.to_string(),
            };
            b = b.raw(KEYS[*k], &text, *lease);
        }
        let mut n1 = ha("n1");
        for step in 0..3u64 {
            let o = obs()
                .cluster_with_garbage(b.clone())
                .lease_raw(lease_of("n1"), NOW + lease_ms)
                .now(NOW + step * 40_000)
                .local(locals()[local].clone())
                .build();
            let _ = n1.step(&o);
        }
    }
}
