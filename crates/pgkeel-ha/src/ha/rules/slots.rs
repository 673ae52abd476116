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
    slot_changes_keeping(observed, wanted, &[])
}

/// As [`slot_changes`], but slots named in `keep` are not dropped either. A replica keeps the
/// slots of current members it holds (a former leader's): when it is promoted, the replicas that
/// reconnect at once find their slot waiting instead of retrying after
/// `wal_retrieve_retry_interval` (5 s), which dropping them cost every switchover.
pub(crate) fn slot_changes_keeping(
    observed: Option<&[LocalSlot]>,
    wanted: &[String],
    keep: &[String],
) -> Vec<Action> {
    let Some(observed) = observed else {
        return Vec::new();
    };
    let create = wanted
        .iter()
        .filter(|w| !observed.iter().any(|s| &s.name == *w))
        .map(|name| Action::CreateSlot { name: name.clone() });
    let drop = observed
        .iter()
        .filter(|s| {
            s.slot_type == SlotType::Physical
                && !s.active
                && !wanted.contains(&s.name)
                && !keep.contains(&s.name)
        })
        .map(|s| Action::DropSlot {
            name: s.name.clone(),
        });
    create.chain(drop).collect()
}
