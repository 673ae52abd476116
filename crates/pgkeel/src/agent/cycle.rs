//! One HA cycle: observe, step (again while the core asks to), execute, publish.

use super::{Agent, AgentError, requests, tasks};
use pgkeel_ha::cluster::Cluster;
use pgkeel_ha::ha::{DcsUnavailable, LeaseView, Observation, Outcome, TaskKind};
use pgkeel_ha::{Decision, Ha};
use std::sync::Arc;
use tokio::sync::watch;

use super::published::NodeStatus;

/// Whether the loop goes on after a cycle.
pub(super) enum Flow {
    /// Sleep until the next wake-up, then cycle again.
    Continue {
        /// The core asked to cycle again no later than this (a scheduled switchover).
        wake_at: Option<pgkeel_ha::time::MonoTime>,
    },
    /// The core decided the agent ends (a shutdown finished).
    Exit,
}

impl Agent {
    /// One HA cycle: observe, step (again while the core asks to), execute, publish.
    pub(super) async fn cycle(
        self: &Arc<Self>,
        ha: &mut Ha,
        tasks: &mut tasks::TaskSlot,
        lease_rx: &watch::Receiver<Option<LeaseView>>,
        status_tx: &watch::Sender<Arc<NodeStatus>>,
        last_cluster: &mut Option<Cluster>,
        requests: &mut requests::Requests,
    ) -> Result<Flow, AgentError> {
        let mut wake_at: Option<pgkeel_ha::time::MonoTime> = None;
        let mut outcomes: Vec<Outcome> = tasks.take_finished().into_iter().collect();
        let mut peers = None;
        let mut decision: Option<Decision> = None;
        let mut obs: Option<Observation> = None;
        for _ in 0..5 {
            // The peers were probed to judge the cluster as it was: the core weighs their
            // answers against the same DCS view (as Patroni's cycle does), so a node that
            // stands back says why even when the winner's key appeared meanwhile. The leader
            // CAS still guards the race.
            let dcs_view = match (&peers, &obs) {
                (Some(_), Some(prev)) => Some(prev.dcs.clone()),
                _ => None,
            };
            let mut o = self
                .observe(
                    lease_rx,
                    tasks.running(),
                    std::mem::take(&mut outcomes),
                    peers.take(),
                    dcs_view,
                )
                .await;
            o.requests = requests.pending();
            if let Ok(c) = &o.dcs {
                *last_cluster = Some(c.clone());
            }
            let d = ha.step(&o);
            requests.deliver(&d.answers);
            for note in &d.notes {
                match note.strip_prefix(pgkeel_ha::ha::WARNING_NOTE) {
                    Some(w) => tracing::warn!("{w}"),
                    None => tracing::info!("{note}"),
                }
            }
            if let Some(at) = d.wake_at {
                wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
            }
            // The executor acts on the core's view of the dynamic configuration (which keeps
            // the last good value of a bad key), not on its own reading of the snapshot.
            let config = ha.global_config(o.dcs.as_ref().ok());
            let executed = self.execute(&d, &o, tasks, &config).await?;
            if executed.exit {
                tracing::info!("{}", d.status);
                return Ok(Flow::Exit);
            }
            outcomes = executed.outcomes;
            peers = executed.peers;
            let restep = d.restep || !outcomes.is_empty() || peers.is_some();
            if restep && !d.actions.is_empty() {
                // An intermediate decision that acted (a fencing stop, a won race) is logged
                // too, not only the cycle's last word.
                tracing::info!("{}", d.status);
            }
            obs = Some(o);
            decision = Some(d);
            if !restep {
                break;
            }
        }
        let (Some(d), Some(o)) = (decision, obs) else {
            return Ok(Flow::Continue { wake_at });
        };
        tracing::info!("{}", d.status);
        self.publish(ha, &d, &o, lease_rx, status_tx, last_cluster)
            .await;
        Ok(Flow::Continue { wake_at })
    }

    /// Gathers one observation: DCS snapshot (read now unless `dcs_view` is given), local
    /// PostgreSQL, lease, running task.
    async fn observe(
        &self,
        lease_rx: &watch::Receiver<Option<LeaseView>>,
        task: Option<TaskKind>,
        outcomes: Vec<Outcome>,
        peers: Option<Vec<pgkeel_ha::ha::PeerStatus>>,
        dcs_view: Option<Result<Cluster, DcsUnavailable>>,
    ) -> Observation {
        let read_dcs = async {
            match dcs_view {
                Some(view) => view,
                None => self.read_cluster().await,
            }
        };
        let (dcs, local) = tokio::join!(read_dcs, self.pg.probe());
        Observation {
            now: self.clock.now(),
            wall_ms: jiff::Timestamp::now().as_millisecond(),
            dcs,
            lease: *lease_rx.borrow(),
            local,
            task,
            outcomes,
            peers,
            requests: Vec::new(),
        }
    }

    /// Reads and parses the cluster's keys; any error counts as "DCS not accessible".
    pub(crate) async fn read_cluster(&self) -> Result<Cluster, DcsUnavailable> {
        use crate::dcs::DcsError;
        let cluster = crate::dcs::read_cluster(self.dcs.as_ref(), &self.layout)
            .await
            .map_err(|e| match e {
                DcsError::Unavailable(_) => DcsUnavailable::Unreachable(e.to_string()),
                DcsError::LeaseNotFound | DcsError::Other(_) => {
                    DcsUnavailable::Refused(e.to_string())
                }
            })?;
        if let Ok(mut seen) = self.reported_unreadable.lock() {
            for u in &cluster.unreadable {
                if seen.insert((u.key.clone(), u.reason.clone())) {
                    tracing::warn!("ignoring unreadable DCS value at {}: {}", u.key, u.reason);
                }
            }
        }
        Ok(cluster)
    }
}
