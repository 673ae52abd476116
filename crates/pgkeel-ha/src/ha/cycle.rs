//! The agent contract for one HA cycle, as a pure state machine: the agent
//! (`pgkeel::agent::cycle`) and the simulator both drive their cycles with [`Cycle`], so the
//! model the simulator checks is the contract the agent runs.
//!
//! The contract: observe and step; run the decision's actions in order; the first that fails
//! skips the rest and the core hears `Outcome::ActionFailed`; a "no" to a yes/no action (a lost
//! race, a refused refresh) also ends the decision; step again in the same cycle while the
//! decision asks to (`restep`), an action gave an outcome, or the peers were probed, at most
//! [`Cycle::MAX_STEPS`] times, with those outcomes in the next observation. After the last step
//! the member key is written if the core says so ([`Decision::member`]); what was written is fed
//! to the next cycle's first step.

use super::{Action, Decision, Outcome, PeerStatus};

/// What running one action gave, as the executor reports it to [`Cycle::report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// It ran; nothing to report.
    Done,
    /// It ran and answered (`LeaderAcquired`, `RestartNeeded`, ...): the core steps again with
    /// it; a "no" ends the decision.
    Outcome(Outcome),
    /// `ProbePeers` ran: the peers' answers, for the next step.
    Peers(Vec<PeerStatus>),
    /// It failed with this error: the rest of the decision is skipped.
    Failed(String),
}

/// What the caller does next (from [`Cycle::next_move`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Observe (with [`Cycle::take_inputs`]), step, and hand the decision to
    /// [`Cycle::decided`].
    Step,
    /// Run this action, then [`Cycle::report`] what it gave.
    Run(Action),
    /// The cycle is over; [`Cycle::decision`] is its last word, [`Cycle::carry`] the outcomes
    /// for the next cycle.
    Finished,
    /// `Action::Exit` ran: the agent ends, nothing else runs.
    Exit,
}

/// Where the cycle is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// A step is due.
    Stepping,
    /// Running the decision's actions; the index of the next one.
    Acting(usize),
    /// The member key write was handed out; waiting for its report.
    Publishing,
    /// Over.
    Finished,
    /// Over: the agent ends.
    Exited,
}

/// One HA cycle under the agent contract (see the module docs). Pure: it never runs anything,
/// it says what to run next.
#[derive(Debug, Clone)]
pub struct Cycle {
    phase: Phase,
    steps: usize,
    decision: Option<Decision>,
    /// Outcomes for the next step.
    outcomes: Vec<Outcome>,
    /// Peer answers for the next step.
    peers: Option<Vec<PeerStatus>>,
    /// Outcomes for the next cycle.
    carry: Vec<Outcome>,
}

impl Cycle {
    /// The most steps one cycle takes (enough for "race, acquire, promote").
    pub const MAX_STEPS: usize = 5;

    /// A cycle whose first step sees `outcomes` (tasks finished meanwhile, the last cycle's
    /// carried outcomes).
    pub fn new(outcomes: Vec<Outcome>) -> Cycle {
        Cycle {
            phase: Phase::Stepping,
            steps: 0,
            decision: None,
            outcomes,
            peers: None,
            carry: Vec::new(),
        }
    }

    /// The outcomes and peer answers the next observation carries (taken: each goes to one
    /// step).
    pub fn take_inputs(&mut self) -> (Vec<Outcome>, Option<Vec<PeerStatus>>) {
        (std::mem::take(&mut self.outcomes), self.peers.take())
    }

    /// The core's decision for the step just taken.
    pub fn decided(&mut self, d: Decision) {
        self.steps = self.steps.saturating_add(1);
        self.decision = Some(d);
        self.phase = Phase::Acting(0);
    }

    /// The latest decision (after the cycle: its last word).
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Outcomes the next cycle's first step must see (what `WriteMember` wrote).
    pub fn carry(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.carry)
    }

    /// The latest decision will be followed by another step in this cycle: asked for, or
    /// something came back that the core has to weigh.
    pub fn resteps(&self) -> bool {
        let asked = self.decision.as_ref().is_some_and(|d| d.restep);
        (asked || !self.outcomes.is_empty() || self.peers.is_some()) && self.steps < Self::MAX_STEPS
    }

    /// What to do next.
    pub fn next_move(&mut self) -> Next {
        match self.phase.clone() {
            Phase::Stepping => Next::Step,
            Phase::Acting(i) => {
                let action = self
                    .decision
                    .as_ref()
                    .and_then(|d| d.actions.get(i))
                    .cloned();
                match action {
                    Some(a) => Next::Run(a),
                    None => self.end_of_decision(),
                }
            }
            Phase::Publishing => match self.decision.as_ref().and_then(|d| d.member.clone()) {
                Some(update) => Next::Run(Action::WriteMember(update)),
                None => Next::Finished,
            },
            Phase::Finished => Next::Finished,
            Phase::Exited => Next::Exit,
        }
    }

    /// What the action handed out by the last [`Next::Run`] gave.
    pub fn report(&mut self, ran: Ran) {
        let Phase::Acting(i) = self.phase else {
            if self.phase == Phase::Publishing {
                if let (Ran::Done, Some(update)) =
                    (ran, self.decision.as_ref().and_then(|d| d.member.clone()))
                {
                    self.carry.push(Outcome::MemberWritten(update));
                }
                self.phase = Phase::Finished;
            }
            return;
        };
        let action = self
            .decision
            .as_ref()
            .and_then(|d| d.actions.get(i))
            .cloned();
        let mut ends_decision = false;
        match ran {
            Ran::Done => {}
            Ran::Outcome(o) => {
                ends_decision = matches!(
                    o,
                    Outcome::InitializeRace { won: false }
                        | Outcome::LeaderAcquired { won: false }
                        | Outcome::LeaderRefreshed { ok: false }
                );
                self.outcomes.push(o);
            }
            Ran::Peers(p) => self.peers = Some(p),
            Ran::Failed(error) => {
                if let Some(a) = &action {
                    self.outcomes.push(Outcome::ActionFailed {
                        action: Box::new(a.clone()),
                        error,
                    });
                }
                ends_decision = true;
            }
        }
        if action == Some(Action::Exit) {
            self.phase = Phase::Exited;
        } else if ends_decision {
            self.phase = Phase::Acting(usize::MAX);
        } else {
            self.phase = Phase::Acting(i.saturating_add(1));
        }
    }

    /// The decision's actions are done (or cut short): step again, or end the cycle with the
    /// member key write the last decision asks for.
    fn end_of_decision(&mut self) -> Next {
        if self.resteps() {
            self.phase = Phase::Stepping;
            return Next::Step;
        }
        // Outcomes of the last step that no step will see now are dropped, as before.
        self.outcomes.clear();
        self.peers = None;
        match self.decision.as_ref().and_then(|d| d.member.clone()) {
            Some(update) => {
                self.phase = Phase::Publishing;
                Next::Run(Action::WriteMember(update))
            }
            None => {
                self.phase = Phase::Finished;
                Next::Finished
            }
        }
    }
}
