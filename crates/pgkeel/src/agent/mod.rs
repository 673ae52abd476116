//! The agent runtime: observe -> `pgkeel_ha::Ha::step` -> execute, plus the lease task.
//!
//! This module decides nothing: every condition about cluster policy lives in `pgkeel_ha`.
//! It gathers an `Observation`, asks the pure core, performs the returned actions in order
//! (`execute.rs`), runs long operations in the background (`tasks.rs`) and publishes the
//! node's state for the REST API and the member key.
//!
//! # Layout
//! * `run.rs`: the loop itself ([`run`], [`run_with`]): what wakes it, when it ends.
//! * `cycle.rs`: one cycle, driven by the core's `Cycle`: observe, step, execute, publish.
//! * `execute.rs`: every action of the core, performed in one place; `tasks.rs`: the long ones.
//! * `publish.rs`: the node's status for the REST API.
//! * `lease.rs`: the lease keeper; `requests.rs`: requests in, answers out.
//! * `reload.rs`: SIGHUP and `POST /reload`: the configuration file read again and applied
//!   (what changes and how is decided by its pure `plan`).
//! * `rest_server.rs`: the REST API server, moved when a reload changes `restapi.listen`.
//! * `replica_watch.rs`, `error.rs`: what their names say.
//!
//! Its waits and deadlines come from the dynamic configuration and the DCS, which anyone with
//! etcd access can write: arithmetic here must not overflow or panic (checked or saturating,
//! [`lease::later`] for deadlines), and the lint below keeps it so, as in the core.

#![deny(clippy::arithmetic_side_effects)]

pub mod callbacks;
mod cycle;
mod error;
mod execute;
pub mod lease;
mod publish;
pub mod published;
mod reload;
mod replica_watch;
pub mod requests;
mod rest_server;
mod run;
mod tasks;

use crate::config::Config;
use crate::dcs::Dcs;
use crate::postgres::PostgresControl;
use lease::Clock;
use pgkeel_ha::cluster::DEFAULT_FAILOVER_PRIORITY;
use pgkeel_ha::ha::{HaConfig, MemberIdentity};
use pgkeel_ha::keys::KeyLayout;
use std::sync::Arc;

pub use error::AgentError;
pub use run::{run, run_with};

/// The version pgkeel publishes in member keys (dotted integers: Patroni peers parse it).
pub const PUBLISHED_VERSION: &str = "4.1.4";

/// Shared handles every part of the agent uses.
pub(crate) struct Agent {
    /// The configuration the agent started with. What a reload may change is read from
    /// [`Agent::live_cfg`]; the keys a reload cannot change are equal in both.
    pub cfg: Arc<Config>,
    /// The configuration as last reloaded (`reload.rs`), or `cfg` before any reload.
    pub live: std::sync::RwLock<Arc<Config>>,
    pub dcs: Arc<dyn Dcs>,
    pub pg: Arc<dyn PostgresControl>,
    pub layout: KeyLayout,
    pub clock: Clock,
    pub http: reqwest::Client,
    /// A slot could not be created because `max_replication_slots` is exhausted, and that was
    /// logged: the shortage is logged once (until a slot can be created again), not every cycle.
    pub slot_shortage_logged: std::sync::atomic::AtomicBool,
    /// Outcomes a cycle hands to the next one's first step (what `WriteMember` wrote: the
    /// core decides from it whether the member key needs writing again).
    pub carried: std::sync::Mutex<Vec<pgkeel_ha::ha::Outcome>>,
    /// Slot positions seen by the last `SyncSlots`, for the `status` key.
    pub slot_lsns: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Runs the user callbacks one at a time, in order, each bounded (see `callbacks.rs`).
    pub callbacks: callbacks::CallbackRunner,
    /// Unreadable DCS values already reported, so each is logged once rather than every cycle.
    pub reported_unreadable: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
}

impl Agent {
    /// The configuration as last reloaded: parameters, credentials, callbacks, tags,
    /// timeouts come from here.
    pub fn live_cfg(&self) -> Arc<Config> {
        match self.live.read() {
            Ok(live) => live.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
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
        member: Some(MemberIdentity {
            conn_url: format!("postgres://{}/postgres", cfg.postgresql.connect_address),
            api_url: format!("http://{}/patroni", cfg.restapi.connect_address),
            tags: cfg.tags.published.clone(),
            version: PUBLISHED_VERSION.into(),
        }),
        check_unique_name: true,
    }
}
