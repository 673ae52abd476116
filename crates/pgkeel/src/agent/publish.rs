//! Publishing the node's status for the REST API after every cycle. (Its member key in the DCS
//! is the core's decision, `Decision::member`, written by `execute.rs` as `WriteMember`.)

use super::published::NodeStatus;
use super::{Agent, PUBLISHED_VERSION, lease};
use pgkeel_ha::Decision;
use pgkeel_ha::Ha;
use pgkeel_ha::cluster::{Cluster, GlobalConfig};
use pgkeel_ha::ha::{LeaseView, Observation};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

impl Agent {
    /// Publishes the node status for the API.
    pub(super) async fn publish(
        &self,
        ha: &Ha,
        d: &Decision,
        o: &Observation,
        lease_rx: &watch::Receiver<Option<LeaseView>>,
        status_tx: &watch::Sender<Arc<NodeStatus>>,
        last_cluster: &Option<Cluster>,
    ) {
        let lease = *lease_rx.borrow();
        let gc: GlobalConfig = ha.global_config(last_cluster.as_ref());
        let holds_key = last_cluster
            .as_ref()
            .and_then(|c| c.leader.as_ref())
            .is_some_and(|l| l.name == self.cfg.name && lease.is_some_and(|x| x.id == l.lease));
        let leader_until = match (holds_key, lease) {
            (true, Some(l)) => Some(
                self.clock
                    .instant(l.valid_until.minus_ms(gc.fencing_margin_ms())),
            ),
            _ => None,
        };
        let local = &o.local;
        let details = if local.running && local.accepting_connections {
            self.pg.status_details().await
        } else {
            crate::postgres::StatusDetails::default()
        };
        let status = NodeStatus {
            name: self.cfg.name.clone(),
            scope: self.cfg.scope.clone(),
            state: d.node.state,
            role: d.node.role,
            postgres: local.clone(),
            postmaster_start_time: details.postmaster_start_time,
            replication: details.replication,
            replayed_timestamp: details.replayed_timestamp,
            replay_paused: details.replay_paused,
            latest_end_lsn: details.latest_end_lsn,
            leader_until,
            cluster: last_cluster.clone(),
            dcs_last_seen: if o.dcs.is_ok() {
                Some(SystemTime::now())
            } else {
                status_tx.borrow().dcs_last_seen
            },
            global: gc.clone(),
            tags: ha
                .config()
                .member
                .as_ref()
                .map(|m| m.tags.clone())
                .unwrap_or_default(),
            next_cycle_due: lease::later(Instant::now(), Duration::from_secs(gc.loop_wait)),
            last_message: d.status.clone(),
            version: PUBLISHED_VERSION.into(),
            scheduled_restart: ha.memory().scheduled_restart.clone(),
        };
        status_tx.send_replace(Arc::new(status));
    }
}
