//! The leader's member slots (Patroni's `SlotsHandler`): which slots to create and which to
//! drop, from the slots the agent observed on the local server. The agent only executes.
//!
//! Missing wanted slots are created; physical slots nobody wants are dropped unless a walsender
//! uses them (Patroni drops only inactive ones); logical slots are never touched. Without an
//! observed list nothing is created or dropped.

use crate::ha::Action;
use crate::pg::{LocalSlot, SlotType};

/// The create and drop actions that bring `observed` to `wanted` (creates first, as Patroni).
pub(crate) fn slot_changes(observed: Option<&[LocalSlot]>, wanted: &[String]) -> Vec<Action> {
    let Some(observed) = observed else {
        return Vec::new();
    };
    let create = wanted
        .iter()
        .filter(|w| !observed.iter().any(|s| &s.name == *w))
        .map(|name| Action::CreateSlot { name: name.clone() });
    let drop = observed
        .iter()
        .filter(|s| s.slot_type == SlotType::Physical && !s.active && !wanted.contains(&s.name))
        .map(|s| Action::DropSlot {
            name: s.name.clone(),
        });
    create.chain(drop).collect()
}
