//! The leader's member slots are the core's decision (issue 7 point 3): from the slots the agent
//! listed, which to create and which to drop; the executor only runs them.
mod support;

use pgkeel_ha::ha::Action;
use pgkeel_ha::pg::{LocalSlot, Lsn, SlotType};
use support::*;

fn slot(name: &str, slot_type: SlotType, active: bool) -> LocalSlot {
    LocalSlot {
        name: name.into(),
        slot_type,
        active,
        restart_lsn: Some(Lsn(100)),
    }
}

fn leader_with(slots: Vec<LocalSlot>) -> pgkeel_ha::Observation {
    obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_primary())
        .slots(slots)
        .build()
}

fn wanted() -> Action {
    Action::SyncSlots {
        wanted: vec!["n2".into(), "n3".into()],
    }
}

#[test]
fn missing_member_slots_are_created_before_the_positions_are_kept() {
    let mut n1 = ha("n1");
    let d = n1.step(&leader_with(vec![slot("n2", SlotType::Physical, true)]));
    assert_eq!(
        d.actions,
        [
            Action::CreateSlot { name: "n3".into() },
            wanted(),
            Action::WriteStatus
        ]
    );
}

#[test]
fn only_inactive_physical_slots_nobody_wants_are_dropped() {
    let mut n1 = ha("n1");
    let d = n1.step(&leader_with(vec![
        slot("n2", SlotType::Physical, true),
        slot("n3", SlotType::Physical, false),
        slot("ghost", SlotType::Physical, false),
        slot("busy", SlotType::Physical, true),
        slot("cdc", SlotType::Logical, false),
    ]));
    assert_eq!(
        d.actions,
        [
            Action::DropSlot {
                name: "ghost".into()
            },
            wanted(),
            Action::WriteStatus
        ]
    );
}

#[test]
fn without_a_slot_list_nothing_is_created_or_dropped() {
    let mut n1 = ha("n1");
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local_primary())
        .build();
    let d = n1.step(&o);
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::CreateSlot { .. } | Action::DropSlot { .. })),
        "{:?}",
        d.actions
    );
}

/// n1 leads; n2 streams from n1; n3 asks to cascade from n2 (`replicatefrom: n2`), with n2 in
/// `n2_state`.
fn cascading(n2_state: &str) -> ClusterBuilder {
    ClusterBuilder::initialized()
        .leader("n1")
        .member("n1", |m| m.primary())
        .member("n2", |m| m.state(n2_state))
        .member("n3", |m| m.tag("replicatefrom", serde_json::json!("n2")))
}

fn creates(d: &pgkeel_ha::Decision) -> Vec<String> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateSlot { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_leader_keeps_no_slot_for_a_member_cascading_from_a_running_replica() {
    let mut n1 = ha("n1");
    let d = n1.step(
        &obs()
            .cluster(cascading("running"))
            .fresh_lease("n1")
            .local(local_primary())
            .slots(vec![])
            .build(),
    );
    assert_eq!(creates(&d), ["n2"]);
    assert!(d.actions.contains(&Action::SyncSlots {
        wanted: vec!["n2".into()]
    }));
}

#[test]
fn the_leader_keeps_a_slot_for_a_cascading_member_whose_upstream_is_down() {
    // n3 falls back to the leader when n2 stops running: its slot must be waiting there.
    let mut n1 = ha("n1");
    let d = n1.step(
        &obs()
            .cluster(cascading("stopped"))
            .fresh_lease("n1")
            .local(local_primary())
            .slots(vec![])
            .build(),
    );
    assert_eq!(creates(&d), ["n2", "n3"]);
}

#[test]
fn a_replica_creates_slots_for_members_cascading_from_it_and_keeps_member_slots() {
    // n2 was a primary once: its old member slot (n1) is kept for when it leads again, a slot
    // of no member is dropped, n3's is created.
    let mut n2 = ha("n2");
    let d = n2.step(
        &obs()
            .cluster(cascading("running"))
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
            .slots(vec![
                slot("n1", SlotType::Physical, false),
                slot("ghost", SlotType::Physical, false),
            ])
            .build(),
    );
    assert_eq!(
        d.actions,
        [
            Action::CreateSlot { name: "n3".into() },
            Action::DropSlot {
                name: "ghost".into()
            }
        ]
    );
}

#[test]
fn nobody_keeps_a_slot_for_a_nostream_member() {
    let mut n1 = ha("n1");
    let cluster = ClusterBuilder::initialized()
        .three_nodes_led_by("n1")
        .member("n3", |m| m.tag("nostream", serde_json::json!(true)));
    let d = n1.step(
        &obs()
            .cluster(cluster)
            .fresh_lease("n1")
            .local(local_primary())
            .slots(vec![])
            .build(),
    );
    assert_eq!(creates(&d), ["n2"]);
}

#[test]
fn a_replica_keeps_other_members_slots_drops_strangers_and_without_a_list_touches_none() {
    let mut n2 = ha("n2");
    let base = || {
        obs()
            .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
            .fresh_lease("n2")
            .local(local_replica_of("n1"))
    };
    let d = n2.step(&base().build());
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let d = n2.step(
        &base()
            .slots(vec![
                slot("n3", SlotType::Physical, false),
                slot("ghost", SlotType::Physical, false),
            ])
            .build(),
    );
    assert_eq!(
        d.actions,
        [Action::DropSlot {
            name: "ghost".into()
        }]
    );
}
