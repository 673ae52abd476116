//! The member key is the core's decision (issue 7 point 1): what it says and when it is
//! written again (`Decision::member`, fed back by `Outcome::MemberWritten`).
mod support;

use pgkeel_ha::Ha;
use pgkeel_ha::ha::{MemberIdentity, MemberUpdate, Outcome};
use pgkeel_ha::pg::Lsn;
use pgkeel_ha::time::MonoTime;
use serde_json::json;
use support::*;

fn identity() -> MemberIdentity {
    MemberIdentity {
        conn_url: "postgres://10.0.0.2:5432/postgres".into(),
        api_url: "http://10.0.0.2:8008/patroni".into(),
        tags: [("zone".to_string(), json!("a"))].into_iter().collect(),
        version: "4.1.4".into(),
    }
}

fn node() -> Ha {
    ha_with("n2", |c| c.member = Some(identity()))
}

/// A replica of n1 at `lsn`, `now` ms after the tests' start (loop_wait is 10 s).
fn replica_at(lsn: u64, now: u64) -> pgkeel_ha::Observation {
    let mut local = local_replica_of("n1");
    local.receive_lsn = Some(Lsn(lsn));
    local.replay_lsn = Some(Lsn(lsn));
    local.wal_position = Some(Lsn(lsn));
    let mut o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local)
        .build();
    o.now = MonoTime(o.now.0 + now);
    o
}

fn written(u: &MemberUpdate) -> Outcome {
    Outcome::MemberWritten(Box::new(u.clone()))
}

#[test]
fn a_replica_publishes_its_identity_state_and_positions_on_its_lease() {
    let mut n2 = node();
    let d = n2.step(&replica_at(0x500, 0));
    let Some(u) = d.member else {
        panic!("nothing published")
    };
    assert_eq!(u.lease, lease_of("n2"));
    let m = &u.member;
    assert_eq!(m.conn_url, "postgres://10.0.0.2:5432/postgres");
    assert_eq!(m.api_url, "http://10.0.0.2:8008/patroni");
    assert_eq!((m.state.as_str(), m.role.as_str()), ("running", "replica"));
    assert_eq!(m.tags.get("zone"), Some(&json!("a")));
    assert_eq!(
        (m.xlog_location, m.receive_lsn, m.replay_lsn),
        (Some(0x500), Some(0x500), Some(0x500))
    );
    assert_eq!(m.replication_state.as_deref(), Some("streaming"));
    assert_eq!(m.timeline, Some(1));
    assert_eq!(m.pause, None);
}

#[test]
fn nothing_is_published_again_while_it_is_current() {
    let mut n2 = node();
    let Some(u) = n2.step(&replica_at(0x500, 0)).member else {
        panic!("nothing published")
    };
    let mut o = replica_at(0x500, 1);
    o.outcomes.push(written(&u));
    assert_eq!(n2.step(&o).member, None);
    assert_eq!(n2.step(&replica_at(0x500, 2)).member, None);
}

#[test]
fn new_wal_positions_alone_wait_for_loop_wait_any_other_change_does_not() {
    let mut n2 = node();
    let Some(u) = n2.step(&replica_at(0x500, 0)).member else {
        panic!("nothing published")
    };
    let mut o = replica_at(0x600, 1_000);
    o.outcomes.push(written(&u));
    assert_eq!(n2.step(&o).member, None, "positions only, within loop_wait");
    let later = n2.step(&replica_at(0x600, 10_000)).member;
    assert_eq!(
        later.map(|u| u.member.xlog_location),
        Some(Some(0x600)),
        "published once loop_wait has passed"
    );
    // A state change is published at once.
    let mut stopped = replica_at(0x600, 2_000);
    stopped.local = local_stopped("shut down", 1, 0x600);
    let d = n2.step(&stopped);
    assert_eq!(d.member.map(|u| u.member.state), Some("crashed".into()));
}

#[test]
fn a_failed_write_is_decided_again_and_a_new_lease_gets_a_write() {
    let mut n2 = node();
    assert!(n2.step(&replica_at(0x500, 0)).member.is_some());
    // No `MemberWritten` came back: the core does not take it as published.
    assert!(n2.step(&replica_at(0x500, 1)).member.is_some());
    let Some(u) = n2.step(&replica_at(0x500, 2)).member else {
        panic!("nothing published")
    };
    let mut o = replica_at(0x500, 3);
    o.outcomes.push(written(&u));
    if let Some(l) = &mut o.lease {
        l.id += 1000;
    }
    assert_eq!(
        n2.step(&o).member.map(|u| u.lease),
        Some(lease_of("n2") + 1000)
    );
}

#[test]
fn no_member_write_without_a_lease_without_the_dcs_or_without_an_identity() {
    let mut n2 = node();
    let mut no_lease = replica_at(0x500, 0);
    no_lease.lease = None;
    assert_eq!(n2.step(&no_lease).member, None);
    let blind = obs()
        .dcs_err("etcd: connection refused")
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_eq!(n2.step(&blind).member, None);
    assert_eq!(ha("n2").step(&replica_at(0x500, 0)).member, None);
}

#[test]
fn a_paused_cluster_is_published_as_paused() {
    let mut n2 = node();
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .three_nodes_led_by("n1")
                .config(json!({"ttl": 30, "loop_wait": 10, "pause": true})),
        )
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_eq!(n2.step(&o).member.and_then(|u| u.member.pause), Some(true));
}
