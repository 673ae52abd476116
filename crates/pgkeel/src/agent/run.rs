//! The loop: start the lease keeper and the REST API, then cycle until the core decides the
//! agent ends; each wait ends early on whatever may change the decision (DCS watches, a
//! postmaster exit, a request, a finished task, a new lease, the fencing deadline).

use super::cycle::Flow;
use super::replica_watch::ReplicaStartWatch;
use super::rest_server::RestServer;
use super::{Agent, AgentError, PUBLISHED_VERSION, ha_config, lease, published, requests, tasks};
use crate::config::Config;
use crate::dcs::Dcs;
use crate::postgres::{PgNode, PostgresControl};
use lease::Clock;
use pgkeel_ha::Ha;
use pgkeel_ha::cluster::Cluster;
use pgkeel_ha::ha::LeaseView;
use pgkeel_ha::keys::KeyLayout;
use pgkeel_ha::pg::LocalPostgres;
use published::NodeStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

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
        live: std::sync::RwLock::new(cfg.clone()),
        dcs: dcs.clone(),
        pg: pg.clone(),
        layout: layout.clone(),
        clock,
        http,
        slot_shortage_logged: Default::default(),
        carried: Default::default(),
        slot_lsns: Default::default(),
        callbacks: super::callbacks::CallbackRunner::new(
            cfg.postgresql.callbacks.clone(),
            &cfg.scope,
        ),
        reported_unreadable: Default::default(),
    });

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
        scheduled_restart: None,
    };
    let (status_tx, status_rx) = watch::channel(Arc::new(status0));
    let wake = Arc::new(Notify::new());
    // SIGHUP and `POST /reload`: re-read the configuration file (see `reload.rs`).
    let reload = Arc::new(Notify::new());
    super::reload::notify_on_sighup(reload.clone());
    let mut running_config = (*cfg).clone();
    let (request_tx, mut requests) = requests::channel();
    let mut tasks = tasks::TaskSlot::default();
    let mut last_cluster: Option<Cluster> = None;

    // The core's first cycle is Patroni's `ensure_unique_name` alone (`rules/unique_name.rs`):
    // as in Patroni, before the lease and the REST API exist, so a second agent of a running
    // node's name says so instead of failing to listen on its port.
    while ha.config().check_unique_name && !ha.memory().unique_name_checked {
        agent
            .cycle(
                &mut ha,
                &mut tasks,
                &lease_rx,
                &status_tx,
                &mut last_cluster,
                &mut requests,
            )
            .await?;
    }
    tokio::spawn(lease::keep_lease(
        dcs.clone(),
        clock,
        ttl_rx,
        lease_tx,
        stop_rx.clone(),
    ));

    let write_guard = crate::api::WriteGuard::new(
        cfg.restapi.authentication.clone(),
        crate::api::access::AccessList::from_config(
            &cfg.restapi.allowlist,
            cfg.restapi.allowlist_include_members,
        ),
    );
    let api_state = crate::api::ApiState {
        status: status_rx,
        dcs: dcs.clone(),
        layout: layout.clone(),
        write_guard: write_guard.clone(),
        wake_agent: wake.clone(),
        live_wal: pg.live_wal().map(Arc::new),
        requests: Some(request_tx),
        restart_wait: Duration::from_secs(cfg.postgresql.pg_ctl_timeout.saturating_mul(2))
            .saturating_add(Duration::from_secs(10)),
        reload_agent: reload.clone(),
    };
    let mut rest = RestServer::start(&cfg.restapi.listen, api_state, stop_rx.clone())
        .await
        .map_err(|err| AgentError::Api {
            addr: cfg.restapi.listen.clone(),
            err,
        })?;

    let mut leader_watch = dcs.watch_prefix(&layout.leader());
    let mut config_watch = dcs.watch_prefix(&layout.config());
    let mut members_watch = dcs.watch_prefix(&layout.members_prefix());
    // A switchover or failover request, written through any node's API or patronictl: the
    // leader acts on it at once instead of a loop_wait later.
    let mut failover_watch = dcs.watch_prefix(&layout.failover());
    let mut pg_exits = pg.postmaster_exits();
    let mut shutdown = Box::pin(shutdown);
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
        let wake_at = match result {
            Ok(Flow::Continue { wake_at }) => wake_at,
            Ok(Flow::Exit) => {
                let _ = stop_tx.send(true);
                // The shutdown's on_stop is queued: let it run before the process ends.
                if !agent
                    .callbacks
                    .drain(super::callbacks::CALLBACK_TIMEOUT)
                    .await
                {
                    tracing::warn!("exiting before every callback has finished");
                }
                return Ok(());
            }
            Err(e) => {
                // Logged once, by the caller, at the level Patroni uses (see `is_critical`).
                let _ = stop_tx.send(true);
                return Err(e);
            }
        };
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
        // A scheduled switchover is due (the core said when).
        if let Some(at) = wake_at {
            next = next.min(clock.instant(at).max(Instant::now()));
        }
        if let Some(soon) = replica_watch.next_check(&status_tx.borrow().postgres, gc.loop_wait) {
            next = next.min(soon);
        }
        let is_leader = status_tx.borrow().leader_until.is_some();
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = leader_watch.changed() => {}
            _ = config_watch.changed() => {}
            _ = failover_watch.changed() => {}
            // New members get their slot at once. (The leader's own LSN-only member updates
            // are written at most once per loop_wait, so this does not spin under write load.)
            _ = members_watch.changed(), if is_leader => {}
            _ = pg_exits.changed() => {}
            _ = wake.notified() => {}
            _ = reload.notified() => {
                if let Some(new) = super::reload::reread(&running_config) {
                    let (mut applied, plan) = super::reload::plan(&running_config, new);
                    if plan.restapi_listen {
                        move_rest_server(&mut rest, &mut applied).await;
                    }
                    agent.apply_reload(&applied, &plan, &write_guard);
                    ha.reconfigure(ha_config(&applied));
                    // As on SIGHUP in Patroni: the server's files are rewritten and it is
                    // reloaded, changed or not (the core's reload rule, then on_reload).
                    ha.reload_postgres_config();
                    running_config = applied;
                } else {
                    // As in Patroni: PostgreSQL is still reloaded, with the running settings.
                    ha.reload_postgres_config();
                }
            }
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

/// A reload changed `restapi.listen`: the API moves there, or stays (and so does the running
/// value) when the new address cannot be bound.
async fn move_rest_server(rest: &mut RestServer, applied: &mut Config) {
    let old = rest.listen().to_string();
    let new = applied.restapi.listen.clone();
    match rest.move_to(&new).await {
        Ok(()) => tracing::info!("REST API moved from {old} to {new}"),
        Err(e) => {
            tracing::error!("cannot start the REST API on {new}: {e}; it stays on {old}");
            applied.restapi.listen = old;
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
