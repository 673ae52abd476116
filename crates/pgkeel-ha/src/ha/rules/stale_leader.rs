//! A `leader` key that no agent can hold: remove it so the cluster races normally.
//!
//! Every agent writes `leader` on its own lease, and an agent's member key lives as long as its
//! lease. A key without a lease (`etcdctl put .../leader ghost`) never expires, and a key naming
//! no member (or nothing: `leader = ""`) is held by nobody who can run a primary; before this
//! rule the primary demoted, nobody took over and every replica tried to follow "ghost" forever.
//! Patroni has no such rule (its `etcd3` backend trusts the key); this is a pgkeel addition.

use super::{Ctx, Verdict, verdict};
use crate::ha::{Action, Ha};

impl Ha {
    /// A stale leader key: not attached to a lease, empty, or naming no member for longer than
    /// `ttl` (remembered by the key's mod_revision). It is removed with a compare-and-delete on
    /// that revision, so a key written meanwhile is never removed. A key naming this node is not
    /// stale (the node re-attaches it to its lease), and a primary that cannot prove its own
    /// lease is left to fencing.
    pub(crate) fn stale_leader(&mut self, ctx: &Ctx<'_>) -> Option<Verdict> {
        let Some(key) = &ctx.cluster.leader else {
            self.mem.leader_without_member_since = None;
            return None;
        };
        if key.name == self.cfg.name {
            self.mem.leader_without_member_since = None;
            return None;
        }
        let reason = if key.name.is_empty() {
            "it names no member".to_string()
        } else if key.lease == 0 {
            "it is not attached to a lease".to_string()
        } else if ctx.cluster.member(&key.name).is_none() {
            let since = match self.mem.leader_without_member_since {
                Some((rev, since)) if rev == key.mod_revision => since,
                _ => {
                    self.mem.leader_without_member_since = Some((key.mod_revision, ctx.obs.now));
                    ctx.obs.now
                }
            };
            if ctx.obs.now.since(since) <= ctx.gc.ttl_ms() {
                return None;
            }
            format!("it names no member for longer than ttl ({} s)", ctx.gc.ttl)
        } else {
            self.mem.leader_without_member_since = None;
            return None;
        };
        if self.may_accept_writes(&ctx.obs.local) && !ctx.lease_valid && !ctx.gc.pause {
            return None; // fence() stops it first (not in pause); the key goes next cycle
        }
        self.mem.leader_without_member_since = None;
        let status = format!("removing stale leader key ({:?}): {reason}", key.name);
        Some(verdict(
            vec![Action::DeleteStaleLeader {
                name: key.name.clone(),
                mod_revision: key.mod_revision,
                reason,
            }],
            status,
        ))
    }
}
