//! Synchronous replication as the primary sees it: which standbys may be synchronous, which
//! of them provably confirm every commit, and the `synchronous_standby_names` to run with.
//! The decisions (what to write to the `sync` key, in which order) are the rule in
//! `ha/rules/sync_replication.rs`; this module only reads the observation.
//! Reference: Patroni's `patroni/postgresql/sync.py` (`_ReplicaList`, `SyncHandler`).

mod quorum;
mod standby_names;

pub use quorum::{
    NameSet, QuorumError, QuorumInput, Resolution, Transition, TransitionKind,
    resolve as resolve_quorum,
};
pub use standby_names::{
    STRICT_PLACEHOLDER, SsnKind, StandbyNames, UnparsableStandbyNames, quote_standby_name,
    standby_names_value,
};

use crate::cluster::{Cluster, GlobalConfig, Member, SyncMode};
use crate::pg::{LocalPostgres, Lsn};
use std::collections::BTreeSet;

/// What the primary remembers between cycles about its synchronous standbys (Patroni's
/// `SyncHandler`): a standby newly named in `synchronous_standby_names` counts as synchronous
/// only once PostgreSQL reports it `sync` *and* it has reached the primary's position of the
/// moment the parameter changed, so it provably holds every commit acknowledged before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncTracker {
    /// `synchronous_standby_names` as last seen.
    seen: Option<String>,
    /// ... parsed (empty when it did not parse).
    parsed: StandbyNames,
    /// The primary's WAL position when the parameter was seen to change.
    position_at_change: Lsn,
    /// Standbys (lower-cased names) that were seen to reach `position_at_change` while named.
    ready: BTreeSet<String>,
}

/// The synchronous state of this cycle (Patroni's `_SyncState`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncView {
    /// How `synchronous_standby_names` asks for confirmations now.
    pub kind: SsnKind,
    /// Confirmations it asks for (0 when it lists `*` or did not parse).
    pub numsync: u64,
    /// The names it lists, lower-cased (the placeholder when it lists `*`).
    pub listed: BTreeSet<String>,
    /// Member names it lists that provably confirm every commit (see [`SyncTracker`]).
    pub confirmed: BTreeSet<String>,
    /// Member names that stream and may be synchronous, the best first, at most
    /// `synchronous_node_count` of them in priority mode: who should be listed.
    pub active: Vec<String>,
}

/// `names` lower-cased, for comparing with what PostgreSQL matches without case.
pub fn lower(names: impl IntoIterator<Item = impl AsRef<str>>) -> BTreeSet<String> {
    names
        .into_iter()
        .map(|n| n.as_ref().to_lowercase())
        .collect()
}

/// One standby that may be synchronous (Patroni's `_Replica`).
#[derive(Debug, Clone)]
struct Candidate {
    name: String,
    sync_state: String,
    lsn: Lsn,
    nofailover: bool,
    sync_priority: i64,
}

/// Whether `member` is meant to stream from another standby rather than from the primary
/// (Patroni's `_should_cascade`): its `replicatefrom` member is eligible and (following the
/// chain) ends at a standby that streams from the primary.
fn should_cascade(eligible: &[&Member], streaming: &BTreeSet<String>, member: &Member) -> bool {
    let mut current = member;
    for _ in 0..eligible.len() {
        let Some(up) = current.replicatefrom() else {
            return false;
        };
        let Some(next) = eligible.iter().find(|m| m.name.eq_ignore_ascii_case(up)) else {
            return false;
        };
        if next.replicatefrom().is_none() {
            return streaming.contains(&next.name.to_lowercase());
        }
        current = next;
    }
    false // a replicatefrom loop: nobody in it cascades
}

impl SyncTracker {
    /// What `synchronous_standby_names` means this cycle, and who should and who does confirm
    /// commits (Patroni's `SyncHandler.current_state`). `warnings` gets the complaint about a
    /// value that does not parse.
    pub fn view(
        &mut self,
        me: &str,
        local: &LocalPostgres,
        cluster: &Cluster,
        gc: &GlobalConfig,
        warnings: &mut Vec<String>,
    ) -> SyncView {
        let ssn = local.synchronous_standby_names.clone().unwrap_or_default();
        if self.seen.as_deref() != Some(ssn.as_str()) {
            self.parsed = StandbyNames::parse(&ssn).unwrap_or_else(|e| {
                warnings.push(e.to_string());
                StandbyNames::default()
            });
            self.seen = Some(ssn);
            let listed = &self.parsed.members;
            self.ready.retain(|n| listed.contains(n));
            self.position_at_change = local.wal_position.unwrap_or_default();
        }
        let sc = local.synchronous_commit.as_deref();
        let eligible: Vec<&Member> = cluster
            .members
            .iter()
            .filter(|m| m.state == "running" && !m.nosync() && !m.name.eq_ignore_ascii_case(me))
            .collect();
        let streaming: BTreeSet<String> = local
            .replication
            .iter()
            .filter(|r| r.position_for(sc).is_some())
            .filter(|r| {
                eligible
                    .iter()
                    .any(|m| m.name.eq_ignore_ascii_case(&r.application_name))
            })
            .map(|r| r.application_name.to_lowercase())
            .collect();
        let mut candidates: Vec<Candidate> = Vec::new();
        for r in &local.replication {
            let Some(lsn) = r.position_for(sc) else {
                continue;
            };
            let Some(m) = eligible
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(&r.application_name))
            else {
                continue;
            };
            if should_cascade(&eligible, &streaming, m) {
                continue;
            }
            // One walsender per name counts (the last listed, as Patroni's dict).
            candidates.retain(|c| !c.name.eq_ignore_ascii_case(&m.name));
            candidates.push(Candidate {
                name: m.name.clone(),
                sync_state: r.sync_state.clone(),
                lsn,
                nofailover: m.nofailover(),
                sync_priority: m.sync_priority(),
            });
        }
        candidates.sort_by(|a, b| {
            (b.sync_priority, &b.sync_state, b.lsn).cmp(&(a.sync_priority, &a.sync_state, a.lsn))
        });
        let max_lsn = if candidates.len() > 1 {
            candidates.iter().map(|c| c.lsn).max().unwrap_or_default()
        } else {
            local.wal_position.unwrap_or_default()
        };
        let in_sync_key = |name: &str| {
            cluster
                .sync
                .as_ref()
                .is_some_and(|s| s.sync_standby.iter().any(|n| n.eq_ignore_ascii_case(name)))
        };
        let quorum = gc.synchronous_mode == SyncMode::Quorum;
        for c in &candidates {
            let key = c.name.to_lowercase();
            if self.ready.contains(&key) || !self.parsed.members.contains(&key) {
                continue;
            }
            let ready = if quorum {
                c.lsn >= self.position_at_change && c.sync_state == "quorum"
            } else {
                in_sync_key(&c.name) || (c.sync_state == "sync" && c.lsn >= self.position_at_change)
            };
            if ready {
                self.ready.insert(key);
            }
        }
        let count = usize::try_from(gc.synchronous_node_count).unwrap_or(usize::MAX);
        let max_lag = gc.maximum_lag_on_syncnode;
        let mut view = SyncView {
            kind: self.parsed.kind,
            numsync: if self.parsed.has_star {
                0
            } else {
                self.parsed.num
            },
            listed: if self.parsed.has_star {
                lower([STRICT_PLACEHOLDER])
            } else {
                self.parsed.members.clone()
            },
            ..SyncView::default()
        };
        // Members without nofailover first; the sort is stable.
        let mut ordered: Vec<&Candidate> = candidates.iter().collect();
        ordered.sort_by_key(|c| c.nofailover);
        for c in ordered {
            let lag = max_lsn.0.saturating_sub(c.lsn.0);
            if max_lag > 0 && lag > max_lag.unsigned_abs() {
                continue;
            }
            let ready = self.ready.contains(&c.name.to_lowercase());
            if quorum {
                if !c.nofailover || view.active.len() < count {
                    if ready {
                        view.confirmed.insert(c.name.clone());
                    }
                    view.active.push(c.name.clone());
                }
            } else {
                view.active.push(c.name.clone());
                if c.sync_state == "sync" && ready {
                    view.confirmed.insert(c.name.clone());
                }
                if view.active.len() >= count {
                    break;
                }
            }
        }
        view
    }
}
