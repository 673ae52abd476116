//! Publishing the node: its status for the REST API after every cycle, and its member key in
//! the DCS when that changed (WAL positions at most once per `loop_wait`).

use super::published::NodeStatus;
use super::{Agent, PUBLISHED_VERSION, lease};
use pgkeel_ha::Decision;
use pgkeel_ha::Ha;
use pgkeel_ha::cluster::{Cluster, GlobalConfig};
use pgkeel_ha::ha::{LeaseView, Observation};
use pgkeel_ha::keys::codec::MemberData;
use pgkeel_ha::pg::{PendingRestart, ServerRole};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// The member key as last written (see `Agent::last_member`).
#[derive(Debug, Clone)]
pub(crate) struct WrittenMember {
    json: String,
    lease: i64,
    without_positions: String,
    at: Instant,
}

impl Agent {
    /// Publishes the node status for the API and writes the member key if it changed.
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
        let replica = local.role == Some(ServerRole::Replica) && local.running;
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
            tags: self.cfg.tags.published.clone(),
            next_cycle_due: lease::later(Instant::now(), Duration::from_secs(gc.loop_wait)),
            last_message: d.status.clone(),
            version: PUBLISHED_VERSION.into(),
        };
        status_tx.send_replace(Arc::new(status));

        let Some(lease) = lease else { return };
        if o.dcs.is_err() {
            return;
        }
        let running = local.running && local.accepting_connections;
        let member = MemberData {
            conn_url: format!(
                "postgres://{}/postgres",
                self.cfg.postgresql.connect_address
            ),
            api_url: format!("http://{}/patroni", self.cfg.restapi.connect_address),
            state: d.node.state.to_string(),
            role: d.node.role.to_string(),
            version: PUBLISHED_VERSION.into(),
            tags: self.cfg.tags.published.clone(),
            pending_restart: (!local.pending_restart.is_empty()).then_some(true),
            pending_restart_reason: PendingRestart::reasons(&local.pending_restart),
            xlog_location: if running {
                local.wal_position.map(|l| l.0)
            } else {
                None
            },
            replay_lsn: if running && replica {
                local.replay_lsn.map(|l| l.0)
            } else {
                None
            },
            receive_lsn: if running && replica {
                local.receive_lsn.map(|l| l.0)
            } else {
                None
            },
            replication_state: if running && replica {
                Some(
                    if local.streaming {
                        "streaming"
                    } else {
                        "in archive recovery"
                    }
                    .to_string(),
                )
            } else {
                None
            },
            timeline: if running { local.timeline } else { None },
            pause: if gc.pause { Some(true) } else { None },
        };
        let json = member.to_json();
        let without_positions = MemberData {
            xlog_location: None,
            replay_lsn: None,
            receive_lsn: None,
            ..member.clone()
        }
        .to_json();
        let skip = self
            .last_member
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .is_some_and(|w| {
                w.lease == lease.id
                    && (w.json == json
                        || (w.without_positions == without_positions
                            && w.at.elapsed() < Duration::from_secs(gc.loop_wait)))
            });
        if skip {
            return;
        }
        match self
            .dcs
            .put(
                &self.layout.member(&self.cfg.name),
                json.as_bytes(),
                Some(lease.id),
            )
            .await
        {
            Ok(()) => {
                if let Ok(mut m) = self.last_member.lock() {
                    *m = Some(WrittenMember {
                        json,
                        lease: lease.id,
                        without_positions,
                        at: Instant::now(),
                    });
                }
            }
            Err(e) => tracing::warn!("could not update the member key: {e}"),
        }
    }
}
