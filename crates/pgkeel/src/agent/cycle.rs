//! One HA cycle: observe, step (again while the core asks to), execute, publish.

use super::{Agent, AgentError, requests, tasks};
use pgkeel_ha::cluster::Cluster;
use pgkeel_ha::ha::{
    Cycle, DcsUnavailable, LeaseView, Next, Observation, Outcome, StatusLevel, TaskKind,
};
use pgkeel_ha::{Decision, Ha};
use std::sync::Arc;
use tokio::sync::watch;

use super::published::NodeStatus;
use pgkeel_ha::pg::{LocalSlot, SlotType};

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
        // The agent contract (step, act in order, stop at a failure, step again while the
        // core asks, write the member key last) is the core's `Cycle`, which the simulator
        // drives too; this only runs what it hands out.
        let mut carried = self
            .carried
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        carried.extend(tasks.take_finished());
        let mut cycle = Cycle::new(carried);
        let mut wake_at: Option<pgkeel_ha::time::MonoTime> = None;
        let mut obs: Option<Observation> = None;
        let mut config = ha.global_config(last_cluster.as_ref());
        loop {
            match cycle.next_move() {
                Next::Step => {
                    if let Some(d) = cycle.decision()
                        && !d.actions.is_empty()
                    {
                        // An intermediate decision that acted (a fencing stop, a won race) is
                        // logged too, not only the cycle's last word.
                        log_status(d);
                    }
                    let (outcomes, peers) = cycle.take_inputs();
                    // The peers were probed to judge the cluster as it was: the core weighs
                    // their answers against the same DCS view (as Patroni's cycle does), so a
                    // node that stands back says why even when the winner's key appeared
                    // meanwhile. The leader CAS still guards the race.
                    let dcs_view = match (&peers, &obs) {
                        (Some(_), Some(prev)) => Some(prev.dcs.clone()),
                        _ => None,
                    };
                    // Slots are listed only where the core may want them (use_slots).
                    let list_slots = config.use_slots;
                    let mut o = self
                        .observe(
                            lease_rx,
                            tasks.running(),
                            outcomes,
                            peers,
                            dcs_view,
                            list_slots,
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
                    // The executor acts on the core's view of the dynamic configuration (which
                    // keeps the last good value of a bad key), not on its own reading of the
                    // snapshot.
                    config = ha.global_config(o.dcs.as_ref().ok());
                    obs = Some(o);
                    cycle.decided(d);
                }
                Next::Run(action) => {
                    let Some(o) = &obs else {
                        return Ok(Flow::Continue { wake_at });
                    };
                    let ran = self.execute(&action, o, tasks, &config).await?;
                    cycle.report(ran);
                }
                Next::Exit => {
                    if let Some(d) = cycle.decision() {
                        log_status(d);
                    }
                    return Ok(Flow::Exit);
                }
                Next::Finished => break,
            }
        }
        if let Ok(mut c) = self.carried.lock() {
            *c = cycle.carry();
        }
        let (Some(d), Some(o)) = (cycle.decision(), obs) else {
            return Ok(Flow::Continue { wake_at });
        };
        log_status(d);
        self.publish(ha, d, &o, lease_rx, status_tx, last_cluster)
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
        list_slots: bool,
    ) -> Observation {
        let read_dcs = async {
            match dcs_view {
                Some(view) => view,
                None => self.read_cluster().await,
            }
        };
        let (dcs, local) = tokio::join!(read_dcs, self.pg.probe());
        // Member slots (the leader's, and a replica's for members cascading from it) are the
        // core's decision: it sees the local ones.
        let slots = if list_slots && (local.is_running_primary() || local.is_running_replica()) {
            self.local_slots().await
        } else {
            None
        };
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
            slots,
        }
    }

    /// The local server's replication slots; `None` when they cannot be listed (the core then
    /// changes none, and the `status` write waits).
    async fn local_slots(&self) -> Option<Vec<LocalSlot>> {
        match self.pg.list_slots().await {
            Ok(slots) => Some(
                slots
                    .into_iter()
                    .map(|s| LocalSlot {
                        slot_type: if s.slot_type == "physical" {
                            SlotType::Physical
                        } else {
                            SlotType::Logical
                        },
                        name: s.name,
                        active: s.active,
                        restart_lsn: s.restart_lsn,
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!("could not list the replication slots: {e}");
                None
            }
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

/// Logs a decision's status at the level the core gave it (Patroni's level for that message).
/// An empty status (the start check for a duplicate name, which Patroni does not log) is not
/// logged.
fn log_status(d: &Decision) {
    if d.status.is_empty() {
        return;
    }
    match d.level {
        StatusLevel::Info => tracing::info!("{}", d.status),
        StatusLevel::Error => tracing::error!("{}", d.status),
    }
}
