//! The agent runtime: observe -> `pgkeel_ha::Ha::step` -> execute, plus the lease task.
//!
//! This module decides nothing: every condition about cluster policy lives in `pgkeel_ha`.
//! It gathers an `Observation`, asks the pure core, performs the returned actions in order
//! (`execute.rs`), runs long operations in the background (`tasks.rs`) and publishes the
//! node's state for the REST API and the member key.
//!
//! Its waits and deadlines come from the dynamic configuration and the DCS, which anyone with
//! etcd access can write: arithmetic here must not overflow or panic (checked or saturating,
//! [`lease::later`] for deadlines), and the lint below keeps it so, as in the core.

#![deny(clippy::arithmetic_side_effects)]

mod execute;
pub mod lease;
pub mod published;
pub mod requests;
mod tasks;

use crate::config::Config;
use crate::dcs::Dcs;
use crate::postgres::{PgNode, PostgresControl};

use lease::Clock;
use pgkeel_ha::cluster::{Cluster, DEFAULT_FAILOVER_PRIORITY, GlobalConfig};
use pgkeel_ha::ha::{DcsUnavailable, HaConfig, LeaseView, Observation, Outcome, TaskKind};
use pgkeel_ha::keys::KeyLayout;
use pgkeel_ha::keys::codec::MemberData;
use pgkeel_ha::pg::{LocalPostgres, ServerRole};
use pgkeel_ha::{Decision, Ha};
use published::NodeStatus;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, watch};

/// The version pgkeel publishes in member keys (dotted integers: Patroni peers parse it).
pub const PUBLISHED_VERSION: &str = "4.1.4";

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The HA core decided the node must not go on (system ID mismatch, failed bootstrap...).
    #[error("{message}")]
    Fatal {
        /// The core's message (Patroni's wording).
        message: String,
        /// Patroni logs it at CRITICAL rather than ERROR.
        critical: bool,
    },
    /// The REST API could not listen.
    #[error("cannot start the REST API on {addr}: {err}")]
    Api {
        /// Listen address.
        addr: String,
        /// Why.
        err: std::io::Error,
    },
    /// Another agent with this name is running.
    #[error("Can't start; there is already a node named '{0}' running")]
    DuplicateName(String),
}

impl AgentError {
    /// Whether Patroni logs this reason at CRITICAL (`logger.fatal`) rather than ERROR: a
    /// duplicate member name and a system ID mismatch. The caller that logs the error uses it.
    pub fn is_critical(&self) -> bool {
        match self {
            AgentError::Fatal { critical, .. } => *critical,
            AgentError::DuplicateName(_) => true,
            AgentError::Api { .. } => false,
        }
    }
}

/// Shared handles every part of the agent uses.
pub(crate) struct Agent {
    pub cfg: Arc<Config>,
    pub dcs: Arc<dyn Dcs>,
    pub pg: Arc<dyn PostgresControl>,
    pub layout: KeyLayout,
    pub clock: Clock,
    pub http: reqwest::Client,
    /// A slot could not be created because `max_replication_slots` is exhausted, and that was
    /// logged: the shortage is logged once (until a slot can be created again), not every cycle.
    pub slot_shortage_logged: std::sync::atomic::AtomicBool,
    /// Last member value written: its JSON, the lease, the JSON without WAL positions, and
    /// when. WAL positions alone change constantly under load; they are published at most once
    /// per `loop_wait`, while any other change is published at once.
    pub last_member: std::sync::Mutex<Option<WrittenMember>>,
    /// Slot positions seen by the last `SyncSlots`, for the `status` key.
    pub slot_lsns: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// The running callback process, killed when a new callback starts (as Patroni does).
    pub callback: tokio::sync::Mutex<Option<tokio::process::Child>>,
    /// Unreadable DCS values already reported, so each is logged once rather than every cycle.
    pub reported_unreadable: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
}

/// The member key as last written (see `Agent::last_member`).
#[derive(Debug, Clone)]
pub(crate) struct WrittenMember {
    json: String,
    lease: i64,
    without_positions: String,
    at: Instant,
}

/// Builds the pure core's per-node settings from the local config.
pub fn ha_config(cfg: &Config) -> HaConfig {
    HaConfig {
        name: cfg.name.clone(),
        nofailover: cfg.tags.nofailover || cfg.tags.failover_priority.is_some_and(|p| p <= 0),
        failover_priority: cfg
            .tags
            .failover_priority
            .unwrap_or(DEFAULT_FAILOVER_PRIORITY),
        replicatefrom: cfg.tags.replicatefrom.clone(),
        bootstrap_dcs: cfg.bootstrap.dcs.clone(),
        use_pg_rewind: cfg.postgresql.use_pg_rewind,
        remove_data_directory_on_rewind_failure: cfg
            .postgresql
            .remove_data_directory_on_rewind_failure,
        remove_data_directory_on_diverged_timelines: cfg
            .postgresql
            .remove_data_directory_on_diverged_timelines,
    }
}

/// Runs the agent on the local PostgreSQL of `cfg` until `shutdown` resolves (then stops
/// PostgreSQL and releases the leader key, as Patroni does on SIGTERM) or a fatal decision is
/// made. A returned error is not logged here: the caller logs it, at CRITICAL when
/// [`AgentError::is_critical`].
pub async fn run(
    cfg: Config,
    dcs: Arc<dyn Dcs>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let pg = Arc::new(PgNode::new(&cfg.postgresql, &cfg.scope, &cfg.name));
    run_with(cfg, dcs, pg, shutdown).await
}

/// [`run`] on any PostgreSQL seam: the in-process agent tests drive the real loop on a
/// `MemoryDcs` and a fake PostgreSQL through this.
pub async fn run_with(
    cfg: Config,
    dcs: Arc<dyn Dcs>,
    pg: Arc<dyn PostgresControl>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let cfg = Arc::new(cfg);
    let layout = KeyLayout::new(&cfg.namespace, &cfg.scope);
    let clock = Clock::new();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let agent = Arc::new(Agent {
        cfg: cfg.clone(),
        dcs: dcs.clone(),
        pg: pg.clone(),
        layout: layout.clone(),
        clock,
        http,
        slot_shortage_logged: Default::default(),
        last_member: Default::default(),
        slot_lsns: Default::default(),
        callback: Default::default(),
        reported_unreadable: Default::default(),
    });
    agent.ensure_unique_name().await?;

    let mut ha = Ha::new(ha_config(&cfg));
    // Patroni's patroni.dynamic.json: the cluster's timing before the DCS has answered.
    let mut cached_dynamic = match pg.load_dynamic_cache() {
        Ok(cached) => cached,
        Err(e) => {
            tracing::error!("Exception when loading file: {e}");
            None
        }
    };
    if let Some(c) = &cached_dynamic {
        ha.remember_dynamic_config(c.clone());
    }
    let initial_gc = ha.global_config(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ttl_tx, ttl_rx) = watch::channel(initial_gc.ttl);
    let (lease_tx, lease_rx) = watch::channel::<Option<LeaseView>>(None);
    tokio::spawn(lease::keep_lease(
        dcs.clone(),
        clock,
        ttl_rx,
        lease_tx,
        stop_rx.clone(),
    ));

    let status0 = NodeStatus {
        name: cfg.name.clone(),
        scope: cfg.scope.clone(),
        state: pgkeel_ha::ha::PgState::Stopped,
        role: pgkeel_ha::ha::Role::Uninitialized,
        postgres: LocalPostgres::empty(),
        postmaster_start_time: None,
        replication: vec![],
        replayed_timestamp: None,
        replay_paused: false,
        latest_end_lsn: None,
        leader_until: None,
        cluster: None,
        dcs_last_seen: None,
        global: initial_gc.clone(),
        tags: cfg.tags.published.clone(),
        next_cycle_due: lease::later(
            Instant::now(),
            Duration::from_secs(initial_gc.loop_wait.saturating_add(initial_gc.ttl)),
        ),
        last_message: String::new(),
        version: PUBLISHED_VERSION.into(),
    };
    let (status_tx, status_rx) = watch::channel(Arc::new(status0));
    let wake = Arc::new(Notify::new());
    let (request_tx, mut requests) = requests::channel();

    let listener = crate::api::server::bind(&cfg.restapi.listen)
        .await
        .map_err(|err| AgentError::Api {
            addr: cfg.restapi.listen.clone(),
            err,
        })?;
    let api_state = crate::api::ApiState {
        status: status_rx,
        dcs: dcs.clone(),
        layout: layout.clone(),
        auth: cfg.restapi.authentication.clone(),
        wake_agent: wake.clone(),
        live_wal: pg.live_wal().map(Arc::new),
        requests: Some(request_tx),
        restart_wait: Duration::from_secs(cfg.postgresql.pg_ctl_timeout.saturating_mul(2))
            .saturating_add(Duration::from_secs(10)),
    };
    let mut api_stop = stop_rx.clone();
    tokio::spawn(async move {
        let stopped = async move {
            let _ = api_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = crate::api::serve(listener, api_state, stopped).await {
            tracing::error!("REST API stopped: {e}");
        }
    });

    let mut leader_watch = dcs.watch_prefix(&layout.leader());
    let mut config_watch = dcs.watch_prefix(&layout.config());
    let mut members_watch = dcs.watch_prefix(&layout.members_prefix());
    let mut pg_exits = pg.postmaster_exits();
    let mut tasks = tasks::TaskSlot::default();
    let mut shutdown = Box::pin(shutdown);
    let mut last_cluster: Option<Cluster> = None;
    let mut replica_watch = ReplicaStartWatch::default();
    // Adjustments of the dynamic configuration already reported: Patroni warns when the
    // configuration changes, not on every cycle.
    let mut reported_config_warnings: Vec<String> = Vec::new();

    let mut lease_changes = lease_rx.clone();
    let mut shutting_down = false;
    loop {
        let cycle_start = Instant::now();
        let lease_seen = lease_rx.borrow().map(|l| l.id);
        let gc = ha.global_config(last_cluster.as_ref());
        if gc.warnings != reported_config_warnings {
            for w in &gc.warnings {
                tracing::warn!("{w}");
            }
            reported_config_warnings.clone_from(&gc.warnings);
        }
        ttl_tx.send_if_modified(|t| {
            let changed = *t != gc.ttl;
            *t = gc.ttl;
            changed
        });
        let result = agent
            .cycle(
                &mut ha,
                &mut tasks,
                &lease_rx,
                &status_tx,
                &mut last_cluster,
                &mut requests,
            )
            .await;
        match result {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit) => {
                let _ = stop_tx.send(true);
                return Ok(());
            }
            Err(e) => {
                // Logged once, by the caller, at the level Patroni uses (see `is_critical`).
                let _ = stop_tx.send(true);
                return Err(e);
            }
        }
        cache_dynamic_config(&pg, &ha, &status_tx, &mut cached_dynamic).await;
        let gc = ha.global_config(last_cluster.as_ref());
        let mut next = lease::later(cycle_start, Duration::from_secs(gc.loop_wait));
        // A primary must re-check its lease no later than the fencing deadline, whatever
        // loop_wait is: that is when it has to stop accepting writes if renewal failed.
        if let Some(l) = *lease_rx.borrow() {
            let fence_at = clock.instant(l.valid_until.minus_ms(gc.fencing_margin_ms()));
            if fence_at > Instant::now() && fence_at < next {
                next = fence_at;
            }
        }
        if let Some(soon) = replica_watch.next_check(&status_tx.borrow().postgres, gc.loop_wait) {
            next = next.min(soon);
        }
        let is_leader = status_tx.borrow().leader_until.is_some();
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = leader_watch.changed() => {}
            _ = config_watch.changed() => {}
            // New members get their slot at once. (The leader's own LSN-only member updates
            // are written at most once per loop_wait, so this does not spin under write load.)
            _ = members_watch.changed(), if is_leader => {}
            _ = pg_exits.changed() => {}
            _ = wake.notified() => {}
            () = requests.arrived() => {}
            _ = tasks.finished() => {}
            // A lease granted (the first one, at start: the loop must not wait a loop_wait
            // for it before it can bootstrap or race), lost or replaced; renewals do not wake.
            () = lease_replaced(&mut lease_changes, lease_seen) => {}
            // SIGTERM: a request like any other; the core decides what shutting down means
            // (rules/shutdown.rs: stop PostgreSQL, then release; in pause mode leave both).
            _ = &mut shutdown, if !shutting_down => {
                tracing::info!("shutting down");
                shutting_down = true;
                requests.push(pgkeel_ha::ha::RequestKind::Shutdown);
            }
        }
    }
}

/// Resolves when the lease's id is no longer `seen` (granted, lost or replaced), not when it
/// is merely renewed; never, once the lease keeper has stopped.
async fn lease_replaced(rx: &mut watch::Receiver<Option<LeaseView>>, seen: Option<i64>) {
    loop {
        if rx.borrow_and_update().map(|l| l.id) != seen {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Whether the loop goes on after a cycle.
enum Flow {
    /// Sleep until the next wake-up, then cycle again.
    Continue,
    /// The core decided the agent ends (a shutdown finished).
    Exit,
}

/// A replica that has just started streams a moment later; its member key (and so `/cluster`,
/// `pgkeelctl list`, a load balancer) would say so only a whole `loop_wait` later. For one
/// `loop_wait` after PostgreSQL is first seen running as a replica, and until it streams, the
/// loop looks again every [`REPLICA_START_RECHECK`].
#[derive(Default)]
struct ReplicaStartWatch {
    was_running: bool,
    until: Option<Instant>,
}

/// How often a just-started replica is looked at until it streams.
const REPLICA_START_RECHECK: Duration = Duration::from_millis(250);

impl ReplicaStartWatch {
    /// When to cycle again for `pg` (the state just published), if sooner than usual.
    fn next_check(&mut self, pg: &LocalPostgres, loop_wait: u64) -> Option<Instant> {
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

/// Writes `patroni.dynamic.json` when the `/config` the core goes by changed since it was last
/// written, once the data directory exists (as Patroni does after each cycle).
async fn cache_dynamic_config(
    pg: &Arc<dyn PostgresControl>,
    ha: &Ha,
    status: &watch::Sender<Arc<NodeStatus>>,
    cached: &mut Option<serde_json::Map<String, serde_json::Value>>,
) {
    let Some(seen) = ha.memory().dynamic_config.as_ref() else {
        return;
    };
    let initialized = matches!(
        status.borrow().postgres.data_dir,
        pgkeel_ha::pg::DataDir::Initialized { .. }
    );
    if cached.as_ref() == Some(seen) || !initialized {
        return;
    }
    let (pg, config) = (pg.clone(), seen.clone());
    let saved =
        tokio::task::spawn_blocking(move || pg.save_dynamic_cache(&config).map(|()| config)).await;
    match saved {
        Ok(Ok(config)) => *cached = Some(config),
        Ok(Err(e)) => tracing::error!("Exception when saving file: {e}"),
        Err(e) => tracing::error!("Exception when saving file: {e}"),
    }
}

impl Agent {
    /// One HA cycle: observe, step (again while the core asks to), execute, publish.
    async fn cycle(
        self: &Arc<Self>,
        ha: &mut Ha,
        tasks: &mut tasks::TaskSlot,
        lease_rx: &watch::Receiver<Option<LeaseView>>,
        status_tx: &watch::Sender<Arc<NodeStatus>>,
        last_cluster: &mut Option<Cluster>,
        requests: &mut requests::Requests,
    ) -> Result<Flow, AgentError> {
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
            return Ok(Flow::Continue);
        };
        tracing::info!("{}", d.status);
        self.publish(ha, &d, &o, lease_rx, status_tx, last_cluster)
            .await;
        Ok(Flow::Continue)
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

    /// Publishes the node status for the API and writes the member key if it changed.
    async fn publish(
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
            pending_restart: None,
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

    /// Refuses to start when a live agent already answers for this member name (Patroni's
    /// `ensure_unique_name`).
    async fn ensure_unique_name(&self) -> Result<(), AgentError> {
        let Ok(cluster) = self.read_cluster().await else {
            return Ok(());
        };
        let Some(api) = cluster
            .member(&self.cfg.name)
            .and_then(|m| m.api_url.clone())
        else {
            return Ok(());
        };
        let url = api.replace("/patroni", "/liveness");
        let probe = self
            .http
            .get(&url)
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        if probe.is_ok() {
            return Err(AgentError::DuplicateName(self.cfg.name.clone()));
        }
        Ok(())
    }
}
