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
