//! Quorum commit (`synchronous_mode: quorum`): the order in which `synchronous_standby_names`
//! (`ANY numsync (sync)`) and the `sync` key (`quorum` of `voters`) change so that every set of
//! standbys that can acknowledge a commit always overlaps every set of members that can elect a
//! new primary. A port of Patroni's `QuorumStateResolver` (`patroni/quorum.py`), with its tests.
//!
//! Both pairs mean "any n of the set". With `active` the standbys that stream and may be
//! synchronous, the goal is `sync = voters = active`, `numsync = min(wanted, |active|)`,
//! `quorum = |active| - numsync`. Raising `numsync` or `quorum` happens first, lowering them
//! last; the resolver yields the steps from any state, including one a crash left half-way.

use std::collections::BTreeMap;
use std::fmt;

/// A case-insensitive set of member names (PostgreSQL matches standby names without case),
/// keeping each name's spelling as last added (Patroni's `CaseInsensitiveSet`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NameSet(BTreeMap<String, String>);

impl NameSet {
    /// The set of `names`.
    pub fn of<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut set = Self::default();
        for n in names {
            set.add(n.as_ref());
        }
        set
    }

    /// Adds `name`, replacing a spelling that differs only in case.
    pub fn add(&mut self, name: &str) {
        self.0.insert(name.to_lowercase(), name.to_string());
    }

    /// Whether `name` is in the set, ignoring case.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(&name.to_lowercase())
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, sorted as spelled.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.values().cloned().collect();
        v.sort();
        v
    }

    fn n(&self) -> i64 {
        i64::try_from(self.0.len()).unwrap_or(i64::MAX)
    }

    fn union(&self, other: &NameSet) -> NameSet {
        let mut out = self.clone();
        for v in other.0.values() {
            out.add(v);
        }
        out
    }

    /// Names of `other` that are also here, spelled as in `other` (Python's `Set.__and__`).
    fn inter(&self, other: &NameSet) -> NameSet {
        NameSet(
            other
                .0
                .iter()
                .filter(|(k, _)| self.0.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    fn minus(&self, other: &NameSet) -> NameSet {
        NameSet(
            self.0
                .iter()
                .filter(|(k, _)| !other.0.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    fn is_subset(&self, other: &NameSet) -> bool {
        self.0.keys().all(|k| other.0.contains_key(k))
    }

    fn is_proper_subset(&self, other: &NameSet) -> bool {
        self.is_subset(other) && self.len() < other.len()
    }

    fn same(&self, other: &NameSet) -> bool {
        self.len() == other.len() && self.is_subset(other)
    }

    /// The first `count` names in sorted order (`reverse`: from the end).
    fn first(&self, count: i64, reverse: bool) -> NameSet {
        let mut names = self.names();
        if reverse {
            names.reverse();
        }
        let count = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
        NameSet::of(names.into_iter().take(count))
    }
}

impl fmt::Debug for NameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for NameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

/// What a step changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// `synchronous_standby_names` becomes `ANY num (names)`.
    Sync,
    /// The `sync` key becomes `leader`, `quorum: num`, `sync_standby: names`.
    Quorum,
    /// Nothing more to do now: observe again (standbys just named need time to confirm).
    Restart,
}

/// One step towards the wanted state; the fields are the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Which of the two places changes.
    pub kind: TransitionKind,
    /// The `sync` key's leader after the step.
    pub leader: String,
    /// `numsync` (kind `Sync`) or `quorum` (kind `Quorum`).
    pub num: u64,
    /// The standbys listed (kind `Sync`) or the voters (kind `Quorum`).
    pub names: NameSet,
}

/// The state is unsafe or inconsistent in a way the resolver cannot mend in this step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuorumError(pub String);

/// The inputs of one resolution (Patroni's `QuorumStateResolver.__init__`).
#[derive(Debug, Clone)]
pub struct QuorumInput {
    /// The `sync` key's leader.
    pub leader: String,
    /// The `sync` key's `quorum`.
    pub quorum: u64,
    /// The `sync` key's `sync_standby`.
    pub voters: NameSet,
    /// `numsync` of `synchronous_standby_names`.
    pub numsync: u64,
    /// The standbys `synchronous_standby_names` lists.
    pub sync: NameSet,
    /// How many listed standbys provably confirm every commit.
    pub numsync_confirmed: u64,
    /// The standbys that stream and may be synchronous.
    pub active: NameSet,
    /// `synchronous_node_count`.
    pub sync_wanted: u64,
    /// This node: the leader the key should name.
    pub leader_wanted: String,
}

/// The result: the steps in order (at most one `Restart`, last), and warnings to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Steps, consecutive steps of one kind merged into the last of them.
    pub transitions: Vec<Transition>,
    /// Patroni's warnings (an unsafe state found and repaired).
    pub warnings: Vec<String>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

struct Resolver {
    leader: String,
    quorum: i64,
    voters: NameSet,
    numsync: i64,
    sync: NameSet,
    numsync_confirmed: i64,
    active: NameSet,
    sync_wanted: i64,
    leader_wanted: String,
    out: Vec<Transition>,
    warnings: Vec<String>,
}

type Step = Result<(), QuorumError>;

fn ensure(cond: bool, what: &str) -> Step {
    if cond {
        Ok(())
    } else {
        Err(QuorumError(format!(
            "internal quorum state check failed: {what}"
        )))
    }
}

/// The steps from `input` to the wanted state (Patroni's `iter(QuorumStateResolver(...))`).
pub fn resolve(input: QuorumInput) -> Result<Resolution, QuorumError> {
    let numsync = to_i64(input.numsync).min(to_i64(input.sync.len() as u64));
    let mut r = Resolver {
        leader: input.leader,
        quorum: to_i64(input.quorum),
        voters: input.voters,
        numsync,
        sync: input.sync,
        numsync_confirmed: to_i64(input.numsync_confirmed),
        active: input.active,
        sync_wanted: to_i64(input.sync_wanted),
        leader_wanted: input.leader_wanted,
        out: Vec::new(),
        warnings: Vec::new(),
    };
    r.generate()?;
    let mut transitions = Vec::new();
    let all = std::mem::take(&mut r.out);
    for (i, t) in all.iter().enumerate() {
        let next = all.get(i.saturating_add(1));
        if next.is_some_and(|n| n.kind == t.kind) {
            continue;
        }
        transitions.push(t.clone());
        if t.kind == TransitionKind::Restart {
            break;
        }
    }
    Ok(Resolution {
        transitions,
        warnings: r.warnings,
    })
}

impl Resolver {
    fn check_invariants(&self) -> Step {
        let voters = self.voters.union(&NameSet::of([&self.leader]));
        let sync = self.sync.union(&NameSet::of([&self.leader_wanted]));
        let nodes = voters.union(&sync).n();
        if !self.voters.is_empty()
            && nodes > self.quorum.saturating_add(self.numsync).saturating_add(1)
        {
            return Err(QuorumError(format!(
                "Quorum and sync not guaranteed to overlap: nodes {nodes} >= quorum {} + sync {} + 1",
                self.quorum, self.numsync
            )));
        }
        if !(voters.is_subset(&sync) || sync.is_subset(&voters)) {
            return Err(QuorumError(format!(
                "Mismatched sets: voter only={{{}}} sync only={{{}}}",
                voters.minus(&sync),
                sync.minus(&voters)
            )));
        }
        Ok(())
    }

    fn push(&mut self, kind: TransitionKind) {
        let (num, names) = match kind {
            TransitionKind::Sync => (self.numsync, self.sync.clone()),
            _ => (self.quorum, self.voters.clone()),
        };
        self.out.push(Transition {
            kind,
            leader: self.leader.clone(),
            num: to_u64(num),
            names,
        });
    }

    fn quorum_update(
        &mut self,
        quorum: i64,
        voters: NameSet,
        leader: Option<String>,
        adjust_quorum: bool,
    ) -> Step {
        if quorum < 0 {
            return Err(QuorumError(format!("Quorum {quorum} < 0 of ({voters})")));
        }
        if quorum > 0 && quorum >= voters.n() {
            return Err(QuorumError(format!("Quorum {quorum} >= N of ({voters})")));
        }
        let (mut quorum, mut voters) = (quorum, voters);
        let old_leader = self.leader.clone();
        if let Some(l) = leader {
            self.leader = l;
        } else if self.numsync_confirmed == 0 && self.voters.is_empty() {
            // Nobody is known to have caught up: the key names no voters yet.
            quorum = 0;
            voters = NameSet::default();
        } else if adjust_quorum {
            // Fewer standbys confirmed than numsync: raise the quorum so that the race still
            // finds one that has every commit.
            quorum =
                quorum.saturating_add(self.numsync.saturating_sub(self.numsync_confirmed).max(0));
        }
        if self.leader == old_leader && quorum == self.quorum && voters.same(&self.voters) {
            if !self.voters.is_empty() {
                return Ok(());
            }
            self.push(TransitionKind::Restart);
        }
        self.quorum = quorum;
        self.voters = voters;
        self.check_invariants()?;
        self.push(TransitionKind::Quorum);
        Ok(())
    }

    fn sync_update(&mut self, numsync: i64, sync: NameSet) -> Step {
        if numsync < 0 {
            return Err(QuorumError(format!("Sync {numsync} < 0 of ({sync})")));
        }
        if numsync > sync.n() {
            return Err(QuorumError(format!("Sync {numsync} > N of ({sync})")));
        }
        self.numsync = numsync;
        self.sync = sync;
        self.check_invariants()?;
        self.push(TransitionKind::Sync);
        Ok(())
    }

    /// A previous run was interrupted half-way: finish or undo it.
    fn non_steady_cases(&mut self) -> Step {
        if self.sync.is_proper_subset(&self.voters) {
            // Case 1: in the middle of changing the voters. Voters neither listed nor streaming go.
            let remove = self.voters.minus(&self.sync.union(&self.active));
            if !remove.is_empty() {
                let quorum = self
                    .voters
                    .n()
                    .saturating_sub(remove.n())
                    .saturating_sub(self.numsync);
                let adjust = self.sync.minus(&self.active).is_empty();
                let voters = self.voters.minus(&remove);
                self.quorum_update(quorum, voters, None, adjust)?;
            }
            // Listed voters that stream join the parameter.
            let add = self.voters.inter(&self.active).minus(&self.sync);
            if !add.is_empty() {
                let sync = self.sync.union(&add);
                self.sync_update(self.numsync, sync)?;
            }
        } else if self.voters.is_proper_subset(&self.sync) {
            // Case 2: in the middle of changing the replication factor.
            let gone = self.sync.minus(&self.active);
            let sync = self.sync.minus(&gone);
            if !gone.is_empty()
                && !sync.is_empty()
                && (self.voters.is_empty() || !sync.inter(&self.voters).is_empty())
            {
                let numsync = self.numsync.min(self.sync.n().saturating_sub(gone.n()));
                self.sync_update(numsync, sync)?;
            }
            let add = self.sync.minus(&self.voters).inter(&self.active);
            if !add.is_empty() {
                let voters = self.voters.union(&add);
                let quorum = voters.n().saturating_sub(self.numsync);
                self.quorum_update(quorum, voters, None, true)?;
            }
            let gone = self.sync.minus(&self.voters);
            if !gone.is_empty() {
                let numsync = self.numsync.min(self.sync.n().saturating_sub(gone.n()));
                let sync = self.sync.minus(&gone);
                self.sync_update(numsync, sync)?;
            }
        }
        ensure(self.voters.same(&self.sync), "voters == sync")?;

        let nodes = self.voters.union(&self.sync).n();
        let margin = self
            .quorum
            .saturating_add(self.numsync.min(self.numsync_confirmed))
            .saturating_sub(nodes);
        if margin > 0 {
            // In the middle of changing the replication factor.
            if self.numsync > self.sync_wanted {
                // Case 3: the replication factor is higher than wanted.
                let numsync = self
                    .sync_wanted
                    .max(self.voters.n().saturating_sub(self.quorum));
                self.sync_update(numsync, self.sync.clone())?;
            } else {
                // Case 4: the quorum is higher than needed.
                let quorum = self.sync.n().saturating_sub(self.numsync);
                self.quorum_update(quorum, self.voters.clone(), None, true)?;
            }
        } else {
            let margin = self
                .quorum
                .saturating_add(self.numsync)
                .saturating_sub(nodes);
            if self.numsync == self.sync_wanted
                && margin > 0
                && self.numsync > self.numsync_confirmed
            {
                let quorum = self.sync.n().saturating_sub(self.numsync);
                self.quorum_update(quorum, self.voters.clone(), None, true)?;
            }
        }
        Ok(())
    }

    /// Standbys that no longer stream leave both places.
    fn remove_gone_nodes(&mut self) -> Step {
        let mut to_remove = self.sync.minus(&self.active);
        if !to_remove.is_empty() && self.sync.same(&to_remove) {
            self.quorum_update(0, NameSet::default(), None, false)?;
            self.sync_update(0, NameSet::default())?;
        } else if !to_remove.is_empty() {
            let can_reduce_quorum_by = self.quorum;
            if can_reduce_quorum_by > 0 {
                // The quorum can shrink: remove that many first (in a fixed order).
                let remove = to_remove.first(can_reduce_quorum_by, true);
                let sync = self.sync.minus(&remove);
                let wanted = if self.sync_wanted > self.numsync {
                    self.sync_wanted
                } else {
                    self.numsync
                };
                let numsync = wanted.min(sync.n());
                self.sync_update(numsync, sync)?;
                let voters = self.voters.minus(&remove);
                to_remove = self.sync.inter(&to_remove);
                let quorum = voters.n().saturating_sub(self.numsync);
                self.quorum_update(quorum, voters, None, to_remove.is_empty())?;
            }
            if !to_remove.is_empty() {
                ensure(self.quorum == 0, "quorum == 0")?;
                let numsync = self.numsync.saturating_sub(to_remove.n());
                let sync = self.sync.minus(&to_remove);
                let voters = self.voters.minus(&to_remove);
                let sync_decrease = numsync.saturating_sub(self.sync_wanted.min(sync.n()));
                let quorum = if sync_decrease != 0 {
                    sync_decrease.min(voters.n().saturating_sub(1))
                } else {
                    0
                };
                self.quorum_update(quorum, voters, None, false)?;
                self.sync_update(numsync, sync)?;
            }
        }
        Ok(())
    }

    /// Standbys that stream and are not listed yet join.
    fn add_new_nodes(&mut self) -> Step {
        let mut to_add = self.active.minus(&self.sync);
        if to_add.is_empty() {
            return Ok(());
        }
        let sync_wanted = self.sync_wanted.min(self.sync.union(&to_add).n());
        let mut increase = sync_wanted.saturating_sub(self.numsync);
        if increase > 0 {
            // First reach the wanted replication factor.
            let add = if self.sync.is_empty() {
                to_add.clone() // only the leader so far: all may join at once
            } else {
                let add = to_add.first(increase, false);
                increase = add.n();
                add
            };
            let sync = self.sync.union(&add);
            self.sync_update(self.numsync.saturating_add(increase), sync)?;
            let voters = self.voters.union(&add);
            let quorum = voters.n().saturating_sub(sync_wanted);
            self.quorum_update(quorum, voters, None, true)?;
            to_add = to_add.minus(&self.sync);
        }
        if !to_add.is_empty() {
            let voters = self.voters.union(&to_add);
            let quorum = voters.n().saturating_sub(sync_wanted);
            let adjust = sync_wanted > self.numsync_confirmed;
            self.quorum_update(quorum, voters, None, adjust)?;
            let sync = self.sync.union(&to_add);
            self.sync_update(sync_wanted, sync)?;
        }
        Ok(())
    }

    /// `synchronous_node_count` changed.
    fn replication_factor_change(&mut self) -> Step {
        let increase = self
            .sync_wanted
            .min(self.sync.n())
            .saturating_sub(self.numsync);
        if increase > 0 {
            self.sync_update(self.numsync.saturating_add(increase), self.sync.clone())?;
            let quorum = self.voters.n().saturating_sub(self.numsync);
            self.quorum_update(quorum, self.voters.clone(), None, true)?;
        } else if increase < 0 {
            if self.quorum.saturating_sub(increase) < self.voters.n() {
                let quorum = self
                    .voters
                    .n()
                    .saturating_sub(self.numsync)
                    .saturating_sub(increase);
                let adjust = self.sync_wanted > self.numsync_confirmed;
                self.quorum_update(quorum, self.voters.clone(), None, adjust)?;
            }
            self.sync_update(self.numsync.saturating_add(increase), self.sync.clone())?;
        }
        Ok(())
    }

    /// The failover part: returns `Ok(true)` when the resolution stops there.
    fn after_failover(&mut self) -> Result<bool, QuorumError> {
        if self.leader_wanted != self.leader {
            // A new primary: the former one becomes a voter.
            let voters = self
                .voters
                .minus(&NameSet::of([&self.leader_wanted]))
                .union(&NameSet::of([&self.leader]));
            if self.sync.is_empty() {
                let numsync = voters.n().saturating_sub(self.quorum);
                self.sync_update(numsync, voters.clone())?;
            }
            let leader = self.leader_wanted.clone();
            self.quorum_update(self.quorum, voters, Some(leader), true)?;
            // Right after a promotion standbys may not have reconnected yet: wait for them
            // before removing them.
            if self.sync.inter(&self.active).is_empty() {
                return Ok(true);
            }
        } else {
            self.check_invariants()?;
        }
        Ok(false)
    }

    fn generate(&mut self) -> Step {
        match self.after_failover() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                self.warnings.push(e.0);
                let quorum = self.sync.n().saturating_sub(self.numsync);
                self.quorum_update(quorum, self.sync.clone(), None, true)?;
            }
        }
        ensure(self.leader == self.leader_wanted, "leader == leader_wanted")?;
        // After a restart or a failover nobody is known to be confirmed: derive it from the quorum.
        let listed_active = self.sync.inter(&self.active);
        if self.numsync_confirmed == 0 && !listed_active.is_empty() {
            self.numsync_confirmed = listed_active
                .n()
                .min(self.voters.n().saturating_sub(self.quorum));
        }
        self.non_steady_cases()?;
        self.remove_gone_nodes()?;
        self.add_new_nodes()?;
        self.replication_factor_change()
    }
}

#[cfg(test)]
mod tests;
