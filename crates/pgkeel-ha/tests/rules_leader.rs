//! The leader-key holder: steady state, fencing, DCS loss.
mod support;

use pgkeel_ha::ha::{Action, CallbackEvent, StopMode};
use serde_json::json;
use support::*;

fn demote_actions() -> Vec<Action> {
    vec![
        Action::Stop(StopMode::Immediate),
        Action::Callback {
            event: CallbackEvent::OnRoleChange,
            role: pgkeel_ha::ha::Role::Replica,
        },
    ]
}

fn slots_n2_n3() -> Action {
    Action::SyncSlots {
        wanted: vec!["n2".into(), "n3".into()],
    }
}

#[test]
fn healthy_leader_keeps_member_slots_and_writes_status() {
    // Reference: patroni-reference.md §2 process_healthy_cluster() / enforce_primary_role()
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    let d = ha("n1").step(&o);
    assert_decision(
        &d,
        &[slots_n2_n3(), Action::WriteStatus],
        "no action. I am (n1), the leader with the lock",
    );
    assert!(!d.restep);
    assert_eq!(
        (d.node.state.as_str(), d.node.role.as_str()),
        ("running", "primary")
    );
}

#[test]
fn healthy_leader_writes_history_when_the_key_is_absent() {
    // Reference: patroni-reference.md §2 enforce_primary_role() -> update_cluster_history()
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .without("history")
                .three_nodes_led_by("n1"),
        )
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::UpdateHistory, slots_n2_n3(), Action::WriteStatus],
        "no action. I am (n1), the leader with the lock",
    );
}

#[test]
fn healthy_leader_writes_history_when_it_is_behind_the_local_timeline() {
    // Reference: patroni-reference.md §2 enforce_primary_role() -> update_cluster_history()
    let mut local = local_primary();
    local.timeline = Some(3);
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .history(json!([[1, 50, "no recovery target specified"]]))
                .three_nodes_led_by("n1"),
        )
        .fresh_lease("n1")
        .local(local)
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::UpdateHistory, slots_n2_n3(), Action::WriteStatus],
        "no action. I am (n1), the leader with the lock",
    );
}

#[test]
fn healthy_leader_without_slots_only_writes_status() {
    // Reference: patroni-reference.md §2 process_healthy_cluster(); postgresql.use_slots=false
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .config(json!({"postgresql": {"use_slots": false}}))
                .three_nodes_led_by("n1"),
        )
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::WriteStatus],
        "no action. I am (n1), the leader with the lock",
    );
}

#[test]
fn leader_key_on_an_old_lease_is_reattached_first() {
    // Reference: patroni-reference.md §2 process_healthy_cluster() -> update_lock()
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .three_nodes_led_by("n1")
                .leader_on("n1", 999),
        )
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    let d = ha("n1").step(&o);
    assert_decision(
        &d,
        &[Action::RefreshLeader],
        "re-attaching the leader lock to this agent's lease",
    );
    assert!(d.restep);
}

#[test]
fn key_holder_running_as_replica_promotes() {
    // Reference: patroni-reference.md §2 enforce_primary_role() promote branch
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_replica_of("n1"))
        .build();
    let d = ha("n1").step(&o);
    assert_decision(
        &d,
        &[
            Action::Promote,
            Action::Callback {
                event: CallbackEvent::OnRoleChange,
                role: pgkeel_ha::ha::Role::Primary,
            },
        ],
        "promoted self to leader because I had the session lock",
    );
    assert!(d.restep);
}

#[test]
fn fencing_primary_with_expired_lease_stops() {
    // Reference: patroni-reference.md §2 process_healthy_cluster(): update_lock() failed -> demote('immediate-nolock')
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .lease_raw(lease_of("n1"), NOW - 1)
        .local(local_primary())
        .build();
    let d = ha("n1").step(&o);
    assert_decision(
        &d,
        &demote_actions(),
        "demoted self because failed to update leader lock in DCS",
    );
    assert!(d.restep);
}

#[test]
fn fencing_primary_whose_lease_ends_within_the_margin_stops() {
    // Reference: patroni-reference.md §2 process_healthy_cluster(); pgkeel fences fencing_margin_ms
    // (ttl/4 clamped to 1..3 s, here 3 s) before the lease deadline.
    let build = |valid_for| {
        obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .lease("n1", valid_for)
            .local(local_primary())
            .build()
    };
    assert_decision(
        &ha("n1").step(&build(3_000)),
        &demote_actions(),
        "demoted self because failed to update leader lock in DCS",
    );
    assert_eq!(
        ha("n1").step(&build(3_001)).status,
        "no action. I am (n1), the leader with the lock"
    );
}

#[test]
fn fencing_primary_whose_key_is_held_by_another_node_stops() {
    // Reference: patroni-reference.md §2 follow(): primary -> demote('immediate-nolock')
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n2"))
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &demote_actions(),
        "demoting self because I do not have the lock and I was a leader",
    );
}

#[test]
fn fencing_primary_without_any_lease_stops() {
    // Reference: patroni-reference.md §2 process_healthy_cluster(): update_lock() failed
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .local(local_primary())
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &demote_actions(),
        "demoted self because failed to update leader lock in DCS",
    );
}

#[test]
fn fencing_dcs_unreachable_with_valid_lease_keeps_the_primary() {
    // Reference: patroni-reference.md §2 handle_dcs_error(); pgkeel keeps the primary while its
    // own lease provably cannot have expired.
    let mut n1 = ha("n1");
    let healthy = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    n1.step(&healthy);
    let o = obs()
        .dcs_err("etcd timeout")
        .lease("n1", 20_000)
        .local(local_primary())
        .build();
    let d = n1.step(&o);
    assert_decision(
        &d,
        &[],
        "DCS is not accessible (etcd timeout); still the leader while the lease is valid (17000 ms left)",
    );
}

#[test]
fn fencing_dcs_unreachable_past_the_margin_demotes() {
    // Reference: patroni-reference.md §2 handle_dcs_error() -> demote('offline')
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let o = obs()
        .dcs_err("etcd timeout")
        .lease("n1", 2_000)
        .local(local_primary())
        .build();
    assert_decision(
        &n1.step(&o),
        &demote_actions(),
        "demoted self because DCS is not accessible and I was a leader",
    );
}

#[test]
fn fencing_dcs_unreachable_when_not_known_as_leader_demotes() {
    // Reference: patroni-reference.md §2 handle_dcs_error(): a primary that never saw itself
    // holding the key (fresh agent) cannot prove leadership.
    let o = obs()
        .dcs_err("etcd timeout")
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &demote_actions(),
        "demoted self because DCS is not accessible and I was a leader",
    );
}

#[test]
fn fencing_dcs_unreachable_replica_keeps_streaming() {
    // Reference: patroni-reference.md §2 handle_dcs_error(): 'DCS is not accessible'
    let o = obs()
        .dcs_err("etcd timeout")
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "DCS is not accessible (etcd timeout)",
    );
}

#[test]
fn fencing_freeze_past_the_lease_demotes_on_the_first_step() {
    // Reference: patroni-reference.md §2 process_healthy_cluster(): the agent was frozen (now
    // jumped past valid_until); it must not trust the stale snapshot that still names it.
    let cluster = ClusterBuilder::initialized().three_nodes_led_by("n1");
    let mut n1 = ha("n1");
    let before = obs()
        .cluster(cluster.clone())
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    assert_eq!(
        n1.step(&before).status,
        "no action. I am (n1), the leader with the lock"
    );
    let after = obs()
        .now(NOW + TTL_MS + 10_000)
        .cluster(cluster)
        .fresh_lease("n1") // valid_until = NOW + TTL: already in the past
        .local(local_primary())
        .build();
    assert_decision(
        &n1.step(&after),
        &demote_actions(),
        "demoted self because failed to update leader lock in DCS",
    );
}

#[test]
fn not_promoting_without_a_valid_lease() {
    // Reference: patroni-reference.md §2 process_healthy_cluster(): 'not promoting because failed to update leader lock in DCS'
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .lease("n1", 1_000)
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[],
        "not promoting because failed to update leader lock in DCS",
    );
}

#[test]
fn fencing_dcs_unreachable_uses_the_last_dynamic_config_seen() {
    // Reference: patroni-reference.md §2 handle_dcs_error(). The cluster runs with ttl 8 set
    // through /config (fencing margin 2 s); the local bootstrap.dcs says 30 (margin 3 s). While
    // etcd does not answer the margin must stay the cluster's, the one the agent schedules its
    // fencing wake-up by; with the local value this primary demoted itself 1 s early.
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(
                ClusterBuilder::initialized()
                    .config(json!({"ttl": 8, "loop_wait": 1, "retry_timeout": 2}))
                    .three_nodes_led_by("n1"),
            )
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let o = obs()
        .dcs_err("etcd timeout")
        .lease("n1", 2_500)
        .local(local_primary())
        .build();
    assert_eq!(n1.global_config(None).ttl, 8);
    assert_decision(
        &n1.step(&o),
        &[],
        "DCS is not accessible (etcd timeout); still the leader while the lease is valid (500 ms left)",
    );
}

#[test]
fn a_restarted_node_goes_by_its_cached_dynamic_config_until_the_dcs_answers() {
    // Reference: Patroni's patroni.dynamic.json, loaded at start (config.py `_load_cache`).
    let mut n1 = ha_with("n1", |c| {
        c.bootstrap_dcs = json!({"ttl": 30}).as_object().cloned().unwrap_or_default();
    });
    assert_eq!(n1.global_config(None).ttl, 30);
    n1.remember_dynamic_config(
        json!({"ttl": 8, "loop_wait": 1, "retry_timeout": 2})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    assert_eq!(n1.global_config(None).ttl, 8);
    n1.step(&obs().dcs_err("etcd timeout").local(local_primary()).build());
    assert_eq!(
        n1.global_config(None).ttl,
        8,
        "kept while the DCS is silent"
    );
    n1.step(
        &obs()
            .cluster(
                ClusterBuilder::initialized()
                    .config(json!({"ttl": 12}))
                    .three_nodes_led_by("n1"),
            )
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_eq!(n1.global_config(None).ttl, 12, "/config replaces the cache");
}

#[test]
fn fencing_stops_a_former_primary_that_runs_but_does_not_answer() {
    // Assume the worst: a server that runs without answering (the agent is out of file
    // descriptors, or PostgreSQL is overloaded) and was a primary when last seen may still
    // take writes; without a valid lease it is stopped like any primary.
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let mut silent = local_primary();
    silent.accepting_connections = false;
    silent.role = None;
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n2"))
        .fresh_lease("n1")
        .local(silent)
        .build();
    assert_decision(
        &n1.step(&o),
        &demote_actions(),
        "demoting self because I do not have the lock and I was a leader",
    );
}

#[test]
fn a_hostile_config_keeps_the_last_good_values_and_the_leader_leads() {
    // Issue 10 point 2: `PATCH /config {"loop_wait":18446744073709551615}` panicked every agent
    // (`attempt to add with overflow`) on every start. A value out of range keeps the value the
    // key had in the last /config read, with a warning naming it; the leader carries on.
    let good = json!({"ttl": 8, "loop_wait": 1, "retry_timeout": 2});
    let hostile =
        json!({"ttl": 1e19, "loop_wait": 18446744073709551615u64, "retry_timeout": "abc"});
    let step_with = |n: &mut pgkeel_ha::Ha, config: &serde_json::Value| {
        n.step(
            &obs()
                .cluster(
                    ClusterBuilder::initialized()
                        .config(config.clone())
                        .three_nodes_led_by("n1"),
                )
                .fresh_lease("n1")
                .local(local_primary())
                .build(),
        )
    };
    let mut n1 = ha("n1");
    let before = step_with(&mut n1, &good);
    let after = step_with(&mut n1, &hostile);
    assert_eq!(after, before, "the leader decides as with the good /config");
    let gc = n1.global_config(None);
    assert_eq!((gc.ttl, gc.loop_wait, gc.retry_timeout), (8, 1, 2));
    assert_eq!(
        gc.warnings,
        [
            "loop_wait: 18446744073709551615 is bigger than 86400; keeping 1",
            "retry_timeout: \"abc\" is not an integer; keeping 2",
            "ttl: 1e+19 is bigger than 86400; keeping 8",
        ]
    );
    // A node that never saw a good /config falls back to the defaults.
    let mut fresh = ha("n1");
    step_with(&mut fresh, &hostile);
    let gc = fresh.global_config(None);
    assert_eq!((gc.ttl, gc.loop_wait, gc.retry_timeout), (30, 10, 10));
}

#[test]
fn a_former_primary_this_node_started_read_only_is_not_fenced_while_it_starts() {
    // n1 led, lost the key to n2 and was stopped; with the leader gone it is started read-only
    // (standby.signal): while that start runs (postmaster up, not answering yet) it cannot take
    // writes, so the fencing rule must leave it alone when n2 takes the key meanwhile, instead of
    // stopping it mid-start.
    let mut n1 = ha("n1");
    n1.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    let stopped = local_stopped("shut down", 1, 100);
    let d = n1.step(
        &obs()
            .cluster(
                ClusterBuilder::initialized()
                    .three_nodes_led_by("n1")
                    .without("leader"),
            )
            .fresh_lease("n1")
            .local(stopped)
            .build(),
    );
    assert!(
        d.actions.iter().any(|a| matches!(
            a,
            Action::StartTask(pgkeel_ha::ha::TaskKind::Start {
                as_primary: false,
                ..
            })
        )),
        "{d:?}"
    );
    let mut starting = local_primary();
    starting.accepting_connections = false;
    starting.role = None;
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n2"))
        .fresh_lease("n1")
        .local(starting.clone())
        .build();
    let d = n1.step(&o);
    assert!(
        !d.actions.contains(&Action::Stop(StopMode::Immediate)),
        "a read-only start was fenced: {d:?}"
    );
    // Once it has been seen as a primary again (promoted by anyone), the rule applies again.
    let mut n1b = n1.clone();
    n1b.step(
        &obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    assert_decision(
        &n1b.step(&o),
        &demote_actions(),
        "demoting self because I do not have the lock and I was a leader",
    );
}
