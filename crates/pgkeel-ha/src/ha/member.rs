//! What this node publishes in its member key, and when (the core's decision, written by the
//! agent as `Action::WriteMember` after a cycle's last step).
//!
//! The policy: the key is written when its value differs from what the core knows is written
//! (fed back as `Outcome::MemberWritten`) or the lease changed; a change of the WAL positions
//! alone is published at most once per `loop_wait`, because under write load they change on
//! every cycle. Nothing is written without a lease or while the DCS does not answer.

use super::{Ha, MemberUpdate, NodeState, Observation};
use crate::keys::codec::MemberData;
use crate::pg::ServerRole;
use serde_json::Value;
use std::collections::BTreeMap;

/// The parts of the member key that come from the local configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIdentity {
    /// `postgres://<postgresql.connect_address>/postgres`.
    pub conn_url: String,
    /// `http://<restapi.connect_address>/patroni`.
    pub api_url: String,
    /// The published tags.
    pub tags: BTreeMap<String, Value>,
    /// The agent version peers parse.
    pub version: String,
}

impl Ha {
    /// The member key to write after this step, if this step is the cycle's last.
    pub(crate) fn member_update(
        &self,
        obs: &Observation,
        node: NodeState,
    ) -> Option<Box<MemberUpdate>> {
        let identity = self.cfg.member.as_ref()?;
        let lease = obs.lease?;
        let cluster = obs.dcs.as_ref().ok()?;
        let gc = self.global_config(Some(cluster));
        let local = &obs.local;
        let running = local.running && local.accepting_connections;
        let replica = running && local.role == Some(ServerRole::Replica);
        let member = MemberData {
            conn_url: identity.conn_url.clone(),
            api_url: identity.api_url.clone(),
            state: node.state.to_string(),
            role: node.role.to_string(),
            version: identity.version.clone(),
            tags: if self.mem.leaving_sync {
                let mut t = identity.tags.clone();
                t.insert("nosync".into(), Value::Bool(true));
                t.insert("sync_priority".into(), Value::from(0));
                t
            } else {
                identity.tags.clone()
            },
            pending_restart: (!local.pending_restart.is_empty()).then_some(true),
            pending_restart_reason: crate::pg::PendingRestart::reasons(&local.pending_restart),
            scheduled_restart: self
                .mem
                .scheduled_restart
                .as_ref()
                .map(|s| s.to_member_json()),
            xlog_location: if running {
                local.wal_position.map(|l| l.0)
            } else {
                None
            },
            replay_lsn: if replica {
                local.replay_lsn.map(|l| l.0)
            } else {
                None
            },
            receive_lsn: if replica {
                local.receive_lsn.map(|l| l.0)
            } else {
                None
            },
            replication_state: replica.then(|| {
                if local.streaming {
                    "streaming"
                } else {
                    "in archive recovery"
                }
                .to_string()
            }),
            timeline: if running { local.timeline } else { None },
            pause: gc.pause.then_some(true),
        };
        let current = self.mem.published_member.as_ref().is_some_and(|w| {
            w.lease == lease.id
                && (w.member == member
                    || (without_positions(&w.member) == without_positions(&member)
                        && obs.now < w.decided_at.plus_ms(gc.loop_wait.saturating_mul(1000))))
        });
        (!current).then(|| {
            Box::new(MemberUpdate {
                member,
                lease: lease.id,
                decided_at: obs.now,
            })
        })
    }
}

/// The member value with its WAL positions left out (they alone change constantly).
fn without_positions(m: &MemberData) -> MemberData {
    MemberData {
        xlog_location: None,
        replay_lsn: None,
        receive_lsn: None,
        ..m.clone()
    }
}
