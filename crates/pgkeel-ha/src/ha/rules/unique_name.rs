//! The start check for a duplicate member name (Patroni's `ensure_unique_name`), before every
//! other rule and only while `HaConfig::check_unique_name` asks for it and it is not done.
//!
//! As Patroni, before its first HA cycle: if the DCS holds a member key of this node's name
//! with an `api_url`, its `GET /liveness` is asked; any answer means another agent of this name
//! runs, and this one ends (`Action::DuplicateName`, CRITICAL, exit 1). No member key, no
//! address, or a DCS that does not answer: the check passes. The check is a cycle of its own
//! (a decision with no actions and an empty status ends it), so the agent starts its REST API
//! and lease only once it passed, as Patroni does.

use super::{Verdict, verdict};
use crate::ha::{Action, Ha, Observation, Outcome};

impl Ha {
    /// The verdict of the start check while it is not done, else `None`.
    pub(crate) fn unique_name(&mut self, obs: &Observation) -> Option<Verdict> {
        if !self.cfg.check_unique_name || self.mem.unique_name_checked {
            return None;
        }
        let answered = obs.outcomes.iter().find_map(|o| match o {
            Outcome::UniqueNameChecked { taken } => Some(*taken),
            _ => None,
        });
        let passed = || Verdict {
            actions: vec![],
            status: String::new(),
            restep: false,
        };
        match answered {
            Some(true) => Some(verdict(
                vec![Action::DuplicateName],
                format!(
                    "Can't start; there is already a node named '{}' running",
                    self.cfg.name
                ),
            )),
            Some(false) => {
                self.mem.unique_name_checked = true;
                Some(passed())
            }
            None => {
                let api = obs
                    .dcs
                    .as_ref()
                    .ok()
                    .and_then(|c| c.member(&self.cfg.name))
                    .and_then(|m| m.api_url.clone());
                match api {
                    Some(api) => Some(verdict(
                        vec![Action::CheckUniqueName {
                            liveness_url: api.replace("/patroni", "/liveness"),
                        }],
                        format!("checking that no other node named '{}' runs", self.cfg.name),
                    )),
                    None => {
                        self.mem.unique_name_checked = true;
                        Some(passed())
                    }
                }
            }
        }
    }
}
