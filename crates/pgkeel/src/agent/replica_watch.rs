//! Looking again soon at a replica that has just started, until it streams.

use super::lease;
use pgkeel_ha::pg::LocalPostgres;
use std::time::{Duration, Instant};

/// A replica that has just started streams a moment later; its member key (and so `/cluster`,
/// `pgkeelctl list`, a load balancer) would say so only a whole `loop_wait` later. For one
/// `loop_wait` after PostgreSQL is first seen running as a replica, and until it streams, the
/// loop looks again every [`REPLICA_START_RECHECK`].
#[derive(Default)]
pub(super) struct ReplicaStartWatch {
    was_running: bool,
    until: Option<Instant>,
}

/// How often a just-started replica is looked at until it streams.
const REPLICA_START_RECHECK: Duration = Duration::from_millis(250);

impl ReplicaStartWatch {
    /// When to cycle again for `pg` (the state just published), if sooner than usual.
    pub(super) fn next_check(&mut self, pg: &LocalPostgres, loop_wait: u64) -> Option<Instant> {
        let now = Instant::now();
        if pg.running && !self.was_running {
            self.until = Some(lease::later(now, Duration::from_secs(loop_wait)));
        }
        self.was_running = pg.running;
        let waiting = pg.is_running_replica() && !pg.streaming;
        match self.until {
            Some(until) if waiting && now < until => Some(lease::later(now, REPLICA_START_RECHECK)),
            _ => {
                if !waiting {
                    self.until = None;
                }
                None
            }
        }
    }
}
